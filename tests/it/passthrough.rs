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
use crate::common::*;

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::process::{Command, Stdio};

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

// ---- 1. MAP_SHARED is the segment, both ways ----

#[test]
fn a_shared_mapping_of_a_segment_file_is_the_segment_both_ways() {
    let m = Mounted::new();
    let size = 3 * PAGE;
    let (id, mut expected) = filled_segment(0x7001, size, 1);
    let path = m.shm(id);
    let file = open_read_write(&path);
    let map = Mapping::shared(&file, size);
    let other = attach(id);

    assert!(map.read(0, size) == expected, "the mapping shows the segment's bytes");

    // A store through the mapping, across a page boundary and at the last byte.
    map.write(PAGE - 3, b"through the mapping");
    expected[PAGE - 3..PAGE + 16].copy_from_slice(b"through the mapping");
    map.write(size - 1, b"!");
    expected[size - 1] = b'!';
    assert!(other.read_at(0, size) == expected, "an attachment held since before sees the stores");
    assert!(segment_bytes(id) == expected, "a fresh attachment sees the stores");
    assert!(pread(&file, 0, size) == expected, "read(2) of the O_RDWR file sees the stores");
    let reader = open_read_only(&path);
    assert!(pread(&reader, 0, size) == expected, "read(2) of an O_RDONLY file sees the stores");

    // A write through shmat is seen through the mapping.
    other.write_at(2 * PAGE as u64 + 100, b"through shmat").unwrap();
    expected[2 * PAGE + 100..2 * PAGE + 113].copy_from_slice(b"through shmat");
    assert_eq!(map.read(2 * PAGE + 100, 13), b"through shmat");

    // A write(2) to the file is seen through the mapping.
    assert_eq!(file.write_at(b"through write(2)", 10).unwrap(), 16);
    expected[10..26].copy_from_slice(b"through write(2)");
    assert_eq!(map.read(10, 16), b"through write(2)");
    let writer = open_write_only(&path);
    assert_eq!(writer.write_at(b"O_WRONLY", PAGE as u64 + 500).unwrap(), 8);
    expected[PAGE + 500..PAGE + 508].copy_from_slice(b"O_WRONLY");
    assert!(map.read(0, size) == expected, "the mapping shows every write");

    // A read-only open, mapped PROT_READ MAP_SHARED, sees the same bytes,
    // and what is stored through the writable mapping after it was made.
    let ro_map = Mapping::new(&reader, size, libc::PROT_READ, libc::MAP_SHARED).expect("mmap PROT_READ MAP_SHARED");
    assert!(ro_map.read(0, size) == expected, "the read-only mapping shows the segment");
    map.write(PAGE, b"late");
    other.write_at(3 * PAGE as u64 - 5, b"shmat").unwrap();
    assert_eq!(ro_map.read(PAGE, 4), b"late");
    assert_eq!(ro_map.read(3 * PAGE - 5, 5), b"shmat");
    // A read-only descriptor cannot be mapped shared and writable (EACCES,
    // as for any file).
    assert_eq!(
        Mapping::new(&reader, size, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED).map(|_| ()),
        Err(libc::EACCES)
    );

    assert_eq!(shm::stat(id).unwrap().segsz, size as u64);
    assert_eq!(shmem_file_size(id), size as u64);
}

// ---- 2. MAP_PRIVATE ----

