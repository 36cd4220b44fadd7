//! What a queue's files say: stat and the extended attributes against
//! msgctl(IPC_STAT), ipcs and lsipc.

use super::*;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;

use ipcfs::ipc::Errno;
use ipcfs::ipc::msg::{self, MsqId};

// ---- 9. stat and extended attributes ----

#[test]
fn stat_of_a_queue_and_its_files() {
    let m = Mounted::new();
    let id = create_queue(0x91, 0o640);
    let qbytes = kstat(id).qbytes;
    msg::set(id, NOBODY_UID, NOBODY_GID, 0o604, qbytes).unwrap();
    for (mtype, body) in [(5, "abc"), (7, "wxyz"), (5, "de"), (1, "")] {
        send(id, mtype, body.as_bytes());
    }
    let k = kstat(id);
    assert_eq!((k.cbytes, k.qnum, k.perm.cuid), (9, 4, 0), "precondition");

    let dir = fs::metadata(qpath(&m, id, "")).unwrap();
    assert!(dir.is_dir());
    assert_eq!(dir.size(), 9, "a queue's size is msg_cbytes");
    assert_eq!(dir.mode(), libc::S_IFDIR | 0o705, "0604 plus search where read is granted");
    assert_eq!((dir.uid(), dir.gid()), (NOBODY_UID, NOBODY_GID), "the owner, not the creator");

    for (name, size) in [("any", 9), ("5", 5), ("7", 4), ("1", 0), ("9", 0)] {
        let md = fs::metadata(qpath(&m, id, name)).unwrap();
        assert!(md.is_file(), "{name}");
        assert_eq!(md.size(), size, "size of {name}: bytes queued for it");
        assert_eq!(md.mode(), libc::S_IFREG | 0o604, "mode of {name}: the queue's permission bits");
        assert_eq!((md.uid(), md.gid()), (NOBODY_UID, NOBODY_GID), "owner of {name}");
    }
    assert_eq!(queued(id).len(), 4, "stat took nothing");

    // Sizes follow the queue.
    receive(id);
    assert_eq!(fs::metadata(qpath(&m, id, "5")).unwrap().size(), 2);
    assert_eq!(fs::metadata(qpath(&m, id, "any")).unwrap().size(), 6);
    assert_eq!(fs::metadata(qpath(&m, id, "")).unwrap().size(), 6);

    for (mode, dir_mode) in [(0o640, 0o750), (0o622, 0o722), (0o444, 0o555), (0o200, 0o200), (0o000, 0o000)] {
        msg::set(id, NOBODY_UID, NOBODY_GID, mode, qbytes).unwrap();
        assert_eq!(fs::metadata(qpath(&m, id, "")).unwrap().mode() & 0o7777, dir_mode, "queue mode {mode:o}");
        assert_eq!(fs::metadata(qpath(&m, id, "any")).unwrap().mode() & 0o7777, mode, "any with mode {mode:o}");
    }
}

#[test]
fn queue_times_are_the_kernels_receive_send_and_change_times() {
    let m = Mounted::new();
    let id = create_queue(0x92, 0o600);
    let times = |name: &str| {
        let md = fs::metadata(qpath(&m, id, name)).unwrap();
        (md.atime(), md.mtime(), md.ctime())
    };
    let k = kstat(id);
    assert_eq!((k.stime, k.rtime), (0, 0));
    assert_eq!(times(""), (k.ctime, k.ctime, k.ctime), "times never set show ctime");

    wait_for_next_second();
    sh_ok(&format!("printf x > {}", q(&qpath(&m, id, "any"))));
    let k = kstat(id);
    assert!(k.stime > k.ctime && k.rtime == 0, "precondition: {k:?}");
    assert_eq!(times(""), (k.ctime, k.stime, k.ctime), "mtime = msg_stime");

    wait_for_next_second();
    sh_ok(&format!("cat {} >/dev/null", q(&qpath(&m, id, ".recv/any"))));
    let k = kstat(id);
    assert!(k.rtime > k.stime && k.stime > k.ctime, "precondition: {k:?}");
    assert_eq!(times(""), (k.rtime, k.stime, k.ctime), "atime = msg_rtime");
    assert_eq!(times("any"), (k.rtime, k.stime, k.ctime), "the files show the queue's times");
}

