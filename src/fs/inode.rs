//! The inode table: inode numbers for the objects the kernel has looked up.
//!
//! Numbers come from a counter and are never reused, so an id the kernel
//! recycles for a new object (which has a different [`Node`]) gets a new
//! inode. Each entry counts the kernel's lookups and goes away when the kernel
//! forgets it, so the table only holds what the kernel holds.

use std::collections::HashMap;

use super::budget::Charge;
use super::error::{Error, Result};
pub use super::uses::{ObjectKind, Role, Use};
use crate::ipc::Key;
use crate::ipc::msg::{MsgStat, MsqId};
use crate::ipc::sem::{SemId, SemStat};
use crate::ipc::shm::{ShmId, ShmStat};

/// Inode numbers of the fixed directories; dynamic numbers start above them.
pub const ROOT: u64 = 1;
const FIRST_DYNAMIC: u64 = 64;

/// The fixed directories of the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    Root,
    Shm,
    Sem,
    Msg,
    ByKey,
    ByKeyShm,
    ByKeySem,
    ByKeyMsg,
    Limits,
    /// `ns/` (with `-o all_namespaces`).
    Namespaces,
    /// `ns/by-pid/`
    ByPid,
    /// `ns/by-name/`
    ByName,
    /// `metrics/`
    Metrics,
    /// `users/`
    Users,
    /// `users/shm/`, `users/sem/`, `users/msg/`
    UsersOf(ObjectKind),
}

impl Dir {
    pub const ALL: [Dir; 17] = [
        Dir::Root,
        Dir::Shm,
        Dir::Sem,
        Dir::Msg,
        Dir::ByKey,
        Dir::ByKeyShm,
        Dir::ByKeySem,
        Dir::ByKeyMsg,
        Dir::Limits,
        Dir::Namespaces,
        Dir::ByPid,
        Dir::ByName,
        Dir::Metrics,
        Dir::Users,
        Dir::UsersOf(ObjectKind::Shm),
        Dir::UsersOf(ObjectKind::Sem),
        Dir::UsersOf(ObjectKind::Msg),
    ];

    /// The directory's inode number, counted from the first of its tree.
    pub fn ino(self) -> u64 {
        ROOT + Dir::ALL.iter().position(|d| *d == self).unwrap_or(0) as u64
    }

    pub fn from_ino(ino: u64) -> Option<Dir> {
        let index = usize::try_from(ino.checked_sub(ROOT)?).ok()?;
        Dir::ALL.get(index).copied()
    }

    pub fn parent(self) -> Dir {
        match self {
            Dir::Root
            | Dir::Shm
            | Dir::Sem
            | Dir::Msg
            | Dir::ByKey
            | Dir::Limits
            | Dir::Metrics
            | Dir::Users
            | Dir::Namespaces => Dir::Root,
            Dir::ByKeyShm | Dir::ByKeySem | Dir::ByKeyMsg => Dir::ByKey,
            Dir::ByPid | Dir::ByName => Dir::Namespaces,
            Dir::UsersOf(_) => Dir::Users,
        }
    }

    /// The fixed subdirectories and their names.
    pub fn children(self) -> &'static [(&'static str, Dir)] {
        match self {
            Dir::Root => &[
                ("shm", Dir::Shm),
                ("sem", Dir::Sem),
                ("msg", Dir::Msg),
                ("by-key", Dir::ByKey),
                ("limits", Dir::Limits),
                ("metrics", Dir::Metrics),
                ("users", Dir::Users),
            ],
            Dir::ByKey => &[("shm", Dir::ByKeyShm), ("sem", Dir::ByKeySem), ("msg", Dir::ByKeyMsg)],
            Dir::Namespaces => &[("by-pid", Dir::ByPid), ("by-name", Dir::ByName)],
            Dir::Users => &[
                ("shm", Dir::UsersOf(ObjectKind::Shm)),
                ("sem", Dir::UsersOf(ObjectKind::Sem)),
                ("msg", Dir::UsersOf(ObjectKind::Msg)),
            ],
            _ => &[],
        }
    }
}

/// What tells one segment from another that later gets the same id: the
/// fields the kernel fixes at creation, and the key as it was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShmIdent {
    pub id: ShmId,
    pub key: Key,
    pub cuid: u32,
    pub cgid: u32,
    pub cpid: i32,
    pub segsz: u64,
}

