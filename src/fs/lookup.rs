//! Names: lookups, what the kernel may keep of them, and inode lifetimes.
//!
//! A lookup answers from the kernel now and remembers the node in the
//! inode table; the kernel keeps a segment's own name (`shm/<id>`) and a
//! limit's for [`NAME_TTL`], every other name not at all. Operations that
//! reach an inode by a kept name check that it still stands for its object
//! ([`IpcFs::by_path`]).

use super::ns_tree::NsEntry;
use super::*;

impl IpcFs {
    pub fn lookup(&self, parent: u64, name: &OsStr, caller: &Caller) -> Result<Entry> {
        let name = name_str(name)?;
        let (node, attr) = match self.target(parent)? {
            Target::Dir(dir) => {
                if let Some((_, child)) = self.children(dir).find(|(n, _)| *n == name) {
                    return Ok(self.dir_entry(child));
                }
                match dir {
                    Dir::Shm => family::lookup::<Segments>(name)?,
                    Dir::Sem => {
                        family::lookup::<Sets>(name).or_else(|e| self.lookup_created(Dir::Sem, name, caller, e))?
                    }
                    Dir::Msg => {
                        family::lookup::<Queues>(name).or_else(|e| self.lookup_created(Dir::Msg, name, caller, e))?
                    }
                    Dir::ByKeyShm => family::lookup_key_link::<Segments>(name)?,
                    Dir::ByKeySem => family::lookup_key_link::<Sets>(name)?,
                    Dir::ByKeyMsg => family::lookup_key_link::<Queues>(name)?,
                    Dir::Limits => {
                        let node = limits::lookup(name)?;
                        let attr = nodes::attr(&node)?;
                        (node, attr)
                    }
                    Dir::Namespaces => match ns_tree::lookup(self.all_namespaces()?, name)? {
                        (NsEntry::Own(node), attr) => (node, attr),
                        // Not kept: the namespace may go, and its number come back.
                        (_, attr) => return Ok(self.entry(attr)),
                    },
                    Dir::Metrics if name == metrics::FILE => {
                        (Node::Metrics, metrics::attr(caller, self.metrics_namespace(), self.mounted_at)?)
                    }
                    Dir::UsersOf(family) => users::lookup(family, name, &self.users_of(family, caller))?,
                    Dir::ByPid => ns_tree::lookup_process(name, caller)?,
                    Dir::ByName => ns_tree::lookup_name(self.all_namespaces()?, name, caller)?,
                    _ => return Err(Error::NotFound),
                }
            }
            Target::Node(Node::SemSet(ident)) => sem::lookup_semaphore(ident, name, caller)?,
            Target::Node(Node::UsedObject(family, id)) => {
                users::lookup_user(family, id, name, &self.users_of(family, caller))?
            }
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
    pub(super) fn entry(&self, attr: Attr) -> Entry {
        Entry { attr, ttl: self.live_ttl, entry_ttl: self.live_ttl, forget: None }
    }

    /// Whether the segment `ino` stands for is still there, gone, or gone
    /// with another segment in its id (`None` for every other node: only a
    /// segment's name is kept by the kernel, see [`NAME_TTL`]).
    pub(super) fn presence(&self, ino: u64) -> Option<Presence> {
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
    pub(super) fn lookup_created(
        &self,
        dir: Dir,
        name: &str,
        caller: &Caller,
        otherwise: Error,
    ) -> Result<(Node, Attr)> {
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
                    c.pid == caller.tid && c.dir == dir && c.name == name && c.at.elapsed() < JUST_CREATED_FOR
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
    pub(super) fn id_name(&self, dir: Dir, name: &str, caller: &Caller) -> Result<String> {
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
    pub(super) fn children(&self, dir: Dir) -> impl Iterator<Item = (&'static str, Dir)> {
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
    pub(super) fn remember(&self, node: &Node, mut attr: Attr, caller: &Caller) -> Result<Entry> {
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
}
