//! Making, changing and removing queues through the tree (mkdir, chmod,
//! chown, setfattr of qbytes, rm, rmdir), and other users held to the
//! kernel's permission rule.

use super::*;

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;
use std::time::Instant;

use ipcfs::ipc::msg::{self, MsgStat, MsqId};

// ---- 10. creating, changing and removing queues ----

#[test]
fn mkdir_creates_a_queue_owned_by_the_caller() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let msg_dir = m.path("msg");
    let key_path = |key: &str| q(&msg_dir.join(key));

    sh_ok(&format!("umask 022; mkdir {}", key_path("0x1234")));
    let id = msg::get(Key(0x1234), 0).expect("mkdir made a queue with key 0x1234");
    let k = kstat(id);
    assert_eq!((k.perm.mode & 0o777, k.perm.uid, k.perm.cuid, k.qnum), (0o644, 0, 0, 0), "mkdir's mode without x");
    assert_eq!(list(&msg_dir), [id.0.to_string()], "listed by id only");
    assert_eq!(fs::read_link(m.path("by-key/msg/0x00001234")).unwrap(), Path::new(&format!("../../msg/{}", id.0)));
    // The creation name finds the queue, unlisted.
    let by_name = fs::metadata(msg_dir.join("0x1234")).unwrap();
    assert!(by_name.is_dir());
    assert_eq!(xattr(&msg_dir.join("0x1234"), "user.ipc.id").unwrap(), id.0.to_string());

    let out = sh_as(USER, USER_GID, &[], &format!("umask 022; mkdir {}", key_path("0x1236")));
    assert_ok(&out, "mkdir as uid 1000");
    let k = kstat(msg::get(Key(0x1236), 0).unwrap());
    assert_eq!((k.perm.uid, k.perm.gid, k.perm.cuid, k.perm.cgid), (USER, USER_GID, USER, USER_GID), "{k:?}");
    assert_eq!(k.perm.mode & 0o777, 0o644);

    // One mkdir(2), no chmod after it: the mode the call asks for, without x.
    fs::DirBuilder::new().mode(0o750).create(msg_dir.join("0x1237")).unwrap();
    assert_eq!(kstat(msg::get(Key(0x1237), 0).unwrap()).perm.mode & 0o777, 0o640 & !umask());
    sh_ok(&format!("umask 077; mkdir {}", key_path("0x1238")));
    assert_eq!(kstat(msg::get(Key(0x1238), 0).unwrap()).perm.mode & 0o777, 0o600, "mkdir with umask 077");

    let out = sh(&format!("LC_ALL=C mkdir -m 600 {}", key_path("0x1235")));
    assert_ok(&out, "mkdir -m 600");
    assert_eq!(kstat(msg::get(Key(0x1235), 0).unwrap()).perm.mode & 0o777, 0o600);

    let count = kernel_object_count("msg");
    let out = sh(&format!("LC_ALL=C mkdir -m 640 {}", key_path("private")));
    assert_ok(&out, "mkdir -m 640 msg/private");
    assert_eq!(kernel_object_count("msg"), count + 1, "one new queue");
    let private: Vec<MsgStat> = list(&msg_dir)
        .iter()
        .map(|name| kstat(MsqId(name.parse().unwrap())))
        .filter(|k| k.perm.key.is_private())
        .collect();
    assert_eq!(private.len(), 1, "{private:?}");
    assert_eq!(private[0].perm.mode & 0o777, 0o640);

    // Existing keys.
    let count = kernel_object_count("msg");
    let before = snapshot(id);
    let out = sh(&format!("LC_ALL=C mkdir -p {}", key_path("0x1234")));
    assert_ok(&out, "mkdir -p of an existing key");
    let out = sh(&format!("LC_ALL=C mkdir {}", key_path("0x1234")));
    assert_refused(&out, "File exists", "mkdir of an existing key");
    assert_eq!(errno(fs::create_dir(msg_dir.join("0x1234"))), libc::EEXIST);
    assert_eq!(snapshot(id), before);

    // Names that are not keys.
    for bad in ["hello", "1234", "0x", "0x123456789", "0xg"] {
        let out = sh(&format!("LC_ALL=C mkdir {}", key_path(bad)));
        assert_refused(&out, "Invalid argument", &format!("mkdir msg/{bad}"));
    }
    assert_eq!(kernel_object_count("msg"), count, "nothing was created");
}

