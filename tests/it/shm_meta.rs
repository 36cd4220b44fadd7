//! Mounted tests of what segment files say about their segments and of
//! managing segments through them: the tree and its key links, stat and the
//! extended attributes against shmctl(IPC_STAT), ipcs and lsipc, chmod, chown
//! and rm as IPC_SET and IPC_RMID, recycled ids, the kernel's permission rule
//! for other users, and read-only mounts.
//!
//! Segments are checked through the kernel directly (shmctl, and attachments
//! held by the test, which detach synchronously on drop). Files are never
//! opened through the mount where nattch or a segment's destruction matters:
//! FUSE sends RELEASE asynchronously, so the daemon may still be attached for
//! a moment after close(2) returns.

use crate::common::*;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ipcfs::ipc::Errno;
use ipcfs::ipc::shm::Attachment;

// ---- helpers ----

// ---- 1. layout ----

#[test]
fn tree_has_family_dirs_and_key_links_only_for_keyed_segments() {
    let m = Mounted::new();
    assert_eq!(list(m.root()), ["by-key", "limits", "msg", "sem", "shm"]);
    assert_eq!(list(&m.path("by-key")), ["msg", "sem", "shm"]);

    let keyed = create_segment(0x1234abcd, 4096, 0o600);
    let high = create_segment(0xfedc0001_u32 as i32, 8192, 0o640);
    let private = create_segment(libc::IPC_PRIVATE, 12288, 0o600);
    let mut ids: Vec<String> = [keyed, high, private].iter().map(|id| id.0.to_string()).collect();
    ids.sort();
    assert_eq!(list(&m.path("shm")), ids);
    assert_eq!(list(&m.path("by-key/shm")), ["0x1234abcd", "0xfedc0001"], "a link per keyed segment, none for private");

    for (key, id, size) in [("0x1234abcd", keyed, 4096), ("0xfedc0001", high, 8192)] {
        let link = m.path(format!("by-key/shm/{key}"));
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "{key} is a symlink");
        assert_eq!(fs::read_link(&link).unwrap(), Path::new(&format!("../../shm/{}", id.0)));
        let followed = fs::metadata(&link).unwrap();
        assert!(followed.is_file());
        assert_eq!(followed.ino(), fs::metadata(m.shm(id)).unwrap().ino(), "{key} leads to shm/{}", id.0);
        assert_eq!(followed.size(), size);
    }
    assert!(fs::metadata(m.shm(private)).unwrap().is_file());
    assert_eq!(xattr(&m.shm(private), "user.ipc.key").unwrap(), "0x00000000");
    assert_eq!(errno(fs::symlink_metadata(m.path("by-key/shm/0x00000000"))), libc::ENOENT);
}

// ---- 2. changes behind the daemon's back ----

#[test]
fn segments_made_and_removed_behind_the_daemons_back_show_at_once() {
    let m = Mounted::new();
    // Looked up (and missed) before they exist: no negative entry may stick.
    assert_eq!(errno(fs::metadata(m.path("shm/0"))), libc::ENOENT);
    assert_eq!(errno(fs::symlink_metadata(m.path("by-key/shm/0x00c0ffee"))), libc::ENOENT);
    assert!(list(&m.path("shm")).is_empty());

    let made = ipcmk_segment(None, 8192, 0o640);
    assert_eq!(made, ShmId(0), "the first id of a fresh IPC namespace");
    let made_key = key_name(kstat(made).perm.key.0);
    let md = fs::metadata(m.path("shm/0")).unwrap();
    assert_eq!((md.size(), md.mode() & 0o777), (8192, 0o640));
    assert_eq!(list(&m.path("by-key/shm")), std::slice::from_ref(&made_key));

    let keyed = create_segment(0x00c0ffee, 4096, 0o600);
    assert_eq!(fs::read_link(m.path("by-key/shm/0x00c0ffee")).unwrap(), Path::new(&format!("../../shm/{}", keyed.0)));
    let mut both = vec![made.0.to_string(), keyed.0.to_string()];
    both.sort();
    assert_eq!(list(&m.path("shm")), both);

    sh_ok(&format!("ipcrm -m {}", made.0));
    assert_eq!(list(&m.path("shm")), [keyed.0.to_string()]);
    assert_eq!(errno(fs::metadata(m.shm(made))), libc::ENOENT);
    assert_eq!(errno(fs::symlink_metadata(m.path(format!("by-key/shm/{made_key}")))), libc::ENOENT);
    assert_eq!(list(&m.path("by-key/shm")), ["0x00c0ffee"]);

    shm::remove(keyed).unwrap();
    assert!(list(&m.path("shm")).is_empty());
    assert!(list(&m.path("by-key/shm")).is_empty());
    assert_eq!(errno(fs::metadata(m.shm(keyed))), libc::ENOENT);
    assert_eq!(errno(fs::symlink_metadata(m.path("by-key/shm/0x00c0ffee"))), libc::ENOENT);

    let again = create_segment(0x00c0ffee, 4096, 0o600);
    assert_eq!(fs::read_link(m.path("by-key/shm/0x00c0ffee")).unwrap(), Path::new(&format!("../../shm/{}", again.0)));
    sh_ok("ipcrm -M 0x00c0ffee");
    assert_eq!(errno(fs::symlink_metadata(m.path("by-key/shm/0x00c0ffee"))), libc::ENOENT);
    assert_eq!(errno(fs::metadata(m.shm(again))), libc::ENOENT);
}

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

