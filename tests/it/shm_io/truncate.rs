//! O_TRUNC and truncate, and O_APPEND.

use super::*;

use std::fs::OpenOptions;
use std::io::Write;

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