#[test]
fn chmod_and_chown_on_a_queue_run_ipc_set() {
    let m = Mounted::new();
    let id = create_queue(0xa1, 0o600);
    set_qbytes(id, 777);
    send(id, 1, b"kept");
    let path = q(&qpath(&m, id, ""));

    sh_ok(&format!("chmod 640 {path}"));
    assert_eq!(kstat(id).perm.mode & 0o777, 0o640);
    assert_eq!(fs::metadata(qpath(&m, id, "")).unwrap().mode(), libc::S_IFDIR | 0o750);
    sh_ok(&format!("chmod 755 {path}"));
    assert_eq!(kstat(id).perm.mode & 0o777, 0o644, "execute bits are dropped");

    sh_ok(&format!("chown {NOBODY_UID}:{NOBODY_GID} {path}"));
    let k = kstat(id);
    assert_eq!((k.perm.uid, k.perm.gid, k.perm.mode & 0o777), (NOBODY_UID, NOBODY_GID, 0o644));
    assert_eq!((k.perm.cuid, k.perm.cgid), (0, 0), "the creator never changes");
    assert_eq!(k.qbytes, 777, "chmod and chown keep the byte limit");
    assert_eq!(queued(id), messages(&[(1, "kept")]));
    let md = fs::metadata(qpath(&m, id, "")).unwrap();
    assert_eq!((md.uid(), md.gid()), (NOBODY_UID, NOBODY_GID));
}

#[test]
fn rm_of_a_type_file_discards_that_type_and_rm_any_discards_all() {
    let m = Mounted::new();
    let id = create_queue(0xa2, 0o600);
    for (mtype, body) in [(7, "a"), (1, "b"), (7, "c"), (3, "d")] {
        send(id, mtype, body.as_bytes());
    }
    sh_ok(&format!("rm {}", q(&qpath(&m, id, "7"))));
    assert_eq!(queued(id), messages(&[(1, "b"), (3, "d")]), "rm 7 discards type 7 only");
    assert_eq!(list(&qpath(&m, id, "")), ["1", "3", "any"]);
    sh_ok(&format!("rm {}", q(&qpath(&m, id, "any"))));
    assert!(queued(id).is_empty(), "rm any discards every message");
    assert!(!is_gone(id), "the queue stays");
    assert_eq!(list(&qpath(&m, id, "")), ["any"]);
}

#[test]
fn rmdir_and_rm_r_remove_the_queue_and_its_messages() {
    let m = Mounted::new();
    let a = create_queue(0xa3, 0o600);
    let b = create_queue(0xa4, 0o600);
    let kept = create_queue(0xa5, 0o600);
    for id in [a, b, kept] {
        send(id, 1, b"one");
        send(id, 4, b"four");
    }
    sh_ok(&format!("rmdir {}", q(&qpath(&m, a, ""))));
    assert!(is_gone(a), "rmdir ran IPC_RMID");
    sh_ok(&format!("rm -r {}", q(&qpath(&m, b, ""))));
    assert!(is_gone(b), "rm -r ran IPC_RMID");
    assert_eq!(list(&m.path("msg")), [kept.0.to_string()]);
    assert_eq!(list(&m.path("by-key/msg")), ["0x000000a5"]);
    assert_eq!(errno(fs::metadata(qpath(&m, a, ""))), libc::ENOENT);
    assert_eq!(queued(kept), messages(&[(1, "one"), (4, "four")]), "the other queue is untouched");
}

#[test]
fn waiters_on_a_removed_queue_end_with_eidrm() {
    let m = Mounted::new();
    let id = full_queue(0xa6);
    let mut reader = Proc::cat(&qpath(&m, id, ".wait/5"));
    let mut writer = python_writer(&qpath(&m, id, "any"), "abc");
    reader.wait_blocked("a reader of .wait/5");
    writer.wait_blocked("a writer to a full queue");
    wait_until_daemon_holds(&m, 2);

    let removed = Instant::now();
    sh_ok(&format!("rmdir {}", q(&qpath(&m, id, ""))));
    assert!(is_gone(id));
    let status = reader.wait_exit(PROMPTLY, "a reader of a removed queue");
    assert!(!status.success() && reader.stderr().contains("Identifier removed"), "{status}: {}", reader.stderr());
    let status = writer.wait_exit(PROMPTLY, "a writer to a removed queue");
    assert!(!status.success() && writer.stderr().contains("Identifier removed"), "{status}: {}", writer.stderr());
    assert!(removed.elapsed() < PROMPTLY);
}

// ---- 11. other users ----

