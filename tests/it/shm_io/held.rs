//! What the daemon holds for open files (`shm_nattch`), and the access mode
//! of an open file.

use super::*;

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;

// ---- 8. what the daemon holds for open files ----

/// The segments' shmem files (`/SYSV<key> (deleted)`) the daemon has open,
/// and its SysV attachments (`/proc/PID/maps`).
fn daemon_holds(m: &Mounted) -> (usize, usize) {
    let pid = m.daemon_pid().expect("daemon");
    let files = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("/SYSV"))
        .count();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    (files, maps.lines().filter(|l| l.contains("/SYSV")).count())
}

#[test]
fn an_open_file_holds_the_segments_file_not_an_attachment() {
    let m = Mounted::new();
    let id = create_segment(0x1011, 4096, 0o600);
    let path = m.shm(id);

    // Looking, listing and reading attributes hold nothing.
    std::fs::metadata(&path).unwrap();
    list(&m.path("shm"));
    sh_ok(&format!("ls -l {} >/dev/null", p(&m.path("shm"))));
    xattr(&path, "user.ipc.key").unwrap();
    assert_eq!(daemon_holds(&m), (0, 0), "nothing held without an open file");

    let first = File::open(&path).unwrap();
    assert_eq!(daemon_holds(&m), (1, 0), "one open file: the segment's file, no attachment");
    assert_eq!(nattch(id), 0, "an open file is no attachment");
    assert_eq!(xattr(&path, "user.ipc.nattch").unwrap(), "0");
    let second = open_read_write(&path);
    assert_eq!(daemon_holds(&m).1, 0, "no attachment for a file open for writing either");
    assert_eq!(nattch(id), 0);
    drop(first);
    drop(second);
    wait_for("the closes let go of the segment's files", || daemon_holds(&m) == (0, 0));

    // Alongside another process's attachment, which nattch counts alone.
    let other = attach(id);
    let f = File::open(&path).unwrap();
    assert_eq!(nattch(id), 1);
    drop(f);
    drop(other);
    assert_eq!(nattch(id), 0);

    // Shell tools leave nothing behind either.
    sh_ok(&format!("cat {} >/dev/null; echo x > {}", p(&path), p(&path)));
    wait_for("the shell's files are released", || daemon_holds(&m) == (0, 0));
}

#[test]
fn a_created_segment_is_not_kept_attached() {
    let m = Mounted::new();
    sh_ok(&format!("truncate -s 4096 {}", p(&m.path("shm/0x2222"))));
    let id = id_of_key(0x2222).unwrap();
    wait_for("truncate's file is released", || nattch(id) == 0);
    sh_ok(&format!("ipcrm -m {}", id.0));
    assert_eq!(shm::stat_any(id).map(|_| ()), Err(nix::errno::Errno::ENOENT), "the segment is gone");
}

#[test]
fn removing_a_segment_not_open_through_ipcfs_makes_it_disappear_at_once() {
    let m = Mounted::new();
    let never_opened = create_segment(0x1012, 4096, 0o600);
    let was_read = create_segment(0x1013, 4096, 0o600);
    let via_rm = create_segment(0x1014, 4096, 0o600);
    sh_ok(&format!("ls -l {} >/dev/null", p(&m.path("shm"))));
    std::fs::metadata(m.shm(never_opened)).unwrap();
    sh_ok(&format!("cat {} >/dev/null", p(&m.shm(was_read))));
    wait_for("cat's file is released", || nattch(was_read) == 0);

    sh_ok(&format!("ipcrm -m {} -m {}", never_opened.0, was_read.0));
    let listed = list(&m.path("shm"));
    assert_eq!(listed, vec![via_rm.0.to_string()], "removed segments are gone from ls at once");
    for id in [never_opened, was_read] {
        let e = std::fs::metadata(m.shm(id)).unwrap_err();
        assert_eq!(errno_of(&e), libc::ENOENT);
        assert!(shm::stat_any(id).is_err(), "the kernel destroyed {}", id.0);
    }

    std::fs::remove_file(m.shm(via_rm)).unwrap();
    assert!(list(&m.path("shm")).is_empty(), "rm shm/ID removes at once");
    assert_eq!(kernel_object_count("shm"), 0);
}

#[test]
fn a_segment_removed_while_open_through_ipcfs_is_gone_at_once_and_its_files_keep_working() {
    let m = Mounted::new();
    let id = create_segment(0x1015, 4096, 0o600);
    let data = pseudo_random(4096, 19);
    fill_segment_with(id, &data);
    let f = File::open(m.shm(id)).unwrap();
    let rw = open_read_write(&m.shm(id));

    // Like an unlinked file: gone from the tree, ipcs and the kernel at once.
    sh_ok(&format!("rm {}", p(&m.shm(id))));
    assert!(shm::stat_any(id).is_err(), "the kernel destroyed the object");
    assert!(list(&m.path("shm")).is_empty(), "gone from ls");
    assert!(!sh_ok("ipcs -m").contains("0x00001015"), "gone from ipcs");
    assert_eq!(errno_of(&std::fs::metadata(m.shm(id)).unwrap_err()), libc::ENOENT);

    // The open files still read and write the same bytes.
    let mut buf = vec![0u8; 4096];
    assert_eq!(f.read_at(&mut buf, 0).unwrap(), 4096);
    assert!(buf == data, "the open file still reads the segment");
    rw.write_all_at(b"after rm", 100).unwrap();
    assert_eq!(f.read_at(&mut buf[..8], 100).unwrap(), 8);
    assert_eq!(&buf[..8], b"after rm", "a write through one open file shows through the other");
    assert_eq!(errno_of(&rw.write_at(b"x", 4096).unwrap_err()), libc::ENOSPC, "and still never past the end");

    // The memory goes with the last of them.
    drop(f);
    wait_for("the first close is released", || daemon_holds(&m).0 == 1);
    assert_eq!(rw.read_at(&mut buf[..8], 100).unwrap(), 8, "the other open file still reads it");
    drop(rw);
    wait_for("the last close lets go of the memory", || daemon_holds(&m) == (0, 0));
}

// ---- 9. the access mode of an open file ----

#[test]
fn writing_through_a_read_only_file_is_ebadf() {
    let m = Mounted::new();
    let id = create_segment(0x1016, 4096, 0o600);
    let before = pseudo_random(4096, 20);
    fill_segment_with(id, &before);
    let mut f = File::open(m.shm(id)).unwrap();

    assert_eq!(errno_of(&f.write(b"x").unwrap_err()), libc::EBADF);
    assert_eq!(errno_of(&f.write_at(b"x", 10).unwrap_err()), libc::EBADF);
    assert!(segment_bytes(id) == before);
}

#[test]
fn reading_through_a_write_only_file_is_ebadf() {
    let m = Mounted::new();
    let id = create_segment(0x1017, 4096, 0o600);
    let mut f = open_write_only(&m.shm(id));
    let mut buf = [0u8; 16];
    assert_eq!(errno_of(&f.read(&mut buf).unwrap_err()), libc::EBADF);
    assert_eq!(errno_of(&f.read_at(&mut buf, 0).unwrap_err()), libc::EBADF);
}
