//! The tree of a queue: `msg/<id>/` and its key link, the listed files (`any`
//! and a file per type with messages queued), `.recv/` and `.wait/`; reading
//! a listed file shows the messages without taking them.

use super::*;

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use ipcfs::ipc::msg::MsqId;

// ---- 1. layout ----

#[test]
fn queues_are_directories_with_key_links_only_for_keyed_queues() {
    let m = Mounted::new();
    let keyed = create_queue(0x1234abcd, 0o640);
    let high = create_queue(0xfedc0001_u32 as i32, 0o600);
    let private = create_queue(libc::IPC_PRIVATE, 0o600);
    let mut ids: Vec<String> = [keyed, high, private].iter().map(|id| id.0.to_string()).collect();
    ids.sort();
    assert_eq!(list(&m.path("msg")), ids);
    assert_eq!(list(&m.path("by-key/msg")), ["0x1234abcd", "0xfedc0001"], "a link per keyed queue, none for private");
    assert!(list(&m.path("by-key/shm")).is_empty() && list(&m.path("by-key/sem")).is_empty());

    for (key, id) in [("0x1234abcd", keyed), ("0xfedc0001", high)] {
        let link = m.path(format!("by-key/msg/{key}"));
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "{key} is a symlink");
        assert_eq!(fs::read_link(&link).unwrap(), Path::new(&format!("../../msg/{}", id.0)));
        let followed = fs::metadata(&link).unwrap();
        assert!(followed.is_dir());
        assert_eq!(followed.ino(), fs::metadata(qpath(&m, id, "")).unwrap().ino(), "{key} leads to msg/{}", id.0);
        assert_eq!(list(&link), ["any"]);
    }
    assert!(fs::metadata(qpath(&m, private, "")).unwrap().is_dir());
    assert_eq!(xattr(&qpath(&m, private, ""), "user.ipc.key").unwrap(), "0x00000000");
    assert_eq!(errno(fs::symlink_metadata(m.path("by-key/msg/0x00000000"))), libc::ENOENT);
    for id in [keyed, high, private] {
        assert_eq!(list(&qpath(&m, id, "")), ["any"], "an empty queue lists only any");
        assert!(fs::metadata(qpath(&m, id, "any")).unwrap().is_file());
    }
}

#[test]
fn queues_made_and_removed_by_ipcmk_and_ipcrm_show_at_once() {
    let m = Mounted::new();
    // Looked up (and missed) before they exist: no negative entry may stick.
    assert_eq!(errno(fs::metadata(m.path("msg/0"))), libc::ENOENT);
    assert_eq!(errno(fs::symlink_metadata(m.path("by-key/msg/0x00c0ffee"))), libc::ENOENT);
    assert!(list(&m.path("msg")).is_empty());

    let text = sh_ok("ipcmk -Q -p 0640");
    let made = MsqId(text.trim().strip_prefix("Message queue id: ").unwrap().parse().unwrap());
    assert_eq!(made, MsqId(0), "the first id of a fresh IPC namespace");
    let md = fs::metadata(m.path("msg/0")).unwrap();
    assert!(md.is_dir());
    assert_eq!(md.mode() & 0o7777, 0o750, "0640 plus search where read is granted");
    let made_key = kstat(made).perm.key.to_string();
    assert_eq!(list(&m.path("by-key/msg")), std::slice::from_ref(&made_key));

    let keyed = create_queue(0x00c0ffee, 0o600);
    assert_eq!(fs::read_link(m.path("by-key/msg/0x00c0ffee")).unwrap(), Path::new(&format!("../../msg/{}", keyed.0)));
    let mut both = vec![made.0.to_string(), keyed.0.to_string()];
    both.sort();
    assert_eq!(list(&m.path("msg")), both);

    sh_ok(&format!("ipcrm -q {}", made.0));
    assert_eq!(list(&m.path("msg")), [keyed.0.to_string()]);
    assert_eq!(errno(fs::metadata(qpath(&m, made, ""))), libc::ENOENT);
    assert_eq!(errno(fs::symlink_metadata(m.path(format!("by-key/msg/{made_key}")))), libc::ENOENT);
    assert_eq!(list(&m.path("by-key/msg")), ["0x00c0ffee"]);

    sh_ok("ipcrm -Q 0x00c0ffee");
    assert!(list(&m.path("msg")).is_empty());
    assert!(list(&m.path("by-key/msg")).is_empty());
    assert_eq!(errno(fs::metadata(qpath(&m, keyed, ""))), libc::ENOENT);
    assert_eq!(errno(fs::symlink_metadata(m.path("by-key/msg/0x00c0ffee"))), libc::ENOENT);
}