// ---- 6. chmod, chown, chgrp ----

#[test]
fn chmod_chown_and_chgrp_run_ipc_set() {
    let m = Mounted::new();
    let id = create_segment(0x6000, 4096, 0o600);
    let path = q(&m.shm(id));

    sh_ok(&format!("chmod 640 {path}"));
    assert_eq!(kstat(id).perm.mode & 0o777, 0o640);
    assert_eq!(fs::metadata(m.shm(id)).unwrap().mode(), libc::S_IFREG | 0o640);

    sh_ok(&format!("chown {NOBODY_UID} {path}"));
    let k = kstat(id);
    assert_eq!((k.perm.uid, k.perm.gid, k.perm.mode & 0o777), (NOBODY_UID, 0, 0o640));

    sh_ok(&format!("chgrp {NOBODY_GID} {path}"));
    let k = kstat(id);
    assert_eq!((k.perm.uid, k.perm.gid, k.perm.mode & 0o777), (NOBODY_UID, NOBODY_GID, 0o640));
    let md = fs::metadata(m.shm(id)).unwrap();
    assert_eq!((md.uid(), md.gid()), (NOBODY_UID, NOBODY_GID));

    fs::set_permissions(m.shm(id), fs::Permissions::from_mode(0o604)).unwrap();
    sh_ok(&format!("chown 0:0 {path}"));
    let k = kstat(id);
    assert_eq!((k.perm.uid, k.perm.gid, k.perm.mode & 0o777), (0, 0, 0o604));
    assert_eq!((k.perm.cuid, k.perm.cgid), (0, 0), "the creator never changes");
}

#[test]
fn chmod_beyond_permission_bits_is_einval_and_changes_nothing() {
    let m = Mounted::new();
    let id = create_segment(0x6001, 4096, 0o640);
    let before = snapshot(id);
    let out = sh(&format!("LC_ALL=C chmod 4644 {}", q(&m.shm(id))));
    assert_refused(&out, "Invalid argument", "chmod 4644");
    for mode in [0o1644, 0o2644, 0o4644] {
        let result = fs::set_permissions(m.shm(id), fs::Permissions::from_mode(mode));
        assert_eq!(errno(result), libc::EINVAL, "chmod {mode:o}");
    }
    assert_eq!(snapshot(id), before);
    assert_eq!(fs::metadata(m.shm(id)).unwrap().mode(), libc::S_IFREG | 0o640);
}

// ---- 7. rm ----

#[test]
fn rm_removes_an_unattached_segment() {
    let m = Mounted::new();
    let id = create_segment(0x7000, 4096, 0o600);
    let kept = create_segment(0x7002, 4096, 0o600);
    sh_ok(&format!("rm {}", q(&m.shm(id))));
    assert!(is_gone(id), "IPC_RMID ran");
    assert_eq!(list(&m.path("shm")), [kept.0.to_string()]);
    assert_eq!(list(&m.path("by-key/shm")), ["0x00007002"]);
    assert_eq!(errno(fs::metadata(m.shm(id))), libc::ENOENT);

    fs::remove_file(m.shm(kept)).unwrap();
    assert!(is_gone(kept));
    assert!(list(&m.path("shm")).is_empty());
}

