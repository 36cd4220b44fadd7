//! The router: which IPC namespace's model serves a request, on which
//! thread, and whether the caller may enter it (`-o all_namespaces`). The
//! model renders `ns/` from what the router says (`fs::ns_tree`).
//!
//! Namespaces are found the way `lsns` finds them: through the processes in
//! /proc that are in them.
//!
//! Each namespace other than the mount's own is a [`Member`]: an [`IpcFs`] of
//! its own, whose inode numbers start at its slot times 2^[`SLOT_SHIFT`], and
//! one thread that has joined the namespace and runs every operation on it.
//! setns moves only the calling thread, so the threads serving FUSE never
//! leave the mount's namespace; the threads an operation starts to wait on are
//! made from the member's thread and share its namespace.
//!
//! A member's thread holds its namespace alive, so the member must go when the
//! namespace's last process does: a watcher waits for the process the member
//! was found through to end, then looks for another, and retires the member
//! when there is none. A listing of `ns/` also retires members no process is
//! in anymore (a process can leave a namespace without ending).

use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsFd;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::fs::inode::Dir;
use crate::fs::ns_tree::NamespaceMembers;
use crate::fs::{Attr, Budgets, Caller, Error, IpcFs, Result};
use crate::ipc::ns::{self, Kind, Namespace, ProcessWatch, Stopper, current_inode};
use crate::ipc::{Errno, errno_or, sysctl};

/// Inode numbers of a member start at `slot << SLOT_SHIFT` (slot 0 is the
/// mount's own namespace): 2^40 inodes per namespace, 2^24 namespaces.
pub const SLOT_SHIFT: u32 = 40;
/// Slots are never reused; past the last one, no new namespace is served.
const LAST_SLOT: u64 = 1 << (64 - SLOT_SHIFT);
/// CAP_SYS_ADMIN: what setns asks of whoever joins a namespace.
const CAP_SYS_ADMIN: u32 = 21;
/// Stack of a watcher thread: it only waits and reads /proc.
const WATCHER_STACK: usize = 64 * 1024;
/// How long a listing of `by-name/` waits for the members' host names.
const NAME_WAIT: Duration = Duration::from_millis(100);

/// An operation to run on a member's thread; it gets the member's model, or
/// the error to answer with when the member is gone.
pub type Job = Box<dyn FnOnce(Result<&IpcFs>) + Send>;

/// Settings every member's model is made with (those of the mount).
#[derive(Clone, Debug)]
struct MemberSettings {
    read_only: bool,
    attr_timeout: Duration,
    /// The mount's budgets: a user's share is one, across namespaces.
    budgets: Arc<Budgets>,
    /// The mount's device, once mounted.
    device: Arc<OnceLock<u64>>,
}

pub struct Namespaces {
    /// The namespace the mount's root shows (the daemon's).
    own: u64,
    /// The daemon's UTS namespace: processes in another have a host name of
    /// their own (a container's), which names their IPC namespace.
    own_uts: Option<u64>,
    settings: MemberSettings,
    members: Mutex<Members>,
    /// For the watcher threads, which must not keep this alive.
    me: Weak<Namespaces>,
}

#[derive(Default)]
struct Members {
    by_ns: HashMap<u64, Arc<Member>>,
    by_slot: HashMap<u64, Arc<Member>>,
    /// Slots are never reused: a namespace that goes and one that comes
    /// later with the same inode number get different inode numbers.
    next_slot: u64,
}

/// Another IPC namespace, served by a thread of its own.
pub struct Member {
    ns: u64,
    slot: u64,
    /// The user owning the namespace's user namespace: besides holders of
    /// CAP_SYS_ADMIN, the one who may join it.
    owner: u32,
    fs: Arc<IpcFs>,
    /// Whether the member's thread has joined a UTS namespace other than
    /// the daemon's, so that the host name it sees is the container's.
    named: bool,
    /// The host name it saw when last asked.
    last_name: Mutex<Option<String>>,
    joined_at: Instant,
    /// Its watcher stops when this is dropped.
    watcher_stop: Mutex<Option<Stopper>>,
    /// None once retired.
    jobs: Mutex<Option<Sender<Job>>>,
}

