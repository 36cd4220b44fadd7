//! Errnos, other users held to the kernel's permission rule, and read-only
//! mounts.

use super::*;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::MetadataExt;

use ipcfs::ipc::Errno;

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
