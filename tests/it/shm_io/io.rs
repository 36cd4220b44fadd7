//! Reading sees the live segment, writing lands in it, and the end of a
//! segment.

use super::*;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

// ---- 1. reading sees the live segment ----

#[test]
fn read_returns_the_segments_bytes() {
    let m = Mounted::new();
    let size = 4096 + 123;
    let id = create_segment(0x1001, size, 0o600);
    let data = pseudo_random(size as usize, 1);
    fill_segment_with(id, &data);

    let read = std::fs::read(m.shm(id)).unwrap();
    assert_eq!(read.len(), size as usize, "read(2) to EOF returns shm_segsz bytes");
    assert!(read == data, "read(2) returns the segment's bytes");
    assert_eq!(std::fs::metadata(m.shm(id)).unwrap().len(), size);

    // A read from the middle, crossing the end: only what is there.
    let f = File::open(m.shm(id)).unwrap();
    let mut buf = vec![0u8; 200];
    assert_eq!(f.read_at(&mut buf, size - 50).unwrap(), 50);
    assert_eq!(&buf[..50], &data[size as usize - 50..]);
}

#[test]
fn writes_by_another_process_are_seen_at_once_with_no_stale_cache() {
    let m = Mounted::new();
    let size = 3 * 4096 + 7;
    let id = create_segment(0x1002, size, 0o600);
    let other = attach(id);
    let first = pseudo_random(size as usize, 2);
    let second = pseudo_random(size as usize, 3);
    let path = m.shm(id);

    // A file kept open across every change.
    let mut kept = File::open(&path).unwrap();
    let mut buf = vec![0u8; size as usize];

    for (round, data) in [&first, &second, &first].into_iter().enumerate() {
        // Read just before the change, so that a page cache, if there were
        // one, would hold the old bytes.
        kept.read_at(&mut buf, 0).unwrap();
        other.write_at(0, data).unwrap();
        assert_eq!(kept.read_at(&mut buf, 0).unwrap(), size as usize);
        assert!(&buf == data, "round {round}: pread on a kept-open file sees the new bytes");
        kept.seek(SeekFrom::Start(0)).unwrap();
        let mut sequential = Vec::new();
        kept.read_to_end(&mut sequential).unwrap();
        assert!(&sequential == data, "round {round}: read(2) to EOF on a kept-open file sees the new bytes");
        assert!(&std::fs::read(&path).unwrap() == data, "round {round}: a fresh open sees the new bytes");
        assert!(&sh_bytes(&format!("cat {}", p(&path))) == data, "round {round}: a fresh cat sees the new bytes");
    }

    // A one-byte change in the middle of a page already read.
    other.write_at(5000, &[first[5000] ^ 0xff]).unwrap();
    let mut one = [0u8; 1];
    assert_eq!(kept.read_at(&mut one, 5000).unwrap(), 1);
    assert_eq!(one[0], first[5000] ^ 0xff, "a single changed byte is seen on the next read");
}

// ---- 2. writing lands in the live segment ----

#[test]
fn pwrite_at_an_offset_lands_in_the_live_segment() {
    let m = Mounted::new();
    let size = 8192;
    let id = create_segment(0x1003, size, 0o600);
    let before = pseudo_random(size as usize, 4);
    fill_segment_with(id, &before);
    let other = attach(id);

    let f = open_write_only(&m.shm(id));
    assert_eq!(f.write_at(b"hello", 1000).unwrap(), 5);
    let mut expected = before.clone();
    expected[1000..1005].copy_from_slice(b"hello");
    assert!(other.read_at(0, size as usize) == expected, "pwrite changed exactly bytes 1000..1005");

    // write(2) after lseek, on a read-write file; read back through the same fd.
    let mut rw = open_read_write(&m.shm(id));
    rw.seek(SeekFrom::Start(4095)).unwrap();
    rw.write_all(b"across a page boundary").unwrap();
    expected[4095..4095 + 22].copy_from_slice(b"across a page boundary");
    assert!(other.read_at(0, size as usize) == expected, "write(2) after lseek lands at the file offset");
    let mut back = vec![0u8; 22];
    rw.read_exact_at(&mut back, 4095).unwrap();
    assert_eq!(back, b"across a page boundary");

    // The segment is the same object, with the same size, written through
    // its shmem file, which the daemon found by attaching for a moment
    // (shm_lpid is the last process to shmat or shmdt: the test attached
    // before opening, so the daemon's came later). Open files are no
    // attachments.
    let stat = shm::stat(id).unwrap();
    assert_eq!(stat.segsz, size);
    assert_eq!(Some(stat.lpid), m.daemon_pid(), "the daemon found the segment's file");
    assert_eq!(stat.nattch, 1, "the test's attachment only");
    assert_eq!(std::fs::metadata(m.shm(id)).unwrap().len(), size);
}

