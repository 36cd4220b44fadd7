//! Bulk copies with dd, cat, cp and cmp, and reading at the end.

use super::*;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

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
