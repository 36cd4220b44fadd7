//! The plain values the model hands to the FUSE adapter.

use super::inode::{ObjectKind, Role};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use super::budget::Charge;
use super::error::{Error, Result};
use crate::ipc::shm;
use crate::ipc::sysctl::Sysctl;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Directory,
    RegularFile,
    Symlink,
}

/// What stat(2) shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: FileKind,
    pub size: u64,
    /// Permission bits (and the sticky bit for shm/).
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub blksize: u32,
    /// Whether the size is memory the kernel holds (a segment, queued
    /// messages): st_blocks counts it. A semaphore's value or a limit is
    /// text made at each read and counts no blocks (`du` shows 0).
    pub stored: bool,
}

impl Attr {
    /// Text the daemon makes at each read (a limit, metrics, a directory of
    /// users): root's, dated `time`, holding no blocks.
    pub fn made(kind: FileKind, size: u64, perm: u16, time: SystemTime) -> Attr {
        Attr {
            ino: 0,
            kind,
            size,
            perm,
            nlink: if kind == FileKind::Directory { 2 } else { 1 },
            uid: 0,
            gid: 0,
            atime: time,
            mtime: time,
            ctime: time,
            blksize: super::attr::BLOCK_SIZE,
            stored: false,
        }
    }
}

/// An attribute with how long the kernel may cache it (and the name, for
/// lookups).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub attr: Attr,
    /// How long the kernel may keep the attributes.
    pub ttl: Duration,
    /// How long the kernel may keep the name (a lookup): at least `ttl`.
    pub entry_ttl: Duration,
    /// A name the kernel should let go of soon after this lookup (a queue
    /// file: any of 2^63 type names can be looked up, and the kernel keeps
    /// every one it was given, with its inode here, until memory runs low):
    /// the directory whose entry to drop for that, with everything in it,
    /// as (its parent's inode, its name). Several names go with one drop.
    /// Also a removed segment's kept name (`shm/<id>`), when a getattr
    /// finds it gone while a file of it is open.
    pub forget: Option<(u64, i32)>,
}

/// The changes of a setattr call (chmod, chown, truncate). Times are not
/// settable: the kernel keeps them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
}

/// The largest read or write the kernel sends in one FUSE request: 1 MiB
/// (what ipcfs asks for), or less where `fs.fuse.max_pages_limit` is lower.
/// A longer write(2) reaches the filesystem as several requests that cannot
/// be told apart from several writes, so a semaphore command or a message
/// must be shorter than this.
pub fn request_limit() -> usize {
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        let pages = Sysctl::FuseMaxPagesLimit.read_number().ok().and_then(|p| usize::try_from(p).ok());
        let page = 4096;
        pages.map_or(LARGEST_REQUEST, |p| p.saturating_mul(page).min(LARGEST_REQUEST))
    })
}

/// What ipcfs asks the kernel for as the largest read and write.
pub const LARGEST_REQUEST: usize = 1 << 20;

impl SetAttr {
    /// The permission bits a chmod asks for; setuid, setgid and sticky bits
    /// mean nothing for IPC objects and are refused with EINVAL.
    pub fn permission_bits(&self) -> Result<Option<u32>> {
        match self.mode.map(|m| m & 0o7777) {
            Some(m) if m & !0o777 != 0 => Err(super::Error::Invalid),
            mode => Ok(mode),
        }
    }

    pub fn changes_owner_or_mode(&self) -> bool {
        self.mode.is_some() || self.uid.is_some() || self.gid.is_some()
    }
}

/// An opened file: its handle and how the kernel must treat it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    pub fh: u64,
    /// Bypass the page cache: every read and write reaches the model.
    pub direct_io: bool,
    /// A segment file that may be served from the segment's own shmem file
    /// (FUSE passthrough, [`crate::fs::IpcFs::backing_file`]): Some(whether
    /// it was opened for writing, whose writes must still reach the model).
    pub backing: Option<bool>,
    /// No file position: every read and write is one whole request at
    /// offset 0 (receiving and sending queue files), and pread/lseek fail
    /// with ESPIPE.
    pub stream: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
}

