//! Mounted tests of the data path of segment files: read, write, truncate,
//! append, bulk copies with dd/cat/cp/cmp, creating segments with truncate and
//! fallocate, the daemon's own attachments (`shm_nattch`), and the access mode
//! of an open file.
//!
//! Every test checks the segment behind the file with the kernel's own calls
//! (`shmget`, `shmctl`, an attachment of the test's own playing "another
//! process"), so a file that merely looks right is not enough to pass.
use crate::common::*;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

// ---- helpers ----

/// The id of the segment with this key (`shmget(key, 0, 0)`).
fn id_of_key(key: u32) -> Result<ShmId, i32> {
    shm::get(Key(key as i32), 0, 0).map_err(|e| e as i32)
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

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

// ---- 4. O_TRUNC and truncate ----

#[test]
fn shell_redirect_truncates_then_writes_keeping_the_size() {
    let m = Mounted::new();
    let size = 4096;
    let id = create_segment(0x1008, size, 0o600);
    fill_segment_with(id, &vec![0xaa; size as usize]);

    sh_ok(&format!("echo hi > {}", p(&m.shm(id))));
    let now = segment_bytes(id);
    assert_eq!(&now[..3], b"hi\n");
    assert!(now[3..].iter().all(|&b| b == 0), "O_TRUNC zero-filled the rest");
    assert_eq!(shm::stat(id).unwrap().segsz, size, "shm_segsz is unchanged");
    assert_eq!(std::fs::metadata(m.shm(id)).unwrap().len(), size, "st_size == shm_segsz");
    assert_eq!(std::fs::read(m.shm(id)).unwrap(), now, "reading the file gives the same bytes");
}

#[test]
fn truncate_to_a_smaller_size_zero_fills_from_there_and_keeps_the_size() {
    let m = Mounted::new();
    let size = 10_000;
    let id = create_segment(0x1009, size, 0o600);
    let before = pseudo_random(size as usize, 9);
    fill_segment_with(id, &before);
    let path = p(&m.shm(id));

    sh_ok(&format!("truncate -s 3000 {path}"));
    let now = segment_bytes(id);
    assert!(now[..3000] == before[..3000], "bytes before N are kept");
    assert!(now[3000..].iter().all(|&b| b == 0), "bytes from N on are zero");
    assert_eq!(shm::stat(id).unwrap().segsz, size);
    assert_eq!(std::fs::metadata(m.shm(id)).unwrap().len(), size, "st_size stays shm_segsz");

    // ftruncate through an open file does the same.
    fill_segment_with(id, &before);
    open_write_only(&m.shm(id)).set_len(1).unwrap();
    let now = segment_bytes(id);
    assert_eq!(now[0], before[0]);
    assert!(now[1..].iter().all(|&b| b == 0));

    sh_ok(&format!("truncate -s 0 {path}"));
    assert!(segment_bytes(id).iter().all(|&b| b == 0), "truncate -s 0 zero-fills everything");
    assert_eq!(shm::stat(id).unwrap().segsz, size);
}

#[test]
fn truncate_to_a_larger_size_fails_with_efbig_and_changes_nothing() {
    let m = Mounted::new();
    let size = 10_000;
    let id = create_segment(0x100a, size, 0o600);
    let before = pseudo_random(size as usize, 10);
    fill_segment_with(id, &before);
    let path = p(&m.shm(id));

    sh_fails_with(&format!("truncate -s 20000 {path}"), "File too large");
    sh_fails_with(&format!("truncate -s {} {path}", size + 1), "File too large");
    let e = open_write_only(&m.shm(id)).set_len(size + 1).expect_err("growing must fail");
    assert_eq!(errno_of(&e), libc::EFBIG);
    assert!(segment_bytes(id) == before, "a failed truncate changed no byte");
    assert_eq!(shm::stat(id).unwrap().segsz, size);
    assert_eq!(std::fs::metadata(m.shm(id)).unwrap().len(), size);
}

#[test]
fn truncate_to_the_same_size_changes_nothing() {
    let m = Mounted::new();
    let size = 10_000;
    let id = create_segment(0x100b, size, 0o600);
    let before = pseudo_random(size as usize, 11);
    fill_segment_with(id, &before);

    sh_ok(&format!("truncate -s {size} {}", p(&m.shm(id))));
    open_write_only(&m.shm(id)).set_len(size).unwrap();
    assert!(segment_bytes(id) == before);
    assert_eq!(shm::stat(id).unwrap().segsz, size);
}

// ---- 5. O_APPEND ----

#[test]
fn append_writes_at_st_size_so_fail_with_enospc() {
    let m = Mounted::new();
    let size = 4096;
    let id = create_segment(0x100c, size, 0o600);
    let before = pseudo_random(size as usize, 12);
    fill_segment_with(id, &before);

    // `>>` opens with O_APPEND: every write goes to st_size, which is the end
    // of a fixed-size segment. dash reports any failed write of echo as "I/O
    // error" (strace shows the write(2) failing with ENOSPC); bash names the
    // errno.
    let mut f = OpenOptions::new().append(true).open(m.shm(id)).unwrap();
    let e = f.write(b"more").expect_err("an append must fail");
    assert_eq!(errno_of(&e), libc::ENOSPC);
    let out = sh_bounded(&format!("echo hi >> {}", p(&m.shm(id))));
    assert!(!out.status.success(), "`echo hi >>` must fail");
    sh_fails_with(&format!("exec bash -c 'echo hi >> {}'", p(&m.shm(id))), "No space left on device");
    assert!(segment_bytes(id) == before, "failed appends changed nothing");
    assert_eq!(shm::stat(id).unwrap().segsz, size);
}

// ---- 6. bulk copies ----

#[test]
fn dd_cat_cp_and_cmp_round_trip_8_mib_exactly() {
    let m = Mounted::new();
    let size: u64 = 8 << 20;
    let id = create_segment(0x100d, size, 0o600);
    let scratch = Scratch::new("shm-io-data");
    let data = pseudo_random(size as usize, 13);
    let input = scratch.path("data");
    std::fs::write(&input, &data).unwrap();
    let seg = p(&m.shm(id));
    let input = p(&input);

    sh_ok(&format!("dd if={input} of={seg} bs=1M conv=notrunc status=none"));
    assert!(segment_bytes(id) == data, "dd wrote every byte into the segment");
    sh_ok(&format!("cmp {input} {seg}"));

    let out = scratch.path("dd-out");
    sh_ok(&format!("dd if={seg} of={} bs=1M status=none", p(&out)));
    assert!(std::fs::read(&out).unwrap() == data, "dd reads the segment back exactly");
    assert!(sh_bytes(&format!("cat {seg}")) == data, "cat reads the segment back exactly");
    let copy = scratch.path("cp-out");
    sh_ok(&format!("cp {seg} {}", p(&copy)));
    assert!(std::fs::read(&copy).unwrap() == data, "cp copies the segment exactly");

    // cp into the segment (O_TRUNC, then writes) and dd without notrunc
    // (ftruncate to 0, then writes) both end with the new bytes exactly.
    let other = pseudo_random(size as usize, 14);
    let other_file = scratch.path("other");
    std::fs::write(&other_file, &other).unwrap();
    sh_ok(&format!("cp {} {seg}", p(&other_file)));
    assert!(segment_bytes(id) == other, "cp into the segment");
    sh_ok(&format!("dd if={input} of={seg} bs=64k status=none"));
    assert!(segment_bytes(id) == data, "dd without conv=notrunc");
    assert_eq!(shm::stat(id).unwrap().segsz, size);
}

#[test]
fn dd_handles_a_partial_last_block() {
    let m = Mounted::new();
    let size: u64 = 3 * (1 << 20) + 12345;
    let id = create_segment(0x100e, size, 0o600);
    let scratch = Scratch::new("shm-io-data");
    let data = pseudo_random(size as usize, 15);
    let input = scratch.path("data");
    std::fs::write(&input, &data).unwrap();
    let seg = p(&m.shm(id));

    let out = sh(&format!("dd if={} of={seg} bs=1M conv=notrunc", p(&input)));
    assert!(out.status.success(), "dd into the segment: {}", stderr_of(&out));
    assert!(stderr_of(&out).contains("3+1 records out"), "{}", stderr_of(&out));
    assert!(segment_bytes(id) == data);

    let back = scratch.path("back");
    let out = sh(&format!("dd if={seg} of={} bs=1M", p(&back)));
    assert!(out.status.success(), "dd from the segment: {}", stderr_of(&out));
    assert!(stderr_of(&out).contains("3+1 records in"), "{}", stderr_of(&out));
    assert!(std::fs::read(&back).unwrap() == data);
}

#[test]
fn dd_of_more_than_fits_writes_the_prefix_then_fails_with_enospc() {
    let m = Mounted::new();
    let size: u64 = (1 << 20) + 100;
    let id = create_segment(0x100f, size, 0o600);
    let scratch = Scratch::new("shm-io-data");
    let data = pseudo_random(3 << 20, 16);
    let input = scratch.path("data");
    std::fs::write(&input, &data).unwrap();

    sh_fails_with(&format!("dd if={} of={} bs=1M conv=notrunc", p(&input), p(&m.shm(id))), "No space left on device");
    assert!(segment_bytes(id) == data[..size as usize], "every byte that fits was written");
    assert_eq!(shm::stat(id).unwrap().segsz, size);
}

#[test]
fn reading_at_or_past_the_end_returns_nothing() {
    let m = Mounted::new();
    let size = 5000;
    let id = create_segment(0x1010, size, 0o600);
    fill_segment_with(id, &pseudo_random(size as usize, 17));
    let mut f = File::open(m.shm(id)).unwrap();
    let mut buf = vec![0u8; 4096];

    for offset in [size, size + 1, 1 << 20, 1 << 40] {
        assert_eq!(f.read_at(&mut buf, offset).unwrap(), 0, "pread at {offset}");
    }
    f.seek(SeekFrom::Start(size + 10)).unwrap();
    assert_eq!(f.read(&mut buf).unwrap(), 0, "read(2) after lseek past the end");
    let past = sh_bytes(&format!("dd if={} bs=4096 skip=2 status=none", p(&m.shm(id))));
    assert!(past.is_empty(), "dd skipping past the end reads nothing, got {} bytes", past.len());
}

// ---- 7. creating segments with standard tools ----

#[test]
fn truncate_creates_a_keyed_segment_with_mode_from_the_umask() {
    let m = Mounted::new();
    assert_eq!(kernel_object_count("shm"), 0);

    sh_ok(&format!("umask 022; truncate -s 4096 {}", p(&m.path("shm/0x1234abcd"))));
    let id = id_of_key(0x1234abcd).expect("truncate created a segment with the key");
    let stat = shm::stat(id).unwrap();
    assert_eq!(stat.perm.key, Key(0x1234abcd));
    assert_eq!(stat.segsz, 4096);
    assert_eq!(stat.perm.mode & 0o777, 0o644, "0666 & ~022");
    assert_eq!((stat.perm.uid, stat.perm.gid, stat.perm.cuid, stat.perm.cgid), (0, 0, 0, 0));
    assert_eq!(kernel_object_count("shm"), 1, "exactly one segment was made");
    assert_eq!(list(&m.path("shm")), vec![id.0.to_string()]);
    let meta = std::fs::metadata(m.shm(id)).unwrap();
    assert_eq!((meta.len(), meta.mode() & 0o777), (4096, 0o644));
    assert!(segment_bytes(id).iter().all(|&b| b == 0), "a new segment is zero-filled");
    let ipcs = sh_ok("ipcs -m");
    assert!(
        ipcs.lines().any(|l| l.starts_with("0x1234abcd") && l.split_whitespace().nth(1) == Some(&id.0.to_string())),
        "ipcs -m lists the key and id: {ipcs}"
    );

    sh_ok(&format!("umask 077; truncate -s 4096 {}", p(&m.path("shm/0xbeef"))));
    let stat = shm::stat(id_of_key(0xbeef).unwrap()).unwrap();
    assert_eq!(stat.perm.mode & 0o777, 0o600, "0666 & ~077");
    assert_eq!(kernel_object_count("shm"), 2);

    // Upper case and leading zeros name the same key; any size is kept exactly.
    sh_ok(&format!("truncate -s 100 {}", p(&m.path("shm/0X0000ABCD"))));
    let stat = shm::stat(id_of_key(0xabcd).unwrap()).unwrap();
    assert_eq!(stat.segsz, 100);
    assert_eq!(kernel_object_count("shm"), 3);
}

#[test]
fn a_segment_created_through_an_open_file_is_usable_through_that_file() {
    let m = Mounted::new();
    let path = m.path("shm/0x3333");
    let mut f = OpenOptions::new().read(true).write(true).create_new(true).open(&path).unwrap();

    // Before it has a size there is nothing to write into, and nothing exists.
    let e = f.write_at(b"early", 0).expect_err("no segment yet");
    assert_eq!(errno_of(&e), libc::ENOSPC);
    assert_eq!(id_of_key(0x3333), Err(libc::ENOENT));
    assert_eq!(f.metadata().unwrap().len(), 0);

    f.set_len(5000).unwrap();
    let id = id_of_key(0x3333).expect("ftruncate created the segment");
    assert_eq!(shm::stat(id).unwrap().segsz, 5000);
    assert_eq!(f.metadata().unwrap().len(), 5000);
    assert_eq!(f.write_at(b"hello", 4000).unwrap(), 5);
    assert_eq!(&segment_bytes(id)[3999..4006], b"\0hello\0");
    let other = attach(id);
    other.write_at(0, b"from elsewhere").unwrap();
    let mut buf = [0u8; 14];
    f.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"from elsewhere", "the creating file reads the live segment");
    assert_eq!(f.write_at(b"xyz", 4998).unwrap(), 2, "the new segment's end holds as for any other");
    drop(other);

    drop(f);
    wait_for("the creating file is released", || nattch(id) == 0);
    shm::remove(id).unwrap();
    assert!(shm::stat_any(id).is_err(), "nothing keeps the created segment alive");
}

