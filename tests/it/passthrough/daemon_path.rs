//! The daemon's own path: `-o nopassthrough`, hugetlb segments and a daemon
//! in a user namespace.

use super::*;

use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};

// ---- 6. -o nopassthrough ----

#[test]
fn with_nopassthrough_mapping_is_refused_and_io_still_works() {
    let m = Mounted::with_options(&["-o", "nopassthrough"]);
    let size = 2 * PAGE;
    let (id, mut expected) = filled_segment(0x7601, size, 10);
    let path = m.shm(id);
    let reader = open_read_only(&path);
    let both = open_read_write(&path);

    assert_eq!(
        Mapping::new(&both, size, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED).map(|_| ()),
        Err(libc::ENODEV)
    );
    assert_eq!(Mapping::new(&both, size, libc::PROT_READ, libc::MAP_SHARED).map(|_| ()), Err(libc::ENODEV));
    assert_eq!(Mapping::new(&reader, size, libc::PROT_READ, libc::MAP_SHARED).map(|_| ()), Err(libc::ENODEV));

    assert!(pread(&reader, 0, size) == expected);
    assert_eq!(both.write_at(b"still works", 4000).unwrap(), 11);
    expected[4000..4011].copy_from_slice(b"still works");
    assert!(segment_bytes(id) == expected, "write(2) reached the segment");
    assert!(pread(&reader, 0, size) == expected, "read(2) sees it");
    attach(id).write_at(20, b"shmat").unwrap();
    expected[20..25].copy_from_slice(b"shmat");
    assert!(pread(&both, 0, size) == expected, "read(2) sees a write through shmat");
    let e = both.write_at(b"x", size as u64).expect_err("pwrite at the end");
    assert_eq!(errno_of(&e), libc::ENOSPC);
}

// ---- 9. where passthrough cannot be had ----

/// vm.nr_hugepages raised for a test that needs huge pages, and put back.
struct HugePages(String);

impl HugePages {
    const KNOB: &str = "/proc/sys/vm/nr_hugepages";

    /// At least `n` huge pages free; None (the test says why) where the
    /// kernel cannot find them.
    fn reserve(n: u64) -> Option<HugePages> {
        let before = std::fs::read_to_string(Self::KNOB).ok()?;
        let total: u64 = before.trim().parse().ok()?;
        let guard = HugePages(before);
        std::fs::write(Self::KNOB, (total + n).to_string()).ok()?;
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let free: Option<u64> =
            meminfo.lines().find_map(|l| l.strip_prefix("HugePages_Free:")).and_then(|v| v.trim().parse().ok());
        if free.is_none_or(|free| free < n) {
            eprintln!("skipped: the kernel could not reserve {n} huge pages");
            return None;
        }
        Some(guard)
    }
}

impl Drop for HugePages {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::KNOB, self.0.trim());
    }
}

/// A hugetlbfs file cannot be a FUSE backing file (the kernel refuses it):
/// a hugetlb segment's file is served through the daemon, reading and
/// writing its pages (writes through a mapping of its file: hugetlbfs has no
/// write), and cannot be mapped (ENODEV), on a mount whose other segments
/// are served by passthrough. Removing it while open is as for any segment.
#[test]
fn hugetlb_segments_are_served_through_the_daemon() {
    let Some(_pages) = HugePages::reserve(2) else { return };
    let m = Mounted::new();
    assert_eq!(xattr(m.root(), "user.ipcfs.segment_io").unwrap(), "passthrough");
    let size = 2 << 20;
    let id =
        shm::get(Key(0x7901), size as u64, libc::IPC_CREAT | libc::SHM_HUGETLB | 0o600).expect("shmget SHM_HUGETLB");
    let mut expected = pseudo_random(size, 13);
    fill_segment_with(id, &expected);
    let path = m.shm(id);

    let reader = open_read_only(&path);
    let both = open_read_write(&path);
    assert!(pread(&reader, 0, size) == expected, "read(2) of a hugetlb segment");
    assert_eq!(both.write_at(b"through the daemon", 4090).unwrap(), 18);
    expected[4090..4108].copy_from_slice(b"through the daemon");
    assert!(segment_bytes(id) == expected, "write(2) reached the segment");
    let e = both.write_at(b"x", size as u64).expect_err("pwrite at the end");
    assert_eq!(errno_of(&e), libc::ENOSPC);
    assert_eq!(Mapping::new(&reader, size, libc::PROT_READ, libc::MAP_SHARED).map(|_| ()), Err(libc::ENODEV));
    assert_eq!(shm::stat(id).unwrap().nattch, 0, "open files are no attachments");

    sh_ok(&format!("ipcrm -m {}", id.0));
    assert!(shm::stat_any(id).is_err(), "gone at once");
    assert!(pread(&reader, 0, size) == expected, "the open file still reads it");
    drop((reader, both));
}

/// A daemon started in a user namespace of its own (as rootless ones are)
/// has no CAP_SYS_ADMIN in the initial one: no passthrough, and no access to
/// the segments' own files, so it attaches a segment while a file of it is
/// open. Segment files work through the daemon; mmap is ENODEV.
#[test]
fn a_daemon_in_a_user_namespace_serves_segments_through_the_daemon() {
    isolate();
    let dir = TempDir::new("userns");
    let mut daemon = Command::new("setpriv")
        .args(["--pdeathsig", "KILL", "--", "unshare", "--user", "--map-root-user", "--mount", ipcfs_bin()])
        .arg("--foreground")
        .arg(&dir.0)
        .stdin(Stdio::null())
        .spawn()
        .expect("start ipcfs in a user namespace");
    struct Stop<'a>(&'a mut std::process::Child);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = daemon.id();
    let _stop = Stop(&mut daemon);
    // The mount is in the daemon's mount namespace: reach it through its root.
    let root = std::path::PathBuf::from(format!("/proc/{pid}/root{}", dir.0.display()));
    wait_for("the daemon mounts in its namespace", || {
        std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).is_ok_and(|t| t.contains(dir.0.to_str().unwrap()))
    });
    assert_eq!(xattr(&root, "user.ipcfs.segment_io").unwrap(), "daemon");

    let size = 3 * PAGE;
    let (id, mut expected) = filled_segment(0x7a01, size, 14);
    let path = root.join(format!("shm/{}", id.0));
    let file = open_read_write(&path);
    assert!(pread(&file, 0, size) == expected, "read(2)");
    file.write_all_at(b"rootless", 100).unwrap();
    expected[100..108].copy_from_slice(b"rootless");
    assert!(segment_bytes(id) == expected, "write(2) reached the segment");
    assert_eq!(Mapping::new(&file, size, libc::PROT_READ, libc::MAP_SHARED).map(|_| ()), Err(libc::ENODEV));
    assert_eq!(shm::stat(id).unwrap().nattch, 1, "the daemon's attachment for the open file");

    // Removed while open: the kernel only marks an attached segment.
    sh_ok(&format!("ipcrm -m {}", id.0));
    assert!(shm::stat_any(id).unwrap().is_dest(), "marked for destruction while the file is open");
    assert!(pread(&file, 0, size) == expected, "the open file still reads it");
    drop(file);
    wait_for("the segment goes with the close", || shm::stat_any(id).is_err());
}
