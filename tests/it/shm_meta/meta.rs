//! stat, ls and stat against ipcs and lsipc, and the extended attributes
//! against shmctl(IPC_STAT).

use super::*;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;

use ipcfs::ipc::shm::Attachment;

// ---- 3. stat ----

#[test]
fn stat_shows_segment_size_mode_owner_and_kernel_times() {
    let m = Mounted::new();
    let id = create_segment(0x5157, 12345, 0o640);
    shm::set(id, NOBODY_UID, NOBODY_GID, 0o604).unwrap();
    let k = kstat(id);
    assert_eq!((k.perm.cuid, k.perm.cgid), (0, 0), "precondition: creator differs from owner");
    assert_eq!((k.atime, k.dtime), (0, 0), "precondition: never attached");

    let md = fs::metadata(m.shm(id)).unwrap();
    assert!(md.is_file());
    assert_eq!(md.size(), k.segsz);
    assert_eq!(md.size(), 12345);
    assert_eq!(md.mode(), libc::S_IFREG | 0o604);
    assert_eq!((md.uid(), md.gid()), (NOBODY_UID, NOBODY_GID), "the owner, not the creator");
    assert_eq!(md.ctime(), k.ctime);
    assert_eq!(md.atime(), k.ctime, "never attached: atime shows ctime");
    assert_eq!(md.mtime(), k.ctime, "never detached: mtime shows ctime");
    assert!(md.blksize() >= 128 * 1024, "st_blksize {}", md.blksize());
}

#[test]
fn attach_and_detach_times_show_as_atime_and_mtime() {
    let m = Mounted::new();
    let id = create_segment(0x7177, 4096, 0o600);
    let created = kstat(id);

    wait_for_next_second();
    let attachment = Attachment::attach(id, 4096, false).unwrap();
    let attached = kstat(id);
    assert!(attached.atime > created.ctime && attached.dtime == 0, "precondition: {attached:?}");
    let md = fs::metadata(m.shm(id)).unwrap();
    assert_eq!((md.atime(), md.mtime(), md.ctime()), (attached.atime, attached.ctime, attached.ctime));

    wait_for_next_second();
    drop(attachment);
    let detached = kstat(id);
    assert!(detached.dtime > detached.atime && detached.atime > detached.ctime, "precondition: {detached:?}");
    let md = fs::metadata(m.shm(id)).unwrap();
    assert_eq!((md.atime(), md.mtime(), md.ctime()), (detached.atime, detached.dtime, detached.ctime));
}

// ---- 4. the tools agree ----

