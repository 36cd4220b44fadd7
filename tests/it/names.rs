//! Kept names (issue 16): the kernel keeps a segment's own name (`shm/<id>`)
//! and a limit's, while every attribute is asked for at each stat. So a
//! stat of a name looked up before costs one round trip (GETATTR, no
//! LOOKUP), and no stale answer survives an object removed, replaced (its id
//! reused) or recreated behind the mount's back: stat, open and `ls -l` see
//! the kernel's state at once.

use crate::common::*;

use std::fs;
use std::os::unix::fs::MetadataExt;

use ipcfs::ipc::shm;

/// The daemon's FUSE requests logged since `from` (a byte offset in `log`).
fn requests_since(log: &std::path::Path, from: usize) -> Vec<String> {
    let text = fs::read_to_string(log).unwrap_or_default();
    text[from.min(text.len())..].lines().filter(|l| l.contains("fuser::request")).map(str::to_string).collect()
}

#[test]
fn a_stat_of_a_kept_segment_name_is_one_getattr() {
    let (m, log) = Mounted::with_log("fuser=debug");
    let log = &log.path;
    let id = create_segment(0x6f01, 4096, 0o600);
    let path = m.shm(id);
    fs::metadata(&path).unwrap();
    let from = fs::metadata(log).map(|md| md.len() as usize).unwrap_or(0);
    for _ in 0..3 {
        fs::metadata(&path).unwrap();
    }
    let requests = requests_since(log, from);
    let lookups = requests.iter().filter(|l| l.contains(" LOOKUP ")).count();
    let getattrs = requests.iter().filter(|l| l.contains(" GETATTR")).count();
    assert_eq!((lookups, getattrs), (0, 3), "three stats of a kept name: {requests:#?}");
}

#[test]
fn no_stale_answer_survives_removal_replacement_or_recreation_behind_the_mounts_back() {
    let m = Mounted::new();
    let shm_dir = m.path("shm");

    // Removed: the kept name answers ENOENT to stat and open; ls shows nothing.
    let old = create_segment(0x6f02, 4096, 0o600);
    let path = m.shm(old);
    assert_eq!(fs::metadata(&path).unwrap().size(), 4096);
    shm::remove(old).unwrap();
    assert_eq!(errno(fs::metadata(&path)), libc::ENOENT, "stat after ipcrm");
    assert_eq!(errno(fs::File::open(&path)), libc::ENOENT, "open after ipcrm");
    assert!(list(&shm_dir).is_empty(), "ls after ipcrm");

    // Replaced: the same id for another segment; every answer is the new one's.
    request_next_id(old);
    let new = create_segment(0x6f03, 8192, 0o600);
    assert_eq!(new, old, "precondition: the kernel gave the id again");
    write_segment(new, 0, b"NEW!");
    let md = fs::metadata(&path).unwrap();
    assert_eq!(md.size(), 8192, "stat of the kept name shows the new segment");
    assert_eq!(&fs::read(&path).unwrap()[..4], b"NEW!", "open and read reach the new segment");
    let listing = ls_long(&shm_dir, "-ln");
    assert_eq!(listing[&new.0.to_string()][3], "8192", "ls -l: {listing:?}");

    // Replaced again while the name was kept and stat'ed in between.
    let ino = md.ino();
    shm::remove(new).unwrap();
    request_next_id(new);
    let third = create_segment(0x6f04, 12288, 0o600);
    assert_eq!(third, new);
    let md = fs::metadata(&path).unwrap();
    assert_eq!(md.size(), 12288);
    assert_ne!(md.ino(), ino, "another segment, another inode");

    // Recreated under the same key (another id): the key link and the new
    // name answer at once; the old id is gone.
    shm::remove(third).unwrap();
    let again = create_segment(0x6f04, 4096, 0o600);
    let link = m.path("by-key/shm/0x00006f04");
    assert_eq!(fs::read_link(&link).unwrap().to_string_lossy(), format!("../../shm/{}", again.0));
    assert_eq!(fs::metadata(&link).unwrap().size(), 4096, "the link leads to the recreated segment");
    if again != third {
        assert_eq!(errno(fs::metadata(&path)), libc::ENOENT, "the old id's kept name");
    }
}
