//! The filesystem model without a mount: calls as the FUSE adapter makes
//! them, against the real kernel in a namespace of the test's own.

use std::ffi::OsStr;

use crate::common::*;
use ipcfs::fs::access::ProcStatus;
use ipcfs::fs::{Caller, Error, FileKind, IpcFs, Outcome, SetAttr};

const SHM_DIR: u64 = 2;

fn root_caller() -> Caller {
    Caller::with_status(0, 0, ProcStatus { groups: vec![], cap_eff: u64::MAX })
}

fn user(uid: u32) -> Caller {
    Caller::with_status(uid, uid, ProcStatus::default())
}

/// A write that must not wait.
fn write(fs: &IpcFs, fh: u64, offset: u64, data: &[u8]) -> Result<usize, Error> {
    match fs.write(fh, offset, data, false, &root_caller())? {
        Outcome::Ready(n) => Ok(n),
        Outcome::Wait(_) => panic!("a segment write waited"),
    }
}

fn listing(fs: &IpcFs, dir: u64, plus: bool) -> Vec<(String, u64)> {
    let fh = fs.opendir(dir, &root_caller()).unwrap();
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let mut batch = Vec::new();
        fs.readdir(dir, fh, offset, plus, &root_caller(), &mut |next, name, e| {
            // A tiny buffer: three entries per call, like a full reply.
            if batch.len() == 3 {
                return true;
            }
            batch.push((next, name.to_string(), e.attr.ino));
            false
        })
        .unwrap();
        let Some(&(next, _, _)) = batch.last() else {
            break;
        };
        offset = next;
        out.extend(batch.into_iter().map(|(_, n, i)| (n, i)));
    }
    fs.release(fh);
    out
}

#[test]
fn the_inode_table_forgets_what_the_kernel_forgets() {
    isolate();
    let fs = IpcFs::new();
    let ids: Vec<_> = (0..10).map(|k| create_segment(0x100 + k, 4096, 0o600)).collect();
    let listed = listing(&fs, SHM_DIR, true);
    let names: Vec<_> = listed.iter().filter(|(n, _)| !n.starts_with('.')).collect();
    assert_eq!(names.len(), ids.len());
    assert_eq!(fs.inode_count(), ids.len(), "one counted lookup per readdirplus entry");
    // A lookup of a listed name is the same inode, counted again.
    let (name, ino) = names[0];
    assert_eq!(fs.lookup(SHM_DIR, OsStr::new(name), &root_caller()).unwrap().attr.ino, *ino);
    for (_, ino) in &names {
        fs.forget(*ino, 1);
    }
    assert_eq!(fs.inode_count(), 1);
    fs.forget(*ino, 1);
    assert_eq!(fs.inode_count(), 0, "nothing kept after the kernel forgot everything");
}

#[test]
fn plain_readdir_counts_no_lookups() {
    isolate();
    let fs = IpcFs::new();
    let id = create_segment(0x200, 4096, 0o600);
    let listed = listing(&fs, SHM_DIR, false);
    let ino = listed.iter().find(|(n, _)| *n == id.0.to_string()).unwrap().1;
    // The entry exists without a count; a lookup then forget removes it.
    assert_eq!(fs.lookup(SHM_DIR, OsStr::new(&id.0.to_string()), &root_caller()).unwrap().attr.ino, ino);
    fs.forget(ino, 1);
    assert_eq!(fs.inode_count(), 0);
}

#[test]
fn a_recycled_id_is_a_new_inode_and_the_old_one_is_gone() {
    isolate();
    let fs = IpcFs::new();
    let id = create_segment(0x300, 4096, 0o600);
    let old = fs.lookup(SHM_DIR, OsStr::new(&id.0.to_string()), &root_caller()).unwrap().attr.ino;
    shm::remove(id).unwrap();
    std::fs::write("/proc/sys/kernel/shm_next_id", id.0.to_string()).unwrap();
    let again = create_segment(0x301, 8192, 0o600);
    assert_eq!(again, id, "shm_next_id gives the same id back");
    assert_eq!(fs.getattr(old, &root_caller()).unwrap_err(), Error::NotFound);
    let new = fs.lookup(SHM_DIR, OsStr::new(&id.0.to_string()), &root_caller()).unwrap();
    assert_ne!(new.attr.ino, old);
    assert_eq!(new.attr.size, 8192);
}