impl ShmIdent {
    pub fn of(stat: &ShmStat) -> ShmIdent {
        ShmIdent {
            id: stat.id,
            key: stat.perm.key,
            cuid: stat.perm.cuid,
            cgid: stat.perm.cgid,
            cpid: stat.cpid,
            segsz: stat.segsz,
        }
    }

    /// Whether `stat` describes the segment this ident was taken from. The
    /// key changes only one way: the kernel sets it to IPC_PRIVATE when it
    /// marks a segment for destruction.
    pub fn is(&self, stat: &ShmStat) -> bool {
        let now = ShmIdent::of(stat);
        let key_ok = now.key == self.key || (stat.is_dest() && now.key.is_private());
        key_ok && ShmIdent { key: self.key, ..now } == *self
    }
}

/// What tells one semaphore set from a later one with the same id. (A set's
/// key never changes: IPC_RMID destroys it at once.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SemIdent {
    pub id: SemId,
    pub key: Key,
    pub cuid: u32,
    pub cgid: u32,
    pub nsems: u64,
}

impl SemIdent {
    pub fn of(stat: &SemStat) -> SemIdent {
        SemIdent { id: stat.id, key: stat.perm.key, cuid: stat.perm.cuid, cgid: stat.perm.cgid, nsems: stat.nsems }
    }
}

/// What tells one message queue from a later one with the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MsgIdent {
    pub id: MsqId,
    pub key: Key,
    pub cuid: u32,
    pub cgid: u32,
}

impl MsgIdent {
    pub fn of(stat: &MsgStat) -> MsgIdent {
        MsgIdent { id: stat.id, key: stat.perm.key, cuid: stat.perm.cuid, cgid: stat.perm.cgid }
    }
}

/// One file of `limits/` (what each is and reads: `limits.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    Resource(Resource),
    /// The whole table, as `lsipc --global` prints it.
    Usage,
}

/// The resources `lsipc --global` lists, in its order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    Msgmni,
    Msgmax,
    Msgmnb,
    Shmmni,
    Shmall,
    Shmmax,
    Shmmin,
    Semmni,
    Semmns,
    Semmsl,
    Semopm,
    Semvmx,
}

/// What reading a queue file does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reading {
    /// `msg/<id>/<type|any>`: shows the queued messages, takes nothing.
    Browse,
    /// `msg/<id>/.recv/<type|any>`: receives one message per read, never waits.
    Receive,
    /// `msg/<id>/.wait/<type|any>`: receives, waiting for a message.
    Wait,
}

/// What a dynamic inode stands for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// `shm/<id>`
    Segment(ShmIdent),
    /// `by-key/shm/0x%08x`
    ShmKeyLink(ShmIdent),
    /// `sem/<id>/`
    SemSet(SemIdent),
    /// `sem/<id>/<num>`
    Semaphore(SemIdent, u16),
    /// `by-key/sem/0x%08x`
    SemKeyLink(SemIdent),
    /// `msg/<id>/`
    Queue(MsgIdent),
    /// `msg/<id>/.recv/` or `msg/<id>/.wait/` (never [`Reading::Browse`]).
    QueueSubDir(MsgIdent, Reading),
    /// `msg/<id>/any` (mtype 0) or `msg/<id>/<mtype>`, and the same under
    /// `.recv/` and `.wait/`.
    QueueFile { ident: MsgIdent, mtype: i64, reading: Reading },
    /// `by-key/msg/0x%08x`
    MsgKeyLink(MsgIdent),
    /// `metrics/ipc.prom`
    Metrics,
    /// `users/<family>/<id>/`: the processes using object `id` now.
    UsedObject(ObjectKind, i32),
    /// `users/<family>/<id>/<pid> -> /proc/<pid>`
    User { family: ObjectKind, id: i32, pid: u32 },
    /// `limits/<resource>` and `limits/usage`
    Limit(Limit),
    /// `ns/<inode> -> ..`: the namespace the mount's root shows.
    OwnNamespace,
    /// `ns/by-pid/<pid> -> ../<inode>`
    PidLink(u32),
    /// `ns/by-name/<host name> -> ../<inode>`
    NameLink { name: String, ns: u64 },
}