#[test]
fn extended_attributes_equal_ipc_stat_ipcs_and_lsipc() {
    let m = Mounted::new();
    // Made by another user, then given to root: creator and owner differ.
    let text = assert_ok(&sh_as(USER, USER_GID, &[], "ipcmk -Q -p 0660"), "ipcmk as uid 1000");
    let id = MsqId(text.trim().strip_prefix("Message queue id: ").unwrap().parse().unwrap());
    msg::set(id, 0, NOBODY_GID, 0o664, 12345).unwrap();
    send(id, 2, b"hello");
    send(id, 3, b"there!");
    send(id, 4, b"x");
    // Received through ipcfs: the daemon is the last receiver.
    assert_eq!(sh_ok(&format!("cat {}", q(&qpath(&m, id, ".recv/3")))), "there!");
    let k = kstat(id);
    let daemon = m.daemon_pid().unwrap();
    assert_eq!((k.perm.cuid, k.perm.cgid, k.perm.uid), (USER, USER_GID, 0), "precondition");
    assert_eq!((k.lspid, k.lrpid), (std::process::id() as i32, daemon), "precondition");

    let expected: HashMap<String, String> = [
        ("user.ipc.key", k.perm.key.to_string()),
        ("user.ipc.id", id.0.to_string()),
        ("user.ipc.cuid", USER.to_string()),
        ("user.ipc.cgid", USER_GID.to_string()),
        ("user.ipc.qnum", "2".to_string()),
        ("user.ipc.qbytes", "12345".to_string()),
        ("user.ipc.cbytes", "6".to_string()),
        ("user.ipc.lspid", k.lspid.to_string()),
        ("user.ipc.lrpid", daemon.to_string()),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v))
    .collect();
    let path = qpath(&m, id, "");
    assert_eq!(getfattr_dump(&path), expected, "getfattr -d");
    for (name, value) in &expected {
        assert_eq!(&xattr(&path, name).unwrap(), value, "getfattr -n {name}");
    }

    // ipcs -q -i: numbers throughout.
    let detail = sh_ok(&format!("LC_ALL=C ipcs -q -i {}", id.0));
    let fields: HashMap<&str, &str> = detail.split_whitespace().filter_map(|w| w.split_once('=')).collect();
    let md = fs::metadata(&path).unwrap();
    for (field, value) in [
        ("uid", md.uid().to_string()),
        ("gid", md.gid().to_string()),
        ("cuid", expected["user.ipc.cuid"].clone()),
        ("cgid", expected["user.ipc.cgid"].clone()),
        ("cbytes", expected["user.ipc.cbytes"].clone()),
        ("cbytes", md.size().to_string()),
        ("qbytes", expected["user.ipc.qbytes"].clone()),
        ("qnum", expected["user.ipc.qnum"].clone()),
        ("lspid", expected["user.ipc.lspid"].clone()),
        ("lrpid", expected["user.ipc.lrpid"].clone()),
    ] {
        assert_eq!(fields.get(field).copied(), Some(value.as_str()), "ipcs -q -i {field}: {detail}");
    }
    assert_eq!(u32::from_str_radix(fields["mode"], 8).unwrap(), 0o664, "ipcs -q -i mode: {detail}");
    assert_eq!(md.mode() & 0o7777, 0o775, "0664 plus search where read is granted");

    // lsipc.
    let rows = lsipc_rows("-q --bytes", "KEY,ID,PERMS,CUID,CGID,UID,GID,USEDBYTES,MSGS,LSPID,LRPID");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    for (column, attribute) in [
        ("key", "user.ipc.key"),
        ("id", "user.ipc.id"),
        ("cuid", "user.ipc.cuid"),
        ("cgid", "user.ipc.cgid"),
        ("usedbytes", "user.ipc.cbytes"),
        ("msgs", "user.ipc.qnum"),
        ("lspid", "user.ipc.lspid"),
        ("lrpid", "user.ipc.lrpid"),
    ] {
        assert_eq!(row[column], expected[attribute], "lsipc {column}");
    }
    assert_eq!((row["uid"].as_str(), row["gid"].as_str()), ("0", &*NOBODY_GID.to_string()), "lsipc owner");
    assert_eq!(perm_bits(&row["perms"]), md.mode() & 0o666, "lsipc perms: the queue's, without search bits");
}