#[test]
fn ls_and_stat_agree_with_ipcs_and_lsipc() {
    let m = Mounted::new();
    let a = create_segment(0x0000aaaa, 4096, 0o640);
    shm::set(a, NOBODY_UID, NOBODY_GID, 0o640).unwrap();
    let b = create_segment(0x0bbb0000, 100, 0o604);
    let c = create_segment(libc::IPC_PRIVATE, 70000, 0o666);
    shm::set(c, NOBODY_UID + 1, 0, 0o660).unwrap();
    let _held = Attachment::attach(c, 70000, false).unwrap();

    let rows = lsipc_rows(
        "-m --bytes --numeric-perms",
        "KEY,ID,OWNER,PERMS,UID,GID,CUID,CGID,SIZE,NATTCH,STATUS,CTIME,ATTACH,DETACH,CPID,LPID",
    );
    assert_eq!(rows.len(), 3, "{rows:?}");
    let ipcs = sh_ok("LC_ALL=C ipcs -m");
    let ls = ls_long(&m.path("shm"), "-l");
    let ls_atime = ls_long(&m.path("shm"), "-lu");
    let ls_ctime = ls_long(&m.path("shm"), "-lc");
    assert_eq!(ls.len(), 3, "{ls:?}");

    for (id, key, size, mode, uid, gid, nattch) in [
        (a, "0x0000aaaa", 4096, 0o640, NOBODY_UID, NOBODY_GID, 0),
        (b, "0x0bbb0000", 100, 0o604, 0, 0, 0),
        (c, "0x00000000", 70000, 0o660, NOBODY_UID + 1, 0, 1),
    ] {
        let name = id.0.to_string();
        let k = kstat(id);
        let md = fs::metadata(m.shm(id)).unwrap();
        let row = rows.iter().find(|r| r["id"] == name).unwrap_or_else(|| panic!("lsipc has no id {name}: {rows:?}"));
        let ipcs_line: Vec<&str> = ipcs
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.len() >= 6 && f[1] == name)
            .unwrap_or_else(|| panic!("ipcs -m has no id {name}: {ipcs}"));
        let ls_row = &ls[&name];

        // stat, by the kernel's word
        assert_eq!((md.size(), md.mode() & 0o7777, md.uid(), md.gid()), (size, mode, uid, gid), "stat of {name}");
        assert_eq!((k.segsz, k.perm.mode & 0o777, k.perm.uid, k.perm.gid, k.nattch), (size, mode, uid, gid, nattch));

        // key
        assert_eq!(row["key"], key, "lsipc key of {name}");
        assert_eq!(ipcs_line[0], key, "ipcs key of {name}");
        // permissions
        assert_eq!(u32::from_str_radix(&row["perms"], 8).unwrap(), mode, "lsipc perms of {name}");
        assert_eq!(u32::from_str_radix(ipcs_line[3], 8).unwrap(), mode, "ipcs perms of {name}");
        assert_eq!(&ls_row[0][..1], "-");
        assert_eq!(perm_bits(&ls_row[0][1..]), mode, "ls perms of {name}");
        // owner: names where the tools print names, numbers where they print numbers
        assert_eq!(ls_row[1], row["owner"], "ls and lsipc owner of {name}");
        assert_eq!(ls_row[1], ipcs_line[2], "ls and ipcs owner of {name}");
        assert_eq!(row["uid"], md.uid().to_string(), "lsipc uid of {name}");
        assert_eq!(row["gid"], md.gid().to_string(), "lsipc gid of {name}");
        // size
        assert_eq!(row["size"], size.to_string(), "lsipc size of {name}");
        assert_eq!(ipcs_line[4], size.to_string(), "ipcs bytes of {name}");
        assert_eq!(ls_row[3], size.to_string(), "ls size of {name}");
        // attachments
        assert_eq!(row["nattch"], nattch.to_string(), "lsipc nattch of {name}");
        assert_eq!(ipcs_line[5], nattch.to_string(), "ipcs nattch of {name}");
        assert_eq!(xattr(&m.shm(id), "user.ipc.nattch").unwrap(), nattch.to_string(), "xattr nattch of {name}");
        // times (lsipc shows null for a time never set; the file shows ctime there)
        let or_ctime = |t: &String| {
            if t.is_empty() { row["ctime"].clone() } else { t.clone() }
        };
        assert_eq!(ls_ctime[&name][4], row["ctime"], "ctime of {name}");
        assert_eq!(ls_atime[&name][4], or_ctime(&row["attach"]), "atime of {name}");
        assert_eq!(ls_row[4], or_ctime(&row["detach"]), "mtime of {name}");
        assert_eq!(row["attach"].is_empty(), nattch == 0, "attach time of {name}: {row:?}");
        // creator and last user
        assert_eq!((row["cuid"].as_str(), row["cgid"].as_str()), ("0", "0"));
        assert_eq!(row["cpid"], xattr(&m.shm(id), "user.ipc.cpid").unwrap());
        assert_eq!(row["lpid"], xattr(&m.shm(id), "user.ipc.lpid").unwrap());

        // ipcs -i: numbers throughout
        let detail = sh_ok(&format!("LC_ALL=C ipcs -m -i {name}"));
        let fields: HashMap<&str, &str> = detail.split_whitespace().filter_map(|w| w.split_once('=')).collect();
        assert_eq!(fields["uid"], md.uid().to_string(), "ipcs -i uid of {name}");
        assert_eq!(fields["gid"], md.gid().to_string(), "ipcs -i gid of {name}");
        assert_eq!(fields["bytes"], md.size().to_string(), "ipcs -i bytes of {name}");
        assert_eq!(u32::from_str_radix(fields["mode"], 8).unwrap(), md.mode() & 0o777, "ipcs -i mode of {name}");
    }
}

// ---- 5. extended attributes ----

