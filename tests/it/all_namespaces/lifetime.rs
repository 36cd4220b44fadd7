//! A namespace goes when its last process ends or leaves it, and the daemon
//! lets go of it.

use super::*;

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};

/// `ns/<N>` stays while any process is in N: when the process the daemon
/// found it through ends, the daemon waits for the next one, and the
/// directory stays the same. When the last one ends, the daemon notices by
/// itself (no listing of `ns/` here), the name is gone and no thread of the
/// daemon is left in N.
#[test]
fn a_namespace_goes_when_its_last_process_ends() {
    let a = Holder::new("ipcmk -M 4096");
    let (ns, _pinned) = (a.ns, a.pin());
    let m = mount_all();
    let root = ns_dir(&m, ns);
    let daemon = m.daemon_pid().unwrap();
    let first = ino(&root);
    assert!(threads_in(daemon, ns) >= 1, "a thread of the daemon serves N");
    assert!(watches(daemon, a.pid()), "the daemon waits for A to end");
    let b = Holder::joining(&a);

    let b_pid = b.pid();
    drop(a);
    wait_until("the daemon waits for B instead", LIMIT, || watches(daemon, b_pid));
    assert_eq!(ino(&root), first, "still there, the same directory");
    assert_eq!(list(&root.join("shm")), ["0"]);
    assert_eq!(fs::metadata(root.join("shm/0")).unwrap().len(), 4096);
    assert_eq!(ino(&root), first);

    drop(b);
    wait_until("ns/N is gone", LIMIT, || path_is_gone(&root));
    assert!(path_is_gone(&root.join("shm")) && path_is_gone(&root.join("shm/0")));
    wait_until("no thread of the daemon is in N", LIMIT, || threads_in(daemon, ns) == 0);
    assert!(path_is_gone(&root), "and it does not come back");
}

/// A namespace whose only process moved to another one is gone from a
/// listing of `ns/`, and then from lookups too; the daemon lets go of it.
#[test]
fn a_namespace_its_only_process_left_is_dropped_from_the_listing() {
    let mut command = Command::new("setpriv");
    command.args([
        "--pdeathsig",
        "KILL",
        "--",
        "unshare",
        "--ipc",
        "sh",
        "-c",
        "read x; exec unshare --ipc sleep 1000",
    ]);
    command.stdin(Stdio::piped());
    let mut mover =
        Holder::start(command, "unshare --ipc sh", |pid| comm(pid) == "sh" && process_ns(pid) != Some(own_ns()));
    let (pid, left, _pinned) = (mover.pid(), mover.ns, mover.pin());
    let m = mount_all();
    let daemon = m.daemon_pid().unwrap();
    assert_eq!(list(&ns_dir(&m, left).join("shm")), [] as [&str; 0]);
    assert!(threads_in(daemon, left) >= 1, "a thread of the daemon serves the namespace");

    mover.child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    wait_until("the process is in a namespace of its own again", LIMIT, || {
        comm(pid) == "sleep" && process_ns(pid).is_some_and(|ns| ns != left)
    });
    let now = process_ns(pid).unwrap();

    let names = list(&m.path("ns"));
    assert!(!names.contains(&left.to_string()), "ns/{left} is not listed: {names:?}");
    assert!(names.contains(&now.to_string()), "ns/{now} is: {names:?}");
    assert!(path_is_gone(&ns_dir(&m, left)));
    assert_eq!(link(&m.path(format!("ns/by-pid/{pid}"))), format!("../{now}"));
    wait_until("no thread of the daemon is in the namespace left", LIMIT, || threads_in(daemon, left) == 0);
    // The process is watched once, for the namespace it is in now: the
    // watcher for the one it left stopped with it.
    wait_until("one watcher of the process", LIMIT, || watchers(daemon, pid) == 1);
}
