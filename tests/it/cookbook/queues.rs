//! The recipes for message queues.

use super::*;

use std::collections::BTreeMap;
use std::fs;

use ipcfs::ipc::Errno;
use ipcfs::ipc::msg::{self, MsqId};

// ---- message queues ----

/// The `ls -l` lines of a recipe's output: file name to size.
fn ls_sizes(out: &str) -> BTreeMap<String, u64> {
    out.lines()
        .filter(|l| l.starts_with('-'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[f.len() - 1].to_string(), f[4].parse().unwrap())
        })
        .collect()
}

#[test]
fn watch_queue_shows_the_queue_fill_and_drain() {
    let m = Mounted::new();
    let queue = create_queue(0x5001, 0o600);
    let watch = recipe("watch-queue").with("msg/3", &format!("msg/{}", queue.0)).on(&m);
    let qbytes = msg::stat_any(queue).unwrap().qbytes;
    let attributes = |cbytes: u64, qnum: u64| {
        let dir = m.path(format!("msg/{}", queue.0));
        format!(
            "# file: {}\nuser.ipc.cbytes=\"{cbytes}\"\nuser.ipc.qbytes=\"{qbytes}\"\nuser.ipc.qnum=\"{qnum}\"\n\n",
            dir.display()
        )
    };

    send(queue, 1, "a");
    send(queue, 7, "bb");
    send(queue, 7, "ccc");
    let full = watch.run_ok();
    assert!(full.starts_with(&attributes(6, 3)), "{full}");
    assert_eq!(ls_sizes(&full), BTreeMap::from([("1".into(), 1), ("7".into(), 5), ("any".into(), 6)]));

    while msg::receive(queue, 0, 64, false).is_ok() {}
    let empty = watch.run_ok();
    assert!(empty.starts_with(&attributes(0, 0)), "{empty}");
    assert_eq!(ls_sizes(&empty), BTreeMap::from([("any".into(), 0)]));
}

#[test]
fn send_message_sends_each_type_byte_for_byte() {
    let m = Mounted::new();
    let queue = create_queue(0x5101, 0o600);
    recipe("send-message").with("msg/3", &format!("msg/{}", queue.0)).on(&m).run_ok();
    assert_eq!(qnum(queue), 2);
    assert_eq!(msg::receive(queue, 7, 64, false).unwrap().body, b"resize 42.jpg");
    assert_eq!(msg::receive(queue, 1, 64, false).unwrap().body, b"hello\n");
}

#[test]
fn take_message_takes_one_then_one_of_a_type_then_all() {
    let m = Mounted::new();
    let queue = create_queue(0x5201, 0o600);
    let take = recipe("take-message").with("msg/3", &format!("msg/{}", queue.0)).on(&m);
    assert_eq!(take.clone().first_lines(1).run_ok(), "", "an empty queue gives nothing at once");

    for (mtype, body) in [(1, "a\n"), (2, "b\n"), (7, "c\n"), (3, "d\n")] {
        send(queue, mtype, body);
    }
    // What the cookbook says of byte-at-a-time readers: they fail and take nothing.
    let byte = sh(&format!("head -c 1 {}", q(&m.path(format!("msg/{}/.recv/any", queue.0)))));
    assert_refused(&byte, "Argument list too long", "head -c 1");
    assert_eq!(qnum(queue), 4);

    // The first of any type, the first of type 7, then all the rest in order.
    assert_eq!(take.run_ok(), "a\nc\nb\nd\n");
    assert_eq!(qnum(queue), 0);
}

#[test]
fn wait_message_waits_for_the_next_message() {
    let m = Mounted::new();
    let queue = create_queue(0x5301, 0o600);
    let script = recipe("wait-message").with("msg/3", &format!("msg/{}", queue.0)).on(&m);
    let child = script.spawn(None);
    let daemon = m.daemon_pid().unwrap();
    // The daemon's thread named ipcfs-wait sits in msgrcv for a waiting reader.
    wait_for("the daemon waits in msgrcv", || {
        fs::read_dir(format!("/proc/{daemon}/task"))
            .unwrap()
            .any(|task| fs::read_to_string(task.unwrap().path().join("comm")).is_ok_and(|c| c.trim() == "ipcfs-wait"))
    });
    send(queue, 4, "job 1");
    assert_eq!(finish(&script, child), "got: job 1\n");
    assert_eq!(qnum(queue), 0);
}