#[test]
fn a_key_taken_between_open_and_ftruncate_fails_with_eexist() {
    let m = Mounted::new();
    let f = OpenOptions::new().write(true).create(true).truncate(false).open(m.path("shm/0x4444")).unwrap();
    // Another process creates the key first.
    let id = create_segment(0x4444, 1000, 0o600);
    let before = pseudo_random(1000, 21);
    fill_segment_with(id, &before);

    let e = f.set_len(4096).expect_err("the key is taken");
    assert_eq!(errno_of(&e), libc::EEXIST);
    assert_eq!(kernel_object_count("shm"), 1);
    assert_eq!(shm::stat(id).unwrap().segsz, 1000);
    assert!(segment_bytes(id) == before, "the other process's segment is untouched");
}

#[test]
fn writing_through_the_by_key_link_reaches_the_segment() {
    let m = Mounted::new();
    let id = create_segment(0x5555, 4096, 0o600);
    fill_segment_with(id, &[0xaa; 4096]);
    let link = m.path("by-key/shm/0x00005555");

    sh_ok(&format!("echo hi > {}", p(&link)));
    let now = segment_bytes(id);
    assert_eq!(&now[..3], b"hi\n");
    assert!(now[3..].iter().all(|&b| b == 0));
    assert_eq!(sh_bytes(&format!("head -c 3 {}", p(&link))), b"hi\n");
}