#[test]
fn a_private_mapping_works_and_changes_nothing() {
    let m = Mounted::new();
    let size = 3 * PAGE;
    let (id, data) = filled_segment(0x7002, size, 2);
    let path = m.shm(id);

    for (what, file) in [("O_RDONLY", open_read_only(&path)), ("O_RDWR", open_read_write(&path))] {
        let map = Mapping::new(&file, size, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE)
            .unwrap_or_else(|e| panic!("mmap MAP_PRIVATE of an {what} file: errno {e}"));
        assert!(map.read(0, size) == data, "{what}: the private mapping reads the segment's bytes");
        map.write(0, b"private");
        map.write(PAGE + 7, b"copy");
        map.write(size - 1, b"!");
        assert_eq!(map.read(0, 7), b"private", "{what}: the mapping keeps its own stores");
        assert_eq!(map.read(PAGE + 7, 4), b"copy");
        assert!(segment_bytes(id) == data, "{what}: a store to a private mapping leaves the segment unchanged");
        assert!(pread(&file, 0, size) == data, "{what}: and the file's bytes");
        map.unmap();
    }
    assert!(segment_bytes(id) == data);
    assert_eq!(shmem_file_size(id), size as u64);
}

// ---- 3. nothing grows a segment ----

/// Every way of growing segment `id` (size `size`, holding `expected`)
/// through its file at `path` fails, and what fits is written.
fn try_to_grow(path: &Path, id: ShmId, size: usize, expected: &mut [u8], fallocate_errno: &mut Vec<i32>) {
    let file = open_read_write(path);

    let e = file.write_at(b"past the end", size as u64).expect_err("pwrite at the end");
    assert_eq!(errno_of(&e), libc::ENOSPC, "pwrite at the end: {e}");
    let e = file.write_at(b"x", size as u64 + 5000).expect_err("pwrite after the end");
    assert_eq!(errno_of(&e), libc::ENOSPC, "pwrite after the end: {e}");

    let n = file.write_at(b"0123456789abcdefghij", size as u64 - 10).expect("pwrite straddling the end");
    assert_eq!(n, 10, "a pwrite straddling the end writes what fits");
    expected[size - 10..].copy_from_slice(b"0123456789");
    assert!(segment_bytes(id) == expected, "the part that fits was written");

    let e = file.set_len(size as u64 + 1).expect_err("ftruncate larger");
    assert_eq!(errno_of(&e), libc::EFBIG, "ftruncate to a larger size: {e}");
    let e = file.set_len(size as u64 + PAGE as u64).expect_err("ftruncate larger");
    assert_eq!(errno_of(&e), libc::EFBIG, "ftruncate a page larger: {e}");

    // fallocate(2) beyond the end reaches the daemon (FALLOCATE), not the
    // shmem file, which would take it. The daemon answers a plain one with
    // EFBIG, as without passthrough
    // (shm_io::fallocate_on_an_existing_segment_cannot_grow_it), and any mode but 0
    // (here FALLOC_FL_KEEP_SIZE, which would allocate pages past the end of
    // the shmem file) with EOPNOTSUPP.
    for (mode, offset, len, expected_errno) in [
        (0, 0, size + PAGE, libc::EFBIG),
        (0, size, PAGE, libc::EFBIG),
        (0, size - 1, 2, libc::EFBIG),
        (libc::FALLOC_FL_KEEP_SIZE, size, PAGE, libc::EOPNOTSUPP),
    ] {
        // SAFETY: fallocate takes a descriptor, open for the call, and numbers.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), mode, offset as i64, len as i64) };
        let errno = last_errno();
        assert_eq!(rc, -1, "fallocate(mode {mode}, {offset}, {len}) succeeded");
        fallocate_errno.push(errno);
        assert_eq!(errno, expected_errno, "fallocate(mode {mode}, {offset}, {len})");
    }

    // copy_file_range(2) and sendfile(2) from a file of the same mount (a
    // read-only open of this one), which the kernel may turn into splices.
    let source = open_read_only(path);
    let mut source_offset: libc::off_t = 0;
    let mut offset = size as libc::off_t;
    // SAFETY: both descriptors are open for the call and the offsets are
    // ours, live across it.
    let rc =
        unsafe { libc::copy_file_range(source.as_raw_fd(), &mut source_offset, file.as_raw_fd(), &mut offset, 100, 0) };
    assert_eq!((rc, if rc < 0 { last_errno() } else { 0 }), (-1, libc::ENOSPC), "copy_file_range to the end");
    let position = std::io::Seek::seek(&mut &file, std::io::SeekFrom::Start(size as u64)).unwrap();
    assert_eq!(position, size as u64);
    let mut source_offset: libc::off_t = 0;
    // SAFETY: as above.
    let rc = unsafe { libc::sendfile(file.as_raw_fd(), source.as_raw_fd(), &mut source_offset, 100) };
    assert_eq!((rc, if rc < 0 { last_errno() } else { 0 }), (-1, libc::ENOSPC), "sendfile to the end");
    drop(source);

    let p = q(path);
    sh_fails_with(
        &format!("dd if=/dev/zero of={p} bs=4096 seek={} count=1 conv=notrunc", size.div_ceil(PAGE)),
        "No space left on device",
    );
    sh_fails_with(&format!("truncate -s +4096 {p}"), "File too large");
    // O_APPEND writes at st_size, the end (dash reports any failed write as
    // "I/O error", so the errno is checked here, not through a shell).
    let mut appender = OpenOptions::new().append(true).open(path).unwrap();
    assert_eq!(errno(std::io::Write::write(&mut appender, b"more")), libc::ENOSPC, "an O_APPEND write");
    drop(appender);

    // A store through a MAP_SHARED mapping of exactly the segment's size is fine.
    let map = Mapping::shared(&file, size);
    map.write(size - 1, b"Z");
    map.write(0, b"A");
    expected[size - 1] = b'Z';
    expected[0] = b'A';
    map.unmap();

    assert_same_bytes(&segment_bytes(id), expected, "the segment holds exactly what was written");
    assert_eq!(shm::stat(id).unwrap().segsz, size as u64, "shm_segsz is unchanged");
    assert_eq!(std::fs::metadata(path).unwrap().len(), size as u64, "stat of the file shows the same size");
    assert_eq!(file.metadata().unwrap().len(), size as u64, "fstat of the file shows the same size");
    assert_eq!(shmem_file_size(id), size as u64, "the segment's shmem file did not grow");
}

