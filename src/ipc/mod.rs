//! The kernel layer: thin, typed wrappers over the system calls ipcfs makes
//! and the files of /proc it reads and writes.
//!
//! This is the only place in ipcfs with `unsafe` code, and the only one that
//! names `libc` or opens a path under /proc: the rest of ipcfs sees plain Rust
//! values, typed flags and [`Errno`]. Every function makes one system call
//! (or one read of a /proc file), checks its result at once and returns;
//! parsers of /proc text are pure functions, tested on fixtures. Nothing here
//! remembers IPC state, which the kernel holds; the only things kept are
//! open /proc files a caller's signals are read through again and again
//! ([`proc`]), and descriptors opened once.
//!
//! - System V IPC, one module per family ([`shm`], [`sem`], [`msg`]) over
//!   what they share, written once (`family.rs`); every object at once from
//!   /proc/sysvipc ([`sysvipc`]); typed flags ([`flags`]).
//! - The caller's process: /proc/PID/status and /proc/TID/stat ([`proc`]),
//!   acting as the caller ([`creds`]), waking a thread ([`wake`]).
//! - Namespaces: joining, telling apart, finding through /proc ([`ns`]).
//! - Sysctls: /proc/sys read and written ([`sysctl`]), the daemon's own
//!   limits ([`limits`]), the daemon's process ([`daemon`]), mounting ([`mount`]).
//!
//! The IPC calls act in the IPC namespace of the calling thread.

pub mod creds;
pub mod daemon;
mod family;
pub mod flags;
pub mod limits;
pub mod mount;
pub mod msg;
pub mod ns;
pub mod proc;
pub mod sem;
pub mod shm;
pub mod sysctl;
pub mod sysvipc;
pub mod users;
pub mod wake;

use std::fmt;

pub use nix::errno::Errno;

/// A System V IPC key as passed to `shmget`, `semget` and `msgget`.
///
/// Displayed the way `ipcs` shows it: `0x%08x`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key(pub i32);

impl Key {
    /// `IPC_PRIVATE`: always creates a new object that no key can find.
    pub const PRIVATE: Key = Key(libc::IPC_PRIVATE);

    pub fn is_private(self) -> bool {
        self == Key::PRIVATE
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08x}", self.0 as u32)
    }
}

/// The permission block every IPC object carries (`struct ipc_perm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpcPerm {
    pub key: Key,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    /// Permission bits (low 9) plus family-specific status flags above them,
    /// such as `SHM_DEST` and `SHM_LOCKED`.
    pub mode: u32,
}

impl IpcPerm {
    fn from_raw(p: &libc::ipc_perm) -> IpcPerm {
        IpcPerm { key: Key(p.__key), uid: p.uid, gid: p.gid, cuid: p.cuid, cgid: p.cgid, mode: u32::from(p.mode) }
    }
}

/// The errno an I/O error carries; EIO for one made up in Rust (such as
/// text that is not UTF-8).
pub fn io_errno(e: std::io::Error) -> Errno {
    errno_or(&e, Errno::EIO)
}

/// The errno an I/O error carries, or `otherwise` for one that carries none.
pub fn errno_or(e: &std::io::Error, otherwise: Errno) -> Errno {
    e.raw_os_error().map_or(otherwise, Errno::from_raw)
}

/// The kernel splits an id into a slot index (low bits) and a sequence number.
/// `*_STAT_ANY` takes the index. The split is at bit 15 unless the kernel was
/// booted with `ipcmni_extend`, where it is at bit 24.
const IPCMNI_SHIFTS: [u32; 2] = [15, 24];

/// The slot indexes an id may live at, most likely first.
fn id_to_indexes(id: i32) -> impl Iterator<Item = i32> {
    IPCMNI_SHIFTS.into_iter().map(move |shift| id & ((1 << shift) - 1))
}