#[test]
fn truncate_creates_private_segments() {
    let m = Mounted::new();
    let private = p(&m.path("shm/private"));

    sh_ok(&format!("truncate -s 4096 {private}"));
    let first = list(&m.path("shm"));
    assert_eq!(first.len(), 1, "one segment after the first truncate: {first:?}");
    let id = ShmId(first[0].parse().unwrap());
    let stat = shm::stat(id).unwrap();
    assert!(stat.perm.key.is_private(), "key is IPC_PRIVATE, got {}", stat.perm.key);
    assert_eq!(stat.segsz, 4096);

    // `private` never names an existing segment: each creation makes a new one.
    sh_ok(&format!("truncate -s 8192 {private}"));
    let second = list(&m.path("shm"));
    assert_eq!(second.len(), 2, "a second private segment: {second:?}");
    let other = second.iter().find(|n| **n != first[0]).unwrap();
    let stat = shm::stat(ShmId(other.parse().unwrap())).unwrap();
    assert!(stat.perm.key.is_private());
    assert_eq!(stat.segsz, 8192);
    assert_eq!(kernel_object_count("shm"), 2);
}

#[test]
fn fallocate_creates_a_segment() {
    if sh("which fallocate").stdout.is_empty() {
        println!("NOTE: fallocate(1) is not installed; skipping the fallocate creation case");
        return;
    }
    let m = Mounted::new();
    // util-linux fallocate opens with O_CREAT and mode 0644.
    sh_ok(&format!("umask 022; fallocate -l 8192 {}", p(&m.path("shm/0xf00d"))));
    let id = id_of_key(0xf00d).expect("fallocate created a segment with the key");
    let stat = shm::stat(id).unwrap();
    assert_eq!(stat.segsz, 8192);
    assert_eq!(stat.perm.mode & 0o777, 0o644);
    assert_eq!(std::fs::metadata(m.shm(id)).unwrap().len(), 8192);

    sh_ok(&format!("umask 077; fallocate -l 4096 {}", p(&m.path("shm/0xf00e"))));
    let stat = shm::stat(id_of_key(0xf00e).unwrap()).unwrap();
    assert_eq!((stat.segsz, stat.perm.mode & 0o777), (4096, 0o600));
    assert_eq!(kernel_object_count("shm"), 2);
}