impl Member {
    /// Runs `job` on the member's thread (or at once with an error if the
    /// member is gone).
    pub fn run(&self, job: Job) {
        let sent = match &*self.jobs.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(jobs) => jobs.send(job).map_err(|e| e.0),
            None => Err(job),
        };
        if let Err(job) = sent {
            job(Err(Error::NotFound));
        }
    }

    /// Whether `caller` may use this namespace's objects: only who could
    /// join it with setns (nsenter) may.
    fn may_enter(&self, caller: &Caller) -> Result<()> {
        if caller.uid == self.owner || caller.has_cap(CAP_SYS_ADMIN) { Ok(()) } else { Err(Error::AccessDenied) }
    }

    fn root_attr(&self) -> Attr {
        self.fs.root_attr()
    }

    /// Whether the member's host name may name it in `by-name/`: it has
    /// one of its own, and root made it. Anyone may make namespaces of their
    /// own with any host name (`unshare -Uiu`); those would hide the names of
    /// real containers, or stand in for one that is not running.
    fn may_be_named(&self) -> bool {
        self.named && self.owner == 0
    }

    /// Asks the member's thread for the host name it sees now.
    fn ask_host_name(&self) -> mpsc::Receiver<Option<String>> {
        let (answer, asked) = mpsc::sync_channel(1);
        self.run(Box::new(move |fs| {
            // kernel.hostname is the reading thread's UTS namespace's.
            let name = fs.ok().and_then(|_| sysctl::hostname().ok());
            let _ = answer.send(name);
        }));
        asked
    }
}

impl Namespaces {
    /// The calling thread must be in the namespace the mount's root shows.
    pub fn new(
        read_only: bool,
        attr_timeout: Duration,
        budgets: Arc<Budgets>,
        device: Arc<OnceLock<u64>>,
    ) -> Result<Arc<Namespaces>> {
        let own = current_inode(Kind::Ipc).map_err(Error::kernel("setns"))?;
        Ok(Arc::new_cyclic(|me| Namespaces {
            own,
            own_uts: current_inode(Kind::Uts).ok(),
            settings: MemberSettings { read_only, attr_timeout, budgets, device },
            members: Mutex::new(Members { next_slot: 1, ..Members::default() }),
            me: me.clone(),
        }))
    }

