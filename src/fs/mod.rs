//! The filesystem model: paths and inodes to IPC objects, attributes,
//! listing, and what each read and write means.
//!
//! Plain Rust types in, `Result<plain, Error>` out: no fuser types here, so
//! the model can be tested without a mount. Every answer comes from the kernel
//! at the time of the call; the only state kept is the inode table (what the
//! kernel has looked up) and the open handles (what the kernel has open).
//!
//! The tree:
//! ```text
//! /            shm/ sem/ msg/ by-key/
//! shm/<id>     one file per segment            (shm.rs)
//! sem/<id>/<n> one directory per set, a file per semaphore (sem.rs)
//! msg/<id>/any, msg/<id>/<type>, msg/<id>/.wait/…   one directory per queue (msg.rs)
//! by-key/{shm,sem,msg}/0x%08x -> ../../{shm,sem,msg}/<id>  for objects with a key
//! limits/      the namespace's IPC limits      (limits.rs)
//! ns/          every IPC namespace, with -o all_namespaces (namespaces.rs)
//! ```
//!
//! One `IpcFs` serves one IPC namespace: the one of the thread calling it.

#![forbid(unsafe_code)]

pub mod access;
pub mod budget;
pub mod error;
mod family;
pub mod inode;
mod limits;
use limits::Resource;
mod listing;
mod msg;
pub mod names;
pub mod namespaces;
mod nodes;
mod sem;
mod shm;
pub mod signals;
mod types;
pub mod waiting;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::ipc::Errno;
pub use access::{Caller, Want};
pub use budget::{Budgets, Charge, Spend, UserBudget};
pub use error::{Error, Result};
use inode::{Dir, InodeTable, Node, Reading, Target};
use listing::Listed;
use msg::OpenQueueFile;
pub use namespaces::Namespaces;
use sem::OpenSemaphore;
use msg::Queues;
use sem::Sets;
use shm::{OpenSegment, Segments};
pub use types::{
    Attr, Data, Entry, FileKind, LARGEST_REQUEST, Opened, Outcome, SetAttr, StatFs, Stop, Wait, Written, request_limit,
};

/// How long the kernel may trust what never changes: the fixed directories.
const FIXED_TTL: Duration = Duration::from_secs(60);
/// By default live objects are never cached: every stat and lookup asks the
/// kernel (`-o attr_timeout` changes that).
const LIVE_TTL: Duration = Duration::ZERO;
/// See [`IpcFs::presence`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Presence {
    Here,
    Gone,
    Replaced,
}

/// How long the kernel may keep an object's own name (`shm/5`, `sem/3`,
/// `msg/7`, `limits/msgmax`), while its attributes stay fresh (asked for at
/// every stat). A kept name of an object that has gone answers ENOENT; of an
/// id another object has taken since, ESTALE, on which the kernel looks
/// the whole path up again ([`IpcFs::by_path`]). So a stat costs one
/// round trip, not two.
const NAME_TTL: Duration = Duration::from_secs(3600);
/// The longest `-o attr_timeout` allowed.
pub const LONGEST_ATTR_TIMEOUT: Duration = Duration::from_secs(3600);
/// st_blksize: large, so that cat, cp and dd pick big buffers.
pub const BLOCK_SIZE: u32 = 1 << 20;
const NAME_MAX: usize = 255;

enum Handle {
    Segment(OpenSegment),
    Semaphore(OpenSemaphore),
    QueueFile(OpenQueueFile),
    /// `limits/<resource>` or `limits/usage`: read fresh at every read.
    Limit(limits::Limit),
    /// A directory listing, taken whole when read from offset 0, so that
    /// objects coming and going never make readdir skip or repeat an entry.
    Dir(Mutex<Vec<Listed>>),
}

/// An open file or directory, with the unit of its opener's budget it holds.
struct Held {
    handle: Arc<Handle>,
    _charge: Charge,
    /// The inode it is open on.
    ino: u64,
    /// Open for writing, and its writes may wait (see
    /// `InodeTable::begin_write`): let go of at release.
    writing: bool,
}

/// A set or queue just made under the name `private` (or `private:N`).
/// `mkdir -m` looks the new directory up by the name it made it with, to
/// chmod it; keyed names find their object by key, but `private` names none,
/// so the creating thread may look it up by that name for a moment.
struct JustCreated {
    pid: u32,
    dir: Dir,
    name: String,
    node: Node,
    at: Instant,
}

/// The mount root's attribute that says how segment files are served:
/// `passthrough` (by the kernel from the segments' own files) or `daemon`.
pub const SEGMENT_IO: &str = "user.ipcfs.segment_io";

/// How long a `private` name stays resolvable for its creator.
const JUST_CREATED_FOR: Duration = Duration::from_secs(1);

