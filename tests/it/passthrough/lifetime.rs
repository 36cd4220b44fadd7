//! A mapping outlives `ipcrm` and a killed daemon.

use super::*;

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};

// ---- 7. ipcrm while mapped ----

#[test]
fn removing_a_segment_while_its_file_is_mapped_keeps_the_mapping_working() {
    let m = Mounted::new();
    let size = 3 * PAGE;
    let key = 0x7701;
    let (id, mut expected) = filled_segment(key, size, 11);
    let path = m.shm(id);
    let pid = m.daemon_pid().unwrap();
    let file = open_read_write(&path);
    let map = Mapping::shared(&file, size);
    assert!(shmem_fds(pid, key) >= 1, "the daemon holds the segment's shmem file while it is open");
    assert_eq!(shm::stat(id).unwrap().nattch, 0, "neither the open file nor the mapping is an attachment");

    // Removed while the file is open and mapped: like an unlinked tmpfs
    // file, gone from the kernel, ipcs and the mount at once, while the file
    // and the mapping keep the memory.
    sh_ok(&format!("ipcrm -m {}", id.0));
    assert!(shm::stat_any(id).is_err(), "the kernel destroyed the object at once");
    assert!(!sh_ok("ipcs -m").contains(&format!("{key:#010x}")), "gone from ipcs");
    assert!(list(&m.path("shm")).is_empty(), "gone from ls");
    // The kernel kept the name (`shm/<id>`): a stat by it right after the
    // ipcrm cannot be told from the open file's fstat, which shows the file
    // with no links, and makes the daemon drop the name (docs/ipcfs.md).
    match std::fs::metadata(&path) {
        Err(e) => assert_eq!(errno_of(&e), libc::ENOENT),
        Ok(md) => assert_eq!(md.nlink(), 0, "a stat by the kept name shows no links"),
    }
    wait_for("the kept name is dropped", || std::fs::metadata(&path).is_err_and(|e| errno_of(&e) == libc::ENOENT));
    assert_eq!(file.metadata().unwrap().nlink(), 0, "fstat of the open file: no links");
    assert_eq!(file.metadata().unwrap().len(), size as u64);
    assert!(pread(&file, 0, size) == expected, "the open file still reads the bytes");
    file.write_all_at(b"file", 8).unwrap();
    expected[8..12].copy_from_slice(b"file");
    assert!(map.read(0, size) == expected, "a write through the open file shows in the mapping");
    drop(file);

    assert!(map.read(0, size) == expected, "the mapping still reads the bytes");
    map.write(PAGE + 1, b"after ipcrm");
    expected[PAGE + 1..PAGE + 12].copy_from_slice(b"after ipcrm");
    map.write(size - 1, b"!");
    expected[size - 1] = b'!';
    assert!(map.read(0, size) == expected, "and writes them");
    assert_eq!(mappings_of(&path), 1, "the mapping is there, named by the file's path");

    map.unmap();
    assert_eq!(mappings_of(&path), 0, "the test maps nothing of it");
    wait_for("the daemon lets go of the segment's shmem file", || shmem_fds(pid, key) == 0);
    assert!(shm::stat_any(id).is_err(), "nothing of the segment remains in the kernel");
    let table = std::fs::read_to_string("/proc/sysvipc/shm").unwrap();
    assert!(!table.lines().skip(1).any(|l| l.split_whitespace().nth(1) == Some(&id.0.to_string())), "{table}");
    assert!(list(&m.path("shm")).is_empty(), "nor of the mount");
}

// ---- 8. a killed daemon ----

#[test]
fn after_the_daemon_is_killed_a_mapping_keeps_working() {
    let mut m = Mounted::new();
    let size = 3 * PAGE;
    let (id, mut expected) = filled_segment(0x7801, size, 12);
    let path = m.shm(id);
    let reader = open_read_only(&path);
    let file = open_read_write(&path);
    let map = Mapping::shared(&file, size);
    drop(file);

    let pid = m.daemon_pid().unwrap();
    sh_ok(&format!("kill -9 {pid}"));
    wait_for("the daemon is dead", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    let status = m.terminate();
    assert_eq!(exit_signal(&status), Some(libc::SIGKILL), "{status}");

    assert!(map.read(0, size) == expected, "the mapping still reads the segment");
    map.write(2 * PAGE - 2, b"after kill -9");
    expected[2 * PAGE - 2..2 * PAGE + 11].copy_from_slice(b"after kill -9");
    assert!(segment_bytes(id) == expected, "a store through the mapping reaches the segment");
    attach(id).write_at(7, b"shmat").unwrap();
    expected[7..12].copy_from_slice(b"shmat");
    assert!(map.read(0, size) == expected, "a write through shmat shows in the mapping");
    assert!(pread(&reader, 0, size) == expected, "a read-only file held from before still reads (passthrough)");
    assert_eq!(errno(std::fs::metadata(&path)), libc::ENOTCONN, "stat of the dead mount");
    assert_eq!(errno(File::open(&path)), libc::ENOTCONN, "a new open on the dead mount");

    // Cleaning up as users are told to: lazy unmount.
    drop(reader);
    sh_ok(&format!("umount -l {}", q(m.root())));
    assert!(!is_mounted(m.root()));
    map.write(0, b"unmounted");
    expected[..9].copy_from_slice(b"unmounted");
    assert!(segment_bytes(id) == expected, "the mapping outlives the mount");
    map.unmap();
    assert!(segment_bytes(id) == expected);
}