#[test]
fn fallocate_on_an_existing_segment_cannot_grow_it() {
    if sh("which fallocate").stdout.is_empty() {
        println!("NOTE: fallocate(1) is not installed; skipping");
        return;
    }
    let m = Mounted::new();
    let id = create_segment(0x1018, 8192, 0o600);
    let before = pseudo_random(8192, 22);
    fill_segment_with(id, &before);
    let path = p(&m.shm(id));

    sh_ok(&format!("fallocate -l 8192 {path}"));
    sh_ok(&format!("fallocate -o 100 -l 4096 {path}"));
    sh_fails_with(&format!("fallocate -l 8193 {path}"), "File too large");
    assert!(segment_bytes(id) == before, "fallocate changed no byte");
    assert_eq!(shm::stat(id).unwrap().segsz, 8192);
    assert_eq!(kernel_object_count("shm"), 1);
}

#[test]
fn creating_an_existing_key_fails_with_eexist_and_changes_nothing() {
    let m = Mounted::new();
    let id = create_segment(0x1234abcd, 1000, 0o640);
    let before = pseudo_random(1000, 18);
    fill_segment_with(id, &before);
    let stat_before = shm::stat(id).unwrap();

    for name in ["0x1234abcd", "0X1234ABCD"] {
        let path = p(&m.path(format!("shm/{name}")));
        sh_fails_with(&format!("truncate -s 4096 {path}"), "File exists");
        sh_fails_with(&format!("truncate -s 1000 {path}"), "File exists");
        if !sh("which fallocate").stdout.is_empty() {
            sh_fails_with(&format!("fallocate -l 4096 {path}"), "File exists");
        }
        let e = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(m.path(format!("shm/{name}")))
            .unwrap_err();
        assert_eq!(errno_of(&e), libc::EEXIST, "{name}");
    }
    assert_eq!(kernel_object_count("shm"), 1, "nothing new was made");
    assert_eq!(list(&m.path("shm")), vec![id.0.to_string()]);
    let stat_after = shm::stat(id).unwrap();
    assert_eq!(stat_after.segsz, stat_before.segsz);
    assert_eq!(stat_after.perm, stat_before.perm);
    assert!(segment_bytes(id) == before, "the existing segment's bytes are untouched");
}