#[test]
fn rm_of_an_attached_segment_marks_it_for_destruction_until_the_last_detach() {
    let m = Mounted::new();
    let id = create_segment(0x7001, 4096, 0o600);
    write_segment(id, 0, b"still here");
    let held = Attachment::attach(id, 4096, false).unwrap();

    fs::remove_file(m.shm(id)).unwrap();
    let k = kstat(id);
    assert!(k.is_dest(), "IPC_RMID ran: {k:?}");
    assert_eq!(list(&m.path("shm")), [id.0.to_string()], "still attached, still listed");
    let md = fs::metadata(m.shm(id)).unwrap();
    assert!(md.is_file() && md.size() == 4096, "{md:?}");
    assert_eq!(xattr(&m.shm(id), "user.ipc.dest").unwrap(), "1");
    assert_eq!(xattr(&m.shm(id), "user.ipc.key").unwrap(), "0x00000000", "the kernel made it private");
    assert!(list(&m.path("by-key/shm")).is_empty());
    assert_eq!(errno(fs::symlink_metadata(m.path("by-key/shm/0x00007001"))), libc::ENOENT);
    assert_eq!(&held.read_at(0, 10), b"still here");

    drop(held);
    assert!(is_gone(id), "the last detach destroyed it");
    assert!(list(&m.path("shm")).is_empty());
    assert_eq!(errno(fs::metadata(m.shm(id))), libc::ENOENT);
}

#[test]
fn rm_f_of_a_missing_id_succeeds_and_rm_says_enoent() {
    let m = Mounted::new();
    let id = create_segment(0x7003, 4096, 0o600);
    let missing = m.path("shm/12345");
    sh_ok(&format!("rm -f {}", q(&missing)));
    let out = sh(&format!("LC_ALL=C rm {}", q(&missing)));
    assert_refused(&out, "No such file or directory", "rm of a missing id");
    assert_eq!(errno(fs::remove_file(&missing)), libc::ENOENT);
    assert_eq!(list(&m.path("shm")), [id.0.to_string()], "the other segment is untouched");
}

// ---- 8. recycled ids ----

/// Removes a segment behind the daemon's back while the test remembers its
/// file (st_ino, and an O_PATH descriptor, which holds the inode without
/// opening, so without attaching), makes the kernel give the same id to a new
/// segment made by `make_new`, and checks that the name now leads to a new
/// file while the old one is gone.
///
/// Each caller makes the new segment differ from the old in something the
/// kernel fixes at creation. One equal in every field shmctl shows (same
/// creating process, size and key) cannot be told from the old by any
/// filesystem, so no test asks for that. (An open, non-O_PATH descriptor
/// cannot meet a recycled id at all: ipcfs holds its segment attached, see
/// `an_open_file_keeps_its_segment_and_never_reads_a_newer_one`.)
fn check_recycled_id_is_a_new_file(make_new: impl FnOnce() -> ShmId) {
    let m = Mounted::new();
    let old = create_segment(0x8000, 4096, 0o600);
    write_segment(old, 0, b"OLD-OLD-");
    let path = m.shm(old);
    let old_ino = fs::metadata(&path).unwrap().ino();
    let old_file = OpenOptions::new().read(true).custom_flags(libc::O_PATH).open(&path).unwrap();
    assert_eq!(old_file.metadata().unwrap().ino(), old_ino);

    shm::remove(old).unwrap();
    assert!(is_gone(old), "precondition: nothing held it");
    request_next_id(old);
    let new = make_new();
    assert_eq!(new, old, "precondition: the kernel reused the id");
    write_segment(new, 0, b"NEW!NEW!");

    let md = fs::metadata(&path).unwrap();
    assert_ne!(md.ino(), old_ino, "a recycled id must be a new inode");
    // An O_PATH descriptor opens nothing the daemon sees: its fstat is a
    // stat of the old inode, whose id the new segment has taken, so it is a
    // stale handle (ESTALE), as on NFS; ENOENT would do as well.
    let stale = [libc::ENOENT, libc::ESTALE];
    let e = errno(old_file.metadata());
    assert!(stale.contains(&e), "fstat of the old file: errno {e}");
    // Reopening the old file itself (not the name) must not reach the new segment.
    let reopened = fs::read(format!("/proc/self/fd/{}", old_file.as_raw_fd()));
    match reopened {
        Ok(bytes) => panic!("the old file opened and read {:?}", String::from_utf8_lossy(&bytes[..8])),
        Err(e) => assert!(stale.contains(&errno_of(&e)), "reopening the old file: {e}"),
    }
    assert_eq!(&fs::read(&path).unwrap()[..8], b"NEW!NEW!", "the name leads to the new segment");
}

