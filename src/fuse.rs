//! The FUSE adapter: the only code that sees fuser types. Each handler calls
//! the model, replies on `Ok` and maps the error on `Err`.
//!
//! With `-o all_namespaces` the model of another IPC namespace runs on a
//! thread of that namespace (see `fs::namespaces`): each handler hands its
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

use crate::fs::namespaces::Member;
use crate::fs::{Attr, Caller, Entry, Error, FileKind, IpcFs, Namespaces, Opened, Outcome, SetAttr, Spend, Wait};

/// Largest read and write the kernel sends in one request.
const MAX_IO: u32 = crate::fs::LARGEST_REQUEST as u32;

pub struct IpcFuse {
    fs: Arc<IpcFs>,
    namespaces: Option<Arc<Namespaces>>,
    forgetter: Forgetter,
    backings: Arc<Backings>,
}

/// Tells the kernel to let go of names it need not keep ([`Entry::forget`]),
/// from a thread of its own: a notification about a directory waits for that
/// directory's lock, which a lookup being answered may hold. It drops a
/// queue's directory entry (`msg/<id>`) and with it every unused name in it,
/// so that one notification serves every name looked up there meanwhile.
/// (The kernel asks again at the next use anyway: nothing is cached.) What
/// waits here is bounded by the budget for names (`Spend::Name`). It also
/// drops the kept name of a segment removed behind the mount's back while a
/// file of it is open (see `IpcFs::getattr`).
#[derive(Clone)]
pub struct Forgetter {
    notifier: Arc<OnceLock<Notifier>>,
    dirs: Option<Sender<(u64, i32)>>,
}

/// When [`Forgetter`] drops a batch of names the second time.
const FORGET_AGAIN_AFTER: std::time::Duration = std::time::Duration::from_millis(50);

