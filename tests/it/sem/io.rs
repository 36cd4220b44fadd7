//! The tree of a set (`sem/<semid>/<semnum>` and its key link), reading a
//! semaphore's value and writing commands to it.

use super::*;

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use ipcfs::ipc::sem;

// ---- 1. layout ----

#[test]
fn tree_has_a_directory_per_set_a_file_per_semaphore_and_links_for_keyed_sets() {
    let m = Mounted::new();
    let keyed = create_set(0x5e11, 3, 0o600);
    let high = create_set(0xfedc0001_u32 as i32, 1, 0o640);
    let private = create_set(libc::IPC_PRIVATE, 2, 0o600);
    let mut ids: Vec<String> = [keyed, high, private].iter().map(|id| id.0.to_string()).collect();
    ids.sort();
    assert_eq!(list(&m.path("sem")), ids);
    assert_eq!(list(&m.path("by-key/sem")), ["0x00005e11", "0xfedc0001"], "a link per keyed set, none for private");

    for (id, nsems) in [(keyed, 3), (high, 1), (private, 2)] {
        let dir = set_dir(&m, id);
        assert!(fs::metadata(&dir).unwrap().is_dir(), "sem/{} is a directory", id.0);
        let expected: Vec<String> = (0..nsems).map(|n: u16| n.to_string()).collect();
        assert_eq!(list(&dir), expected, "one file per semaphore of set {}", id.0);
        for n in 0..nsems {
            assert!(fs::metadata(sem_file(&m, id, n)).unwrap().is_file());
        }
        assert_eq!(errno(fs::metadata(sem_file(&m, id, nsems))), libc::ENOENT, "no semaphore {nsems}");
    }
    assert_eq!(errno(fs::metadata(m.path(format!("sem/{}/00", keyed.0)))), libc::ENOENT, "one spelling");
    assert_eq!(errno(fs::metadata(m.path(format!("sem/{}/-1", keyed.0)))), libc::ENOENT);

    for (key, id) in [("0x00005e11", keyed), ("0xfedc0001", high)] {
        let link = m.path(format!("by-key/sem/{key}"));
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "{key} is a symlink");
        assert_eq!(fs::read_link(&link).unwrap(), Path::new(&format!("../../sem/{}", id.0)));
        let followed = fs::metadata(&link).unwrap();
        assert!(followed.is_dir());
        assert_eq!(followed.ino(), fs::metadata(set_dir(&m, id)).unwrap().ino(), "{key} leads to sem/{}", id.0);
        assert_eq!(list(&link), list(&set_dir(&m, id)));
    }
    assert_eq!(attr(&set_dir(&m, private), "user.ipc.key"), "0x00000000");
    assert_eq!(errno(fs::symlink_metadata(m.path("by-key/sem/0x00000000"))), libc::ENOENT);
    assert_eq!(errno(fs::symlink_metadata(m.path("by-key/sem/0x5e11"))), libc::ENOENT, "one spelling of keys");
}

#[test]
fn sets_made_and_removed_by_ipcmk_and_ipcrm_show_at_once() {
    let m = Mounted::new();
    // Looked up (and missed) before they exist: no negative entry may stick.
    assert_eq!(errno(fs::metadata(m.path("sem/0"))), libc::ENOENT);
    assert_eq!(errno(fs::symlink_metadata(m.path("by-key/sem/0x00c0ffee"))), libc::ENOENT);
    assert!(list(&m.path("sem")).is_empty());

    let made = ipcmk_set(None, 4, 0o640);
    let made_key = key_name(kstat(made).perm.key.0);
    assert_eq!(list(&m.path("sem")), [made.0.to_string()]);
    assert_eq!(list(&set_dir(&m, made)), ["0", "1", "2", "3"]);
    assert_eq!(fs::metadata(set_dir(&m, made)).unwrap().size(), 4);
    assert_eq!(list(&m.path("by-key/sem")), std::slice::from_ref(&made_key));

    let keyed = create_set(0x00c0ffee, 2, 0o600);
    assert_eq!(fs::read_link(m.path("by-key/sem/0x00c0ffee")).unwrap(), Path::new(&format!("../../sem/{}", keyed.0)));
    assert_eq!(list(&set_dir(&m, keyed)), ["0", "1"]);

    shell_ok(&format!("ipcrm -s {}", made.0));
    assert!(is_gone(made));
    assert_eq!(list(&m.path("sem")), [keyed.0.to_string()]);
    assert_eq!(errno(fs::metadata(set_dir(&m, made))), libc::ENOENT);
    assert_eq!(errno(fs::metadata(sem_file(&m, made, 0))), libc::ENOENT);
    assert_eq!(errno(fs::symlink_metadata(m.path(format!("by-key/sem/{made_key}")))), libc::ENOENT);
    assert_eq!(list(&m.path("by-key/sem")), ["0x00c0ffee"]);

    shell_ok("ipcrm -S 0x00c0ffee");
    assert!(is_gone(keyed));
    assert!(list(&m.path("sem")).is_empty());
    assert!(list(&m.path("by-key/sem")).is_empty());
    assert_eq!(errno(fs::metadata(set_dir(&m, keyed))), libc::ENOENT);

    let again = create_set(0x00c0ffee, 1, 0o600);
    assert_eq!(fs::read_link(m.path("by-key/sem/0x00c0ffee")).unwrap(), Path::new(&format!("../../sem/{}", again.0)));
    assert_eq!(list(&set_dir(&m, again)), ["0"]);
}