impl Node {
    /// Whether the node is shown as a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self, Node::SemSet(_) | Node::Queue(_) | Node::QueueSubDir(..) | Node::UsedObject(..))
    }

    /// Whether a write to the node's file may wait (a P, a send to a full
    /// queue). The kernel holds the inode's lock through a write, and the
    /// truncate of the next `echo N > file` (perhaps the V the write waits
    /// for) needs that lock: see [`InodeTable::remember_with`] and
    /// [`InodeTable::begin_write`] for how such a file keeps one inode number
    /// and yet never makes a V wait behind a P.
    pub fn writes_may_wait(&self) -> bool {
        matches!(self, Node::Semaphore(..) | Node::QueueFile { .. })
    }
}

/// What an inode number resolves to. `P` is what a file being created
/// stands for until its object exists (the model's pending segment): the
/// table itself knows no family.
#[derive(Clone, Debug)]
pub enum Target<P> {
    Dir(Dir),
    Node(Node),
    /// An object being created.
    Pending(P),
    /// `ns/<inode>/`: the root of another namespace's tree, whose inode
    /// number belongs to that tree (only ever in listings and lookups).
    NamespaceRoot,
}

struct Slot<P> {
    target: Target<P>,
    /// Open files for writing (files whose writes may wait only).
    writers: usize,
    /// The caller thread last told to look this inode up again (see
    /// [`InodeTable::begin_write`]).
    refused: Option<u32>,
    lookups: u64,
    /// The unit of its looker's budget a name the kernel may keep holds
    /// (see `Entry::forget`), given back when the kernel forgets it.
    _charge: Option<Charge>,
}

pub struct InodeTable<P> {
    /// The first inode number of this tree (see `namespaces::SLOT_SHIFT`).
    base: u64,
    next: u64,
    slots: HashMap<u64, Slot<P>>,
    by_node: HashMap<Node, u64>,
}

impl<P: Clone> Default for InodeTable<P> {
    fn default() -> Self {
        InodeTable::new()
    }
}

impl<P: Clone> InodeTable<P> {
    pub fn new() -> InodeTable<P> {
        InodeTable::starting_at(0)
    }

    /// A table whose numbers start at `base`.
    pub fn starting_at(base: u64) -> InodeTable<P> {
        InodeTable { base, next: base + FIRST_DYNAMIC, slots: HashMap::new(), by_node: HashMap::new() }
    }

    pub fn get(&self, ino: u64) -> Option<Target<P>> {
        if let Some(dir) = ino.checked_sub(self.base).and_then(Dir::from_ino) {
            return Some(Target::Dir(dir));
        }
        self.slots.get(&ino).map(|slot| slot.target.clone())
    }

    /// The inode for `node`, counting one lookup by the kernel.
    pub fn remember(&mut self, node: &Node) -> u64 {
        self.remember_with(node, || Ok(None)).unwrap_or_default()
    }

    /// [`InodeTable::remember`]; a new inode holds what `charge` gives
    /// until the kernel forgets it (and is not made if it fails).
    ///
    /// A node keeps its inode while the kernel holds it, with one exception:
    /// a file whose writes may wait ([`Node::writes_may_wait`]) that is open
    /// for writing gets a fresh inode of its own at each lookup, so that the
    /// truncate of a new `echo N > file` never queues behind a write that
    /// waits (it would hold the inode's lock). Its number then changes only
    /// while somebody has it open for writing.
    pub fn remember_with(&mut self, node: &Node, charge: impl FnOnce() -> Result<Option<Charge>>) -> Result<u64> {
        if let Some(&ino) = self.by_node.get(node) {
            if let Some(slot) = self.slots.get_mut(&ino) {
                if slot.writers == 0 || !node.writes_may_wait() {
                    slot.lookups += 1;
                    return Ok(ino);
                }
                let ino = self.insert_charged(Target::Node(node.clone()), 1, charge()?);
                return Ok(ino);
            }
        }
        let ino = self.insert_charged(Target::Node(node.clone()), 1, charge()?);
        self.by_node.insert(node.clone(), ino);
        Ok(ino)
    }