impl Forgetter {
    fn start() -> Forgetter {
        let notifier: Arc<OnceLock<Notifier>> = Arc::default();
        let (dirs, to_forget) = mpsc::channel::<(u64, i32)>();
        let theirs = notifier.clone();
        let started =
            std::thread::Builder::new().name("ipcfs-forget".into()).stack_size(WAITER_STACK).spawn(move || {
                let drop_all = |batch: &BTreeSet<(u64, i32)>| {
                    for (parent, id) in batch {
                        if let Some(notifier) = theirs.get() {
                            // ENOENT: the kernel no longer has it.
                            let _ = notifier.inval_entry(INodeNo(*parent), OsStr::new(&id.to_string()));
                        }
                    }
                };
                // Each batch is dropped twice: at once, and again a moment
                // later, for a name the kernel was still installing under
                // the directory when the first drop came (it would then stay
                // under the dropped directory until memory runs low).
                let mut again: VecDeque<(Instant, BTreeSet<(u64, i32)>)> = VecDeque::new();
                loop {
                    let wait = again.front().map(|(at, _)| at.saturating_duration_since(Instant::now()));
                    let next = match wait {
                        Some(wait) => to_forget.recv_timeout(wait),
                        None => to_forget.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                    };
                    match next {
                        Ok(first) => {
                            let batch: BTreeSet<_> = std::iter::once(first).chain(to_forget.try_iter()).collect();
                            drop_all(&batch);
                            again.push_back((Instant::now() + FORGET_AGAIN_AFTER, batch));
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            if let Some((_, batch)) = again.pop_front() {
                                drop_all(&batch);
                            }
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            });
        if let Err(e) = &started {
            log::warn!("cannot start the thread that lets the kernel forget names: {e}");
        }
        Forgetter { notifier, dirs: started.ok().map(|_| dirs) }
    }

    /// Where the session's notifier goes once the session exists.
    pub fn set_notifier(&self, notifier: Notifier) {
        let _ = self.notifier.set(notifier);
    }

    fn forget(&self, dir: (u64, i32)) {
        if let Some(dirs) = &self.dirs {
            let _ = dirs.send(dir);
        }
    }
}

/// Segment files served by FUSE passthrough: the kernel reads, writes and
/// maps them from the segment's own shmem file, registered with it once per
/// inode (every open of an inode must use the same one) and kept while the
/// inode has opens: letting go of it right after the reply to OPEN races
/// the kernel's use of it.
struct Backings {
    /// Asked for (`-o passthrough`, the default), offered by the kernel,
    /// and not refused to the daemon (it needs CAP_SYS_ADMIN in the initial
    /// user namespace). The model's, which shows it.
    on: Arc<AtomicBool>,
    by_inode: Mutex<HashMap<u64, Backing>>,
}

struct Backing {
    /// The kernel's reference to the segment's shmem file (the daemon's own
    /// descriptor for it belongs to the open file it was registered from).
    id: BackingId,
    /// The open files using it.
    handles: HashSet<u64>,
}

impl Backings {
    /// Replies to the open `o` of segment inode `ino` (`writes`: opened for
    /// writing) with passthrough, or as a plain open if it cannot be had.
    /// Reads of a read-only open never reach the daemon; writes still do
    /// (FOPEN_DIRECT_IO), so that nothing can grow a segment.
    fn open(&self, fs: &IpcFs, ino: u64, o: Opened, writes: bool, reply: ReplyOpen) {
        if !self.on.load(Ordering::Relaxed) {
            return reply.opened(FileHandle(o.fh), open_flags(o));
        }
        let mut by_inode = self.by_inode.lock().unwrap_or_else(|p| p.into_inner());
        let backing = match by_inode.entry(ino) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => match fs.with_segment_file(o.fh, |f| reply.open_backing(f))
            {
                Ok(Ok(id)) => v.insert(Backing { id, handles: HashSet::new() }),
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EPERM) => {
                    self.on.store(false, Ordering::Relaxed);
                    log::info!(
                        "the kernel refuses FUSE passthrough to this daemon ({e}): segment files are served through the daemon"
                    );
                    return reply.opened(FileHandle(o.fh), open_flags(o));
                }
                Ok(Err(e)) => {
                    log::debug!("segment inode {ino} is served through the daemon: {e}");
                    return reply.opened(FileHandle(o.fh), open_flags(o));
                }
                Err(e) => {
                    log::debug!("segment inode {ino} is served through the daemon: {e}");
                    return reply.opened(FileHandle(o.fh), open_flags(o));
                }
            },
        };
        backing.handles.insert(o.fh);
        let flags = if writes {
            FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES
        } else {
            FopenFlags::empty()
        };
        reply.opened_passthrough(FileHandle(o.fh), flags, &backing.id);
    }

    /// Open file `fh` of `ino` is closed: the last one lets go of the backing file.
    fn release(&self, ino: u64, fh: u64) {
        let mut by_inode = self.by_inode.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(backing) = by_inode.get_mut(&ino) {
            backing.handles.remove(&fh);
            if backing.handles.is_empty() {
                by_inode.remove(&ino);
            }
        }
    }
}

impl IpcFuse {
    /// `passthrough`: serve segment files by FUSE passthrough where the
    /// kernel allows it (`-o nopassthrough` says false).
    pub fn new(fs: Arc<IpcFs>, passthrough: bool) -> IpcFuse {
        let namespaces = fs.namespaces();
        let on = fs.passthrough();
        on.store(passthrough, Ordering::Relaxed);
        let backings = Arc::new(Backings { on, by_inode: Mutex::default() });
        IpcFuse { fs, namespaces, forgetter: Forgetter::start(), backings }
    }

    /// Give it the session's notifier once mounted.
    pub fn forgetter(&self) -> Forgetter {
        self.forgetter.clone()
    }

    /// Which other namespace's member serves `ino`, if any, and whether
    /// `caller` may use it (nobody is checked without a caller).
    fn route(&self, ino: INodeNo, caller: Option<&Caller>) -> Result<Option<Arc<Member>>, Error> {
        match &self.namespaces {
            None => Ok(None),
            Some(namespaces) => namespaces.route(ino.0, caller),
        }
    }