#[test]
fn nothing_can_grow_a_segment_through_its_file() {
    let m = Mounted::new();
    let size = 3 * PAGE;

    // The control: the segment's own shmem file grows on a write past its
    // end while shm_segsz stays, which is why each check below looks at the
    // shmem file's size as well.
    let control = create_segment(0x7300, size as u64, 0o600);
    let shmem = shm::shmem_file(control, size as u64).unwrap();
    shmem.write_all_at(b"grown", size as u64).unwrap();
    assert_eq!(shm::stat(control).unwrap().segsz, size as u64, "shm_segsz does not follow the file");
    assert_eq!(shmem_file_size(control), size as u64 + 5, "the shmem file grew");
    drop(shmem);
    shm::remove(control).unwrap();

    let mut fallocate_errno = Vec::new();
    // An O_RDWR file alone.
    let (id, mut expected) = filled_segment(0x7301, size, 3);
    try_to_grow(&m.shm(id), id, size, &mut expected, &mut fallocate_errno);

    // An O_RDWR file while a read-only open (the kernel's alone) and its
    // mapping are held.
    let (id, mut expected) = filled_segment(0x7302, size, 4);
    let reader = open_read_only(&m.shm(id));
    let ro_map = Mapping::new(&reader, size, libc::PROT_READ, libc::MAP_SHARED).expect("mmap PROT_READ MAP_SHARED");
    try_to_grow(&m.shm(id), id, size, &mut expected, &mut fallocate_errno);
    assert!(ro_map.read(0, size) == expected, "the read-only mapping shows what was written");
    assert!(pread(&reader, 0, size) == expected, "and so does the read-only file");
    let mut past = [0u8; 16];
    assert_eq!(reader.read_at(&mut past, size as u64).unwrap(), 0, "nothing to read past the end");

    // A segment whose size is not a whole number of pages.
    let odd = 2 * PAGE + 100;
    let (id, mut expected) = filled_segment(0x7303, odd, 5);
    try_to_grow(&m.shm(id), id, odd, &mut expected, &mut fallocate_errno);
    println!(
        "fallocate beyond the end failed with errno {fallocate_errno:?} (EFBIG = {}, EOPNOTSUPP = {})",
        libc::EFBIG,
        libc::EOPNOTSUPP
    );
}