    /// A file of `ino` is opened for writing. If the inode is a node's own
    /// (the one lookups hand out) and another open file can already write
    /// to it, that one may be waiting in a write, holding the inode's lock,
    /// which the truncate of `echo N > file` would wait for (FUSE is not
    /// told of O_TRUNC): ESTALE, on which the kernel looks the name up again
    /// and gets an inode of its own (see [`InodeTable::remember_with`]).
    /// Those are never refused: only lookups at the same moment share one.
    ///
    /// A caller thread that opens the same inode again right after being
    /// refused did not look the name up (it reopens through /proc/self/fd or
    /// /dev/fd, which leads to the inode itself): it is let in, sharing the
    /// inode as descriptors that share an open file do.
    pub fn begin_write(&mut self, ino: u64, caller: u32) -> Result<()> {
        let Some(slot) = self.slots.get_mut(&ino) else { return Ok(()) };
        let Target::Node(node) = &slot.target else { return Ok(()) };
        if !node.writes_may_wait() {
            return Ok(());
        }
        let own = self.by_node.get(node) == Some(&ino);
        if slot.writers > 0 && own && slot.refused.take() != Some(caller) {
            slot.refused = Some(caller);
            return Err(Error::Stale);
        }
        slot.writers += 1;
        Ok(())
    }

    /// An open file of `ino` for writing is closed.
    pub fn end_write(&mut self, ino: u64) {
        if let Some(slot) = self.slots.get_mut(&ino) {
            slot.writers = slot.writers.saturating_sub(1);
        }
    }

    /// The inode for `node` without counting a lookup (plain readdir, whose
    /// entries the kernel does not count): an existing one if there is one.
    pub fn peek(&mut self, node: &Node) -> u64 {
        if let Some(&ino) = self.by_node.get(node) {
            return ino;
        }
        let ino = self.insert(Target::Node(node.clone()), 0);
        self.by_node.insert(node.clone(), ino);
        ino
    }

    pub fn remember_pending(&mut self, pending: P) -> u64 {
        self.insert(Target::Pending(pending), 1)
    }

    fn insert(&mut self, target: Target<P>, lookups: u64) -> u64 {
        self.insert_charged(target, lookups, None)
    }

    fn insert_charged(&mut self, target: Target<P>, lookups: u64, charge: Option<Charge>) -> u64 {
        let ino = self.next;
        self.next += 1;
        self.slots.insert(ino, Slot { target, lookups, writers: 0, refused: None, _charge: charge });
        ino
    }

    /// The kernel dropped `n` lookups of `ino`.
    pub fn forget(&mut self, ino: u64, n: u64) {
        let Some(slot) = self.slots.get_mut(&ino) else {
            return;
        };
        slot.lookups = slot.lookups.saturating_sub(n);
        if slot.lookups == 0 {
            if let Some(Slot { target: Target::Node(node), .. }) = self.slots.remove(&ino) {
                self.forget_mapping(&node, ino);
            }
        }
    }

    /// Stops handing out the inodes of the nodes `gone` picks: a later
    /// lookup of an equal node gets a new inode. The old ones live on until
    /// the kernel forgets them.
    pub fn retire(&mut self, gone: impl Fn(&Node) -> bool) {
        self.by_node.retain(|node, _| !gone(node));
    }