    /// Runs `job` with the model serving `ino`, if `caller` may use it: at
    /// once on this thread for the mount's own namespace, on the member's
    /// thread for another.
    fn on<R: Fails>(
        &self,
        op: &'static str,
        ino: INodeNo,
        caller: Caller,
        reply: R,
        job: impl FnOnce(&IpcFs, &Caller, R) + Send + 'static,
    ) {
        let route = self.route(ino, Some(&caller));
        self.dispatch(op, route, reply, move |fs, reply| job(fs, &caller, reply));
    }

    /// [`IpcFuse::on`] for a call that may walk a long queue (listing it, the
    /// bytes of one type, discarding): in the mount's own namespace that runs
    /// on a thread of its own, charged as a wait to the caller, so that no
    /// caller can hold an event loop. (Another namespace's calls run on its
    /// own thread already.)
    fn on_walk<R: Fails>(
        &self,
        op: &'static str,
        ino: INodeNo,
        caller: Caller,
        reply: R,
        job: impl FnOnce(&IpcFs, &Caller, R) + Send + 'static,
    ) {
        match self.route(ino, Some(&caller)) {
            Ok(None) if self.fs.may_walk(ino.0, &caller) => {
                let charge = match self.fs.budgets().charge(caller.uid, Spend::Wait) {
                    Ok(charge) => charge,
                    Err(e) => return reply.fail(errno(op, At::by(ino, &caller), e)),
                };
                let fs = self.fs.clone();
                let walk = move |reply| {
                    job(&fs, &caller, reply);
                    drop(charge);
                };
                if let Err((reply, _)) = spawn_with(reply, walk) {
                    reply.fail(Errno::EAGAIN);
                }
            }
            route => self.dispatch(op, route, reply, move |fs, reply| job(fs, &caller, reply)),
        }
    }

    /// Refuses what ipcfs never does (mknod, symlink, rename, link) with
    /// EPERM, or with what a kept name of an object that has gone answers
    /// ([`IpcFs::by_path`]).
    fn refuse<R: Fails>(&self, op: &'static str, ino: INodeNo, req: &Request, name: &OsStr, reply: R) {
        let (at, name) = (At::of(ino, req), name.to_os_string());
        self.on(op, ino, caller(req), reply, move |fs, _, reply| {
            let refusal = match fs.by_path(ino.0, Err::<(), _>(Error::NotPermitted)) {
                Err(e) => e,
                Ok(()) => Error::NotPermitted,
            };
            reply.fail(errno(op, at.named(&name), refusal));
        });
    }

    /// [`IpcFuse::on`] for calls that no caller is checked for.
    fn on_any<R: Fails>(&self, op: &'static str, ino: INodeNo, reply: R, job: impl FnOnce(&IpcFs, R) + Send + 'static) {
        self.dispatch(op, self.route(ino, None), reply, job);
    }

    fn dispatch<R: Fails>(
        &self,
        op: &'static str,
        route: Result<Option<Arc<Member>>, Error>,
        reply: R,
        job: impl FnOnce(&IpcFs, R) + Send + 'static,
    ) {
        match route {
            Ok(None) => job(&self.fs, reply),
            Ok(Some(member)) => member.run(Box::new(move |fs| match fs {
                Ok(fs) => job(fs, reply),
                Err(e) => reply.fail(unrouted(op, e)),
            })),
            Err(e) => reply.fail(unrouted(op, e)),
        }
    }

