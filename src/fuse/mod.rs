//! The FUSE adapter: the only code that sees fuser types. Each handler calls
//! the model, replies on `Ok` and maps the error on `Err`.
//!
//! With `-o all_namespaces` the model of another IPC namespace runs on a
//! thread of that namespace (see `crate::router`): each handler hands its
//! call, with the reply, to [`IpcFuse::on`], which runs it here for the
//! mount's own namespace and sends it to that thread for another.

#![forbid(unsafe_code)]

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::ffi::OsStr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime};

use fuser::{
    AccessFlags, BackingId, BsdFileFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, Notifier, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::fs::{Attr, Caller, Entry, Error, FileKind, IpcFs, Opened, Outcome, SetAttr, Spend, Wait};
use crate::router::{Member, Namespaces};

mod backings;
mod dispatch;
mod forgetter;
mod reply;

use backings::Backings;
use dispatch::{WAITER_STACK, run_elsewhere};
pub use forgetter::Forgetter;
use reply::*;

/// Largest read and write the kernel sends in one request.
const MAX_IO: u32 = crate::fs::LARGEST_REQUEST as u32;

pub struct IpcFuse {
    fs: Arc<IpcFs>,
    namespaces: Option<Arc<Namespaces>>,
    forgetter: Forgetter,
    backings: Arc<Backings>,
}

impl IpcFuse {
    /// `passthrough`: serve segment files by FUSE passthrough where the
    /// kernel allows it (`-o nopassthrough` says false).
    /// `namespaces`: the router, with `-o all_namespaces`.
    pub fn new(fs: Arc<IpcFs>, namespaces: Option<Arc<Namespaces>>, passthrough: bool) -> IpcFuse {
        let on = fs.passthrough();
        on.store(passthrough, Ordering::Relaxed);
        let backings = Arc::new(Backings { on, by_inode: Mutex::default() });
        IpcFuse { fs, namespaces, forgetter: Forgetter::start(), backings }
    }

    /// Give it the session's notifier once mounted.
    pub fn forgetter(&self) -> Forgetter {
        self.forgetter.clone()
    }
}

impl Filesystem for IpcFuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(MAX_IO);
        let _ = config.set_max_readahead(MAX_IO);
        // With -o attr_timeout every listed entry comes with its attributes
        // (one pass over the kernel's table), which the kernel keeps: `ls -l`
        // needs no round trip per entry. Without, attributes are stale at
        // once, and readdirplus (fuser gives an entry one timeout for name
        // and attributes) would make the kernel drop the names it keeps
        // (`shm/<id>`): a plain listing, then one GETATTR per entry.
        if self.fs.keeps_attributes() {
            let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS);
        }
        // Segment files from their shmem files: the kernel must offer it,
        // and a backing file may stack on nothing deeper than itself.
        if self.backings.on.load(Ordering::Relaxed) {
            if !crate::ipc::creds::is_host_admin() {
                self.backings.on.store(false, Ordering::Relaxed);
                log::info!(
                    "FUSE passthrough needs CAP_SYS_ADMIN in the initial user namespace, which this daemon lacks: segment files are served through the daemon"
                );
            } else if config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok() {
                let _ = config.set_max_stack_depth(1);
                log::info!("segment files are served by FUSE passthrough");
            } else {
                self.backings.on.store(false, Ordering::Relaxed);
                log::info!("this kernel offers no FUSE passthrough: segment files are served through the daemon");
            }
        } else {
            log::info!("-o nopassthrough: segment files are served through the daemon");
        }
        Ok(())
    }

    fn destroy(&mut self) {
        self.fs.destroy();
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let at = At::of(parent, req);
        let (caller, name) = (caller(req), name.to_os_string());
        let forgetter = self.forgetter.clone();
        self.on_walk("lookup", parent, caller, reply, move |fs, caller, reply| {
            match fs.by_path(parent.0, fs.lookup(parent.0, &name, caller)) {
                Ok(e) => {
                    reply_entry(reply, e);
                    if let Some(dir) = e.forget {
                        forgetter.forget(dir);
                    }
                }
                Err(e) => reply.error(errno("lookup", at.named(&name), e)),
            }
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        match self.route(ino, None) {
            Ok(None) => self.fs.forget(ino.0, nlookup),
            Ok(Some(member)) => member.run(Box::new(move |fs| {
                if let Ok(fs) = fs {
                    fs.forget(ino.0, nlookup);
                }
            })),
            Err(_) => {}
        }
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let at = At::of(ino, req);
        let forgetter = self.forgetter.clone();
        self.on_stat("getattr", ino, caller(req), reply, move |fs, caller, reply| {
            match stat_by(fs, ino, fh, fs.getattr(ino.0, caller)) {
                Ok(e) => {
                    reply.attr(&e.ttl, &file_attr(&e.attr));
                    if let Some(name) = e.forget {
                        forgetter.forget(name);
                    }
                }
                Err(e) => reply.error(errno("getattr", at, e)),
            }
        });
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let at = At::of(ino, req);
        let (caller, change) = (caller(req), SetAttr { mode, uid, gid, size });
        self.on("setattr", ino, caller, reply, move |fs, caller, reply| {
            match stat_by(fs, ino, fh, fs.setattr(ino.0, fh.map(|f| f.0), change, caller)) {
                Ok(e) => reply.attr(&e.ttl, &file_attr(&e.attr)),
                Err(e) => reply.error(errno("setattr", at, e)),
            }
        });
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let at = At::of(ino, req);
        self.on("readlink", ino, caller(req), reply, move |fs, caller, reply| {
            match fs.by_path(ino.0, fs.readlink(ino.0, caller)) {
                Ok(target) => reply.data(&target),
                Err(e) => reply.error(errno("readlink", at, e)),
            }
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        self.refuse("mknod", parent, req, name, reply);
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let at = At::of(parent, req);
        let (caller, name) = (caller(req), name.to_os_string());
        self.on("mkdir", parent, caller, reply, move |fs, caller, reply| {
            match fs.by_path(parent.0, fs.mkdir(parent.0, &name, mode & !umask, caller)) {
                Ok(e) => reply_entry(reply, e),
                Err(e) => reply.error(errno("mkdir", at.named(&name), e)),
            }
        });
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        // Discarding a queue's messages may walk a long queue.
        self.remove_name("unlink", true, req, parent, name, reply, IpcFs::unlink);
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove_name("rmdir", false, req, parent, name, reply, IpcFs::rmdir);
    }

    fn symlink(&self, req: &Request, parent: INodeNo, name: &OsStr, _target: &Path, reply: ReplyEntry) {
        self.refuse("symlink", parent, req, name, reply);
    }

    fn rename(
        &self,
        req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        // Where the name would go decides: a kept name of a removed set or
        // queue answers ENOENT there.
        self.refuse("rename", newparent, req, newname, reply);
    }

    fn link(&self, req: &Request, _ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        self.refuse("link", newparent, req, newname, reply);
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let at = At::of(ino, req);
        let (caller, backings) = (caller(req), self.backings.clone());
        self.on_walk("open", ino, caller, reply, move |fs, caller, reply| {
            match fs.by_path(ino.0, fs.open(ino.0, flags.0, caller)) {
                Ok(o) => match o.backing {
                    Some(writes) => backings.open(fs, ino.0, o, writes, reply),
                    None => reply.opened(FileHandle(o.fh), open_flags(o)),
                },
                Err(e) => reply.error(errno("open", at, e)),
            }
        });
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let (at, caller, nonblocking) = (At::of(ino, req), caller(req), is_nonblocking(flags));
        self.on("read", ino, caller, reply, move |fs, caller, reply| {
            let reply_with = move |reply: ReplyData, result: Result<Vec<u8>, Error>| match result {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(errno("read", at, e)),
            };
            match fs.read(fh.0, offset, size, nonblocking, caller) {
                Ok(Outcome::Ready(data)) => data.lend(|bytes| match bytes {
                    Ok(bytes) => reply.data(bytes),
                    Err(e) => reply.error(errno("read", at, e)),
                }),
                Ok(Outcome::Wait(wait)) => run_elsewhere(wait, reply, reply_with),
                Err(e) => reply.error(errno("read", at, e)),
            }
        });
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let (at, caller, nonblocking) = (At::of(ino, req), caller(req), is_nonblocking(flags));
        self.on_bytes("write", ino, caller, data, reply, move |fs, caller, data, reply| {
            let reply_with = move |reply: ReplyWrite, result: Result<usize, Error>| match result {
                Ok(n) => reply.written(n as u32),
                Err(e) => reply.error(errno("write", at, e)),
            };
            match fs.write(fh.0, offset, data, nonblocking, caller) {
                Ok(Outcome::Ready(n)) => reply.written(n as u32),
                Ok(Outcome::Wait(wait)) => run_elsewhere(wait, reply, reply_with),
                Err(e) => reply.error(errno("write", at, e)),
            }
        });
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        // Writes go straight to the segment: nothing is buffered.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let backings = self.backings.clone();
        self.on_any("release", ino, reply, move |fs, reply| {
            fs.release(fh.0);
            backings.release(ino.0, fh.0);
            reply.ok();
        });
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        reply.ok();
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        // What a regular file says to every ioctl; asked by isatty(3), as
        // in Python's open(), which fuser would otherwise log as a warning.
        reply.error(Errno::ENOTTY);
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let at = At::of(ino, req);
        let caller = caller(req);
        self.on("opendir", ino, caller, reply, move |fs, caller, reply| {
            match fs.by_path(ino.0, fs.opendir(ino.0, caller)) {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(errno("opendir", at, e)),
            }
        });
    }

    fn readdir(&self, req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, reply: ReplyDirectory) {
        self.list_dir("readdir", req, ino, fh, offset, reply);
    }

    fn readdirplus(&self, req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, reply: ReplyDirectoryPlus) {
        self.list_dir("readdirplus", req, ino, fh, offset, reply);
    }

    fn releasedir(&self, _req: &Request, ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.on_any("releasedir", ino, reply, move |fs, reply| {
            fs.release(fh.0);
            reply.ok();
        });
    }

    fn statfs(&self, req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        let at = At::of(ino, req);
        self.on("statfs", ino, caller(req), reply, move |fs, _, reply| match fs.statfs() {
            Ok(s) => reply.statfs(s.blocks, s.bfree, s.bfree, s.files, s.ffree, s.bsize, s.namelen, s.bsize),
            Err(e) => reply.error(errno("statfs", at, e)),
        });
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let at = At::of(ino, req);
        let (caller, name) = (caller(req), name.to_os_string());
        self.on_bytes("setxattr", ino, caller, value, reply, move |fs, caller, value, reply| {
            match fs.by_path(ino.0, fs.setxattr(ino.0, &name, Some(value), caller)) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno("setxattr", at.named(&name), e)),
            }
        });
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let at = At::of(ino, req);
        let name = name.to_os_string();
        self.on("getxattr", ino, caller(req), reply, move |fs, caller, reply| {
            match fs.by_path(ino.0, fs.getxattr(ino.0, &name, caller)) {
                Ok(value) => reply_xattr(reply, size, value),
                Err(e) => reply.error(errno("getxattr", at.named(&name), e)),
            }
        });
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let at = At::of(ino, req);
        self.on("listxattr", ino, caller(req), reply, move |fs, _, reply| {
            match fs.by_path(ino.0, fs.listxattr(ino.0)) {
                Ok(names) => reply_xattr(reply, size, names),
                Err(e) => reply.error(errno("listxattr", at, e)),
            }
        });
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let at = At::of(ino, req);
        let (caller, name) = (caller(req), name.to_os_string());
        self.on("removexattr", ino, caller, reply, move |fs, caller, reply| {
            match fs.by_path(ino.0, fs.setxattr(ino.0, &name, None, caller)) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno("removexattr", at.named(&name), e)),
            }
        });
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let at = At::of(ino, req);
        let caller = caller(req);
        self.on("access", ino, caller, reply, move |fs, caller, reply| {
            match fs.by_path(ino.0, fs.access(ino.0, mask.bits(), caller)) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno("access", at, e)),
            }
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let at = At::of(parent, req);
        let (caller, name) = (caller(req), name.to_os_string());
        self.on("create", parent, caller, reply, move |fs, caller, reply| {
            match fs.by_path(parent.0, fs.create(parent.0, &name, mode & !umask, flags, caller)) {
                Ok((e, o)) => {
                    reply.created(&e.ttl, &file_attr(&e.attr), Generation(0), FileHandle(o.fh), open_flags(o))
                }
                Err(e) => reply.error(errno("create", at.named(&name), e)),
            }
        });
    }

    /// The kernel copies by reads and writes instead (ENOSYS: it stops
    /// asking), so every byte a copy writes goes through `write`, bounded as
    /// any write is.
    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: fuser::CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let at = At::of(ino, req);
        let caller = caller(req);
        self.on("fallocate", ino, caller, reply, move |fs, caller, reply| {
            match fs.fallocate(fh.0, offset, length, mode, caller) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno("fallocate", at, e)),
            }
        });
    }
}
