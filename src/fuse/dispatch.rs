//! Where a handler's work runs: at once for the mount's own namespace, on
//! the namespace's thread for another (`-o all_namespaces`), or on a thread
//! of its own for an operation that waits.

use super::*;

impl IpcFuse {
    /// Which other namespace's member serves `ino`, if any, and whether
    /// `caller` may use it (nobody is checked without a caller).
    pub(super) fn route(&self, ino: INodeNo, caller: Option<&Caller>) -> Result<Option<Arc<Member>>, Error> {
        match &self.namespaces {
            None => Ok(None),
            Some(namespaces) => namespaces.route(ino.0, caller),
        }
    }

    /// Runs `job` with the model serving `ino`, if `caller` may use it: at
    /// once on this thread for the mount's own namespace, on the member's
    /// thread for another.
    pub(super) fn on<R: Fails>(&self, op: &'static str, ino: INodeNo, caller: Caller, reply: R, job: impl Job<R>) {
        let route = self.route(ino, Some(&caller));
        self.dispatch(op, route, reply, move |fs, reply| job(fs, &caller, reply));
    }

    /// [`IpcFuse::on`] for a call that may walk a long queue (listing it, the
    /// bytes of one type, discarding): in the mount's own namespace that runs
    /// on a thread of its own, charged as a wait to the caller, so that no
    /// caller can hold an event loop. (Another namespace's calls run on its
    /// own thread already.)
    pub(super) fn on_walk<R: Fails>(&self, op: &'static str, ino: INodeNo, caller: Caller, reply: R, job: impl Job<R>) {
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

    /// unlink and rmdir: `remove` the name in `parent`, on a thread of its
    /// own if it may `walk` a long queue (see [`IpcFuse::on_walk`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn remove_name(
        &self,
        op: &'static str,
        walk: bool,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        reply: ReplyEmpty,
        remove: fn(&IpcFs, u64, &OsStr, &Caller) -> Result<(), Error>,
    ) {
        let at = At::of(parent, req);
        let (caller, name) = (caller(req), name.to_os_string());
        let job = move |fs: &IpcFs, caller: &Caller, reply: ReplyEmpty| match fs
            .by_path(parent.0, remove(fs, parent.0, &name, caller))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(op, at.named(&name), e)),
        };
        if walk { self.on_walk(op, parent, caller, reply, job) } else { self.on(op, parent, caller, reply, job) }
    }

    /// readdir and readdirplus: the entries of directory `ino` from
    /// `offset`, as many as the reply holds.
    pub(super) fn list_dir<R: DirReply>(
        &self,
        op: &'static str,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: R,
    ) {
        let at = At::of(ino, req);
        self.on_walk(op, ino, caller(req), reply, move |fs, caller, mut reply| {
            let mut add = |next: u64, name: &str, e: &Entry| reply.add_entry(next, name, e);
            match fs.readdir(ino.0, fh.0, offset, R::PLUS, caller, &mut add) {
                Ok(()) => reply.done(),
                Err(e) => reply.fail(errno(op, at, e)),
            }
        });
    }

    /// getattr: as [`IpcFuse::on_walk`], except that the router lets anyone
    /// stat another namespace's root.
    pub(super) fn on_stat<R: Fails>(&self, op: &'static str, ino: INodeNo, caller: Caller, reply: R, job: impl Job<R>) {
        if self.namespaces.is_some() && Namespaces::anyone_may_stat(ino.0) {
            let route = self.route(ino, None);
            return self.dispatch(op, route, reply, move |fs, reply| job(fs, &caller, reply));
        }
        self.on_walk(op, ino, caller, reply, job)
    }

    /// Refuses what ipcfs never does (mknod, symlink, rename, link) with
    /// EPERM, or with what a kept name of an object that has gone answers
    /// ([`IpcFs::by_path`]).
    pub(super) fn refuse<R: Fails>(&self, op: &'static str, ino: INodeNo, req: &Request, name: &OsStr, reply: R) {
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
    pub(super) fn on_any<R: Fails>(
        &self,
        op: &'static str,
        ino: INodeNo,
        reply: R,
        job: impl FnOnce(&IpcFs, R) + Send + 'static,
    ) {
        self.dispatch(op, self.route(ino, None), reply, job);
    }

    pub(super) fn dispatch<R: Fails>(
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
    pub(super) fn on_bytes<R: Fails>(
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

/// What a handler hands to [`IpcFuse::on`]: the model call and the reply.
pub(super) trait Job<R>: FnOnce(&IpcFs, &Caller, R) + Send + 'static {}

impl<R, F: FnOnce(&IpcFs, &Caller, R) + Send + 'static> Job<R> for F {}

/// A listing's reply: plain entries (readdir) or entries with their
/// attributes (readdirplus).
pub(super) trait DirReply: Fails {
    const PLUS: bool;
    /// Adds an entry; true when the reply is full.
    fn add_entry(&mut self, next: u64, name: &str, e: &Entry) -> bool;
    fn done(self);
}

impl DirReply for ReplyDirectory {
    const PLUS: bool = false;
    fn add_entry(&mut self, next: u64, name: &str, e: &Entry) -> bool {
        self.add(INodeNo(e.attr.ino), next, file_attr(&e.attr).kind, name)
    }
    fn done(self) {
        self.ok()
    }
}

impl DirReply for ReplyDirectoryPlus {
    const PLUS: bool = true;
    fn add_entry(&mut self, next: u64, name: &str, e: &Entry) -> bool {
        self.add(INodeNo(e.attr.ino), next, name, &e.ttl, &file_attr(&e.attr), Generation(0))
    }
    fn done(self) {
        self.ok()
    }
}

/// The one thing every reply can do.
pub(super) trait Fails: Send + 'static {
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

/// Stack for a thread that runs one waiting operation (a semaphore P) or one
/// walk of a long queue: it makes system calls, reads small /proc files and
/// replies.
pub(super) const WAITER_STACK: usize = 256 * 1024;

/// Runs `f` with `reply` on a thread of its own; gives both back if no
/// thread can be started.
pub(super) fn spawn_with<R, F>(reply: R, f: F) -> Result<(), (R, F)>
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
pub(super) fn run_elsewhere<T: Send + 'static, R: Fails>(
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