/// Whether the filesystem is stopping (unmounted, or its namespace gone):
/// waits give up.
#[derive(Clone, Debug, Default)]
pub struct Stop(Option<Arc<AtomicBool>>);

impl Stop {
    pub fn is_set(&self) -> bool {
        self.0.as_ref().is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

/// The body of a [`Wait`]: given the filesystem's [`Stop`], waits and returns.
type WaitingOp<T> = dyn FnOnce(&Stop) -> Result<T> + Send;

/// An operation that has to wait (a semaphore P, a blocking receive). It must
/// never run on a FUSE event loop: the adapter runs it on a thread of its own
/// and replies from there. It holds a unit of its caller's `user_waits`
/// budget while it lives.
pub struct Wait<T> {
    op: Box<WaitingOp<T>>,
    stop: Stop,
    charges: Option<[Charge; 2]>,
    keeps: bool,
    /// The object it waits on and how, for `users/`.
    using: Option<(ObjectKind, i32, Role)>,
    /// Its entry among the daemon's waits while it lives.
    registered: Option<Box<dyn Send>>,
}

impl<T> Wait<T> {
    pub fn new(op: impl FnOnce(&Stop) -> Result<T> + Send + 'static) -> Wait<T> {
        Wait { op: Box::new(op), stop: Stop::default(), charges: None, keeps: false, using: None, registered: None }
    }

    /// A wait that holds something that must not be lost (a message to put
    /// back): never refused for want of budget, and run where it is if no
    /// thread can be started for it.
    pub fn keeping(op: impl FnOnce(&Stop) -> Result<T> + Send + 'static) -> Wait<T> {
        Wait { keeps: true, ..Wait::new(op) }
    }

    /// The wait is on object `id` of `family`, as `role` (see `users/`).
    pub fn using(mut self, family: ObjectKind, id: i32, role: Role) -> Wait<T> {
        self.using = Some((family, id, role));
        self
    }

    pub(super) fn used(&self) -> Option<(ObjectKind, i32, Role)> {
        self.using
    }

    /// Holds `entry` (dropped when the wait ends).
    pub(super) fn registered(mut self, entry: impl Send + 'static) -> Wait<T> {
        self.registered = Some(Box::new(entry));
        self
    }

    pub fn keeps(&self) -> bool {
        self.keeps
    }

    pub(super) fn stopping_with(mut self, flag: &Arc<AtomicBool>) -> Wait<T> {
        self.stop = Stop(Some(flag.clone()));
        self
    }

    /// The budget units the wait holds while it lives (a thread, a descriptor).
    pub(super) fn charged(mut self, charges: [Charge; 2]) -> Wait<T> {
        self.charges = Some(charges);
        self
    }

    /// Waits (blocking the calling thread) and returns the result.
    pub fn run(self) -> Result<T> {
        let result = (self.op)(&self.stop);
        drop(self.charges);
        drop(self.registered);
        result
    }
}

/// The result of an operation that may have to wait; `W` is what the wait
/// gives when it ends.
pub enum Outcome<T, W = T> {
    Ready(T),
    Wait(Wait<W>),
}

/// The bytes a read returns: made by us, or a window of an attached segment
/// that is read as the reply is sent.
#[derive(Debug)]
pub enum Data {
    Bytes(Vec<u8>),
    Segment(shm::Window),
}

impl Data {
    /// Lends the bytes to `send`, which passes them to the kernel, or the
    /// error met reading them.
    pub fn lend<R>(&self, send: impl FnOnce(Result<&[u8]>) -> R) -> R {
        match self {
            Data::Bytes(bytes) => send(Ok(bytes)),
            Data::Segment(window) => window.lend(|bytes| send(bytes.map_err(Error::kernel("reading a segment")))),
        }
    }

    /// A copy of the bytes, for callers that are not replying to the kernel.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        self.lend(|bytes| bytes.map(<[u8]>::to_vec))
    }
}

/// What a write did (the bytes taken) or must still wait for.
pub type Written = Outcome<usize>;
