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
//! msg/<id>/any, msg/<id>/<type>, msg/<id>/.recv/…, .wait/…   one directory per queue (msg/)
//! by-key/{shm,sem,msg}/0x%08x -> ../../{shm,sem,msg}/<id>  for objects with a key (family.rs)
//! limits/      the namespace's IPC limits      (limits.rs)
//! ns/          every IPC namespace, with -o all_namespaces (ns_tree.rs; served by crate::router)
//! ```
//!
//! One `IpcFs` serves one IPC namespace: the one of the thread calling it.
//! Its methods are split by operation: `lookup.rs`, `files.rs`, `manage.rs`,
//! `listing.rs`.

#![forbid(unsafe_code)]

pub mod access;
mod attr;
pub mod budget;
pub mod error;
mod family;
mod files;
pub mod inode;
mod limits;
use limits::Resource;
mod listing;
mod lookup;
mod manage;
mod metrics;
mod msg;
pub mod names;
mod nodes;
pub mod ns_tree;
mod sem;
mod shm;
pub mod signals;
mod types;
mod users;
mod uses;
pub mod waiting;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::ipc::Errno;
pub use access::{Caller, Want};
pub use attr::BLOCK_SIZE;
pub use budget::{Budgets, Charge, Spend, UserBudget};
pub use error::{Error, Result};
use inode::{Dir, Node, Reading};
use msg::OpenQueueFile;
use msg::Queues;
use ns_tree::NamespaceMembers;
use sem::OpenSemaphore;
use sem::Sets;
use shm::{OpenSegment, PendingSegment, Segments};

/// What an inode number resolves to, in this model.
type Target = inode::Target<Arc<PendingSegment>>;
type InodeTable = inode::InodeTable<Arc<PendingSegment>>;
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
const NAME_MAX: usize = 255;
/// One directory entry of a listing, before it gets an inode number.
#[derive(Clone, Debug)]
struct Listed {
    name: String,
    target: Target,
    attr: Attr,
}

enum Handle {
    Segment(OpenSegment),
    Semaphore(OpenSemaphore),
    QueueFile(OpenQueueFile),
    /// `limits/<resource>` or `limits/usage`: read fresh at every read.
    Limit(limits::Limit),
    /// `metrics/ipc.prom`: the text made at the open, with the opener's
    /// memory it holds.
    Metrics {
        text: Vec<u8>,
        _memory: Charge,
    },
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
    namespaces: Option<Arc<dyn NamespaceMembers>>,
    /// See [`IpcFs::passthrough`].
    passthrough: Arc<AtomicBool>,
    /// How many files and directories are open on each inode.
    open_inodes: Mutex<HashMap<u64, usize>>,
    /// The waits callers have parked here, by a number of their own (for
    /// `users/`).
    waiting: Arc<Mutex<HashMap<u64, inode::Use>>>,
    /// The mount's device, once mounted (for `users/`: mappings of its files).
    device: Arc<std::sync::OnceLock<u64>>,
}

impl Default for IpcFs {
    fn default() -> Self {
        IpcFs::new()
    }
}

impl IpcFs {
    pub fn new() -> IpcFs {
        let (uid, gid) = crate::ipc::creds::effective_ids();
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
            uid,
            gid,
            passthrough: Arc::new(AtomicBool::new(false)),
            open_inodes: Mutex::new(HashMap::new()),
            waiting: Arc::default(),
            device: Arc::default(),
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
    pub fn with_namespaces(mut self, namespaces: Arc<dyn NamespaceMembers>) -> IpcFs {
        self.namespaces = Some(namespaces);
        self
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

    fn all_namespaces(&self) -> Result<&dyn NamespaceMembers> {
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

    /// The namespace to label metrics with, when the mount shows several.
    fn metrics_namespace(&self) -> Option<u64> {
        let several = self.namespaces.is_some() || self.base != 0;
        several.then(|| crate::ipc::ns::current_inode(crate::ipc::ns::Kind::Ipc).ok()).flatten()
    }

    /// The uses of objects by callers through the mount that the daemon
    /// knows of: open segment files and parked waits.
    fn known_uses(&self) -> Vec<inode::Use> {
        let handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        let open = handles.values().filter_map(|held| match &*held.handle {
            Handle::Segment(open) => open.user().map(|(id, tid)| inode::Use {
                family: inode::ObjectKind::Shm,
                id,
                tid,
                role: inode::Role::Open,
            }),
            _ => None,
        });
        let mut uses: Vec<inode::Use> = open.collect();
        drop(handles);
        uses.extend(self.waiting.lock().unwrap_or_else(|p| p.into_inner()).values().copied());
        uses
    }

    /// The mount's device, set once it is mounted (shared with the trees
    /// of other namespaces).
    pub fn with_device(mut self, device: Arc<std::sync::OnceLock<u64>>) -> IpcFs {
        self.device = device;
        self
    }

    /// The users of every object of `family`, as `caller` may see them.
    fn users_of(&self, family: inode::ObjectKind, caller: &Caller) -> users::Users {
        let known = self.known_uses();
        let segment = |ino: u64| match self.inodes().get(ino) {
            Some(Target::Node(Node::Segment(ident))) => Some(ident.id.0),
            _ => None,
        };
        let mapped = self.device.get().map(|&device| users::Mapped { device, segment: &segment });
        users::scan(family, &known, mapped.as_ref(), caller)
    }

    /// Whether some file or directory is open on `ino`.
    fn is_open(&self, ino: u64) -> bool {
        self.open_inodes.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&ino)
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
    crate::ipc::limits::page_size()
}