    /// [`IpcFuse::on`] for a call that carries bytes (a write): they are
    /// copied only when the call goes to another thread.
    fn on_bytes<R: Fails>(
        &self,
        op: &'static str,
        ino: INodeNo,
        caller: Caller,
        bytes: &[u8],
        reply: R,
        job: impl FnOnce(&IpcFs, &Caller, &[u8], R) + Send + 'static,
    ) {
        match self.route(ino, Some(&caller)) {
            Ok(None) => job(&self.fs, &caller, bytes, reply),
            route => {
                let bytes = bytes.to_vec();
                self.dispatch(op, route, reply, move |fs, reply| job(fs, &caller, &bytes, reply));
            }
        }
    }
}

/// The one thing every reply can do.
trait Fails: Send + 'static {
    fn fail(self, errno: Errno);
}

macro_rules! replies_fail {
    ($($reply:ty),*) => {
        $(impl Fails for $reply {
            fn fail(self, errno: Errno) {
                self.error(errno)
            }
        })*
    };
}

replies_fail!(
    ReplyAttr,
    ReplyCreate,
    ReplyData,
    ReplyDirectory,
    ReplyDirectoryPlus,
    ReplyEmpty,
    ReplyEntry,
    ReplyOpen,
    ReplyStatfs,
    ReplyWrite,
    ReplyXattr
);

fn caller(req: &Request) -> Caller {
    Caller::new(req.uid(), req.gid(), req.pid())
}

/// Where a request failed, for the log: its inode, and who asked.
#[derive(Clone, Copy, Debug)]
struct At {
    ino: u64,
    pid: u32,
    uid: u32,
}

impl At {
    fn of(ino: INodeNo, req: &Request) -> At {
        At { ino: ino.0, pid: req.pid(), uid: req.uid() }
    }

    fn by(ino: INodeNo, caller: &Caller) -> At {
        At { ino: ino.0, pid: caller.pid, uid: caller.uid }
    }

    /// The same, for a name in the directory `ino` (formatted only if logged).
    fn named(self, name: &OsStr) -> Named<'_> {
        Named { at: self, name }
    }
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "inode {}, for pid {} uid {}", self.ino, self.pid, self.uid)
    }
}

struct Named<'a> {
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
fn unrouted(op: &str, e: Error) -> Errno {
    log::debug!("{op}: {e}");
    Errno::from_i32(e.errno())
}

/// The errno of a failed request, logged with where it failed: at debug
/// when it is part of normal use, at warn when it is trouble in the daemon.
fn errno(op: &str, at: impl std::fmt::Display, e: Error) -> Errno {
    if e.is_expected() {
        log::debug!("{op} {at}: {e}");
    } else {
        log::warn!("{op} {at}: {e}");
    }
    Errno::from_i32(e.errno())
}

fn file_attr(a: &Attr) -> FileAttr {
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

/// Stack for a thread that runs one waiting operation (a semaphore P) or one
/// walk of a long queue: it makes system calls, reads small /proc files and
/// replies.
const WAITER_STACK: usize = 256 * 1024;

/// Runs `f` with `reply` on a thread of its own; gives both back if no
/// thread can be started.
fn spawn_with<R, F>(reply: R, f: F) -> Result<(), (R, F)>
where
    R: Send + 'static,
    F: FnOnce(R) + Send + 'static,
{
    let job = Arc::new(Mutex::new(Some((reply, f))));
    let theirs = job.clone();
    let spawned = std::thread::Builder::new().name("ipcfs-wait".into()).stack_size(WAITER_STACK).spawn(move || {
        let job = theirs.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((reply, f)) = job {
            f(reply);
        }
    });
    match spawned {
        Ok(_) => Ok(()),
        Err(e) => {
            log::warn!("cannot start a thread for an operation that waits: {e}");
            job.lock().unwrap_or_else(|p| p.into_inner()).take().map_or(Ok(()), Err)
        }
    }
}

/// Runs an operation that waits on a thread of its own, and replies from
/// there, so that the event loops never block. If no thread can be started,
/// the caller gets EAGAIN, and nothing has been done; only a wait that keeps
/// something that must not be lost (a message to put back) then runs here.
fn run_elsewhere<T: Send + 'static, R: Fails>(
    wait: Wait<T>,
    reply: R,
    reply_with: impl FnOnce(R, Result<T, Error>) + Send + 'static,
) {
    let keeps = wait.keeps();
    if let Err((reply, run)) = spawn_with(reply, move |reply| reply_with(reply, wait.run())) {
        if keeps {
            run(reply);
        } else {
            reply.fail(Errno::EAGAIN);
        }
    }
}