#[test]
fn other_users_are_held_to_the_queues_mode() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let id = create_queue(0xb1, 0o600);
    send(id, 1, b"secret");
    send(id, 2, b"more");
    let before = snapshot(id);
    let dir = qpath(&m, id, "");
    let any = q(&qpath(&m, id, "any"));

    for (what, script, message) in [
        ("cat any", format!("cat {any}"), "Permission denied"),
        ("cat 2", format!("cat {}", q(&qpath(&m, id, "2"))), "Permission denied"),
        ("cat .recv/any", format!("cat {}", q(&qpath(&m, id, ".recv/any"))), "Permission denied"),
        ("cat .recv/2", format!("cat {}", q(&qpath(&m, id, ".recv/2"))), "Permission denied"),
        ("cat .wait/any", format!("timeout 20 cat {}", q(&qpath(&m, id, ".wait/any"))), "Permission denied"),
        ("echo", format!("echo x > {any}"), "Permission denied"),
        ("ls", format!("ls {}", q(&dir)), "Permission denied"),
        ("rm any", format!("rm -f {any}"), "Permission denied"),
        ("rmdir", format!("rmdir {}", q(&dir)), "Operation not permitted"),
        ("chmod", format!("chmod 666 {}", q(&dir)), "Operation not permitted"),
        ("chown", format!("chown {USER} {}", q(&dir)), "Operation not permitted"),
    ] {
        let out = sh_as(USER, USER_GID, &[], &format!("LC_ALL=C {script}"));
        assert_refused(&out, message, &format!("uid 1000: {what} of a 0600 root queue"));
        assert!(out.stdout.is_empty(), "{what}: {:?}", String::from_utf8_lossy(&out.stdout));
        assert_eq!(snapshot(id), before, "after the refused {what}");
    }
    // Looking is open to everyone.
    let out = sh_as(
        USER,
        USER_GID,
        &[],
        &format!("stat -c %s {}; getfattr --only-values -n user.ipc.qnum {}", q(&dir), q(&dir)),
    );
    assert_eq!(assert_ok(&out, "stat and getfattr by uid 1000"), "10\n2");
}

#[test]
fn a_0622_queue_takes_messages_from_others_but_does_not_give_them() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let id = create_queue(0xb2, 0o622);
    let any = q(&qpath(&m, id, "any"));
    let out = sh_as(USER, USER_GID, &[], &format!("printf hello > {any}; printf typed > {}", q(&qpath(&m, id, "6"))));
    assert_ok(&out, "uid 1000 writing to a 0622 queue");
    assert_eq!(queued(id), messages(&[(1, "hello"), (6, "typed")]));
    for name in ["any", ".recv/any"] {
        let out = sh_as(USER, USER_GID, &[], &format!("LC_ALL=C cat {}", q(&qpath(&m, id, name))));
        assert_refused(&out, "Permission denied", &format!("uid 1000 reading {name} of a 0622 queue"));
        assert!(out.stdout.is_empty(), "{name}");
        assert_eq!(queued(id), messages(&[(1, "hello"), (6, "typed")]), "{name}: nothing was taken");
    }
}

#[test]
fn group_members_get_the_group_bits_and_the_creator_the_owners() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let id = create_queue(0xb3, 0o640);
    msg::set(id, 0, SHARED_GID, 0o640, kstat(id).qbytes).unwrap();
    let any = q(&qpath(&m, id, "any"));
    let recv_any = q(&qpath(&m, id, ".recv/any"));

    send(id, 1, b"for the group");
    let out = sh_as(USER, USER_GID, &[SHARED_GID], &format!("cat {recv_any}"));
    assert_eq!(assert_ok(&out, "a member of the queue's group receiving"), "for the group");
    let out = sh_as(USER, USER_GID, &[SHARED_GID], &format!("LC_ALL=C printf x > {any}"));
    assert_refused(&out, "Permission denied", "a member of the queue's group writing (group bits r--)");
    send(id, 1, b"not for others");
    let out = sh_as(USER, USER_GID, &[], &format!("LC_ALL=C cat {recv_any}"));
    assert_refused(&out, "Permission denied", "a non-member receiving (other bits ---)");
    assert_eq!(queued(id), messages(&[(1, "not for others")]));

    // The creator counts as owner even when the queue was given away.
    let text = assert_ok(&sh_as(USER, USER_GID, &[], "ipcmk -Q -p 0600"), "ipcmk as uid 1000");
    let made = MsqId(text.trim().strip_prefix("Message queue id: ").unwrap().parse().unwrap());
    let k = kstat(made);
    msg::set(made, 0, 0, 0o600, k.qbytes).unwrap();
    send(made, 1, b"creator");
    let out = sh_as(USER, USER_GID, &[], &format!("cat {}", q(&qpath(&m, made, ".recv/any"))));
    assert_eq!(assert_ok(&out, "the creator receiving from a queue it no longer owns"), "creator");
    assert_eq!(qnum(made), 0, "received");
    let out = sh_as(USER, USER_GID, &[], &format!("rmdir {}", q(&qpath(&m, made, ""))));
    assert_ok(&out, "the creator removing a queue it no longer owns");
    assert!(is_gone(made));
}