#[test]
fn recycled_id_made_by_another_process_is_a_new_file() {
    check_recycled_id_is_a_new_file(|| ipcmk_segment(None, 4096, 0o600));
}

#[test]
fn recycled_id_with_another_size_is_a_new_file() {
    check_recycled_id_is_a_new_file(|| create_segment(0x8001, 8192, 0o600));
}

#[test]
fn recycled_id_with_another_key_is_a_new_file() {
    // Same creating process, owner and size; only the key differs. A segment's
    // key changes only to IPC_PRIVATE (when marked for destruction), never
    // from one key to another, so this cannot be the old segment.
    check_recycled_id_is_a_new_file(|| create_segment(0x8002, 4096, 0o600));
}

#[test]
fn an_open_file_keeps_its_segment_and_never_reads_a_newer_one() {
    let m = Mounted::new();
    let old = create_segment(0x8100, 4096, 0o600);
    write_segment(old, 0, b"OLD-OLD-");
    let mut old_file = File::open(m.shm(old)).unwrap();
    let old_ino = old_file.metadata().unwrap().ino();

    // Removed: gone at once (an open file is no attachment), and the open
    // file shows it as an unlinked file, with no links.
    shm::remove(old).unwrap();
    assert!(shm::stat_any(old).is_err(), "the kernel destroyed the segment at once");
    let md = old_file.metadata().unwrap();
    assert_eq!((md.ino(), md.size(), md.nlink()), (old_ino, 4096, 0), "fstat of the removed segment's file");

    // Replaced: the id is free at once, and a new segment takes it.
    request_next_id(old);
    let new = create_segment(0x8100, 8192, 0o600);
    assert_eq!(new, old, "precondition: the kernel gave the id again");
    write_segment(new, 0, b"NEW!NEW!");
    let md = fs::metadata(m.shm(new)).unwrap();
    assert_eq!(md.size(), 8192, "a stat by the path shows the new segment, never the old");
    assert_ne!(md.ino(), old_ino);

    // The open file reads its own bytes, never the new segment's. Its fstat
    // cannot be told from a stat by a kept path, which must not show the
    // old segment: ESTALE (docs/ipcfs.md).
    let mut bytes = Vec::new();
    old_file.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes.len(), 4096);
    assert_eq!(&bytes[..8], b"OLD-OLD-");
}

// ---- 9. errnos and other users ----

#[test]
fn missing_and_non_canonical_names_are_enoent() {
    let m = Mounted::new();
    request_next_id(ShmId(7));
    let id = create_segment(0x0000beef, 4096, 0o600);
    assert_eq!(id, ShmId(7), "precondition");
    assert!(fs::metadata(m.path("shm/7")).unwrap().is_file());
    assert!(fs::symlink_metadata(m.path("by-key/shm/0x0000beef")).unwrap().file_type().is_symlink());

    for name in [
        "shm/999999",
        "shm/abc",
        "shm/007",
        "shm/07",
        "shm/+7",
        "shm/-1",
        "shm/2147483648",
        "by-key/shm/0xdeadbeef",
        "by-key/shm/0xbeef",
        "by-key/shm/0x0000BEEF",
        "by-key/shm/0x00000000",
        "by-key/shm/7",
    ] {
        assert_eq!(errno(fs::symlink_metadata(m.path(name))), libc::ENOENT, "{name}");
        let out = sh(&format!("LC_ALL=C stat {}", q(&m.path(name))));
        assert_refused(&out, "No such file or directory", &format!("stat {name}"));
    }
}

