//! The daemon's own process: the signals that stop it, and leaving the
//! terminal it was started from.

use std::fs::OpenOptions;
use std::io;

use nix::sys::signal::SigSet;
pub use nix::sys::signal::Signal;

use super::Errno;

/// SIGINT, SIGTERM and SIGHUP, blocked in every thread so that only the one
/// that [waits](StopSignals::wait) for them receives them.
#[derive(Debug)]
pub struct StopSignals(SigSet);

impl StopSignals {
    /// Blocks the stop signals in the calling thread, and so in every thread
    /// it starts afterwards (a thread inherits the mask): call it before any
    /// other thread starts.
    pub fn block() -> Result<StopSignals, Errno> {
        let mut set = SigSet::empty();
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            set.add(signal);
        }
        set.thread_block()?;
        Ok(StopSignals(set))
    }

    /// Waits for the next stop signal.
    pub fn wait(&self) -> Result<Signal, Errno> {
        self.0.wait()
    }
}

/// Lets go of the terminal: a session of its own, `/` as working directory,
/// stdin and stdout (and stderr unless `keep_stderr`) on /dev/null.
pub fn leave_terminal(keep_stderr: bool) -> io::Result<()> {
    nix::unistd::setsid()?;
    std::env::set_current_dir("/")?;
    let null = OpenOptions::new().read(true).write(true).open("/dev/null")?;
    nix::unistd::dup2_stdin(&null)?;
    nix::unistd::dup2_stdout(&null)?;
    if !keep_stderr {
        nix::unistd::dup2_stderr(&null)?;
    }
    Ok(())
}
