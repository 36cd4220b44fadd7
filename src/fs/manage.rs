//! Changing the tree: unlink, mkdir, rmdir; access(2); extended
//! attributes; statfs.

use super::*;

impl IpcFs {
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
                pid: caller.tid,
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

    pub(super) fn is_directory(&self, ino: u64) -> bool {
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
                if want.within(granted) { Ok(()) } else { Err(Error::AccessDenied) }
            }
            Target::Node(node) => nodes::access(&node, want, caller),
            Target::Pending(pending) => pending.access(want, caller),
            Target::NamespaceRoot => Err(Error::NotFound),
        }
    }

    // ---- extended attributes ----

    pub(super) fn is_mount_root(&self, ino: u64) -> bool {
        self.base == 0 && ino == inode::ROOT
    }

    /// Whether segment files are served by FUSE passthrough (the adapter
    /// decides, with the kernel; `user.ipcfs.segment_io` on the mount's root
    /// tells users).
    pub fn passthrough(&self) -> Arc<AtomicBool> {
        self.passthrough.clone()
    }

    pub(super) fn xattr_node(&self, ino: u64) -> Result<Option<Node>> {
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
        if let Node::UsedObject(family, id) = node {
            let found = self.users_of(family, caller);
            return users::xattr(id, name, &found).map(String::into_bytes);
        }
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
        let usage = crate::ipc::shm::usage().map_err(Error::kernel("shmctl(SHM_INFO)"))?;
        // kernel.shmall defaults to nearly 2^64 pages, which would overflow
        // df's arithmetic; no more than the machine's memory can be used.
        let memory = crate::ipc::limits::physical_pages().unwrap_or(i64::MAX as u64);
        let shmall = Resource::Shmall.value().unwrap_or(u64::MAX).min(memory);
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
