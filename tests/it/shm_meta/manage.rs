//! chmod, chown and chgrp as IPC_SET, rm as IPC_RMID, and recycled ids.

use super::*;

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};

use ipcfs::ipc::shm::Attachment;

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