fn reply_entry(reply: ReplyEntry, e: Entry) {
    reply.entry_with_ttls(&e.ttl, &e.entry_ttl, &file_attr(&e.attr), Generation(0));
}

/// A getattr or setattr by path (no file handle: stat, not fstat) goes
/// through [`IpcFs::by_path`], so that a kept name whose id another object
/// has taken is looked up again; through an open file it is what it is.
fn stat_by(fs: &IpcFs, ino: INodeNo, fh: Option<FileHandle>, result: Result<Entry, Error>) -> Result<Entry, Error> {
    if fh.is_none() { fs.stat_by_path(ino.0, result) } else { result }
}

fn open_flags(o: Opened) -> FopenFlags {
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
fn reply_xattr(reply: ReplyXattr, size: u32, data: Vec<u8>) {
    if size == 0 {
        reply.size(data.len() as u32);
    } else if data.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(&data);
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
        let caller = caller(req);
        // Anyone may stat another namespace's root (`ls -l ns/`); what is
        // inside is for those who may enter it, even through kept entries.
        if Namespaces::is_member_root(ino.0) {
            self.on_any("getattr", ino, reply, move |fs, reply| match fs.getattr(ino.0, &caller) {
                Ok(e) => reply.attr(&e.ttl, &file_attr(&e.attr)),
                Err(e) => reply.error(errno("getattr", at, e)),
            });
        } else {
            let forgetter = self.forgetter.clone();
            self.on_walk("getattr", ino, caller, reply, move |fs, caller, reply| {
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
        let at = At::of(parent, req);
        let (caller, name) = (caller(req), name.to_os_string());
        self.on_walk("unlink", parent, caller, reply, move |fs, caller, reply| {
            match fs.by_path(parent.0, fs.unlink(parent.0, &name, caller)) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno("unlink", at.named(&name), e)),
            }
        });
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let at = At::of(parent, req);
        let (caller, name) = (caller(req), name.to_os_string());
        self.on("rmdir", parent, caller, reply, move |fs, caller, reply| {
            match fs.by_path(parent.0, fs.rmdir(parent.0, &name, caller)) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno("rmdir", at.named(&name), e)),
            }
        });
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
        let at = At::of(ino, req);
        let nonblocking = flags.0 & libc::O_NONBLOCK != 0;
        let caller = caller(req);
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
        let at = At::of(ino, req);
        let nonblocking = flags.0 & libc::O_NONBLOCK != 0;
        let caller = caller(req);
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
        let at = At::of(ino, req);
        let caller = caller(req);
        self.on_walk("readdir", ino, caller, reply, move |fs, caller, mut reply| {
            let mut add = |next: u64, name: &str, e: &Entry| {
                let kind = file_attr(&e.attr).kind;
                reply.add(INodeNo(e.attr.ino), next, kind, name)
            };
            match fs.readdir(ino.0, fh.0, offset, false, caller, &mut add) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno("readdir", at, e)),
            }
        });
    }

    fn readdirplus(&self, req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, reply: ReplyDirectoryPlus) {
        let at = At::of(ino, req);
        let caller = caller(req);
        self.on_walk("readdirplus", ino, caller, reply, move |fs, caller, mut reply| {
            let mut add = |next: u64, name: &str, e: &Entry| {
                reply.add(INodeNo(e.attr.ino), next, name, &e.ttl, &file_attr(&e.attr), Generation(0))
            };
            match fs.readdir(ino.0, fh.0, offset, true, caller, &mut add) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno("readdirplus", at, e)),
            }
        });
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