    fn members(&self) -> MutexGuard<'_, Members> {
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Which member inode `ino` belongs to (None: the mount's own namespace),
    /// if `caller` may use it. Without a caller (forget, release) nobody is
    /// checked.
    pub fn route(&self, ino: u64, caller: Option<&Caller>) -> Result<Option<Arc<Member>>> {
        let slot = ino >> SLOT_SHIFT;
        if slot == 0 {
            return Ok(None);
        }
        let member = self.members().by_slot.get(&slot).cloned().ok_or(Error::NotFound)?;
        if let Some(caller) = caller {
            member.may_enter(caller)?;
        }
        Ok(Some(member))
    }

    /// Whether anyone may stat `ino` without being let into its namespace:
    /// the root of another namespace's tree (`ns/<inode>`), as `ls -l ns/`
    /// shows it. What is inside is for those who may enter.
    pub fn anyone_may_stat(ino: u64) -> bool {
        ino >> SLOT_SHIFT != 0 && ino & ((1 << SLOT_SHIFT) - 1) == Dir::Root.ino()
    }

    /// Every other namespace a process is in now, as a member (joined if
    /// new); members whose namespace has no process left go.
    fn refresh(&self) -> Vec<Arc<Member>> {
        let started = Instant::now();
        let Some(found) = scan() else {
            return self.members().by_ns.values().cloned().collect();
        };
        // A member joined since the scan began (by a lookup on another
        // thread) may be missing from it without being gone.
        let gone: Vec<u64> = self
            .members()
            .by_ns
            .values()
            .filter(|m| !found.contains_key(&m.ns) && m.joined_at < started)
            .map(|m| m.slot)
            .collect();
        for slot in gone {
            self.retire(slot);
        }
        found.iter().filter(|(ns, _)| **ns != self.own).filter_map(|(ns, pids)| self.member_joined(*ns, pids)).collect()
    }

    /// The member for namespace `ns`, joined through one of `pids` if new.
    fn member_joined(&self, ns: u64, pids: &[u32]) -> Option<Arc<Member>> {
        let mut members = self.members();
        if let Some(member) = members.by_ns.get(&ns) {
            return Some(member.clone());
        }
        for &pid in pids {
            let Ok(namespace) = Namespace::of_process(pid, Kind::Ipc) else { continue };
            let Ok(watch) = ProcessWatch::new(pid) else { continue };
            // The pid may have been reused by a process elsewhere since the scan.
            if namespace.inode() != ns || namespace_of(pid) != Some(ns) {
                continue;
            }
            let uts = Namespace::of_process(pid, Kind::Uts).ok().filter(|uts| Some(uts.inode()) != self.own_uts);
            let slot = members.next_slot;
            if slot >= LAST_SLOT {
                log::warn!("cannot serve IPC namespace {ns}: {LAST_SLOT} namespaces served since mounting");
                return None;
            }
            match self.join(namespace, uts, slot) {
                Ok(member) => {
                    members.next_slot += 1;
                    members.by_ns.insert(ns, member.clone());
                    members.by_slot.insert(slot, member.clone());
                    drop(members);
                    self.start_watcher(&member, watch);
                    log::debug!("serving IPC namespace {ns} (found through process {pid})");
                    return Some(member);
                }
                Err(e) => {
                    log::warn!("cannot serve IPC namespace {ns}: {e}");
                    return None;
                }
            }
        }
        None
    }

    /// Makes the member for `namespace`: its model, and its thread, which
    /// joins the namespace (and `uts`, for the host name) before it runs
    /// anything.
    fn join(&self, namespace: Namespace, uts: Option<Namespace>, slot: u64) -> Result<Arc<Member>> {
        let owner = namespace.owner_uid().unwrap_or(0);
        let fs = IpcFs::new()
            .read_only(self.settings.read_only)
            .attr_timeout(self.settings.attr_timeout)
            .with_budgets(self.settings.budgets.clone())
            .with_device(self.settings.device.clone())
            .in_slot(slot << SLOT_SHIFT, owner);
        let fs = Arc::new(fs);
        let (jobs, queue) = mpsc::channel::<Job>();
        let (joined, entered) = mpsc::sync_channel(1);
        let model = fs.clone();
        let ns = namespace.inode();
        let named = uts.is_some();
        std::thread::Builder::new()
            .name("ipcfs-ns".into())
            .spawn(move || {
                let result = namespace.enter().and_then(|()| uts.map_or(Ok(()), |uts| uts.enter()));
                drop(namespace);
                let ok = result.is_ok();
                let _ = joined.send(result);
                if ok {
                    while let Some(job) = next_job(&queue) {
                        // A job that panics has dropped its reply, which
                        // answers EIO; the namespace's other callers go on.
                        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(&model))));
                        if ran.is_err() {
                            log::error!("an operation in IPC namespace {ns} panicked");
                        }
                    }
                }
            })
            .map_err(|e| Error::kernel("starting a namespace's thread")(errno_or(&e, Errno::EAGAIN)))?;
        entered.recv().unwrap_or(Err(Errno::EAGAIN)).map_err(Error::kernel("setns"))?;
        Ok(Arc::new(Member {
            ns,
            slot,
            owner,
            fs,
            named,
            last_name: Mutex::new(None),
            joined_at: Instant::now(),
            watcher_stop: Mutex::new(None),
            jobs: Mutex::new(Some(jobs)),
        }))
    }

    /// Waits for the processes of namespace `ns` to end, one after another;
    /// retires the member when none is left.
    /// It also stops when the member is retired otherwise.
    fn start_watcher(&self, member: &Member, first: ProcessWatch) {
        let (ns, slot) = (member.ns, member.slot);
        let (stop, stopped) = match ns::stopper() {
            Ok(pipe) => pipe,
            Err(e) => {
                log::warn!("cannot watch IPC namespace {ns}: {e}; it goes when a listing of ns/ no longer finds it");
                return;
            }
        };
        *member.watcher_stop.lock().unwrap_or_else(|p| p.into_inner()) = Some(stop);
        let me = self.me.clone();
        let watcher = move || {
            let mut watch = first;
            loop {
                if !watch.wait(stopped.as_fd()) {
                    return;
                }
                let Some(namespaces) = me.upgrade() else { return };
                if !namespaces.members().by_slot.contains_key(&slot) {
                    return;
                }
                match next_process(ns) {
                    Some(next) => watch = next,
                    None => {
                        namespaces.retire(slot);
                        return;
                    }
                }
            }
        };
        let spawned =
            std::thread::Builder::new().name("ipcfs-ns-watch".into()).stack_size(WATCHER_STACK).spawn(watcher);
        if let Err(e) = spawned {
            log::warn!("cannot watch IPC namespace {ns}: {e}; it goes when a listing of ns/ no longer finds it");
        }
    }

    /// The member in `slot` goes: its waits end, its files close, its thread
    /// ends and lets go of the namespace.
    fn retire(&self, slot: u64) {
        let member = {
            let mut members = self.members();
            let Some(member) = members.by_slot.remove(&slot) else { return };
            members.by_ns.remove(&member.ns);
            member
        };
        member.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        member.watcher_stop.lock().unwrap_or_else(|p| p.into_inner()).take();
        member.fs.destroy();
        log::debug!("IPC namespace {} has no process left", member.ns);
    }

    /// Unmount: every member goes.
    pub fn retire_all(&self) {
        let slots: Vec<u64> = self.members().by_slot.keys().copied().collect();
        for slot in slots {
            self.retire(slot);
        }
    }

    /// Ends every member's waits (the mount is going away).
    pub fn stop_waits(&self) {
        for member in self.members().by_slot.values() {
            member.fs.stop_waits();
        }
    }
}