#[test]
fn other_users_are_held_to_the_segments_mode() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let secret = create_segment(0x9000, 4096, 0o600);
    write_segment(secret, 0, b"secret");
    let public = create_segment(0x9001, 4096, 0o644);
    write_segment(public, 0, b"public");
    let before = (snapshot(secret), snapshot(public));

    let out = sh_as(USER, USER_GID, &[], &format!("LC_ALL=C cat {}", q(&m.shm(secret))));
    assert_refused(&out, "Permission denied", "uid 1000 reading a 0600 root segment");
    assert!(out.stdout.is_empty());
    let out = sh_as(USER, USER_GID, &[], &format!("LC_ALL=C cat {}", q(&m.shm(public))));
    assert!(assert_ok(&out, "uid 1000 reading a 0644 root segment").starts_with("public"));
    let out = sh_as(USER, USER_GID, &[], &format!("printf XXXXXX > {}", q(&m.shm(public))));
    assert_refused(&out, "Permission denied", "uid 1000 writing a 0644 root segment");
    let out = sh_as(USER, USER_GID, &[], &format!("LC_ALL=C truncate -s 0 {}", q(&m.shm(public))));
    assert_refused(&out, "Permission denied", "uid 1000 truncating a 0644 root segment");

    assert_eq!((snapshot(secret), snapshot(public)), before);
}

#[test]
fn other_users_may_not_chmod_chown_or_remove_a_root_segment() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    // Readable and writable by all: ownership, not access, decides.
    let id = create_segment(0x9100, 4096, 0o666);
    write_segment(id, 0, b"owned by root");
    let before = snapshot(id);
    let path = q(&m.shm(id));
    for (what, script) in [
        ("chmod", format!("chmod 0600 {path}")),
        ("chown", format!("chown {USER} {path}")),
        ("chgrp", format!("chgrp {USER_GID} {path}")),
        ("rm", format!("rm {path}")),
        ("rm -f", format!("rm -f {path}")),
    ] {
        let out = sh_as(USER, USER_GID, &[], &format!("LC_ALL=C {script}"));
        assert_refused(&out, "Operation not permitted", &format!("uid 1000: {what} of a root segment"));
        assert_eq!(snapshot(id), before, "after the refused {what}");
    }
    assert!(!kstat(id).is_dest());
    assert_eq!(list(&m.path("shm")), [id.0.to_string()]);
}

#[test]
fn the_creator_may_chmod_and_remove_a_segment_it_no_longer_owns() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let id = ipcmk_segment(Some((USER, USER_GID)), 4096, 0o600);
    shm::set(id, 0, 0, 0o600).unwrap();
    let k = kstat(id);
    assert_eq!((k.perm.cuid, k.perm.uid), (USER, 0), "precondition: creator, not owner");
    let path = q(&m.shm(id));

    let out = sh_as(USER, USER_GID, &[], &format!("LC_ALL=C chmod 0640 {path}"));
    assert_ok(&out, "the creator's chmod");
    assert_eq!(kstat(id).perm.mode & 0o777, 0o640);
    assert_eq!(kstat(id).perm.uid, 0, "chmod changes only the mode");

    let out = sh_as(USER, USER_GID, &[], &format!("LC_ALL=C rm {path}"));
    assert_ok(&out, "the creator's rm");
    assert!(is_gone(id), "IPC_RMID ran");
}

#[test]
fn supplementary_group_members_get_the_group_bits() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let id = create_segment(0x9200, 4096, 0o640);
    shm::set(id, 0, SHARED_GID, 0o640).unwrap();
    write_segment(id, 0, b"grouped");
    let before = snapshot(id);
    let path = q(&m.shm(id));

    let out = sh_as(USER, USER_GID, &[SHARED_GID], &format!("cat {path}"));
    assert!(assert_ok(&out, "a member of the segment's group reading").starts_with("grouped"));
    let out = sh_as(USER, USER_GID, &[SHARED_GID], &format!("printf XXXXXXX > {path}"));
    assert_refused(&out, "Permission denied", "a member of the segment's group writing (group bits r--)");
    let out = sh_as(USER, USER_GID, &[], &format!("LC_ALL=C cat {path}"));
    assert_refused(&out, "Permission denied", "a non-member reading (other bits ---)");
    assert_eq!(snapshot(id), before);
}