#[test]
fn extended_attributes_equal_ipc_stat() {
    let m = Mounted::new();
    // Made by another user in another process, then given to root: creator,
    // owner, creating pid and last pid all differ.
    let id = ipcmk_segment(Some((USER, USER_GID)), 4096, 0o640);
    shm::set(id, 0, 0, 0o640).unwrap();
    let _held = Attachment::attach(id, 4096, false).unwrap();
    let k = kstat(id);
    assert_eq!((k.perm.cuid, k.perm.cgid, k.perm.uid, k.nattch), (USER, USER_GID, 0, 1), "precondition");
    assert_ne!(k.cpid, k.lpid, "precondition");

    let expected: HashMap<String, String> = [
        ("user.ipc.key", key_name(k.perm.key.0)),
        ("user.ipc.id", id.0.to_string()),
        ("user.ipc.cuid", USER.to_string()),
        ("user.ipc.cgid", USER_GID.to_string()),
        ("user.ipc.cpid", k.cpid.to_string()),
        ("user.ipc.lpid", std::process::id().to_string()),
        ("user.ipc.nattch", "1".to_string()),
        ("user.ipc.dest", "0".to_string()),
        ("user.ipc.locked", "0".to_string()),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v))
    .collect();
    let path = m.shm(id);
    assert_eq!(getfattr_dump(&path), expected, "getfattr -d");
    for (name, value) in &expected {
        assert_eq!(&xattr(&path, name).unwrap(), value, "getfattr -n {name}");
    }
    assert_eq!(k.lpid.to_string(), expected["user.ipc.lpid"]);
}

#[test]
fn locked_attribute_follows_shm_lock() {
    let m = Mounted::new();
    let id = create_segment(0x10c4, 4096, 0o600);
    let path = m.shm(id);
    assert_eq!(xattr(&path, "user.ipc.locked").unwrap(), "0");
    shm::set_locked(id, true).unwrap();
    assert_eq!(xattr(&path, "user.ipc.locked").unwrap(), "1");
    assert_eq!(getfattr_dump(&path)["user.ipc.locked"], "1");
    assert_eq!(fs::metadata(&path).unwrap().mode(), libc::S_IFREG | 0o600, "SHM_LOCKED is not a mode bit");
    shm::set_locked(id, false).unwrap();
    assert_eq!(xattr(&path, "user.ipc.locked").unwrap(), "0");
}

#[test]
fn extended_attributes_are_read_only_and_unknown_names_are_refused() {
    let m = Mounted::new();
    let id = create_segment(0x0000fa77, 4096, 0o600);
    let path = m.shm(id);
    let before = (getfattr_dump(&path), kstat(id));
    for name in [
        "user.ipc.key",
        "user.ipc.id",
        "user.ipc.cuid",
        "user.ipc.cgid",
        "user.ipc.cpid",
        "user.ipc.lpid",
        "user.ipc.nattch",
        "user.ipc.dest",
        "user.ipc.locked",
    ] {
        let out = sh(&format!("LC_ALL=C setfattr -n {name} -v 1 {}", q(&path)));
        assert_refused(&out, "Operation not permitted", &format!("setfattr {name}"));
        let out = sh(&format!("LC_ALL=C setfattr -x {name} {}", q(&path)));
        assert_refused(&out, "Operation not permitted", &format!("setfattr -x {name}"));
    }
    assert_eq!((getfattr_dump(&path), kstat(id)), before, "refused setfattr changed something");

    let out = sh(&format!("LC_ALL=C setfattr -n user.other -v 1 {}", q(&path)));
    assert_refused(&out, "Operation not supported", "setfattr of an unknown name");
    let out = sh(&format!("LC_ALL=C getfattr -n user.ipc.x {}", q(&path)));
    assert_refused(&out, "No such attribute", "getfattr of an unknown user.ipc name");
    assert!(!getfattr_dump(&path).contains_key("user.other"));
}

/// ACLs and security labels are not supported, and saying so (EOPNOTSUPP,
/// as a kernel filesystem without them does) is what lets ls -l ask once per
/// mount instead of twice per file.
#[test]
fn acls_and_security_labels_are_not_supported_and_ls_asks_only_once() {
    let m = Mounted::new();
    let id = create_segment(0x0000fa78, 4096, 0o600);
    for name in ["security.selinux", "system.posix_acl_access", "trusted.x"] {
        for path in [m.shm(id), m.path("shm")] {
            let out = sh(&format!("LC_ALL=C getfattr -n {name} {}", q(&path)));
            assert_refused(&out, "Operation not supported", &format!("getfattr -n {name} {}", path.display()));
        }
    }
    for more in 1..=3 {
        create_segment(0x0000fa78 + more, 4096, 0o600);
    }
    // strace is installed by tests/run.sh.
    let shm = q(&m.path("shm"));
    let trace = sh_ok(&format!("strace -e trace=getxattr,lgetxattr ls -l {shm} 2>&1 >/dev/null"));
    let asked = trace.lines().filter(|l| l.contains("xattr(")).count();
    assert!((1..=2).contains(&asked), "ls -l of 4 segments asked for ACLs and labels {asked} times:\n{trace}");
}
