//! Creating segments with standard tools: truncate, fallocate, an open
//! file, the by-key link, and what fails.

use super::*;

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};

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