// ---- 2. reading ----

#[test]
fn cat_prints_the_kernels_value_fresh_every_time() {
    let m = Mounted::new();
    let id = create_set(0x2ead, 3, 0o600);
    let path = sem_file(&m, id, 1);
    assert_eq!(cat(&path), "0\n");
    for v in [1, 7, 32767, 0, 12345] {
        set_value(id, 1, v);
        assert_eq!(cat(&path), format!("{v}\n"), "after SETVAL {v} behind the daemon's back");
        assert_eq!(cat(&path), format!("{}\n", sem_value(id, 1)));
    }
    sem::operate(id, 1, 3, None).unwrap();
    assert_eq!(cat(&path), "12348\n", "after a semop behind the daemon's back");
    assert_eq!(cat(&sem_file(&m, id, 0)), "0\n", "the other semaphores keep theirs");
    assert_eq!(cat(&sem_file(&m, id, 2)), "0\n");
    assert_eq!(fs::read_to_string(&path).unwrap(), "12348\n", "read to the end in-process");
}

#[test]
fn one_descriptor_reads_the_value_then_eof_and_a_read_at_offset_zero_is_fresh() {
    let m = Mounted::new();
    let id = create_set(0x2eae, 1, 0o600);
    set_value(id, 0, 7);
    let mut file = File::open(sem_file(&m, id, 0)).unwrap();
    assert_eq!(read_once(&mut file), "7\n");
    set_value(id, 0, 12);
    assert_eq!(read_once(&mut file), "", "end-of-file after the value");
    assert_eq!(read_once(&mut file), "", "and end-of-file it stays, as on any file");
    let mut buf = [0u8; 16];
    let n = file.read_at(&mut buf, 0).unwrap();
    assert_eq!(&buf[..n], b"12\n", "pread at 0: the value now");
    set_value(id, 0, 3);
    file.seek(SeekFrom::Start(0)).unwrap();
    assert_eq!(read_once(&mut file), "3\n", "lseek to 0, then read: the value now");
    set_value(id, 0, 32767);
    let n = file.read_at(&mut buf, 1).unwrap();
    assert_eq!(&buf[..n], b"\n", "past offset 0: the rest of the text the last read at 0 took");
    let n = file.read_at(&mut buf[..2], 0).unwrap();
    assert_eq!(&buf[..n], b"32", "a short read at 0 takes the value fresh");
    let n = file.read_at(&mut buf, 2).unwrap();
    assert_eq!(&buf[..n], b"767\n", "and the next piece is of that same text");
}