#[test]
fn names_cannot_be_made_moved_or_linked() {
    let m = Mounted::new();
    let id = create_segment(0x0000a11a, 4096, 0o600);
    let other = create_segment(0x0000a11b, 4096, 0o600);
    let before = snapshot(id);
    let ino = fs::metadata(m.shm(id)).unwrap().ino();
    let eperm = libc::EPERM;

    for dir in ["newdir", "shm/newdir", "by-key/newdir", "by-key/shm/newdir"] {
        assert_eq!(errno(fs::create_dir(m.path(dir))), eperm, "mkdir {dir}");
    }
    for link in ["shm/link", "by-key/shm/0x12345678", "link"] {
        assert_eq!(errno(std::os::unix::fs::symlink(m.shm(id), m.path(link))), eperm, "ln -s {link}");
    }
    assert_eq!(errno(fs::hard_link(m.shm(id), m.path("shm/0x0000a11c"))), eperm, "ln");
    assert_eq!(errno(fs::rename(m.shm(id), m.shm(other))), eperm, "mv onto another segment");
    assert_eq!(errno(fs::rename(m.shm(id), m.path("shm/0x0000a11c"))), eperm, "mv to a new name");
    assert_eq!(errno(fs::rename(m.path("by-key/shm/0x0000a11a"), m.path("by-key/shm/0x0000a11d"))), eperm);
    assert_eq!(errno(fs::remove_file(m.path("by-key/shm/0x0000a11a"))), eperm, "rm of a key link");
    assert_eq!(errno(fs::remove_dir(m.path("shm"))), eperm, "rmdir shm");
    let out = sh(&format!("LC_ALL=C mkdir {}", q(&m.path("shm/d"))));
    assert_refused(&out, "Operation not permitted", "mkdir(1)");
    let out = sh(&format!("LC_ALL=C rm {}", q(&m.path("by-key/shm/0x0000a11a"))));
    assert_refused(&out, "Operation not permitted", "rm(1) of a key link");

    assert_eq!(snapshot(id), before);
    assert_eq!(fs::metadata(m.shm(id)).unwrap().ino(), ino);
    assert_eq!(list(&m.path("by-key/shm")), ["0x0000a11a", "0x0000a11b"]);
    let mut ids = vec![id.0.to_string(), other.0.to_string()];
    ids.sort();
    assert_eq!(list(&m.path("shm")), ids);
}

// ---- 10. read-only mounts ----

#[test]
fn read_only_mount_reads_but_refuses_every_change_with_erofs() {
    let m = Mounted::with_options(&["-o", "ro"]);
    let id = create_segment(0x0000a000, 4096, 0o644);
    write_segment(id, 0, b"read only");
    let before = snapshot(id);
    let path = q(&m.shm(id));

    assert!(sh_ok(&format!("cat {path}")).starts_with("read only"));
    for (what, script) in [
        ("write", format!("printf XXXX > {path}")),
        ("write in place", format!("printf XXXX | dd of={path} conv=notrunc status=none")),
        ("truncate", format!("truncate -s 0 {path}")),
        ("chmod", format!("chmod 600 {path}")),
        ("chown", format!("chown {NOBODY_UID} {path}")),
        ("rm", format!("rm {path}")),
        ("create", format!(": > {}", q(&m.path("shm/0x0000a001")))),
        ("setfattr", format!("setfattr -n user.ipc.key -v 1 {path}")),
    ] {
        let out = sh(&format!("LC_ALL=C {script}"));
        assert_refused(&out, "Read-only file system", what);
    }
    let write = OpenOptions::new().write(true).open(m.shm(id));
    assert_eq!(errno(write), libc::EROFS);

    assert_eq!(snapshot(id), before);
    assert!(!kstat(id).is_dest());
    assert_eq!(shm::get(Key(0xa001), 0, 0), Err(Errno::ENOENT), "nothing was created");
    assert_eq!(list(&m.path("shm")), [id.0.to_string()]);
}