#[test]
fn listing_shows_any_and_the_queued_types_and_takes_nothing() {
    let m = Mounted::new();
    let id = create_queue(0x11, 0o600);
    let dir = qpath(&m, id, "");
    assert_eq!(list(&dir), ["any"]);

    for (mtype, body) in [(7, "seven"), (1, "one"), (42, "x"), (7, "again"), (100000, "big type"), (3, "")] {
        send(id, mtype, body.as_bytes());
    }
    let before = queued(id);
    let expected = ["1", "100000", "3", "42", "7", "any"];
    assert_eq!(list(&dir), expected, "any and every type with messages, an empty message included");
    let mut ls: Vec<String> = sh_ok(&format!("ls -1 {}", q(&dir))).lines().map(str::to_string).collect();
    ls.sort();
    assert_eq!(ls, expected, "ls");
    let mut ls_a: Vec<String> = sh_ok(&format!("ls -1a {}", q(&dir))).lines().map(str::to_string).collect();
    ls_a.sort();
    assert_eq!(ls_a, [".", "..", "1", "100000", "3", "42", "7", "any"], "ls -a shows neither .recv nor .wait");
    sh_ok(&format!("ls -la {} >/dev/null", q(&dir)));

    let k = kstat(id);
    assert_eq!(queued(id), before, "listing took nothing");
    assert_eq!((k.qnum, k.rtime, k.lrpid), (6, 0, 0), "listing received nothing: {k:?}");

    // .wait is not listed but is there, with the same files.
    assert!(fs::metadata(dir.join(".wait")).unwrap().is_dir());
    assert_eq!(list(&dir.join(".wait")), expected);
    assert!(fs::metadata(dir.join(".wait/42")).unwrap().is_file());
    assert_eq!(queued(id), before, "listing .wait took nothing");

    // A type disappears from the listing once its last message is taken.
    let out = sh_bounded(&format!("dd if={} bs=65536 count=1 status=none", q(&dir.join(".wait/42"))));
    assert_eq!(assert_ok(&out, "one read of .wait/42"), "x");
    assert_eq!(sh_ok(&format!("cat {}", q(&dir.join(".recv/7")))), "sevenagain");
    assert_eq!(list(&dir), ["1", "100000", "3", "any"]);
    drain(id);
    assert_eq!(list(&dir), ["any"]);
}

#[test]
fn reading_a_listed_file_shows_messages_without_taking_them() {
    let m = Mounted::new();
    let id = create_queue(0x12, 0o600);
    for (mtype, body) in [(1, "first\n"), (2, "second message\n"), (1, "third\n")] {
        send(id, mtype, body.as_bytes());
    }
    let before = kstat(id);
    assert_eq!((before.qnum, before.cbytes), (3, 27), "precondition");

    let out = sh_bounded(&format!("cat {}", q(&qpath(&m, id, "any"))));
    assert_eq!(assert_ok(&out, "cat any"), "first\nsecond message\nthird\n", "every message, in queue order");
    let out = sh_bounded(&format!("cat {}", q(&qpath(&m, id, "1"))));
    assert_eq!(assert_ok(&out, "cat 1"), "first\nthird\n", "the type-1 messages only");

    // A freshly opened file: one read, one whole message, then the next.
    let file = File::open(qpath(&m, id, "any")).unwrap();
    assert_eq!(read_once(&file, BIG).unwrap(), b"first\n", "the first read: the first message");
    assert_eq!(read_once(&file, BIG).unwrap(), b"second message\n", "the second read: the second message");
    drop(file);

    let k = kstat(id);
    assert_eq!((k.qnum, k.cbytes), (3, before.cbytes), "reading the listed files took nothing: {k:?}");
    assert_eq!((k.rtime, k.lrpid), (before.rtime, before.lrpid), "nobody received: {k:?}");
    assert_eq!(
        drain(id),
        messages(&[(1, "first\n"), (2, "second message\n"), (1, "third\n")]),
        "msgrcv still gets every message, in the original order"
    );
}

#[test]
fn the_recv_and_wait_names_are_not_listed_and_receive() {
    let m = Mounted::new();
    let id = create_queue(0x13, 0o600);
    for (mtype, body) in [(1, "one"), (2, "two"), (1, "three")] {
        send(id, mtype, body.as_bytes());
    }
    let dir = qpath(&m, id, "");
    let mut ls_a: Vec<String> = sh_ok(&format!("ls -1a {}", q(&dir))).lines().map(str::to_string).collect();
    ls_a.sort();
    assert_eq!(ls_a, [".", "..", "1", "2", "any"], "ls -a shows neither .recv nor .wait");
    assert_eq!(list(&dir), ["1", "2", "any"]);
    // Unlisted, but there: both are directories.
    for sub in [".recv", ".wait"] {
        assert!(fs::metadata(dir.join(sub)).unwrap().is_dir(), "{sub} is a directory");
        assert_eq!(sh_ok(&format!("stat -c %F {}", q(&dir.join(sub)))), "directory\n", "stat {sub}");
    }
    assert_eq!(qnum(id), 3, "looking took nothing");

    // One read(2), one message received.
    let file = File::open(qpath(&m, id, ".recv/any")).unwrap();
    assert_eq!(read_once(&file, BIG).unwrap(), b"one", "one read, one message");
    assert_eq!(queued(id), messages(&[(2, "two"), (1, "three")]), "the first message was received");
    assert_eq!(read_once(&file, BIG).unwrap(), b"two");
    assert_eq!(queued(id), messages(&[(1, "three")]));
    drop(file);

    // dd's one read of 64 KiB receives one message; cat receives the rest
    // and leaves the queue empty.
    send(id, 5, b"five");
    send(id, 1, b"six");
    let recv_any = q(&qpath(&m, id, ".recv/any"));
    let out = sh_bounded(&format!("dd if={recv_any} bs=65536 count=1 status=none"));
    assert_eq!(assert_ok(&out, "one read of .recv/any"), "three");
    assert_eq!(queued(id), messages(&[(5, "five"), (1, "six")]));
    let out = sh_bounded(&format!("cat {recv_any}"));
    assert_eq!(assert_ok(&out, "cat .recv/any"), "fivesix");
    let k = kstat(id);
    assert_eq!((k.qnum, k.cbytes), (0, 0), "cat .recv/any left the queue empty: {k:?}");
    assert_eq!(k.lrpid, m.daemon_pid().unwrap(), "the daemon received");
    let out = sh_bounded(&format!("cat {recv_any}"));
    assert_eq!(assert_ok(&out, "cat .recv/any of an empty queue"), "", "end-of-file at once");
}
