//! Waiting in a blocking system call (`semop`, `msgrcv`, `msgsnd`) while
//! watching the caller.
//!
//! FUSE (as fuser 0.18 speaks it) does not tell the filesystem when a waiting
//! caller is interrupted or killed, so the daemon looks for itself. The call
//! blocks on the thread of the waiting operation itself (one thread per
//! wait). One watcher thread for the whole daemon looks at every waiting
//! caller's pending signals every [`SLICE`], through the caller's
//! /proc/<tid>/status kept open for the length of the wait (a pread, about
//! 2 µs), and wakes the waiting thread with a signal that makes its call fail
//! with EINTR when the caller has a signal due or the filesystem is stopping.
//! With nothing waiting, the watcher sleeps.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::signals::{Signals, signals_in};
use super::types::Stop;
use crate::ipc::proc::StatusFile;
use crate::ipc::wake::{self, Tid};
use crate::ipc::{Errno, errno_or};

/// How often waiting callers are looked at: an interrupted wait ends within this.
pub const SLICE: Duration = Duration::from_millis(100);

/// Stack of the watcher thread: it reads small /proc files and sends signals.
const WATCHER_STACK: usize = 64 * 1024;

/// One waiting call.
struct Waiter {
    /// The caller's /proc/<tid>/status; None when the caller cannot be seen
    /// (pid 0: outside the daemon's pid namespace), whose signals are unknown.
    status: Option<StatusFile>,
    stop: Stop,
    /// Under one lock, so that the thread is never woken after it has left
    /// its call (its id could then belong to another thread).
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Set while the thread is in (or about to enter) its call.
    running: Option<Tid>,
    /// The caller gave up, or the filesystem is stopping: do not start the
    /// call, or leave it.
    cancelled: bool,
}

impl Waiter {
    fn signals(&self) -> Signals {
        self.status.as_ref().map_or(Signals::None, signals_in)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks at the caller once: cancels the call when it should end, and
    /// wakes the thread while it is cancelled and still in its call
    /// (repeated every slice: a wake sent just before the thread entered its
    /// call would otherwise be lost).
    fn look(&self) {
        let mut state = self.state();
        if !state.cancelled && (self.stop.is_set() || self.signals() != Signals::None) {
            state.cancelled = true;
        }
        if let (true, Some(tid)) = (state.cancelled, state.running) {
            let _ = wake::wake(tid);
        }
    }
}

/// Every waiting call of the daemon, looked at by one thread.
struct Watcher {
    waiters: Mutex<BTreeMap<u64, Arc<Waiter>>>,
    /// Signalled when the first waiter comes.
    not_empty: Condvar,
    next: AtomicU64,
    started: AtomicBool,
}

static WATCHER: Watcher = Watcher {
    waiters: Mutex::new(BTreeMap::new()),
    not_empty: Condvar::new(),
    next: AtomicU64::new(0),
    started: AtomicBool::new(false),
};

impl Watcher {
    fn waiters(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Waiter>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the watcher thread if it is not running; an error if it
    /// cannot be started (the wait is then refused).
    fn ensure_started(&'static self) -> Result<(), Errno> {
        if self.started.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let spawned =
            std::thread::Builder::new().name("ipcfs-watch".into()).stack_size(WATCHER_STACK).spawn(|| self.watch());
        if let Err(e) = spawned {
            self.started.store(false, Ordering::SeqCst);
            return Err(errno_or(&e, Errno::EAGAIN));
        }
        Ok(())
    }

    fn watch(&self) {
        loop {
            let waiters: Vec<Arc<Waiter>> = {
                let mut waiters = self.waiters();
                while waiters.is_empty() {
                    waiters = self.not_empty.wait(waiters).unwrap_or_else(|p| p.into_inner());
                }
                waiters.values().cloned().collect()
            };
            std::thread::sleep(SLICE);
            for waiter in waiters {
                waiter.look();
            }
        }
    }

    fn add(&self, waiter: Arc<Waiter>) -> u64 {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.waiters().insert(key, waiter);
        self.not_empty.notify_one();
        key
    }

    fn remove(&self, key: u64) {
        self.waiters().remove(&key);
    }
}

/// Starts the watcher thread now. Called by the daemon before it serves:
/// a thread inherits the namespaces of the thread that made it, and one
/// started later by a wait in another IPC namespace would hold that
/// namespace alive for good.
pub fn start_watcher() -> Result<(), Errno> {
    WATCHER.ensure_started()
}

/// Runs `call`, which may block, on this thread, while the watcher looks at
/// the caller (thread `tid`) and at `stop`. Returns its result and what the
/// caller had pending when it returned: a caller with a fatal signal will
/// never see the result. A call that cannot be watched is not made: EINTR
/// for a caller that is gone, else the errno of what failed.
pub fn watched<T>(tid: u32, stop: &Stop, call: impl FnOnce() -> Result<T, Errno>) -> (Result<T, Errno>, Signals) {
    let status = match tid {
        0 => None,
        tid => match StatusFile::open(tid) {
            Ok(file) => Some(file),
            Err(Errno::ENOENT | Errno::ESRCH) => return (Err(Errno::EINTR), Signals::Fatal),
            Err(e) => return (Err(e), Signals::None),
        },
    };
    wake::install();
    if let Err(e) = WATCHER.ensure_started() {
        log::warn!("cannot start the thread that watches waiting callers: {e}");
        return (Err(e), Signals::None);
    }
    let waiter = Arc::new(Waiter { status, stop: stop.clone(), state: Mutex::new(State::default()) });
    let key = WATCHER.add(waiter.clone());
    let cancelled = {
        let mut state = waiter.state();
        state.running = Some(wake::current());
        state.cancelled
    };
    let result = if cancelled { Err(Errno::EINTR) } else { call() };
    waiter.state().running = None;
    WATCHER.remove(key);
    (result, waiter.signals())
}