#[test]
fn names_that_are_not_keys_fail_with_enoent_and_create_nothing() {
    // `echo x > shm/23` after the segment went: no such file, as for any
    // name that no object has and none can be made by.
    let m = Mounted::new();
    for name in ["hello", "0xZZ", "123", "0x", "0x123456789", "Private", "0x12 3"] {
        let path = m.path(format!("shm/{name}"));
        let e = OpenOptions::new().write(true).create(true).truncate(false).open(&path).unwrap_err();
        assert_eq!(errno_of(&e), libc::ENOENT, "open(O_CREAT) of {name:?}: {e}");
        sh_fails_with(&format!("truncate -s 4096 '{}'", p(&path)), "No such file or directory");
    }
    assert_eq!(kernel_object_count("shm"), 0, "no segment was made");
    assert!(list(&m.path("shm")).is_empty());
}

#[test]
fn creation_by_a_non_root_user_makes_the_segment_as_that_user() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let out = sh_as(1000, 1000, &[], &format!("umask 022; truncate -s 4096 {}", p(&m.path("shm/0xc0ffee"))));
    assert!(out.status.success(), "truncate as uid 1000: {}", stderr_of(&out));
    let stat = shm::stat(id_of_key(0xc0ffee).unwrap()).unwrap();
    assert_eq!((stat.perm.uid, stat.perm.cuid), (1000, 1000), "owner and creator are the caller");
    assert_eq!((stat.perm.gid, stat.perm.cgid), (1000, 1000), "group and creator group are the caller's");
    assert_eq!(stat.perm.mode & 0o777, 0o644);
    assert_eq!(stat.segsz, 4096);

    // The caller can use what it made, through the mount.
    let write = sh_as(1000, 1000, &[], &format!("printf abc > {}", p(&m.shm(stat.id))));
    assert!(write.status.success(), "write as uid 1000: {}", stderr_of(&write));
    assert_eq!(&segment_bytes(stat.id)[..4], b"abc\0");
}

#[test]
fn touch_alone_creates_nothing() {
    let m = Mounted::new();
    let path = m.path("shm/0xabc");
    // Each of these opens with O_CREAT and succeeds, but none gives a size,
    // and a segment cannot exist without one; asking for size 0 is refused.
    sh_ok(&format!("touch {}", p(&path)));
    sh_ok(&format!(": > {}", p(&path)));
    sh_fails_with(&format!("truncate -s 0 {}", p(&path)), "Invalid argument");
    drop(OpenOptions::new().write(true).create(true).truncate(false).open(&path).unwrap());
    assert_eq!(id_of_key(0xabc), Err(libc::ENOENT), "no segment with the key");
    assert_eq!(kernel_object_count("shm"), 0);
    assert!(list(&m.path("shm")).is_empty());
}

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