#[test]
fn semaphore_files_have_positions_like_sysfs_files_so_head_and_tail_work() {
    let m = Mounted::new();
    let id = create_set(0x2eaf, 1, 0o600);
    set_value(id, 0, 5);
    let path = sem_file(&m, id, 0);
    let mut file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
    assert_eq!(file.seek(SeekFrom::End(0)).unwrap(), 2, "lseek(SEEK_END): the size of \"5\\n\"");
    assert_eq!(file.seek(SeekFrom::Start(1)).unwrap(), 1);
    assert_eq!(file.write_at(b"+1", 100).unwrap(), 2, "a write is a command wherever it lands");
    assert_eq!(sem_value(id, 0), 6);
    assert_eq!(read_once(&mut file), "\n", "from offset 1 with no text taken yet: the rest of a fresh one");
    for (tool, want) in [("head -n 1", "6\n"), ("tail -n 1", "6\n"), ("head -c 1", "6"), ("tail -c 2", "6\n")] {
        let out = shell(&format!("{tool} {}", q(&path)));
        assert!(out.status.success() && out.stderr.is_empty(), "{tool}: {}", stderr_of(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{tool}");
    }
    assert_eq!(sem_value(id, 0), 6, "reading changed nothing");
}

// ---- 3. writing ----

#[test]
fn writes_set_add_take_and_wait_for_zero() {
    let m = Mounted::new();
    let id = create_set(0x3001, 2, 0o600);
    let path = sem_file(&m, id, 0);

    shell_ok(&echo_to("7", &path));
    assert_eq!(sem_value(id, 0), 7, "N sets the value");
    shell_ok(&echo_to("+3", &path));
    assert_eq!(sem_value(id, 0), 10, "+N adds");
    shell_ok(&echo_to("-4", &path));
    assert_eq!(sem_value(id, 0), 6, "-N takes when available");
    shell_ok(&echo_to("-6", &path));
    assert_eq!(sem_value(id, 0), 0, "-N may take everything at once");
    shell_ok(&echo_to("=0", &path));
    assert_eq!(sem_value(id, 0), 0, "=0 returns at once at zero");
    assert_eq!(sem_value(id, 1), 0, "semaphore 1 untouched");

    // One write(2) each, without O_TRUNC; the count written is the whole command.
    for (command, expected) in [
        (&b"12"[..], 12),
        (b"0", 0),
        (b"32767", 32767),
        (b"5\n", 5),
        (b"9  \n", 9),
        (b"+1 ", 10),
        (b"+32757", 32767),
        (b"-32767\n", 0),
        (b"+2\n\n", 2),
        (b"-1 \t\n", 1),
        (b"-1", 0),
        (b"=0", 0),
        (b"=0\n", 0),
    ] {
        let text = String::from_utf8_lossy(command).into_owned();
        assert_eq!(write_once(&path, command).unwrap(), command.len(), "write {text:?}");
        assert_eq!(sem_value(id, 0), expected, "after {text:?}");
        assert_eq!(cat(&path), format!("{expected}\n"));
    }
    assert_eq!((ncnt(id, 0), zcnt(id, 0)), (0, 0), "nothing left waiting");

    let other = sem_file(&m, id, 1);
    shell_ok(&echo_to("+4", &other));
    assert_eq!((sem_value(id, 0), sem_value(id, 1)), (0, 4), "each file is its own semaphore");
}

#[test]
fn bad_commands_fail_with_einval_or_erange_and_change_nothing() {
    let m = Mounted::new();
    let id = create_set(0x3002, 1, 0o600);
    let path = sem_file(&m, id, 0);
    set_value(id, 0, 5);
    let before = snapshot(id);
    for (command, expected) in [
        (&b"abc"[..], libc::EINVAL),
        (b"+", libc::EINVAL),
        (b"-", libc::EINVAL),
        (b"=", libc::EINVAL),
        (b"-0", libc::EINVAL),
        (b"+0", libc::EINVAL),
        (b"=5", libc::EINVAL),
        (b"=1", libc::EINVAL),
        (b"1 2", libc::EINVAL),
        (b"1\n2\n", libc::EINVAL),
        (b"+1 +1", libc::EINVAL),
        (b"-1x", libc::EINVAL),
        (b"+-1", libc::EINVAL),
        (b"++1", libc::EINVAL),
        (b"0x10", libc::EINVAL),
        (b"1.5", libc::EINVAL),
        (b"\xff", libc::EINVAL),
        (b"32768", libc::ERANGE),
        (b"+32768", libc::ERANGE),
        (b"-32768", libc::ERANGE),
        (b"99999999999999999999", libc::ERANGE),
        (b"+99999999999999999999", libc::ERANGE),
        (b"+32763", libc::ERANGE),
    ] {
        let text = String::from_utf8_lossy(command).into_owned();
        assert_eq!(errno(write_once(&path, command)), expected, "write {text:?}");
        assert_eq!(snapshot(id), before, "{text:?} changed something");
        assert_eq!((ncnt(id, 0), zcnt(id, 0)), (0, 0), "{text:?} left a waiter");
    }

    // A write(2) of nothing never reaches the filesystem; it must change nothing.
    let _ = write_once(&path, b"");
    assert_eq!(snapshot(id), before, "an empty write changed something");

    // At the top of the range, +1 is ERANGE (from the kernel's semop).
    set_value(id, 0, 32767);
    let top = snapshot(id);
    assert_eq!(errno(write_once(&path, b"+1")), libc::ERANGE, "+1 at 32767");
    assert_eq!(snapshot(id), top);

    // The shell sees the same errors.
    set_value(id, 0, 5);
    let before = snapshot(id);
    assert_refused(&shell(&echo_to("abc", &path)), "Invalid argument", "echo abc");
    assert_refused(&shell(&echo_to("32768", &path)), "Numerical result out of range", "echo 32768");
    assert_eq!(snapshot(id), before);
}

#[test]
fn white_space_alone_is_a_no_op_and_blank_lines_around_a_command_work() {
    // The shell's printf writes '\n\n5\n\n' line by line: the blank lines
    // must neither fail nor change anything, and the 5 must be set once.
    let m = Mounted::new();
    let id = create_set(0x3007, 1, 0o600);
    let path = sem_file(&m, id, 0);
    set_value(id, 0, 1);
    for blank in [&b"\n"[..], b"  ", b"\t\n", b"\n\n\n"] {
        assert_eq!(write_once(&path, blank).map_err(|e| errno_of(&e)), Ok(blank.len()), "{blank:?}");
        assert_eq!(sem_value(id, 0), 1, "{blank:?} changed the value");
    }
    shell_ok(&format!("printf '' > {0}; printf '\\n' > {0}", q(&path)));
    shell_ok(&format!("printf '\\n\\n5\\n\\n' > {}", q(&path)));
    assert_eq!(sem_value(id, 0), 5);
    shell_ok(&format!("printf '\\n+2\\n\\n' > {}", q(&path)));
    assert_eq!(sem_value(id, 0), 7, "the V ran once");
}
