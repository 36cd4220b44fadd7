//! Directories: opening, listing (readdir and readdirplus) and the fixed
//! directories' own attributes.
//!
//! A listing is taken whole when read from offset 0 and served from that
//! snapshot, so objects coming and going never make readdir skip or repeat an
//! entry. With readdirplus every entry handed to the kernel counts as a lookup.

use std::sync::Mutex;

use super::Target;
use super::error::{Error, Result};
use super::family;
use super::inode::{Dir, Node, Reading};
use super::msg::Queues;
use super::ns_tree::NsEntry;
use super::sem::Sets;
use super::shm::Segments;
use super::{
    Attr, BLOCK_SIZE, Caller, Entry, FIXED_TTL, FileKind, Handle, IpcFs, Listed, limits, metrics, msg, nodes, ns_tree,
    sem, users,
};

impl IpcFs {
    pub fn opendir(&self, ino: u64, caller: &Caller) -> Result<u64> {
        match self.target(ino)? {
            Target::Dir(_) => {}
            Target::Node(Node::SemSet(ident)) => sem::check_list(ident, caller)?,
            Target::Node(Node::Queue(ident) | Node::QueueSubDir(ident, _)) => msg::check_list(ident, caller)?,
            Target::Node(Node::UsedObject(..)) => {}
            _ => return Err(Error::NotDirectory),
        }
        let charge = self.charge_file(caller)?;
        Ok(self.add_handle(Handle::Dir(Mutex::new(Vec::new())), charge, ino))
    }

    /// Lists directory `ino` from `offset`, handing each entry to `add` with
    /// the offset of the entry after it until `add` says the buffer is full.
    /// With `plus` (readdirplus) every entry handed over counts as a lookup.
    pub fn readdir(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        plus: bool,
        caller: &Caller,
        add: &mut dyn FnMut(u64, &str, &Entry) -> bool,
    ) -> Result<()> {
        let target = self.target(ino)?;
        let handle = self.handle(fh)?;
        let Handle::Dir(listing) = &*handle else {
            return Err(Error::NotDirectory);
        };
        let mut listing = listing.lock().unwrap_or_else(|p| p.into_inner());
        if offset == 0 {
            *listing = self.list(ino, &target, caller)?;
        }
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        for (index, item) in listing.iter().enumerate().skip(start) {
            let is_dot = item.name == "." || item.name == "..";
            let mut entry = self.entry(item.attr);
            let counted = plus && !is_dot && matches!(item.target, Target::Node(_));
            entry.attr.ino = match &item.target {
                Target::Dir(_) => {
                    entry.ttl = FIXED_TTL;
                    item.attr.ino
                }
                Target::NamespaceRoot | Target::Pending(_) => item.attr.ino,
                Target::Node(node) if counted => self.inodes().remember(node),
                Target::Node(node) => self.inodes().peek(node),
            };
            if add(index as u64 + 1, &item.name, &entry) {
                if counted {
                    self.forget(entry.attr.ino, 1);
                }
                break;
            }
        }
        Ok(())
    }