#[test]
fn open_holds_the_segment_without_attaching_until_release() {
    isolate();
    let fs = IpcFs::new();
    let id = create_segment(0x400, 4096, 0o600);
    let ino = fs.lookup(SHM_DIR, OsStr::new(&id.0.to_string()), &root_caller()).unwrap().attr.ino;
    let opened = fs.open(ino, libc::O_RDWR, &root_caller()).unwrap();
    assert!(opened.direct_io);
    assert_eq!(shm::stat(id).unwrap().nattch, 0, "an open file is no attachment");
    assert_eq!(write(&fs, opened.fh, 4090, b"0123456789").unwrap(), 6, "a write crossing the end is cut");
    assert_eq!(write(&fs, opened.fh, 4096, b"x").unwrap_err(), Error::NoSpace);
    let Outcome::Ready(tail) = fs.read(opened.fh, 4090, 100, false, &root_caller()).unwrap() else {
        panic!("a segment read waited")
    };
    assert_eq!(tail.to_vec().unwrap(), b"012345");
    // The read's data keeps the segment's file until its reply is sent.
    drop(tail);
    fs.release(opened.fh);
    assert_eq!(fs.handle_count(), 0);
    assert_eq!(shm::stat(id).unwrap().nattch, 0);
}

#[test]
fn refusals_change_nothing() {
    isolate();
    let fs = IpcFs::new();
    let id = create_segment(0x500, 4096, 0o640);
    let ino = fs.lookup(SHM_DIR, OsStr::new(&id.0.to_string()), &root_caller()).unwrap().attr.ino;
    let before = shm::stat(id).unwrap();
    let stranger = user(4242);
    assert_eq!(fs.open(ino, libc::O_RDONLY, &stranger).unwrap_err(), Error::AccessDenied);
    let chmod = SetAttr { mode: Some(0o100777), ..SetAttr::default() };
    assert_eq!(fs.setattr(ino, None, chmod, &stranger).unwrap_err(), Error::NotPermitted);
    let grow = SetAttr { size: Some(8192), ..SetAttr::default() };
    assert_eq!(fs.setattr(ino, None, grow, &root_caller()).unwrap_err(), Error::FileTooLarge);
    let setuid = SetAttr { mode: Some(0o104644), ..SetAttr::default() };
    assert_eq!(fs.setattr(ino, None, setuid, &root_caller()).unwrap_err(), Error::Invalid);
    assert_eq!(fs.unlink(SHM_DIR, OsStr::new(&id.0.to_string()), &stranger).unwrap_err(), Error::NotPermitted);
    let after = shm::stat(id).unwrap();
    assert_eq!((after.perm, after.segsz, after.nattch), (before.perm, before.segsz, before.nattch));
}

#[test]
fn attributes_are_the_kernels() {
    isolate();
    let fs = IpcFs::new();
    let id = create_segment(0x600, 12345, 0o604);
    shm::set(id, 7, 8, 0o604).unwrap();
    let e = fs.lookup(SHM_DIR, OsStr::new(&id.0.to_string()), &root_caller()).unwrap();
    assert_eq!(e.attr.kind, FileKind::RegularFile);
    assert_eq!((e.attr.size, e.attr.perm, e.attr.uid, e.attr.gid), (12345, 0o604, 7, 8));
    assert!(e.ttl.is_zero(), "live values are never cached");
    assert_eq!(fs.getxattr(e.attr.ino, OsStr::new("user.ipc.key"), &root_caller()).unwrap(), b"0x00000600");
    assert_eq!(fs.getxattr(e.attr.ino, OsStr::new("user.ipc.nope"), &root_caller()).unwrap_err(), Error::NoAttribute);
}

#[test]
fn a_removed_segment_still_open_keeps_its_inode_with_no_links() {
    isolate();
    let fs = IpcFs::new();
    let id = create_segment(0x700, 4096, 0o600);
    let ino = fs.lookup(SHM_DIR, OsStr::new(&id.0.to_string()), &root_caller()).unwrap().attr.ino;
    let opened = fs.open(ino, libc::O_RDONLY, &root_caller()).unwrap();
    shm::remove(id).unwrap();
    assert!(shm::stat_any(id).is_err(), "gone at once");
    let attr = fs.getattr(ino, &root_caller()).unwrap().attr;
    assert_eq!((attr.size, attr.nlink), (4096, 0), "as an unlinked file");
    fs.release(opened.fh);
    assert_eq!(fs.getattr(ino, &root_caller()).unwrap_err(), Error::NotFound, "once closed");
}