pub struct IpcFs {
    inodes: Mutex<InodeTable>,
    just_created: Mutex<Vec<JustCreated>>,
    /// Open files and directories, each with the unit of its opener's
    /// `user_files` budget it holds.
    handles: Mutex<HashMap<u64, Held>>,
    /// What callers may make the daemon spend (shared by every namespace's tree).
    budgets: Arc<Budgets>,
    next_fh: AtomicU64,
    /// Mounted with `-o ro`: nothing may change (the kernel refuses most
    /// changes on a read-only mount itself; this covers the rest, such as a
    /// read that would receive a message).
    read_only: bool,
    /// How long the kernel may keep the entries and attributes of objects
    /// (`-o attr_timeout`; zero by default).
    live_ttl: Duration,
    /// Set when the filesystem goes away: waiting operations give up.
    stopping: Arc<AtomicBool>,
    /// Times and owner shown on the fixed directories.
    mounted_at: SystemTime,
    uid: u32,
    gid: u32,
    /// The first of this tree's inode numbers: 0 for the mount's own
    /// namespace, above for the others (see `namespaces`).
    base: u64,
    /// `ns/`, with `-o all_namespaces`.
    namespaces: Option<Arc<Namespaces>>,
    /// See [`IpcFs::passthrough`].
    passthrough: Arc<AtomicBool>,
    /// How many files and directories are open on each inode.
    open_inodes: Mutex<HashMap<u64, usize>>,
}

impl Default for IpcFs {
    fn default() -> Self {
        IpcFs::new()
    }
}

impl IpcFs {
    pub fn new() -> IpcFs {
        IpcFs {
            inodes: Mutex::new(InodeTable::new()),
            base: 0,
            namespaces: None,
            just_created: Mutex::new(Vec::new()),
            read_only: false,
            live_ttl: LIVE_TTL,
            handles: Mutex::new(HashMap::new()),
            budgets: Budgets::new(UserBudget::default()),
            next_fh: AtomicU64::new(1),
            stopping: Arc::new(AtomicBool::new(false)),
            mounted_at: SystemTime::now(),
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            passthrough: Arc::new(AtomicBool::new(false)),
            open_inodes: Mutex::new(HashMap::new()),
        }
    }

    /// The same filesystem, letting the kernel keep the entries and
    /// attributes of objects for `ttl` (`-o attr_timeout`): faster listings,
    /// at the price of numbers up to `ttl` old.
    pub fn attr_timeout(mut self, ttl: Duration) -> IpcFs {
        self.live_ttl = ttl.min(LONGEST_ATTR_TIMEOUT);
        self
    }

    /// Whether the kernel may keep attributes (`-o attr_timeout`).
    pub fn keeps_attributes(&self) -> bool {
        !self.live_ttl.is_zero()
    }

    /// The same filesystem, read-only (`-o ro`).
    pub fn read_only(mut self, read_only: bool) -> IpcFs {
        self.read_only = read_only;
        self
    }

    /// The same filesystem, charging callers to `budgets`.
    pub fn with_budgets(mut self, budgets: Arc<Budgets>) -> IpcFs {
        self.budgets = budgets;
        self
    }

    pub fn budgets(&self) -> Arc<Budgets> {
        self.budgets.clone()
    }

    /// The same filesystem with `ns/`, which shows `namespaces`.
    pub fn with_namespaces(mut self, namespaces: Arc<Namespaces>) -> IpcFs {
        self.namespaces = Some(namespaces);
        self
    }

    pub fn namespaces(&self) -> Option<Arc<Namespaces>> {
        self.namespaces.clone()
    }

    /// The same filesystem as the tree of another namespace under `ns/`: its
    /// inode numbers start at `base`, and its directories belong to `owner`,
    /// who (with root) alone may enter it.
    pub(crate) fn in_slot(mut self, base: u64, owner: u32) -> IpcFs {
        self.base = base;
        self.inodes = Mutex::new(InodeTable::starting_at(base));
        self.uid = owner;
        self.gid = 0;
        self
    }

    fn writable(&self) -> Result<()> {
        if self.read_only { Err(Error::ReadOnly) } else { Ok(()) }
    }

    fn inodes(&self) -> MutexGuard<'_, InodeTable> {
        self.inodes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn target(&self, ino: u64) -> Result<Target> {
        match self.inodes().get(ino).ok_or(Error::NotFound)? {
            Target::Dir(Dir::Namespaces | Dir::ByPid | Dir::ByName) if self.namespaces.is_none() => {
                Err(Error::NotFound)
            }
            target => Ok(target),
        }
    }

    fn all_namespaces(&self) -> Result<&Namespaces> {
        self.namespaces.as_deref().ok_or(Error::NotFound)
    }

    fn handle(&self, fh: u64) -> Result<Arc<Handle>> {
        let handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        handles.get(&fh).map(|held| held.handle.clone()).ok_or(Error::BadHandle)
    }

    /// One unit of `caller`'s `user_files` budget, for a file about to be opened.
    fn charge_file(&self, caller: &Caller) -> Result<Charge> {
        self.budgets.charge(caller.uid, Spend::File)
    }

    fn add_handle(&self, handle: Handle, charge: Charge, ino: u64) -> u64 {
        self.add_writing_handle(handle, charge, ino, false)
    }

