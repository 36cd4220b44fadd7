//! Mounted tests of segment files served by FUSE passthrough from the
//! segment's own shmem file: `mmap(MAP_SHARED)` of `shm/<id>` maps the very
//! pages `shmat` maps (both ways, read-only and read-write), MAP_PRIVATE
//! works, nothing can grow a segment through its file, read-only and
//! writable opens mix in any order, reads of a read-only open are the
//! kernel's alone, `-o nopassthrough` restores the daemon's path (where
//! mmap fails with ENODEV), as do hugetlb segments and a daemon in a user
//! namespace, and a mapping outlives both `ipcrm` and a killed daemon.
//!
//! As in `shm_io`, every check of a segment's bytes goes through the
//! kernel's own calls (an attachment of the test's own, or a fresh one), so
//! that a file which merely looks right is not enough to pass.
//!
//! Here: the helpers the tests share; the tests, by subject, in [`mapping`]
//! (MAP_SHARED, MAP_PRIVATE, nothing grows a segment), [`opens`] (opens mix,
//! reads of a read-only open), [`lifetime`] (ipcrm while mapped, a killed
//! daemon) and [`daemon_path`] (`-o nopassthrough`, and where passthrough
//! cannot be had).

mod daemon_path;
mod lifetime;
mod mapping;
mod opens;

use crate::common::*;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

const PAGE: usize = 4096;

// ---- helpers ----

/// A segment of `size` bytes filled with pseudo-random bytes; returns them.
fn filled_segment(key: i32, size: usize, seed: u64) -> (ShmId, Vec<u8>) {
    let id = create_segment(key, size as u64, 0o600);
    let data = pseudo_random(size, seed);
    fill_segment_with(id, &data);
    (id, data)
}

/// The size (i_size) of the segment's own shmem file, which the kernel's
/// shm_segsz does not follow: a write past the end of that file grows it
/// while shm_segsz stays (see the control in
/// `nothing_can_grow_a_segment_through_its_file`).
/// (The file is found through a fresh shmat: the kernel maps the file's
/// i_size, not shm_segsz, so the range is taken from /proc/self/maps.)
fn shmem_file_size(id: ShmId) -> u64 {
    // SAFETY: a null address lets the kernel choose where to attach.
    let addr = unsafe { libc::shmat(id.0, std::ptr::null(), libc::SHM_RDONLY) };
    assert_ne!(addr as isize, -1, "shmat: errno {}", last_errno());
    let start = format!("{:x}-", addr as usize);
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let range =
        maps.lines().find(|l| l.starts_with(&start)).and_then(|l| l.split_whitespace().next()).unwrap().to_string();
    let size = std::fs::metadata(format!("/proc/self/map_files/{range}")).map(|m| m.len());
    // SAFETY: addr came from the shmat above and nothing refers to it.
    assert_eq!(unsafe { libc::shmdt(addr) }, 0, "shmdt: errno {}", last_errno());
    size.unwrap_or_else(|e| panic!("the shmem file of segment {}: {e}", id.0))
}

/// Reads `len` bytes at `offset` with pread(2), requiring all of them.
fn pread(file: &File, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset).unwrap_or_else(|e| panic!("pread {len} bytes at {offset}: {e}"));
    buf
}

/// Requires `now == expected`, naming the first byte that differs.
#[track_caller]
fn assert_same_bytes(now: &[u8], expected: &[u8], what: &str) {
    assert_eq!(now.len(), expected.len(), "{what}: lengths");
    if let Some(at) = (0..now.len()).find(|&i| now[i] != expected[i]) {
        let end = (at + 16).min(now.len());
        panic!("{what}: byte {at} differs: {:?} instead of {:?}", &now[at..end], &expected[at..end]);
    }
}

/// The errno of the last failed libc call.
fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

/// A mapping of a file made with mmap(2), unmapped on drop.
struct Mapping {
    addr: *mut u8,
    len: usize,
}

impl Mapping {
    /// mmap(NULL, len, prot, flags, file, 0); the errno if it fails.
    fn new(file: &File, len: usize, prot: i32, flags: i32) -> Result<Mapping, i32> {
        // SAFETY: a null address lets the kernel choose where to map, so no
        // existing memory is replaced; the descriptor is open for the call.
        let addr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, file.as_raw_fd(), 0) };
        if addr == libc::MAP_FAILED {
            return Err(last_errno());
        }
        Ok(Mapping { addr: addr.cast(), len })
    }

    /// Maps the whole of `len` bytes MAP_SHARED, read-write.
    fn shared(file: &File, len: usize) -> Mapping {
        Mapping::new(file, len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED)
            .unwrap_or_else(|e| panic!("mmap(MAP_SHARED, PROT_READ|PROT_WRITE): errno {e}"))
    }

    /// Copies `len` bytes from `offset`, a volatile load each, as the bytes
    /// may be changed at any moment from outside this process's view.
    #[track_caller]
    fn read(&self, offset: usize, len: usize) -> Vec<u8> {
        assert!(offset + len <= self.len, "read past the mapping");
        // SAFETY: offset..offset+len lies inside the mapping (checked above),
        // which stays mapped while self lives.
        (offset..offset + len).map(|i| unsafe { self.addr.add(i).read_volatile() }).collect()
    }

    /// Stores `data` at `offset`, a volatile store each. The mapping must
    /// be writable.
    #[track_caller]
    fn write(&self, offset: usize, data: &[u8]) {
        assert!(offset + data.len() <= self.len, "write past the mapping");
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: offset+i lies inside the mapping (checked above), and
            // the callers only store through mappings made with PROT_WRITE.
            unsafe { self.addr.add(offset + i).write_volatile(b) };
        }
    }

    /// munmap(2), requiring it to succeed.
    fn unmap(self) {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: addr..addr+len is this mapping, unmapped only here (Drop
        // is skipped), and nothing refers to it afterwards.
        let rc = unsafe { libc::munmap(this.addr.cast(), this.len) };
        assert_eq!(rc, 0, "munmap: errno {}", last_errno());
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: addr..addr+len is this mapping, and nothing refers to it
        // after the drop.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

/// Read and write counters of process `pid` from /proc/<pid>/io: (rchar,
/// wchar), bytes passed through read(2)- and write(2)-like calls by all its
/// threads, past and present.
#[track_caller]
fn proc_io(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_else(|e| panic!("/proc/{pid}/io: {e}"));
    let field = |name: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in {text}"));
        line[name.len()..].trim().parse().unwrap()
    };
    (field("rchar:"), field("wchar:"))
}

/// Descriptors of process `pid` that are the shmem file of a segment with
/// key `key` (`/SYSV%08x (deleted)`), such as the daemon's backing file.
/// (A passthrough mapping cannot be counted so: /proc/<pid>/maps and
/// map_files show it under the FUSE file's path and inode.)
fn shmem_fds(pid: i32, key: i32) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    let name = format!("/SYSV{key:08x}");
    fds.flatten()
        .filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().starts_with(&name)))
        .count()
}

/// Lines of this process's /proc/self/maps that name `path`.
fn mappings_of(path: &Path) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let path = path.to_str().unwrap();
    maps.lines().filter(|l| l.contains(path)).count()
}
