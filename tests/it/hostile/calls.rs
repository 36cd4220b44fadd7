//! The operations the tests make through the mount, each as an [`Outcome`]
//! (a count, or the errno), and [`Want`]: what one must give.

use super::*;

use std::ffi::CString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ipcfs::ipc::Errno;
use nix::sys::stat::{Mode, SFlag, mknod};

// ---- operations, as errno results ----

/// What an operation gave: a count (or 0), or the errno.
pub(super) type Outcome = Result<u64, i32>;

/// The result of a call, or its errno.
pub(super) fn or_errno<T>(r: std::io::Result<T>) -> Result<T, i32> {
    r.map_err(|e| errno_of(&e))
}

pub(super) fn nix_done(r: nix::Result<()>) -> Outcome {
    r.map(|()| 0).map_err(|e| e as i32)
}

pub(super) fn show(o: &Outcome) -> String {
    match o {
        Ok(n) => format!("Ok({n})"),
        Err(e) => format!("{:?}", Errno::from_raw(*e)),
    }
}

pub(super) fn open(path: &Path, flags: i32) -> Result<File, i32> {
    let access = flags & libc::O_ACCMODE;
    or_errno(
        OpenOptions::new()
            .read(access != libc::O_WRONLY)
            .write(access != libc::O_RDONLY)
            .custom_flags(flags & !libc::O_ACCMODE)
            .open(path),
    )
}

/// One write(2) of `data` on a fresh descriptor.
pub(super) fn write_once(path: &Path, flags: i32, data: &[u8]) -> Outcome {
    let mut file = open(path, libc::O_WRONLY | flags)?;
    or_errno(file.write(data)).map(|n| n as u64)
}

pub(super) fn pwrite_once(path: &Path, data: &[u8], offset: u64) -> Outcome {
    let file = open(path, libc::O_WRONLY)?;
    or_errno(file.write_at(data, offset)).map(|n| n as u64)
}

/// One read(2) of at most `room` bytes on a fresh descriptor.
pub(super) fn read_once(path: &Path, flags: i32, room: usize) -> Result<Vec<u8>, i32> {
    let mut file = open(path, libc::O_RDONLY | flags)?;
    let mut buf = vec![0u8; room];
    let n = or_errno(file.read(&mut buf))?;
    buf.truncate(n);
    Ok(buf)
}

pub(super) fn pread_once(path: &Path, room: usize, offset: u64) -> Result<Vec<u8>, i32> {
    let file = open(path, libc::O_RDONLY)?;
    let mut buf = vec![0u8; room];
    let n = or_errno(file.read_at(&mut buf, offset))?;
    buf.truncate(n);
    Ok(buf)
}

pub(super) fn count(r: Result<Vec<u8>, i32>) -> Outcome {
    r.map(|data| data.len() as u64)
}

pub(super) fn stat(path: &Path) -> Outcome {
    or_errno(fs::symlink_metadata(path)).map(|_| 0)
}

/// Ok(1) when both paths name the same file, Ok(0) when not.
pub(super) fn same_file(a: &Path, b: &Path) -> Outcome {
    let (a, b) = (or_errno(fs::metadata(a))?, or_errno(fs::metadata(b))?);
    Ok(u64::from((a.dev(), a.ino()) == (b.dev(), b.ino())))
}

pub(super) fn cstring(bytes: &[u8]) -> CString {
    CString::new(bytes).expect("no NUL in paths and attribute names")
}

pub(super) fn set_xattr(path: &Path, name: &[u8], value: &[u8]) -> Outcome {
    let (path, name) = (cstring(path.as_os_str().as_bytes()), cstring(name));
    // SAFETY: path and name are NUL-terminated and live across the call;
    // value points to value.len() readable bytes.
    let r = unsafe { libc::lsetxattr(path.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if r < 0 { Err(Errno::last_raw()) } else { Ok(0) }
}

pub(super) fn remove_xattr(path: &Path, name: &[u8]) -> Outcome {
    let (path, name) = (cstring(path.as_os_str().as_bytes()), cstring(name));
    // SAFETY: path and name are NUL-terminated and live across the call.
    let r = unsafe { libc::lremovexattr(path.as_ptr(), name.as_ptr()) };
    if r < 0 { Err(Errno::last_raw()) } else { Ok(0) }
}

pub(super) fn truncate(path: &Path, len: i64) -> Outcome {
    nix_done(nix::unistd::truncate(path, len))
}

pub(super) fn mkdir(path: &Path) -> Outcome {
    or_errno(fs::create_dir(path)).map(|()| 0)
}

pub(super) fn make_fifo(path: &Path) -> Outcome {
    nix_done(mknod(path, SFlag::S_IFIFO, Mode::from_bits_truncate(0o644), 0))
}

pub(super) fn make_regular(path: &Path) -> Outcome {
    nix_done(mknod(path, SFlag::S_IFREG, Mode::from_bits_truncate(0o644), 0))
}

pub(super) fn symlink(path: &Path) -> Outcome {
    or_errno(std::os::unix::fs::symlink("../shm", path)).map(|()| 0)
}

pub(super) fn link(from: &Path, to: &Path) -> Outcome {
    or_errno(fs::hard_link(from, to)).map(|()| 0)
}

pub(super) fn rename(from: &Path, to: &Path) -> Outcome {
    or_errno(fs::rename(from, to)).map(|()| 0)
}

pub(super) fn unlink(path: &Path) -> Outcome {
    or_errno(fs::remove_file(path)).map(|()| 0)
}

pub(super) fn rmdir(path: &Path) -> Outcome {
    or_errno(fs::remove_dir(path)).map(|()| 0)
}

pub(super) fn chmod(path: &Path, mode: u32) -> Outcome {
    or_errno(fs::set_permissions(path, fs::Permissions::from_mode(mode))).map(|()| 0)
}

// ---- what an operation must give ----

#[derive(Clone, Copy, Debug)]
pub(super) enum Want {
    /// Success with this count (bytes written or read; 0 otherwise).
    Ok(u64),
    Err(i32),
    OneOf(&'static [i32]),
    /// The kernel's business (the request never reaches ipcfs, or the docs
    /// leave the errno open): any error, but never EIO.
    Refused,
    /// Success or any error but EIO; only "nothing changes" is asserted.
    Anything,
}

impl Want {
    pub(super) fn accepts(self, got: &Outcome) -> bool {
        match (self, got) {
            (Want::Ok(n), Ok(m)) => n == *m,
            (Want::Anything, Ok(_)) => true,
            (Want::Err(e), Err(g)) => e == *g,
            (Want::OneOf(es), Err(g)) => es.contains(g),
            (Want::Refused | Want::Anything, Err(g)) => *g != libc::EIO,
            _ => false,
        }
    }
}

impl fmt::Display for Want {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |e: i32| format!("{:?}", Errno::from_raw(e));
        match self {
            Want::Ok(n) => write!(f, "Ok({n})"),
            Want::Err(e) => write!(f, "{}", name(*e)),
            Want::OneOf(es) => write!(f, "one of {}", es.iter().map(|&e| name(e)).collect::<Vec<_>>().join(", ")),
            Want::Refused => write!(f, "an error other than EIO"),
            Want::Anything => write!(f, "anything but EIO"),
        }
    }
}