    fn add_writing_handle(&self, handle: Handle, charge: Charge, ino: u64, writing: bool) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let held = Held { handle: Arc::new(handle), _charge: charge, ino, writing };
        let mut handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        handles.insert(fh, held);
        *self.open_inodes.lock().unwrap_or_else(|p| p.into_inner()).entry(ino).or_insert(0) += 1;
        fh
    }

    /// The attributes of the segment `ino` stood for, as a file of it still
    /// open saw them, with no links: the segment is gone.
    fn removed_segment_attr(&self, ino: u64) -> Option<Attr> {
        let handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        handles.values().filter(|held| held.ino == ino).find_map(|held| match &*held.handle {
            Handle::Segment(open) => open.removed_attr(),
            _ => None,
        })
    }

    /// Whether some file or directory is open on `ino`.
    fn is_open(&self, ino: u64) -> bool {
        self.open_inodes.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&ino)
    }

    // ---- names ----

    pub fn lookup(&self, parent: u64, name: &OsStr, caller: &Caller) -> Result<Entry> {
        let name = name_str(name)?;
        let (node, attr) = match self.target(parent)? {
            Target::Dir(dir) => {
                if let Some((_, child)) = self.children(dir).find(|(n, _)| *n == name) {
                    return Ok(self.dir_entry(child));
                }
                match dir {
                    Dir::Shm => family::lookup::<Segments>(name)?,
                    Dir::Sem => family::lookup::<Sets>(name).or_else(|e| self.lookup_created(Dir::Sem, name, caller, e))?,
                    Dir::Msg => family::lookup::<Queues>(name).or_else(|e| self.lookup_created(Dir::Msg, name, caller, e))?,
                    Dir::ByKeyShm => family::lookup_key_link::<Segments>(name)?,
                    Dir::ByKeySem => family::lookup_key_link::<Sets>(name)?,
                    Dir::ByKeyMsg => family::lookup_key_link::<Queues>(name)?,
                    Dir::Limits => {
                        let node = limits::lookup(name)?;
                        let attr = nodes::attr(&node)?;
                        (node, attr)
                    }
                    Dir::Namespaces => match self.all_namespaces()?.lookup(name)? {
                        (Target::Node(node), attr) => (node, attr),
                        // Not kept: the namespace may go, and its number come back.
                        (_, attr) => return Ok(self.entry(attr)),
                    },
                    Dir::ByPid => namespaces::lookup_process(name, caller)?,
                    Dir::ByName => self.all_namespaces()?.lookup_name(name, caller)?,
                    _ => return Err(Error::NotFound),
                }
            }
            Target::Node(Node::SemSet(ident)) => sem::lookup_semaphore(ident, name, caller)?,
            Target::Node(Node::Queue(ident)) => msg::lookup_in_queue(ident, Reading::Browse, name, caller)?,
            Target::Node(Node::QueueSubDir(ident, reading)) => msg::lookup_in_queue(ident, reading, name, caller)?,
            _ => return Err(Error::NotDirectory),
        };
        // Only a segment's own name (its id) and a limit's may be kept by
        // the kernel: a key used as a name may come to name another object
        // at any time, and the directories of sets and queues are asked for
        // at every walk (the kernel answers some calls on a kept directory
        // itself, such as EISDIR for unlink, and drops the names inside a
        // queue only with the queue's own entry).
        let own_name = match &node {
            Node::Segment(i) => name == i.id.0.to_string(),
            Node::Limit(_) => true,
            _ => false,
        };
        let mut entry = self.remember(&node, attr, caller)?;
        if own_name {
            entry.entry_ttl = entry.entry_ttl.max(NAME_TTL);
        }
        Ok(entry)
    }

    /// An entry with the attribute timeout of live objects, kept no longer.
    fn entry(&self, attr: Attr) -> Entry {
        Entry { attr, ttl: self.live_ttl, entry_ttl: self.live_ttl, forget: None }
    }

    /// Whether the segment `ino` stands for is still there, gone, or gone
    /// with another segment in its id (`None` for every other node: only a
    /// segment's name is kept by the kernel, see [`NAME_TTL`]).
    fn presence(&self, ino: u64) -> Option<Presence> {
        let Ok(Target::Node(Node::Segment(ident))) = self.target(ino) else { return None };
        Some(match crate::ipc::shm::stat_any(ident.id) {
            Ok(stat) if ident.is(&stat) => Presence::Here,
            Ok(_) => Presence::Replaced,
            Err(_) => Presence::Gone,
        })
    }

    /// For an operation that reached `ino` by a path, which may be a name
    /// the kernel kept ([`NAME_TTL`]): a failure on an object that has gone
    /// is ENOENT (whatever else the operation found wrong first), and on one
    /// whose id another object has taken since, ESTALE, on which the kernel
    /// walks the path again, asking for every name.
    pub fn by_path<T>(&self, ino: u64, result: Result<T>) -> Result<T> {
        match result {
            Err(e) if e != Error::Stale => match self.presence(ino) {
                Some(Presence::Gone) => Err(Error::NotFound),
                Some(Presence::Replaced) => Err(Error::Stale),
                _ => Err(e),
            },
            other => other,
        }
    }

    /// [`IpcFs::by_path`] for a getattr or setattr, which the kernel sends
    /// for fstat as for stat. On an inode with files open it may be an
    /// fstat: a segment removed since answers with its attributes as its open
    /// files last saw them and no links, as an unlinked file does. A stat
    /// by a kept path to it may arrive the same way: if another segment has
    /// taken the id since, the answer is ESTALE, and the kernel looks the
    /// name up again.
    pub fn stat_by_path(&self, ino: u64, result: Result<Entry>) -> Result<Entry> {
        if !self.is_open(ino) {
            return self.by_path(ino, result);
        }
        match result {
            Ok(e) if e.attr.nlink == 0 && self.presence(ino) == Some(Presence::Replaced) => Err(Error::Stale),
            other => other,
        }
    }

    /// A creation name (`0x1234`, `0x1234:4`, `private`) used as a path in
    /// sem/ or msg/: the object with that key, or the one this caller thread
    /// just made as `private`. Not listed under that name. `otherwise` is the
    /// error to give when the name is neither.
    fn lookup_created(&self, dir: Dir, name: &str, caller: &Caller, otherwise: Error) -> Result<(Node, Attr)> {
        let key = match dir {
            Dir::Sem => sem::parse_creation_name(name).map(|(key, _)| key).ok(),
            _ => names::parse_creation_key(name),
        };
        match key {
            None => Err(otherwise),
            Some(key) if !key.is_private() && dir == Dir::Sem => family::lookup_by_key::<Sets>(key),
            Some(key) if !key.is_private() => family::lookup_by_key::<Queues>(key),
            Some(_) => {
                let just_created = self.just_created.lock().unwrap_or_else(|p| p.into_inner());
                let found = just_created.iter().rev().find(|c| {
                    c.pid == caller.pid && c.dir == dir && c.name == name && c.at.elapsed() < JUST_CREATED_FOR
                });
                let node = found.map(|c| c.node.clone()).ok_or(otherwise)?;
                drop(just_created);
                Ok((node.clone(), nodes::attr(&node)?))
            }
        }
    }

    /// The id a name in sem/ or msg/ stands for: the name itself, or the
    /// object a creation name (a key, `private` just made) finds, so that
    /// `rmdir sem/0x4321` and `rm -r msg/0x8001` work as `ls` of them does.
    fn id_name(&self, dir: Dir, name: &str, caller: &Caller) -> Result<String> {
        if names::parse_id(name).is_some() {
            return Ok(name.to_string());
        }
        match self.lookup_created(dir, name, caller, Error::NotFound)? {
            (Node::SemSet(ident), _) => Ok(ident.id.0.to_string()),
            (Node::Queue(ident), _) => Ok(ident.id.0.to_string()),
            _ => Err(Error::NotFound),
        }
    }

    /// The fixed subdirectories of `dir` and their names: `ns/` is in the
    /// root only with `-o all_namespaces`.
    fn children(&self, dir: Dir) -> impl Iterator<Item = (&'static str, Dir)> {
        let ns = (dir == Dir::Root && self.namespaces.is_some()).then_some(("ns", Dir::Namespaces));
        dir.children().iter().copied().chain(ns)
    }

    pub fn forget(&self, ino: u64, nlookup: u64) {
        self.inodes().forget(ino, nlookup);
    }

    /// How many dynamic inodes the kernel holds (for tests and diagnostics).
    pub fn inode_count(&self) -> usize {
        self.inodes().len()
    }

    /// How many files and directories are open.
    pub fn handle_count(&self) -> usize {
        self.handles.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The entry for `node`, looked up by `caller`. A queue file's name is
    /// transient: the kernel is told to let go of it soon (by dropping its
    /// queue's directory entry, `msg/<id>`, with all in it), and until it
    /// has, the inode holds a unit of the caller's `user_files` budget (for
    /// names), so that names looked up faster than the kernel lets go of
    /// them cost the daemon a bounded amount (EAGAIN beyond).
    fn remember(&self, node: &Node, mut attr: Attr, caller: &Caller) -> Result<Entry> {
        // Only names of types with nothing queued (for this caller) are
        // let go of: the others are listed, as many as the queue holds, and
        // keep their inode numbers while the kernel keeps them (cp compares
        // the numbers of a stat and the open that follows).
        let forget = match node {
            Node::QueueFile { ident, mtype, .. } if *mtype != 0 && attr.size == 0 => {
                Some((self.base + Dir::Msg.ino(), ident.id.0))
            }
            _ => None,
        };
        // The names of types with nothing queued are the ones without end
        // (2^63 of them): each holds a unit of the looker's budget until the
        // kernel lets go of it.
        let charge = || match forget {
            Some(_) => self.budgets.charge(caller.uid, Spend::Name).map(Some),
            None => Ok(None),
        };
        attr.ino = self.inodes().remember_with(node, charge)?;
        Ok(Entry { forget, ..self.entry(attr) })
    }

    pub fn readlink(&self, ino: u64, caller: &Caller) -> Result<Vec<u8>> {
        match self.target(ino)? {
            Target::Node(node) => nodes::readlink(&node, caller),
            _ => Err(Error::Invalid),
        }
    }

    // ---- attributes ----

    pub fn getattr(&self, ino: u64, caller: &Caller) -> Result<Entry> {
        let mut attr = match self.target(ino)? {
            Target::Dir(dir) => return Ok(self.dir_entry(dir)),
            Target::Node(node @ Node::QueueFile { .. }) => msg::attr_for(&node, caller)?,
            Target::Node(node @ Node::Semaphore(..)) => sem::attr_for(&node, caller)?,
            Target::Node(node @ Node::Segment(ident)) => match nodes::attr(&node) {
                // Removed while a file of it is open: that file's fstat.
                // The name the kernel may keep goes (a stat by it would
                // arrive here too).
                Err(Error::NotFound) => {
                    let attr = self.removed_segment_attr(ino).ok_or(Error::NotFound)?;
                    let forget = Some((self.base + Dir::Shm.ino(), ident.id.0));
                    return Ok(Entry { forget, ..self.entry(Attr { ino, ..attr }) });
                }
                other => other?,
            },
            Target::Node(node) => nodes::attr(&node)?,
            Target::Pending(pending) => pending.attr()?,
            Target::NamespaceRoot => return Err(Error::NotFound),
        };
        attr.ino = ino;
        Ok(self.entry(attr))
    }

    pub fn setattr(&self, ino: u64, fh: Option<u64>, change: SetAttr, caller: &Caller) -> Result<Entry> {
        if change != SetAttr::default() {
            self.writable()?;
        }
        let handle = fh.map(|fh| self.handle(fh)).transpose()?;
        let open = handle.as_deref().and_then(|h| match h {
            Handle::Segment(open) => Some(open),
            _ => None,
        });
        let mut attr = match self.target(ino)? {
            Target::Dir(_) if change == SetAttr::default() => return self.getattr(ino, caller),
            Target::Dir(_) => return Err(Error::NotPermitted),
            Target::Node(Node::Segment(ident)) => shm::setattr(ident, open, change, caller, &self.budgets)?,
            Target::Node(node) => nodes::setattr(&node, change, caller)?,
            Target::Pending(pending) => pending.setattr(open, change, caller, &self.budgets)?,
            Target::NamespaceRoot => return Err(Error::NotFound),
        };
        attr.ino = ino;
        Ok(self.entry(attr))
    }

    // ---- files ----

    pub fn create(&self, parent: u64, name: &OsStr, mode: u32, flags: i32, caller: &Caller) -> Result<(Entry, Opened)> {
        self.writable()?;
        match self.target(parent)? {
            Target::Dir(Dir::Shm) => {}
            // Every message type has its file already: what reaches here
            // (`0`, `-1`, `007`, a word) is no type.
            Target::Node(Node::Queue(_) | Node::QueueSubDir(..)) => return Err(Error::Invalid),
            // Writing to a name that is no object (a set or semaphore that
            // does not exist, a limit there is not): no such file.
            Target::Dir(_) | Target::Node(_) if self.is_directory(parent) => return Err(Error::NotFound),
            _ => return Err(Error::NotDirectory),
        }
        // In shm/, a name that is no key (`echo x > shm/23` after the
        // segment went): no such file, as for the others.
        let name = name_str(name)?;
        let charge = self.charge_file(caller)?;
        let pending = Arc::new(shm::PendingSegment::new(name, mode, caller)?);
        let mut attr = pending.attr()?;
        let open = OpenSegment::pending(pending.clone(), Want::from_open_flags(flags), caller, &self.budgets);
        attr.ino = self.inodes().remember_pending(pending);
        let fh = self.add_handle(Handle::Segment(open), charge, attr.ino);
        let opened = Opened { fh, direct_io: true, stream: false, backing: None };
        Ok((self.entry(attr), opened))
    }

    pub fn open(&self, ino: u64, flags: i32, caller: &Caller) -> Result<Opened> {
        let want = Want::from_open_flags(flags);
        if want.includes_write() {
            self.writable()?;
        }
        let charge = self.charge_file(caller)?;
        let handle = match self.target(ino)? {
            Target::Dir(_) => return Err(Error::IsDirectory),
            Target::Node(node) if node.is_dir() => return Err(Error::IsDirectory),
            Target::Node(Node::Segment(ident)) => {
                Handle::Segment(OpenSegment::open(ident, want, caller, &self.budgets)?)
            }
            Target::Node(Node::Semaphore(ident, num)) => {
                Handle::Semaphore(OpenSemaphore::open(ident, num, flags, caller)?)
            }
            Target::Node(node @ Node::QueueFile { .. }) => {
                Handle::QueueFile(OpenQueueFile::open(&node, flags, self.read_only, caller, &self.budgets)?)
            }
            Target::Node(Node::Limit(limit)) => {
                limits::access(limit, want, caller)?;
                Handle::Limit(limit)
            }
            Target::Node(_) => return Err(Error::Invalid),
            Target::Pending(pending) => {
                Handle::Segment(OpenSegment::reopen_pending(pending, want, caller, &self.budgets)?)
            }
            Target::NamespaceRoot => return Err(Error::NotFound),
        };
        let stream = match &handle {
            Handle::QueueFile(open) => !open.has_positions(),
            _ => false,
        };
        let writing = matches!(handle, Handle::Semaphore(_) | Handle::QueueFile(_)) && want.includes_write();
        if writing {
            self.inodes().begin_write(ino, caller.pid)?;
        }
        // An existing segment (not one still being created) may be served
        // from its own shmem file.
        let backing = match &handle {
            Handle::Segment(open) if open.is_existing() => Some(want.includes_write()),
            _ => None,
        };
        let fh = self.add_writing_handle(handle, charge, ino, writing);
        Ok(Opened { fh, direct_io: true, stream, backing })
    }

    /// Lends the shmem file through which the open segment file `fh` reads
    /// and writes to `register`: for FUSE passthrough, the adapter registers
    /// it with the kernel once per inode (see `fuse::Backings`).
    /// `NotSupported` where the segment is attached instead (the daemon may
    /// not open its file) or not created yet.
    pub fn with_segment_file<R>(&self, fh: u64, register: impl FnOnce(&std::fs::File) -> R) -> Result<R> {
        let Handle::Segment(open) = &*self.handle(fh)? else {
            return Err(Error::NotSupported);
        };
        let memory = open.memory()?.ok_or(Error::NotSupported)?;
        memory.file().map(register).ok_or(Error::NotSupported)
    }

    /// Reads; `nonblocking` is the file's O_NONBLOCK now. A read that must
    /// wait (a queue file under `.wait/`) comes back as [`Outcome::Wait`].
    pub fn read(
        &self,
        fh: u64,
        offset: u64,
        size: u32,
        nonblocking: bool,
        caller: &Caller,
    ) -> Result<Outcome<Data, Vec<u8>>> {
        match &*self.handle(fh)? {
            Handle::Segment(open) => open.read(offset, size as usize).map(Outcome::Ready),
            Handle::Semaphore(open) => Ok(Outcome::Ready(Data::Bytes(open.read(offset, size as usize, caller)?))),
            Handle::QueueFile(open) => match open.read(offset, size as usize, nonblocking, caller)? {
                Outcome::Wait(wait) => Ok(Outcome::Wait(self.parked(wait, caller)?)),
                Outcome::Ready(bytes) => Ok(Outcome::Ready(Data::Bytes(bytes))),
            },
            Handle::Limit(limit) => {
                let text = limits::text(*limit)?.into_bytes();
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(text.len());
                let end = start.saturating_add(size as usize).min(text.len());
                Ok(Outcome::Ready(Data::Bytes(text[start..end].to_vec())))
            }
            Handle::Dir(_) => Err(Error::IsDirectory),
        }
    }

    /// Writes `data`; `nonblocking` is the file's O_NONBLOCK now. A write
    /// that must wait comes back as [`Outcome::Wait`], to be run off the
    /// event loop.
    pub fn write(&self, fh: u64, offset: u64, data: &[u8], nonblocking: bool, caller: &Caller) -> Result<Written> {
        self.writable()?;
        match &*self.handle(fh)? {
            Handle::Segment(open) => open.write(offset, data).map(Outcome::Ready),
            Handle::Semaphore(open) => self.waiting_write(open.write(data, nonblocking, caller)?, caller),
            Handle::QueueFile(open) => self.waiting_write(open.write(data, nonblocking, caller)?, caller),
            Handle::Limit(limit) => limits::write(*limit, data, caller).map(Outcome::Ready),
            Handle::Dir(_) => Err(Error::IsDirectory),
        }
    }

    fn waiting_write(&self, written: Written, caller: &Caller) -> Result<Written> {
        match written {
            Outcome::Wait(wait) => Ok(Outcome::Wait(self.parked(wait, caller)?)),
            ready => Ok(ready),
        }
    }

    /// A wait about to be parked on a thread: it stops with the filesystem,
    /// and holds a unit of the caller's `user_waits` budget and a descriptor
    /// (the caller's /proc status, kept open while it waits): EAGAIN when
    /// either is used up, and nothing has been done yet.
    fn parked<T>(&self, wait: Wait<T>, caller: &Caller) -> Result<Wait<T>> {
        let wait = wait.stopping_with(&self.stopping);
        let charges = self.budgets.charge(caller.uid, Spend::Wait).and_then(|thread| {
            let descriptor = self.budgets.charge(caller.uid, Spend::Descriptor);
            Ok([thread, descriptor.map_err(|_| Error::Budget(Errno::EAGAIN))?])
        });
        match charges {
            Ok(charges) => Ok(wait.charged(charges)),
            Err(_) if wait.keeps() => Ok(wait),
            Err(e) => Err(e),
        }
    }

    /// fallocate(2) mode 0: on a segment being created, gives it its size.
    pub fn fallocate(&self, fh: u64, offset: u64, length: u64, mode: i32, caller: &Caller) -> Result<()> {
        self.writable()?;
        if mode != 0 {
            return Err(Error::NotSupported);
        }
        match &*self.handle(fh)? {
            Handle::Segment(open) => open.allocate(offset.checked_add(length).ok_or(Error::TooBig)?, caller),
            Handle::Semaphore(_) | Handle::QueueFile(_) | Handle::Limit(_) => Err(Error::NotSupported),
            Handle::Dir(_) => Err(Error::IsDirectory),
        }
    }

    /// Closes a file or directory handle; a segment is detached here.
    pub fn release(&self, fh: u64) {
        let Some(held) = self.handles.lock().unwrap_or_else(|p| p.into_inner()).remove(&fh) else { return };
        if held.writing {
            self.inodes().end_write(held.ino);
        }
        let mut open_inodes = self.open_inodes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open_inodes.get_mut(&held.ino) {
            *n -= 1;
            if *n == 0 {
                open_inodes.remove(&held.ino);
            }
        }
    }

    /// The filesystem is going away: stop waiting, detach everything, and
    /// let go of the other namespaces.
    pub fn destroy(&self) {
        self.stop_waits();
        self.handles.lock().unwrap_or_else(|p| p.into_inner()).clear();
        if let Some(namespaces) = &self.namespaces {
            namespaces.retire_all();
        }
    }

    /// Ends every wait (with EINTR, nothing taken), here and in the other
    /// namespaces, and makes new ones end at once: for an unmount while waits
    /// are blocked, so that they do not hold a detached mount up.
    pub fn stop_waits(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        if let Some(namespaces) = &self.namespaces {
            namespaces.stop_waits();
        }
    }

    pub fn unlink(&self, parent: u64, name: &OsStr, caller: &Caller) -> Result<()> {
        self.writable()?;
        let name = name_str(name)?;
        match self.target(parent)? {
            Target::Dir(Dir::Shm) => family::remove::<Segments>(name, caller).map(drop),
            Target::Node(Node::SemSet(ident)) => sem::unlink_semaphore(ident, name, caller),
            Target::Node(Node::Queue(ident) | Node::QueueSubDir(ident, _)) => msg::discard(ident, name, caller),
            Target::Dir(_) => Err(Error::NotPermitted),
            _ => Err(Error::NotDirectory),
        }
    }

    /// `mkdir sem/KEY[:N]` creates a semaphore set, `mkdir msg/KEY` a queue.
    pub fn mkdir(&self, parent: u64, name: &OsStr, mode: u32, caller: &Caller) -> Result<Entry> {
        self.writable()?;
        let (node, attr) = match self.target(parent)? {
            Target::Dir(Dir::Sem) => sem::create_set(creation_name(name)?, mode, caller)?,
            Target::Dir(Dir::Msg) => msg::create_queue(creation_name(name)?, mode, caller)?,
            Target::Dir(_) => return Err(Error::NotPermitted),
            Target::Node(node) if node.is_dir() => return Err(Error::NotPermitted),
            _ => return Err(Error::NotDirectory),
        };
        let name = creation_name(name)?;
        if name.starts_with(names::PRIVATE_NAME) {
            let Target::Dir(dir) = self.target(parent)? else { return Err(Error::NotDirectory) };
            let mut just_created = self.just_created.lock().unwrap_or_else(|p| p.into_inner());
            just_created.retain(|c| c.at.elapsed() < JUST_CREATED_FOR);
            just_created.push(JustCreated {
                pid: caller.pid,
                dir,
                name: name.into(),
                node: node.clone(),
                at: Instant::now(),
            });
        }
        self.remember(&node, attr, caller)
    }

    /// `rmdir sem/<id>` removes the set, `rmdir msg/<id>` the queue.
    pub fn rmdir(&self, parent: u64, name: &OsStr, caller: &Caller) -> Result<()> {
        self.writable()?;
        let name = name_str(name)?;
        // The kernel marks a directory removed through it as dead, and keeps
        // that inode while a file inside is open. An object made later that
        // looks the same (same id, key and creator: only possible through
        // kernel.*_next_id or a wrapped id sequence) must not be given it.
        match self.target(parent)? {
            Target::Dir(Dir::Sem) => {
                let gone = family::remove::<Sets>(&self.id_name(Dir::Sem, name, caller)?, caller)?;
                self.inodes().retire(
                    |node| matches!(node, Node::SemSet(i) | Node::SemKeyLink(i) | Node::Semaphore(i, _) if *i == gone),
                );
                Ok(())
            }
            Target::Dir(Dir::Msg) => {
                let gone = family::remove::<Queues>(&self.id_name(Dir::Msg, name, caller)?, caller)?;
                self.inodes().retire(|node| match node {
                    Node::Queue(i) | Node::QueueSubDir(i, _) | Node::MsgKeyLink(i) => *i == gone,
                    Node::QueueFile { ident, .. } => *ident == gone,
                    _ => false,
                });
                Ok(())
            }
            Target::Dir(_) => Err(Error::NotPermitted),
            // `.recv/` and `.wait/` go with their queue: removing one alone
            // changes nothing.
            Target::Node(Node::Queue(_)) if msg::is_sub_dir(name) => Ok(()),
            _ => Err(Error::NotDirectory),
        }
    }

    fn is_directory(&self, ino: u64) -> bool {
        match self.target(ino) {
            Ok(Target::Dir(_)) => true,
            Ok(Target::Node(node)) => node.is_dir(),
            _ => false,
        }
    }

    pub fn access(&self, ino: u64, mask: i32, caller: &Caller) -> Result<()> {
        let want = Want::from_access_mask(mask);
        match self.target(ino)? {
            Target::Dir(dir) => {
                let attr = self.dir_attr(dir);
                let granted = u32::from(match caller.uid {
                    0 => 0o7,
                    uid if uid == attr.uid => attr.perm >> 6 & 0o7,
                    _ => attr.perm & 0o7,
                });
                if want.0 & !granted == 0 { Ok(()) } else { Err(Error::AccessDenied) }
            }
            Target::Node(node) => nodes::access(&node, want, caller),
            Target::Pending(pending) => pending.access(want, caller),
            Target::NamespaceRoot => Err(Error::NotFound),
        }
    }

    // ---- extended attributes ----

    fn is_mount_root(&self, ino: u64) -> bool {
        self.base == 0 && ino == inode::ROOT
    }

    /// Whether segment files are served by FUSE passthrough (the adapter
    /// decides, with the kernel; `user.ipcfs.segment_io` on the mount's root
    /// tells users).
    pub fn passthrough(&self) -> Arc<AtomicBool> {
        self.passthrough.clone()
    }

    fn xattr_node(&self, ino: u64) -> Result<Option<Node>> {
        Ok(match self.target(ino)? {
            Target::Node(node) => Some(node),
            Target::Pending(pending) => pending.created().map(Node::Segment),
            Target::Dir(_) | Target::NamespaceRoot => None,
        })
    }

    pub fn listxattr(&self, ino: u64) -> Result<Vec<u8>> {
        let names = match self.xattr_node(ino)? {
            Some(node) => nodes::xattr_names(&node)?,
            None if self.is_mount_root(ino) => vec![SEGMENT_IO],
            None => Vec::new(),
        };
        Ok(names.iter().flat_map(|n| n.bytes().chain([0])).collect())
    }

    pub fn getxattr(&self, ino: u64, name: &OsStr, caller: &Caller) -> Result<Vec<u8>> {
        let node = self.xattr_node(ino)?;
        // Only the user namespace is supported. Saying so for ACLs and
        // security labels (EOPNOTSUPP, not ENODATA) lets ls -l stop asking
        // for them after the first file: two round trips fewer per file.
        if !name.as_encoded_bytes().starts_with(b"user.") {
            return Err(Error::NotSupported);
        }
        let name = name.to_str().ok_or(Error::NoAttribute)?;
        if name == SEGMENT_IO && self.is_mount_root(ino) {
            let path = if self.passthrough.load(Ordering::Relaxed) { "passthrough" } else { "daemon" };
            return Ok(path.into());
        }
        let node = node.ok_or(Error::NoAttribute)?;
        nodes::xattr(&node, name, caller).map(String::into_bytes)
    }

    /// Only a queue's `user.ipc.qbytes` can be set; every other attribute
    /// ipcfs shows is the kernel's and read-only. `value` is None for removexattr.
    pub fn setxattr(&self, ino: u64, name: &OsStr, value: Option<&[u8]>, caller: &Caller) -> Result<()> {
        self.writable()?;
        let name = name.to_str().ok_or(Error::NotSupported)?;
        match (self.xattr_node(ino)?, value) {
            (Some(node), Some(value)) => nodes::set_xattr(&node, name, value, caller),
            (Some(node), None) if nodes::xattr_names(&node)?.contains(&name) => Err(Error::NotPermitted),
            (None, _) if matches!(self.target(ino)?, Target::Pending(_)) && shm::is_xattr_name(name) => {
                Err(Error::NotPermitted)
            }
            _ => Err(Error::NotSupported),
        }
    }

    /// df(1): shared memory in pages against kernel.shmall, segments against
    /// kernel.shmmni.
    pub fn statfs(&self) -> Result<StatFs> {
        let usage = crate::ipc::shm::usage()?;
        // kernel.shmall defaults to nearly 2^64 pages, which would overflow
        // df's arithmetic; no more than the machine's memory can be used.
        let memory = nix::unistd::sysconf(nix::unistd::SysconfVar::_PHYS_PAGES).ok().flatten().unwrap_or(i64::MAX);
        let shmall = Resource::Shmall.value().unwrap_or(u64::MAX).min(memory.max(0) as u64);
        let shmmni = Resource::Shmmni.value().unwrap_or(4096);
        Ok(StatFs {
            blocks: shmall,
            bfree: shmall.saturating_sub(usage.total_pages),
            files: shmmni,
            ffree: shmmni.saturating_sub(usage.used_ids),
            bsize: page_size(),
            namelen: NAME_MAX as u32,
        })
    }
}

fn name_str(name: &OsStr) -> Result<&str> {
    if name.len() > NAME_MAX {
        return Err(Error::NameTooLong);
    }
    // Every name ipcfs shows or accepts is ASCII.
    name.to_str().ok_or(Error::NotFound)
}

/// A name to create an object by: one that is not even UTF-8 is no key.
fn creation_name(name: &OsStr) -> Result<&str> {
    name_str(name).map_err(|e| if e == Error::NotFound { Error::Invalid } else { e })
}

fn page_size() -> u32 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().unwrap_or(4096) as u32
}

/// A kernel time in seconds; 0 (never set) shows as `fallback`.
fn kernel_time(seconds: i64, fallback: i64) -> SystemTime {
    let seconds = if seconds == 0 { fallback } else { seconds };
    UNIX_EPOCH + Duration::from_secs(seconds.max(0) as u64)
}
