//! Clear errors (issue 15, item 6): the errno a user meets for a name no
//! object has, a name that is no message type, a bad size, a key alias, a
//! refused open, and what the daemon's log says about a failed request.

use crate::common::*;

use std::fs::OpenOptions;
use std::process::Command;

use ipcfs::ipc::Key;
use ipcfs::ipc::msg;
use ipcfs::ipc::sem;
use ipcfs::ipc::shm;

/// The errno of opening `path` for writing, creating it if missing (what
/// `echo x > path` and `truncate` do).
fn create_errno(path: &std::path::Path) -> i32 {
    errno(OpenOptions::new().write(true).create(true).truncate(true).open(path))
}

#[test]
fn writing_to_a_name_no_object_has_is_enoent_and_to_no_message_type_einval() {
    let m = Mounted::new();
    let seg = create_segment(0x6e01, 4096, 0o600);
    sh_ok(&format!("ipcrm -m {}", seg.0));
    assert_eq!(create_errno(&m.shm(seg)), libc::ENOENT, "echo x > shm/<id> after ipcrm");
    let out = Command::new("bash").arg("-c").arg(format!("echo x > {}", q(&m.shm(seg)))).output().unwrap();
    assert_refused(&out, "No such file or directory", "echo x > shm/<id> after ipcrm");

    let set = create_set(0x6e02, 1, 0o600);
    assert_eq!(create_errno(&m.path(format!("sem/{}/1", set.0))), libc::ENOENT, "a semaphore past the set's end");
    assert_eq!(create_errno(&m.path("sem/4242")), libc::ENOENT, "a set that does not exist");
    assert_eq!(create_errno(&m.path("limits/nonsense")), libc::ENOENT, "a limit there is not");

    let queue = create_queue(0x6e03, 0o600);
    for name in ["0", "-1", "007", "word", ".recv/0", ".wait/x"] {
        let path = m.path(format!("msg/{}/{name}", queue.0));
        assert_eq!(create_errno(&path), libc::EINVAL, "msg/<id>/{name} is no message type");
    }
    assert_eq!(msg::stat_any(queue).unwrap().qnum, 0, "nothing was sent");
    assert_eq!(sem::stat_any(set).unwrap().nsems, 1);
}

#[test]
fn truncate_to_size_zero_of_a_new_key_is_einval_and_creates_nothing() {
    let m = Mounted::new();
    let path = m.path("shm/0x6e77");
    let out = sh(&format!("truncate -s 0 {}", q(&path)));
    assert_refused(&out, "Invalid argument", "truncate -s 0 shm/0x6e77");
    assert_eq!(shm::get(Key(0x6e77), 0, 0), Err(libc_errno(libc::ENOENT)), "no segment was made");
}

fn libc_errno(e: i32) -> ipcfs::ipc::Errno {
    ipcfs::ipc::Errno::from_raw(e)
}

#[test]
fn the_key_alias_works_for_rmdir_and_rm_r() {
    let m = Mounted::new();
    let set = create_set(0x4321, 2, 0o600);
    sh_ok(&format!("rmdir {}", q(&m.path("sem/0x4321"))));
    assert!(sem::stat_any(set).is_err(), "rmdir sem/0x4321 removed the set");

    let set = create_set(0x4322, 3, 0o600);
    sh_ok(&format!("rm -r {}", q(&m.path("sem/0x4322"))));
    assert!(sem::stat_any(set).is_err(), "rm -r sem/0x4322 removed the set");

    let queue = create_queue(0x8001, 0o600);
    msg::send(queue, 3, b"doomed", false).unwrap();
    sh_ok(&format!("rm -r {}", q(&m.path("msg/0x8001"))));
    assert!(msg::stat_any(queue).is_err(), "rm -r msg/0x8001 removed the queue");

    let queue = create_queue(0x8002, 0o600);
    sh_ok(&format!("rmdir {}", q(&m.path("msg/0x8002"))));
    assert!(msg::stat_any(queue).is_err(), "rmdir msg/0x8002 removed the queue");

    let out = sh(&format!("rmdir {}", q(&m.path("sem/0x4323"))));
    assert_refused(&out, "No such file or directory", "rmdir of a key no set has");
}

#[test]
fn opening_for_writing_without_permission_fails_at_open_with_eacces() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let set = create_set(0x6e04, 1, 0o600);
    let queue = create_queue(0x6e05, 0o600);
    let semaphore = m.path(format!("sem/{}/0", set.0));
    let any = m.path(format!("msg/{}/any", queue.0));
    for path in [&semaphore, &any] {
        // dash says "I/O error" for a write that fails; a refused open it
        // reports as what it is.
        let out = sh_as(1000, 1000, &[], &format!("echo 1 > {}", q(path)));
        assert_refused(&out, "Permission denied", &format!("echo 1 > {} as another user", path.display()));
    }
    assert_eq!(sem::query(set, 0, sem::Query::Value).unwrap(), 0, "nothing was set");
    assert_eq!(msg::stat_any(queue).unwrap().qnum, 0, "nothing was sent");

    // Read permission alone still opens a semaphore for writing: `=0` (wait
    // until zero) needs no more, as semop asks.
    let readable = create_set(0x6e06, 1, 0o604);
    let path = m.path(format!("sem/{}/0", readable.0));
    sh_ok(&format!("setpriv --reuid 1000 --regid 1000 --clear-groups sh -c 'echo =0 > {}'", q(&path)));
    let out = sh_as(1000, 1000, &[], &format!("echo 1 > {}", q(&path)));
    assert!(!out.status.success(), "a reader may not set the value");
    assert_eq!(sem::query(readable, 0, sem::Query::Value).unwrap(), 0);
}

#[test]
fn a_failed_request_is_logged_with_its_inode_name_and_caller() {
    let (m, log) = Mounted::with_log("ipcfs=debug");
    let probe = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg("import os, sys\nprint(os.getpid())\ntry:\n    open(sys.argv[1])\nexcept OSError:\n    pass\n")
        .arg(m.path("shm/987654"))
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&probe.stdout).trim().to_string();
    drop(m);
    let text = std::fs::read_to_string(&log.path).unwrap_or_default();
    let line = text.lines().find(|l| l.contains("lookup") && l.contains("\"987654\""));
    let line = line.unwrap_or_else(|| panic!("no log line for the failed lookup in:\n{text}"));
    assert!(line.contains(&format!("for pid {pid} uid 0")), "the caller is named: {line}");
    assert!(line.contains("in inode "), "the directory's inode is named: {line}");
}