// ---- 3. the end of a segment ----

#[test]
fn write_at_or_past_the_end_is_enospc_and_changes_nothing() {
    let m = Mounted::new();
    let size = 1000;
    let id = create_segment(0x1004, size, 0o600);
    let before = pseudo_random(size as usize, 5);
    fill_segment_with(id, &before);
    let f = open_read_write(&m.shm(id));

    for offset in [size, size + 1, size + 4096, 1 << 40] {
        let e = f.write_at(b"xyz", offset).expect_err("a write at or past the end must fail");
        assert_eq!(errno_of(&e), libc::ENOSPC, "write at {offset}: {e}");
    }
    assert!(segment_bytes(id) == before, "failed writes changed nothing");
    assert_eq!(shm::stat(id).unwrap().segsz, size);
    assert_eq!(f.metadata().unwrap().len(), size, "st_size is still shm_segsz");
}

#[test]
fn write_crossing_the_end_writes_what_fits_and_returns_that_count() {
    let m = Mounted::new();
    let size = 1000;
    let id = create_segment(0x1005, size, 0o600);
    let before = pseudo_random(size as usize, 6);
    fill_segment_with(id, &before);
    let f = open_write_only(&m.shm(id));

    assert_eq!(f.write_at(&[0x5a; 10], size - 5).unwrap(), 5, "a write crossing the end is short");
    let mut expected = before.clone();
    expected[size as usize - 5..].fill(0x5a);
    assert!(segment_bytes(id) == expected, "exactly the 5 bytes that fit were written");
    assert_eq!(shm::stat(id).unwrap().segsz, size, "the segment did not grow");
    assert_eq!(std::fs::metadata(m.shm(id)).unwrap().len(), size, "st_size did not grow");
}

#[test]
fn large_write_crossing_the_end_spans_several_requests_and_is_short() {
    let m = Mounted::new();
    // Larger than one FUSE write request (1 MiB), not a multiple of a page.
    let size: u64 = 3 * (1 << 20) - 5;
    let id = create_segment(0x1006, size, 0o600);
    let f = open_write_only(&m.shm(id));
    let data = pseudo_random(4 << 20, 7);

    let written = f.write_at(&data, 100).unwrap();
    assert_eq!(written as u64, size - 100, "pwrite returns exactly the bytes that fit");
    let now = segment_bytes(id);
    assert!(now[..100].iter().all(|&b| b == 0), "nothing before the offset changed");
    assert!(now[100..] == data[..written], "what fit was written");
}

#[test]
fn zero_length_write_is_fine_at_and_before_the_end() {
    let m = Mounted::new();
    let size = 1000;
    let id = create_segment(0x1007, size, 0o600);
    let before = pseudo_random(size as usize, 8);
    fill_segment_with(id, &before);
    let mut f = open_write_only(&m.shm(id));

    assert_eq!(f.write_at(&[], size).unwrap(), 0);
    assert_eq!(f.write_at(&[], 10).unwrap(), 0);
    f.seek(SeekFrom::End(0)).unwrap();
    assert_eq!(f.write(&[]).unwrap(), 0);
    assert!(segment_bytes(id) == before);
}