#[test]
fn peek_messages_shows_them_without_taking_any() {
    let m = Mounted::new();
    let queue = create_queue(0x5401, 0o600);
    send(queue, 1, "first\n");
    send(queue, 7, "second\n");
    send(queue, 7, "third\n");
    // What receiving changes: the count, the bytes, the last receiver and its time.
    let untouched = |s: msg::MsgStat| (s.qnum, s.cbytes, s.lrpid, s.rtime);
    let before = untouched(msg::stat_any(queue).unwrap());
    let peek = recipe("peek-messages").with("msg/3", &format!("msg/{}", queue.0));
    assert_eq!(peek.clone().on(&m).run_ok(), "first\nsecond\nthird\nsecond\nthird\n");
    assert_eq!(untouched(msg::stat_any(queue).unwrap()), before, "peeking took a message");

    // A read-only mount shows them the same way, and cannot take them.
    let ro = Mounted::with_options(&["-o", "ro"]);
    assert_eq!(peek.on(&ro).run_ok(), "first\nsecond\nthird\nsecond\nthird\n");
    for file in [".recv/any", ".wait/any"] {
        let take = sh(&format!("dd if={} bs=1M count=1 status=none", q(&ro.path(format!("msg/{}/{file}", queue.0)))));
        assert_refused(&take, "Read-only file system", &format!("dd if={file} on a read-only mount"));
    }
    assert_eq!(untouched(msg::stat_any(queue).unwrap()), before, "a read-only mount took a message");
}

#[test]
fn drain_queue_discards_one_type_then_everything() {
    let m = Mounted::new();
    let queue = create_queue(0x5501, 0o600);
    for (mtype, body) in [(7, "a"), (1, "b"), (7, "c"), (2, "d")] {
        send(queue, mtype, body);
    }
    let drain = recipe("drain-queue").with("msg/3", &format!("msg/{}", queue.0)).on(&m);
    drain.clone().first_lines(1).run_ok();
    assert_eq!(qnum(queue), 2);
    assert_eq!(msg::receive(queue, 7, 64, false), Err(Errno::ENOMSG));
    drain.run_ok();
    assert_eq!(qnum(queue), 0);
    assert!(msg_exists(queue), "the queue itself was removed");
}

#[test]
fn queue_limit_sets_and_shows_the_byte_limit() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let queue = create_queue(0x5601, 0o600);
    let limit = recipe("queue-limit").with("msg/3", &format!("msg/{}", queue.0)).on(&m);
    let default = msg::stat_any(queue).unwrap().qbytes;
    assert!(default < 65536, "a new queue's limit is kernel.msgmnb: {default}");
    // Above kernel.msgmnb only with CAP_SYS_RESOURCE, which the daemon looks
    // for in the caller: without it, refused and nothing changes.
    let without = sh(&format!(
        "setpriv --inh-caps=-sys_resource --bounding-set=-sys_resource sh -c {}",
        shell_quote(&limit.shell_text())
    ));
    assert_refused(&without, "Operation not permitted", "queue-limit without CAP_SYS_RESOURCE");
    assert_eq!(msg::stat_any(queue).unwrap().qbytes, default);
    // Up to kernel.msgmnb, the owner may.
    sh_ok("echo 65536 > /proc/sys/kernel/msgmnb");
    let out = limit.run_ok();
    assert!(out.contains("user.ipc.qbytes=\"65536\"\n"), "{out}");
    assert_eq!(msg::stat_any(queue).unwrap().qbytes, 65536);
    // Others may not, whatever the limit.
    assert_refused(&limit.run_as(NOBODY_UID, NOBODY_GID), "Operation not permitted", "queue-limit by another user");
}

#[test]
fn create_queue_makes_it_and_shows_its_id() {
    let m = Mounted::new();
    let out = recipe("create-queue").on(&m).run_ok();
    let id = MsqId(id_by_key(&m, "msg", 0x1234abcd));
    assert_eq!(out, format!("../../msg/{}\n", id.0));
    assert_eq!(msg::stat_any(id).unwrap().perm.mode & 0o777, 0o620);
}
