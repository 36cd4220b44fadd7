//! MAP_SHARED is the segment both ways, MAP_PRIVATE works, and nothing
//! grows a segment through its file.

use super::*;

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

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
