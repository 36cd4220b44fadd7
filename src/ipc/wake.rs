//! Waking a thread out of a blocking system call. `msgrcv` and `msgsnd` have
//! no timeout, so a wait on them is ended by sending the waiting thread a
//! signal whose handler does nothing: installed without SA_RESTART, it makes
//! the call fail with EINTR (System V IPC calls are never restarted anyway).

use std::sync::Once;

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

use super::Errno;

const WAKE: Signal = Signal::SIGUSR2;

/// A thread of this process, by kernel thread id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tid(i32);

/// The calling thread.
pub fn current() -> Tid {
    Tid(nix::unistd::gettid().as_raw())
}

extern "C" fn do_nothing(_: libc::c_int) {}

/// Installs the wake handler once for the whole process.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let action = SigAction::new(SigHandler::Handler(do_nothing), SaFlags::empty(), SigSet::empty());
        // SAFETY: the handler does nothing, so it is async-signal-safe.
        if let Err(e) = unsafe { sigaction(WAKE, &action) } {
            log::error!("cannot install the {WAKE} handler: {e}");
        }
    });
}

/// Interrupts whatever blocking call thread `tid` is in. The caller must know
/// the thread is alive (it must not have exited, or its id could be reused).
pub fn wake(tid: Tid) -> Result<(), Errno> {
    let pid = nix::unistd::getpid().as_raw();
    // SAFETY: tgkill takes plain integers.
    Errno::result(unsafe { libc::syscall(libc::SYS_tgkill, pid, tid.0, WAKE as libc::c_int) })?;
    Ok(())
}
