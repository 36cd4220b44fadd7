//! Attributes and open files: getattr and setattr, create, open, read,
//! write, fallocate and release.

use super::*;

impl IpcFs {
    pub fn getattr(&self, ino: u64, caller: &Caller) -> Result<Entry> {
        let mut attr = match self.target(ino)? {
            Target::Dir(dir) => return Ok(self.dir_entry(dir)),
            Target::Node(node @ Node::QueueFile { .. }) => msg::attr_for(&node, caller)?,
            Target::Node(node @ Node::Semaphore(..)) => sem::attr_for(&node, caller)?,
            Target::Node(Node::Metrics) => metrics::attr(caller, self.metrics_namespace(), self.mounted_at)?,
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
            Target::Node(Node::Metrics) => {
                metrics::access(want)?;
                let text = metrics::text(caller, self.metrics_namespace())?.into_bytes();
                let charge = self.budgets.charge_bytes(caller.uid, text.len())?;
                Handle::Metrics { text, _memory: charge }
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
            self.inodes().begin_write(ino, caller.tid)?;
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
            Handle::Metrics { text, .. } => {
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
            // Opened for reading only (see metrics::access).
            Handle::Metrics { .. } => Err(Error::BadHandle),
            Handle::Dir(_) => Err(Error::IsDirectory),
        }
    }

    pub(super) fn waiting_write(&self, written: Written, caller: &Caller) -> Result<Written> {
        match written {
            Outcome::Wait(wait) => Ok(Outcome::Wait(self.parked(wait, caller)?)),
            ready => Ok(ready),
        }
    }

    /// A wait about to be parked on a thread: it stops with the filesystem,
    /// and holds a unit of the caller's `user_waits` budget and a descriptor
    /// (the caller's /proc status, kept open while it waits): EAGAIN when
    /// either is used up, and nothing has been done yet.
    pub(super) fn parked<T>(&self, wait: Wait<T>, caller: &Caller) -> Result<Wait<T>> {
        let mut wait = wait.stopping_with(&self.stopping);
        if let Some((family, id, role)) = wait.used() {
            let number = self.next_fh.fetch_add(1, Ordering::Relaxed);
            let waiting = self.waiting.clone();
            let entry = inode::Use { family, id, tid: caller.tid, role };
            waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(number, entry);
            wait = wait.registered(Unregister { waiting, number });
        }
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
            Handle::Segment(open) => open.allocate(offset.checked_add(length).ok_or(Error::FileTooLarge)?, caller),
            Handle::Semaphore(_) | Handle::QueueFile(_) | Handle::Limit(_) | Handle::Metrics { .. } => {
                Err(Error::NotSupported)
            }
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
}

/// Takes a wait out of the daemon's list of waits when it ends.
struct Unregister {
    waiting: Arc<Mutex<HashMap<u64, inode::Use>>>,
    number: u64,
}

impl Drop for Unregister {
    fn drop(&mut self) {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.number);
    }
}