// ---- 4. opens mix ----

#[test]
fn read_only_and_writable_opens_mix_in_any_order() {
    let m = Mounted::new();
    let size = 2 * PAGE;

    // A read-only open first, then writable ones.
    let (id, mut expected) = filled_segment(0x7401, size, 6);
    let path = m.shm(id);
    let reader = open_read_only(&path);
    assert!(pread(&reader, 0, size) == expected);
    let writer = open_write_only(&path);
    let both = open_read_write(&path);
    assert_eq!(writer.write_at(b"wronly", 0).unwrap(), 6);
    assert_eq!(both.write_at(b"rdwr", 100).unwrap(), 4);
    expected[..6].copy_from_slice(b"wronly");
    expected[100..104].copy_from_slice(b"rdwr");
    assert!(segment_bytes(id) == expected, "both writable opens wrote the segment");
    assert!(pread(&reader, 0, size) == expected, "the read-only open reads what they wrote");
    assert!(pread(&both, 0, size) == expected);
    drop((reader, writer, both));

    // A writable open first, then read-only ones.
    let (id, mut expected) = filled_segment(0x7402, size, 7);
    let path = m.shm(id);
    let both = open_read_write(&path);
    assert_eq!(both.write_at(b"first", PAGE as u64).unwrap(), 5);
    expected[PAGE..PAGE + 5].copy_from_slice(b"first");
    let readers: Vec<File> = (0..3).map(|_| open_read_only(&path)).collect();
    for reader in &readers {
        assert!(pread(reader, 0, size) == expected, "a later read-only open reads what was written");
    }
    assert_eq!(both.write_at(b"second", PAGE as u64 + 10).unwrap(), 6);
    expected[PAGE + 10..PAGE + 16].copy_from_slice(b"second");
    for reader in &readers {
        assert!(pread(reader, 0, size) == expected, "and what is written while it is open");
    }
    let writer = open_write_only(&path);
    assert_eq!(writer.write_at(b"third", 0).unwrap(), 5);
    expected[..5].copy_from_slice(b"third");
    assert!(pread(&readers[0], 0, size) == expected);
    assert!(segment_bytes(id) == expected);
    drop((both, readers, writer));

    // Twenty opens of one file at once, made concurrently: O_RDONLY (i % 3
    // == 0), O_WRONLY (1) and O_RDWR (2). Each writable one writes its own
    // slot while all are open, and every readable one then reads them all.
    let threads = 20;
    let (id, data) = filled_segment(0x7403, size, 8);
    let path = m.shm(id);
    let slot = |i: usize| format!("open {i:02} was here;").into_bytes();
    let opened = std::sync::Barrier::new(threads);
    let written = std::sync::Barrier::new(threads);
    let mut expected = data.clone();
    for i in (0..threads).filter(|i| i % 3 != 0) {
        let s = slot(i);
        expected[i * 64..i * 64 + s.len()].copy_from_slice(&s);
    }
    let expected = &expected;
    std::thread::scope(|scope| {
        for i in 0..threads {
            let (path, opened, written) = (&path, &opened, &written);
            scope.spawn(move || {
                // Nothing may panic before the last barrier, or the other
                // threads would wait there for ever: results are kept and
                // checked after it.
                let mut options = OpenOptions::new();
                options.read(i % 3 != 1).write(i % 3 != 0);
                let file = options.open(path);
                opened.wait();
                let wrote = match &file {
                    Ok(file) if i % 3 != 0 => Some(file.write_at(&slot(i), (i * 64) as u64)),
                    _ => None,
                };
                written.wait();
                let file = file.unwrap_or_else(|e| panic!("open {i} (mode {}): {e}", i % 3));
                if let Some(wrote) = wrote {
                    assert_eq!(wrote.unwrap(), slot(i).len(), "open {i} writes its slot");
                }
                if i % 3 != 1 {
                    assert!(pread(&file, 0, size) == *expected, "open {i} reads every write");
                }
            });
        }
    });
    assert!(segment_bytes(id) == *expected);
}

