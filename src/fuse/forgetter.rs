//! Names the kernel need not keep, dropped from a thread of its own.

use super::*;

/// Tells the kernel to let go of names it need not keep ([`Entry::forget`]),
/// from a thread of its own: a notification about a directory waits for that
/// directory's lock, which a lookup being answered may hold. It drops a
/// queue's directory entry (`msg/<id>`) and with it every unused name in it,
/// so that one notification serves every name looked up there meanwhile.
/// (The kernel asks again at the next use anyway: nothing is cached.) What
/// waits here is bounded by the budget for names (`Spend::Name`). It also
/// drops the kept name of a segment removed behind the mount's back while a
/// file of it is open (see `IpcFs::getattr`).
#[derive(Clone)]
pub struct Forgetter {
    notifier: Arc<OnceLock<Notifier>>,
    dirs: Option<Sender<(u64, i32)>>,
}

/// When [`Forgetter`] drops a batch of names the second time.
pub(super) const FORGET_AGAIN_AFTER: std::time::Duration = std::time::Duration::from_millis(50);

impl Forgetter {
    pub(super) fn start() -> Forgetter {
        let notifier: Arc<OnceLock<Notifier>> = Arc::default();
        let (dirs, to_forget) = mpsc::channel::<(u64, i32)>();
        let theirs = notifier.clone();
        let started =
            std::thread::Builder::new().name("ipcfs-forget".into()).stack_size(WAITER_STACK).spawn(move || {
                let drop_all = |batch: &BTreeSet<(u64, i32)>| {
                    for (parent, id) in batch {
                        if let Some(notifier) = theirs.get() {
                            // ENOENT: the kernel no longer has it.
                            let _ = notifier.inval_entry(INodeNo(*parent), OsStr::new(&id.to_string()));
                        }
                    }
                };
                // Each batch is dropped twice: at once, and again a moment
                // later, for a name the kernel was still installing under
                // the directory when the first drop came (it would then stay
                // under the dropped directory until memory runs low).
                let mut again: VecDeque<(Instant, BTreeSet<(u64, i32)>)> = VecDeque::new();
                loop {
                    let wait = again.front().map(|(at, _)| at.saturating_duration_since(Instant::now()));
                    let next = match wait {
                        Some(wait) => to_forget.recv_timeout(wait),
                        None => to_forget.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                    };
                    match next {
                        Ok(first) => {
                            let batch: BTreeSet<_> = std::iter::once(first).chain(to_forget.try_iter()).collect();
                            drop_all(&batch);
                            again.push_back((Instant::now() + FORGET_AGAIN_AFTER, batch));
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            if let Some((_, batch)) = again.pop_front() {
                                drop_all(&batch);
                            }
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            });
        if let Err(e) = &started {
            log::warn!("cannot start the thread that lets the kernel forget names: {e}");
        }
        Forgetter { notifier, dirs: started.ok().map(|_| dirs) }
    }

    /// Where the session's notifier goes once the session exists.
    pub fn set_notifier(&self, notifier: Notifier) {
        let _ = self.notifier.set(notifier);
    }

    pub(super) fn forget(&self, dir: (u64, i32)) {
        if let Some(dirs) = &self.dirs {
            let _ = dirs.send(dir);
        }
    }
}