    fn forget_mapping(&mut self, node: &Node, ino: u64) {
        if self.by_node.get(node) == Some(&ino) {
            self.by_node.remove(node);
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(id: i32, cpid: i32) -> Node {
        Node::Segment(ShmIdent { id: ShmId(id), key: Key(7), cuid: 0, cgid: 0, cpid, segsz: 4096 })
    }

    #[test]
    fn fixed_dirs_round_trip() {
        for dir in Dir::ALL {
            assert_eq!(Dir::from_ino(dir.ino()), Some(dir));
        }
        assert_eq!(Dir::Root.ino(), ROOT);
        assert_eq!(Dir::from_ino(0), None);
        assert_eq!(Dir::from_ino(FIRST_DYNAMIC), None);
    }

    #[test]
    fn same_node_same_inode_until_forgotten() {
        let mut table = InodeTable::<()>::new();
        let a = table.remember(&seg(5, 1));
        assert_eq!(table.remember(&seg(5, 1)), a);
        table.forget(a, 1);
        assert!(matches!(table.get(a), Some(Target::Node(_))));
        table.forget(a, 1);
        assert!(table.get(a).is_none());
        assert!(table.is_empty());
        let b = table.remember(&seg(5, 1));
        assert_ne!(a, b, "numbers are never reused");
    }

    #[test]
    fn recycled_id_is_a_new_inode() {
        let mut table = InodeTable::<()>::new();
        let old = table.remember(&seg(5, 1));
        let new = table.remember(&seg(5, 2));
        assert_ne!(old, new);
    }

    #[test]
    fn a_key_only_ever_becomes_private_on_destruction() {
        use crate::ipc::IpcPerm;
        let mut stat = ShmStat {
            id: ShmId(3),
            perm: IpcPerm { key: Key(0x8000), uid: 0, gid: 0, cuid: 0, cgid: 0, mode: 0o600 },
            segsz: 4096,
            atime: 0,
            dtime: 0,
            ctime: 1,
            cpid: 10,
            lpid: 0,
            nattch: 0,
        };
        let ident = ShmIdent::of(&stat);
        assert!(ident.is(&stat));
        stat.perm.key = Key(0x8002);
        assert!(!ident.is(&stat), "another key is another segment");
        stat.perm.key = Key::PRIVATE;
        assert!(!ident.is(&stat), "private but not destroyed: another segment");
        stat.perm.mode |= crate::ipc::shm::SHM_DEST;
        assert!(ident.is(&stat), "marked for destruction: the kernel made the key private");
        stat.segsz = 8192;
        assert!(!ident.is(&stat));
    }

    #[test]
    fn a_semaphore_file_keeps_its_inode_unless_open_for_writing() {
        let mut table = InodeTable::<()>::new();
        let ident = SemIdent { id: SemId(1), key: Key(2), cuid: 0, cgid: 0, nsems: 1 };
        let node = Node::Semaphore(ident, 0);
        let a = table.remember(&node);
        assert_eq!(table.remember(&node), a, "nobody writes: the same inode");
        table.begin_write(a, 10).expect("the first writer");
        let b = table.remember(&node);
        assert_ne!(a, b, "open for writing: a fresh inode for the next looker");
        assert_eq!(table.begin_write(a, 11), Err(Error::Stale), "a second writer of the node's own inode");
        table.begin_write(b, 11).expect("the fresh inode is the looker's own");
        table.begin_write(b, 12).expect("a fresh inode is never refused");
        assert_eq!(table.begin_write(a, 12), Err(Error::Stale));
        table.begin_write(a, 12).expect("the same thread again at once: a reopen through /proc/self/fd");
        table.end_write(a);
        table.end_write(a);
        assert_eq!(table.remember(&node), a, "no writer left: the inode is handed out again");
        for (ino, n) in [(a, 3), (b, 1)] {
            table.forget(ino, n);
        }
        assert!(table.is_empty());
    }

    #[test]
    fn a_retired_node_gets_a_new_inode_and_the_old_one_lives_until_forgotten() {
        let mut table = InodeTable::<()>::new();
        let old = table.remember(&seg(5, 1));
        table.retire(|node| *node == seg(5, 1));
        let new = table.remember(&seg(5, 1));
        assert_ne!(old, new, "an equal node after retire");
        assert!(matches!(table.get(old), Some(Target::Node(_))), "the kernel still holds the old one");
        table.forget(old, 1);
        assert!(table.get(old).is_none());
        assert_eq!(table.remember(&seg(5, 1)), new, "the new one is handed out again");
    }

    #[test]
    fn a_table_starting_higher_keeps_to_its_own_numbers() {
        let base = 3 << 40;
        let mut table = InodeTable::<()>::starting_at(base);
        assert!(matches!(table.get(base + Dir::Shm.ino()), Some(Target::Dir(Dir::Shm))));
        assert!(table.get(Dir::Shm.ino()).is_none(), "another tree's fixed directory");
        let a = table.remember(&seg(5, 1));
        assert!(a >= base + FIRST_DYNAMIC && a < base + (1 << 40), "{a:#x}");
        assert!(InodeTable::<()>::new().get(base + Dir::Shm.ino()).is_none());
    }

    #[test]
    fn forgetting_unknown_or_too_much_is_harmless() {
        let mut table = InodeTable::<()>::new();
        table.forget(12345, 3);
        let a = table.remember(&seg(1, 1));
        table.forget(a, 10);
        assert_eq!(table.len(), 0);
    }
}
