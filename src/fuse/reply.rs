//! From the model's answers to fuser's: attributes, entries, flags, and errors logged with where they happened.

use super::*;

/// Whether a read or write may not wait (the file's O_NONBLOCK now).
pub(super) fn is_nonblocking(flags: OpenFlags) -> bool {
    crate::ipc::flags::OpenFlags::from_raw(flags.0).is_nonblocking()
}

pub(super) fn caller(req: &Request) -> Caller {
    Caller::new(req.uid(), req.gid(), req.pid())
}

/// Where a request failed, for the log: its inode, and who asked.
#[derive(Clone, Copy, Debug)]
pub(super) struct At {
    ino: u64,
    pid: u32,
    uid: u32,
}

impl At {
    pub(super) fn of(ino: INodeNo, req: &Request) -> At {
        At { ino: ino.0, pid: req.pid(), uid: req.uid() }
    }

    pub(super) fn by(ino: INodeNo, caller: &Caller) -> At {
        At { ino: ino.0, pid: caller.tid, uid: caller.uid }
    }

    /// The same, for a name in the directory `ino` (formatted only if logged).
    pub(super) fn named(self, name: &OsStr) -> Named<'_> {
        Named { at: self, name }
    }
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "inode {}, for pid {} uid {}", self.ino, self.pid, self.uid)
    }
}

pub(super) struct Named<'a> {
    at: At,
    name: &'a OsStr,
}

impl std::fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} in {}", self.name, self.at)
    }
}

/// The errno of a request that found no tree to serve it (its namespace
/// went, or the caller may not enter it).
pub(super) fn unrouted(op: &str, e: Error) -> Errno {
    log::debug!("{op}: {e}");
    Errno::from_i32(e.errno())
}

/// The errno of a failed request, logged with where it failed: at debug
/// when it is part of normal use, at warn when it is trouble in the daemon.
pub(super) fn errno(op: &str, at: impl std::fmt::Display, e: Error) -> Errno {
    if e.is_expected() {
        log::debug!("{op} {at}: {e}");
    } else {
        log::warn!("{op} {at}: {e}");
    }
    Errno::from_i32(e.errno())
}

pub(super) fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: if a.stored { a.size.div_ceil(512) } else { 0 },
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.ctime,
        kind: match a.kind {
            FileKind::Directory => FileType::Directory,
            FileKind::RegularFile => FileType::RegularFile,
            FileKind::Symlink => FileType::Symlink,
        },
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: a.blksize,
        flags: 0,
    }
}

pub(super) fn reply_entry(reply: ReplyEntry, e: Entry) {
    reply.entry_with_ttls(&e.ttl, &e.entry_ttl, &file_attr(&e.attr), Generation(0));
}

/// A getattr or setattr by path (no file handle: stat, not fstat) goes
/// through [`IpcFs::by_path`], so that a kept name whose id another object
/// has taken is looked up again; through an open file it is what it is.
pub(super) fn stat_by(
    fs: &IpcFs,
    ino: INodeNo,
    fh: Option<FileHandle>,
    result: Result<Entry, Error>,
) -> Result<Entry, Error> {
    if fh.is_none() { fs.stat_by_path(ino.0, result) } else { result }
}

pub(super) fn open_flags(o: Opened) -> FopenFlags {
    let mut flags = FopenFlags::empty();
    if o.direct_io {
        // Writes within the file's size may run side by side: otherwise the
        // kernel takes the inode's lock for each, and one waiting write
        // (a semaphore P) would hold up every other on the same file.
        flags |= FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES;
    }
    if o.stream {
        flags |= FopenFlags::FOPEN_STREAM | FopenFlags::FOPEN_NONSEEKABLE;
    }
    flags
}

/// getxattr/listxattr protocol: size 0 asks for the length.
pub(super) fn reply_xattr(reply: ReplyXattr, size: u32, data: Vec<u8>) {
    if size == 0 {
        reply.size(data.len() as u32);
    } else if data.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(&data);
    }
}