#[test]
fn setfattr_qbytes_sets_the_byte_limit_and_every_other_attribute_is_read_only() {
    let m = Mounted::new();
    let id = create_queue(0x93, 0o600);
    send(id, 1, b"queued");
    let path = qpath(&m, id, "");

    sh_ok(&format!("setfattr -n user.ipc.qbytes -v 100 {}", q(&path)));
    assert_eq!(kstat(id).qbytes, 100);
    assert_eq!(xattr(&path, "user.ipc.qbytes").unwrap(), "100");
    // Above kernel.msgmnb needs CAP_SYS_RESOURCE, which a container's root
    // may lack: ipcfs must agree with the kernel either way.
    let msgmnb = kernel_msgmnb();
    let out = sh(&format!("LC_ALL=C setfattr -n user.ipc.qbytes -v {} {}", msgmnb + 1, q(&path)));
    if has_capability(CAP_SYS_RESOURCE) {
        assert_ok(&out, "root raising qbytes above kernel.msgmnb");
        assert_eq!(kstat(id).qbytes, msgmnb + 1);
    } else {
        assert_refused(&out, "Operation not permitted", "root without CAP_SYS_RESOURCE going above msgmnb");
        assert_eq!(kstat(id).qbytes, 100);
        assert_eq!(msg::set(id, 0, 0, 0o600, msgmnb + 1), Err(Errno::EPERM), "the kernel agrees");
    }

    let before = (snapshot(id), kstat(id).perm.cuid);
    for name in [
        "user.ipc.key",
        "user.ipc.id",
        "user.ipc.cuid",
        "user.ipc.cgid",
        "user.ipc.qnum",
        "user.ipc.cbytes",
        "user.ipc.lspid",
        "user.ipc.lrpid",
    ] {
        let out = sh(&format!("LC_ALL=C setfattr -n {name} -v 1 {}", q(&path)));
        assert_refused(&out, "Operation not permitted", &format!("setfattr {name}"));
    }
    for bad in ["abc", "12x", "-5", "1.5", "0x10"] {
        let out = sh(&format!("LC_ALL=C setfattr -n user.ipc.qbytes -v {bad} {}", q(&path)));
        assert_refused(&out, "Invalid argument", &format!("setfattr user.ipc.qbytes {bad}"));
    }
    let out = sh(&format!("LC_ALL=C setfattr -n user.other -v 1 {}", q(&path)));
    assert_refused(&out, "Operation not supported", "setfattr of an unknown name");
    assert_eq!((snapshot(id), kstat(id).perm.cuid), before, "refused setfattr changed something");
}

#[test]
fn only_the_owner_creator_or_root_may_set_qbytes() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let root_queue = create_queue(0x94, 0o666);
    let before = snapshot(root_queue);
    let out = sh_as(
        USER,
        USER_GID,
        &[],
        &format!("LC_ALL=C setfattr -n user.ipc.qbytes -v 100 {}", q(&qpath(&m, root_queue, ""))),
    );
    assert_refused(&out, "Operation not permitted", "uid 1000 setting qbytes of a root queue");
    assert_eq!(snapshot(root_queue), before);

    let text = assert_ok(&sh_as(USER, USER_GID, &[], "ipcmk -Q -p 0600"), "ipcmk as uid 1000");
    let own = MsqId(text.trim().strip_prefix("Message queue id: ").unwrap().parse().unwrap());
    let path = q(&qpath(&m, own, ""));
    let out = sh_as(USER, USER_GID, &[], &format!("LC_ALL=C setfattr -n user.ipc.qbytes -v 1000 {path}"));
    assert_ok(&out, "the owner lowering qbytes");
    assert_eq!(kstat(own).qbytes, 1000);
    let msgmnb = kernel_msgmnb();
    let out = sh_as(USER, USER_GID, &[], &format!("LC_ALL=C setfattr -n user.ipc.qbytes -v {} {path}", msgmnb + 1));
    assert_refused(&out, "Operation not permitted", "an unprivileged owner going above kernel.msgmnb");
    assert_eq!(kstat(own).qbytes, 1000);
}