    fn list(&self, ino: u64, target: &Target, caller: &Caller) -> Result<Vec<Listed>> {
        let fixed =
            |name: &str, dir: Dir| Listed { name: name.into(), target: Target::Dir(dir), attr: self.dir_attr(dir) };
        let node_dir = |name: &str, node: &Node, ino: u64| -> Result<Listed> {
            let attr = Attr { ino, ..nodes::attr(node)? };
            Ok(Listed { name: name.into(), target: Target::Node(node.clone()), attr })
        };
        let (mut items, children) = match target {
            Target::Dir(dir) => {
                let mut items = vec![fixed(".", *dir), fixed("..", dir.parent())];
                items.extend(self.children(*dir).map(|(name, child)| fixed(name, child)));
                let children = match dir {
                    Dir::Shm => family::list::<Segments>()?,
                    Dir::Sem => family::list::<Sets>()?,
                    Dir::Msg => family::list::<Queues>()?,
                    Dir::ByKeyShm => family::list_key_links::<Segments>()?,
                    Dir::ByKeySem => family::list_key_links::<Sets>()?,
                    Dir::ByKeyMsg => family::list_key_links::<Queues>()?,
                    Dir::Limits => limits::list()
                        .into_iter()
                        .map(|(name, node)| Ok((name, node.clone(), nodes::attr(&node)?)))
                        .collect::<Result<_>>()?,
                    Dir::Metrics => {
                        vec![(
                            metrics::FILE.into(),
                            Node::Metrics,
                            metrics::attr(caller, self.metrics_namespace(), self.mounted_at)?,
                        )]
                    }
                    Dir::ByPid => ns_tree::list_processes(caller),
                    Dir::ByName => ns_tree::list_names(self.all_namespaces()?, caller),
                    Dir::Namespaces => {
                        let members = ns_tree::list(self.all_namespaces()?);
                        items.extend(members.into_iter().map(|(name, entry, attr)| {
                            let target = match entry {
                                NsEntry::Own(node) => Target::Node(node),
                                NsEntry::Root => Target::NamespaceRoot,
                            };
                            Listed { name, target, attr }
                        }));
                        Vec::new()
                    }
                    Dir::UsersOf(family) => {
                        let found = self.users_of(*family, caller);
                        users::list(*family, &found)?
                    }
                    Dir::Root | Dir::ByKey | Dir::Users => Vec::new(),
                };
                (items, children)
            }
            Target::Node(node @ Node::SemSet(ident)) => {
                (vec![node_dir(".", node, ino)?, fixed("..", Dir::Sem)], sem::list_semaphores(*ident, caller)?)
            }
            Target::Node(node @ Node::Queue(ident)) => (
                vec![node_dir(".", node, ino)?, fixed("..", Dir::Msg)],
                msg::list_files(*ident, Reading::Browse, caller)?,
            ),
            Target::Node(node @ Node::QueueSubDir(ident, reading)) => {
                let queue = Node::Queue(*ident);
                let parent = node_dir("..", &queue, self.inodes().peek(&queue))?;
                (vec![node_dir(".", node, ino)?, parent], msg::list_files(*ident, *reading, caller)?)
            }
            Target::Node(node @ Node::UsedObject(family, id)) => {
                let found = self.users_of(*family, caller);
                let this = Listed {
                    name: ".".into(),
                    target: Target::Node(node.clone()),
                    attr: Attr { ino, ..users::dir_attr() },
                };
                (vec![this, fixed("..", Dir::UsersOf(*family))], users::list_object(*family, *id, &found)?)
            }
            _ => return Err(Error::NotDirectory),
        };
        items.extend(children.into_iter().map(|(name, node, attr)| Listed { name, target: Target::Node(node), attr }));
        Ok(items)
    }

    /// Whether an operation on `ino` (a queue directory, or a file of one
    /// type) may walk a long queue for `caller`, or (metrics/) every object
    /// of the namespace: the adapter then runs it off the event loops.
    pub fn may_walk(&self, ino: u64, caller: &Caller) -> bool {
        match self.target(ino) {
            Ok(Target::Node(Node::Queue(ident) | Node::QueueSubDir(ident, _))) => msg::is_long(ident, caller),
            // A type's bytes, or (opening a listed file) its snapshot.
            Ok(Target::Node(Node::QueueFile { ident, mtype, reading })) if mtype != 0 || reading == Reading::Browse => {
                msg::is_long(ident, caller)
            }
            // Made from every object (and every readable semaphore's
            // waiters): as long as the namespace is big.
            Ok(Target::Node(Node::Metrics) | Target::Dir(Dir::Metrics)) => true,
            // Every process of the namespace.
            Ok(Target::Node(Node::UsedObject(..) | Node::User { .. }) | Target::Dir(Dir::UsersOf(_))) => true,
            _ => false,
        }
    }

    pub(super) fn dir_entry(&self, dir: Dir) -> Entry {
        Entry { attr: self.dir_attr(dir), ttl: FIXED_TTL, entry_ttl: FIXED_TTL, forget: None }
    }

    /// The attributes of the tree's root (another namespace's, under `ns/`).
    pub fn root_attr(&self) -> Attr {
        self.dir_attr(Dir::Root)
    }

    pub(super) fn dir_attr(&self, dir: Dir) -> Attr {
        // shm/, sem/ and msg/ are like /tmp: anyone may create, only owners
        // may remove, which is the kernel's own rule for IPC objects. The root
        // of another namespace's tree is its owner's (see `namespaces`).
        let perm = match dir {
            Dir::Shm | Dir::Sem | Dir::Msg => 0o1777,
            Dir::Root if self.base != 0 => 0o500,
            _ => 0o555,
        };
        Attr {
            ino: self.base + dir.ino(),
            kind: FileKind::Directory,
            size: 0,
            perm,
            nlink: 2 + self.children(dir).count() as u32,
            uid: self.uid,
            gid: self.gid,
            atime: self.mounted_at,
            mtime: self.mounted_at,
            ctime: self.mounted_at,
            blksize: BLOCK_SIZE,
            stored: true,
        }
    }
}
