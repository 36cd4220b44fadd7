//! Waiting in a system call that has no timeout (`msgrcv`, `msgsnd`) while
//! watching the caller: the call runs on a worker thread, and this thread
//! looks at the caller's signals every [`SLICE`]; when the caller has a
//! signal due (or the filesystem is stopping) it wakes the worker, whose call
//! then fails with EINTR.

use std::sync::mpsc::{RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::signals::{Signals, caller_signals};
use crate::ipc::Errno;
use crate::ipc::wake::{self, Tid};

/// How often the caller is looked at: an interrupted wait ends within this.
pub const SLICE: Duration = Duration::from_millis(100);

/// The worker's state, shared under one lock so that it is never woken after
/// it has finished (its thread id could then belong to another thread).
#[derive(Default)]
struct Worker {
    /// Set while the worker is in (or about to enter) its call.
    running: Option<Tid>,
    /// The waiter gave up: do not start the call, or leave it.
    cancelled: bool,
}

/// Runs `call` on a worker thread until it returns. Returns its result and
/// what the caller (thread `tid`) had pending when it returned: a caller with
/// a fatal signal will never see the result.
pub fn watched<T: Send + 'static>(
    tid: u32,
    stop: &dyn Fn() -> bool,
    call: impl FnOnce() -> Result<T, Errno> + Send + 'static,
) -> (Result<T, Errno>, Signals) {
    wake::install();
    let worker = Arc::new(Mutex::new(Worker::default()));
    let (done, result) = channel();
    let shared = worker.clone();
    let spawned = std::thread::Builder::new().name("ipcfs-call".into()).stack_size(64 * 1024).spawn(move || {
        {
            let mut w = shared.lock().unwrap_or_else(|p| p.into_inner());
            if w.cancelled {
                let _ = done.send(Err(Errno::EINTR));
                return;
            }
            w.running = Some(wake::current());
        }
        let outcome = call();
        shared.lock().unwrap_or_else(|p| p.into_inner()).running = None;
        let _ = done.send(outcome);
    });
    if let Err(e) = spawned {
        log::error!("cannot start a thread for a waiting call: {e}");
        return (Err(Errno::EAGAIN), Signals::None);
    }
    loop {
        match result.recv_timeout(SLICE) {
            Ok(outcome) => return (outcome, caller_signals(tid)),
            Err(RecvTimeoutError::Disconnected) => return (Err(Errno::EINTR), caller_signals(tid)),
            Err(RecvTimeoutError::Timeout) => {
                let mut w = worker.lock().unwrap_or_else(|p| p.into_inner());
                if !w.cancelled && (stop() || caller_signals(tid) != Signals::None) {
                    w.cancelled = true;
                }
                // Repeated every slice: a wake sent just before the worker
                // entered its call would otherwise be lost.
                if let (true, Some(tid)) = (w.cancelled, w.running) {
                    let _ = wake::wake(tid);
                }
            }
        }
    }
}
