//! The kernel layer: thin, typed wrappers over the System V IPC system calls.
//!
//! This is the only place in ipcfs with `unsafe` code. Every function makes one
//! system call, checks its result at once and returns plain Rust values; nothing
//! here caches or remembers anything, because the kernel holds all IPC state.
//!
//! The calls act in the IPC namespace of the calling thread.

pub mod creds;
pub mod limits;
pub mod mount;
pub mod msg;
pub mod ns;
pub mod sem;
pub mod shm;
pub mod sysvipc;
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

/// The kernel splits an id into a slot index (low bits) and a sequence number.
/// `*_STAT_ANY` takes the index. The split is at bit 15 unless the kernel was
/// booted with `ipcmni_extend`, where it is at bit 24.
const IPCMNI_SHIFTS: [u32; 2] = [15, 24];

/// The slot indexes an id may live at, most likely first.
fn id_to_indexes(id: i32) -> impl Iterator<Item = i32> {
    IPCMNI_SHIFTS.into_iter().map(move |shift| id & ((1 << shift) - 1))
}