impl NamespaceMembers for Namespaces {
    fn own(&self) -> u64 {
        self.own
    }

    fn members(&self) -> Vec<(u64, Attr)> {
        self.refresh().into_iter().map(|m| (m.ns, m.root_attr())).collect()
    }

    fn member(&self, ns: u64) -> Option<Attr> {
        let known = self.members().by_ns.get(&ns).cloned();
        let member = match known {
            Some(member) => member,
            None => scan().unwrap_or_default().get(&ns).and_then(|pids| self.member_joined(ns, pids))?,
        };
        Some(member.root_attr())
    }

    /// The namespaces whose processes have a host name of their own, by
    /// that name; a name two namespaces share names neither.
    fn host_names(&self) -> Vec<(String, u64)> {
        let members: Vec<Arc<Member>> = self.refresh().into_iter().filter(|m| m.may_be_named()).collect();
        // Asked all at once; a member busy for longer than NAME_WAIT answers
        // with the name it had last time, so that it cannot hold this up.
        let asked: Vec<_> = members.iter().map(|m| m.ask_host_name()).collect();
        let deadline = Instant::now() + NAME_WAIT;
        let mut named: BTreeMap<String, Option<u64>> = BTreeMap::new();
        for (member, answer) in members.iter().zip(asked) {
            let mut last = member.last_name.lock().unwrap_or_else(|p| p.into_inner());
            if let Ok(name) = answer.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                *last = name;
            }
            let usable = |n: &&String| !n.is_empty() && *n != "." && *n != ".." && !n.contains('/');
            if let Some(name) = last.as_ref().filter(usable) {
                named.entry(name.clone()).and_modify(|ns| *ns = None).or_insert(Some(member.ns));
            }
        }
        named.into_iter().filter_map(|(name, ns)| Some((name, ns?))).collect()
    }

    fn retire_all(&self) {
        Namespaces::retire_all(self)
    }

    fn stop_waits(&self) {
        Namespaces::stop_waits(self)
    }
}

/// How long a member's thread keeps looking for the next job (yielding the
/// CPU to anyone else who wants it) before it sleeps. Waking a sleeping
/// thread on another CPU cost 25-50 µs per request on the 2-vCPU VM this was
/// measured on, which made a stat in another namespace 3× one in the root's;
/// with this, the next request of a busy caller usually finds the thread
/// awake, and the two cost the same (docs/PERFORMANCE.md).
const SPIN: Duration = Duration::from_micros(60);

/// The next job for a member's thread; None once the member is retired.
fn next_job(queue: &mpsc::Receiver<Job>) -> Option<Job> {
    let start = std::time::Instant::now();
    loop {
        match queue.try_recv() {
            Ok(job) => return Some(job),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) if start.elapsed() < SPIN => std::thread::yield_now(),
            Err(mpsc::TryRecvError::Empty) => return queue.recv().ok(),
        }
    }
}

/// A process still in namespace `ns`, watched.
fn next_process(ns: u64) -> Option<ProcessWatch> {
    let pids = scan()?.remove(&ns)?;
    pids.into_iter().find_map(|pid| {
        let watch = ProcessWatch::new(pid).ok()?;
        (namespace_of(pid) == Some(ns)).then_some(watch)
    })
}

/// Every IPC namespace a process is in, with its processes (ascending);
/// None if /proc cannot be read.
fn scan() -> Option<BTreeMap<u64, Vec<u32>>> {
    ns::processes_by_namespace(Kind::Ipc)
}

/// The IPC namespace process `pid` is in now.
fn namespace_of(pid: u32) -> Option<u64> {
    ns::namespace_of(pid, Kind::Ipc)
}