// ---- 5. reads of a read-only open are the kernel's ----

// How "the daemon sees no read" is measured: /proc/<daemon>/io. Serving a
// read, the daemon would pread the bytes from the segment (rchar) and write
// them to /dev/fuse (wchar), so 64 MiB served moves the counters by at least
// 64 MiB, while an open, a few lookups and a release move them by a few KiB.
// That is exact under any load. CPU time is not: a daemon serving 64 MiB
// from page cache spends only some tens of milliseconds, a handful of 10 ms
// ticks, which a busy machine's noise can match, so the ticks are printed
// but not asserted. The control (an O_RDWR open, whose reads the daemon
// serves) shows that the counters do see reads that reach the daemon.
#[test]
fn reads_of_a_read_only_open_never_reach_the_daemon() {
    let m = Mounted::new();
    let size = 64 << 20;
    let (id, data) = filled_segment(0x7501, size, 9);
    let path = m.shm(id);
    let pid = m.daemon_pid().unwrap();

    let (rchar, wchar) = proc_io(pid);
    let ticks = cpu_ticks(pid);
    let started = std::time::Instant::now();
    let out = Command::new("dd")
        .arg(format!("if={}", path.display()))
        .args(["bs=1M", "status=none"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(out.status.success(), "dd bs=1M of the segment file failed ({}): {}", out.status, stderr_of(&out));
    assert_eq!(out.stdout.len(), size, "dd read the whole segment");
    assert!(out.stdout == data, "dd read the segment's bytes");
    let (rchar_after, wchar_after) = proc_io(pid);
    let ticks_after = cpu_ticks(pid);
    let (moved_r, moved_w) = (rchar_after - rchar, wchar_after - wchar);
    println!(
        "read-only open, 64 MiB by dd bs=1M in {took:?}: daemon rchar +{moved_r}, wchar +{moved_w}, cpu ticks +{}",
        ticks_after - ticks
    );
    assert!(
        moved_r < 64 << 10 && moved_w < 64 << 10,
        "the daemon moved {moved_r} bytes in and {moved_w} out while 64 MiB were read through a read-only open"
    );

    // The control: reads of an O_RDWR open are the daemon's.
    let (rchar, wchar) = proc_io(pid);
    let ticks = cpu_ticks(pid);
    let started = std::time::Instant::now();
    let file = open_read_write(&path);
    let chunk_size = 1 << 20;
    let mut buf = vec![0u8; chunk_size];
    for chunk in 0..size / chunk_size {
        file.read_exact_at(&mut buf, (chunk * chunk_size) as u64).unwrap();
        assert!(buf[..] == data[chunk * chunk_size..(chunk + 1) * chunk_size], "chunk {chunk}");
    }
    drop(file);
    let took = started.elapsed();
    let (rchar_after, wchar_after) = proc_io(pid);
    let (moved_r, moved_w) = (rchar_after - rchar, wchar_after - wchar);
    println!(
        "control, O_RDWR open, 64 MiB by pread 1 MiB in {took:?}: daemon rchar +{moved_r}, wchar +{moved_w}, cpu ticks +{}",
        cpu_ticks(pid) - ticks
    );
    assert!(moved_w >= size as u64, "the daemon wrote only {moved_w} bytes while serving 64 MiB");
}

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
