//! Has the caller given up? FUSE (as fuser 0.18 speaks it) does not tell the
//! filesystem when a waiting caller is interrupted or killed: the caller stays
//! inside the kernel until the filesystem replies. So a waiting operation
//! looks at the calling thread's pending signals in /proc/<tid>/status.
//!
//! An operation that did not wait asks a cheaper question, "is the caller
//! being killed?", of /proc/<tid>/stat, through a file kept open per recent
//! caller: a pread of it costs about 3 µs, where opening and reading status
//! costs about 10, as much as the whole FUSE round trip it would guard.
//!
//! The kernel layer reads the masks ([`crate::ipc::proc`]); this module
//! decides what they mean.

use crate::ipc::proc::{SignalMasks, StatusFile, thread_signals};

/// What is pending for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signals {
    /// Nothing that would interrupt a system call.
    None,
    /// A signal that interrupts the call (caught, or one that stops).
    Due,
    /// A signal that will end the process: the result of the call would
    /// reach nobody.
    Fatal,
}

/// Signals whose default action does not end the process: ignore (SIGCHLD,
/// SIGCONT, SIGURG, SIGWINCH) or stop (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU).
const NOT_FATAL_BY_DEFAULT: u64 = bit(17) | bit(18) | bit(23) | bit(28) | bit(19) | bit(20) | bit(21) | bit(22);

const fn bit(signal: u32) -> u64 {
    1 << (signal - 1)
}

/// The signal state of thread `tid`. A thread that cannot be seen (pid 0:
/// outside the daemon's pid namespace) counts as having nothing pending; one
/// that is gone counts as killed.
pub fn caller_signals(tid: u32) -> Signals {
    if tid == 0 {
        return Signals::None;
    }
    // One open and one read: this runs after every message received, so it
    // is kept to the fewest system calls.
    SignalMasks::read(tid).map_or(Signals::Fatal, classify)
}

/// The signal state of the thread whose status `file` is (kept open by a
/// wait): one pread. A thread that has gone counts as killed.
pub fn signals_in(file: &StatusFile) -> Signals {
    file.signals().map_or(Signals::Fatal, classify)
}

/// What pending signals mean, given the blocked, ignored and caught sets.
fn classify(SignalMasks { pending, blocked, ignored, caught }: SignalMasks) -> Signals {
    // SIGKILL can be neither blocked nor ignored.
    let due = (pending & !blocked & !ignored) | (pending & bit(9));
    if due == 0 {
        Signals::None
    } else if due & bit(9) != 0 || due & !caught & !NOT_FATAL_BY_DEFAULT != 0 {
        Signals::Fatal
    } else {
        Signals::Due
    }
}

/// Is thread `tid` being killed (or gone)? For operations that did not
/// wait: their result must not be handed to a caller that will never see it.
///
/// /proc/<tid>/stat shows only the thread's own pending signals, and only
/// the first 31; that is enough here, because a signal that kills the whole
/// process puts SIGKILL among every thread's own pending signals (the
/// kernel's complete_signal). Only a core-dumping signal sent to the process
/// rather than the thread would go unseen, and only while no thread has
/// taken it.
pub fn caller_dying(tid: u32) -> bool {
    if tid == 0 {
        return false;
    }
    thread_signals(tid).is_none_or(|masks| classify(masks) == Signals::Fatal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(pnd: u64, shd: u64, blk: u64, ign: u64, cgt: u64) -> String {
        format!(
            "Name:\tcat\nSigQ:\t0/1\nSigPnd:\t{pnd:016x}\nShdPnd:\t{shd:016x}\nSigBlk:\t{blk:016x}\nSigIgn:\t{ign:016x}\nSigCgt:\t{cgt:016x}\n"
        )
    }

    fn status_signals(text: &str) -> Signals {
        classify(SignalMasks::parse_status(text.as_bytes()))
    }

    #[test]
    fn nothing_pending() {
        assert_eq!(status_signals(&status(0, 0, 0, 0, 0)), Signals::None);
    }

    #[test]
    fn kill_is_always_fatal() {
        assert_eq!(status_signals(&status(bit(9), 0, 0, 0, 0)), Signals::Fatal);
        assert_eq!(status_signals(&status(0, bit(9), u64::MAX, 0, u64::MAX)), Signals::Fatal);
    }

    #[test]
    fn default_term_is_fatal_but_caught_term_is_due() {
        let sigint = bit(2);
        assert_eq!(status_signals(&status(0, sigint, 0, 0, 0)), Signals::Fatal);
        assert_eq!(status_signals(&status(0, sigint, 0, 0, sigint)), Signals::Due);
    }

    #[test]
    fn blocked_and_ignored_signals_do_not_interrupt() {
        let sigterm = bit(15);
        assert_eq!(status_signals(&status(sigterm, 0, sigterm, 0, 0)), Signals::None);
        assert_eq!(status_signals(&status(0, sigterm, 0, sigterm, 0)), Signals::None);
    }

    #[test]
    fn stop_signals_interrupt_without_killing() {
        assert_eq!(status_signals(&status(bit(20), 0, 0, 0, 0)), Signals::Due);
    }

    #[test]
    fn a_vanished_thread_counts_as_killed() {
        assert_eq!(caller_signals(u32::MAX - 1), Signals::Fatal);
        assert_eq!(caller_signals(0), Signals::None);
        assert!(caller_dying(u32::MAX - 1));
        assert!(!caller_dying(0));
    }

    fn stat_line(name: &str, pending: u64, blocked: u64, ignored: u64, caught: u64) -> String {
        let before: Vec<String> = (4..31).map(|n| n.to_string()).collect();
        format!("1234 ({name}) S {} {pending} {blocked} {ignored} {caught} 0 0 0 17 1", before.join(" "))
    }

    fn stat_signals(line: &[u8]) -> Signals {
        classify(SignalMasks::parse_stat(line))
    }

    #[test]
    fn stat_lines_are_read_past_any_command_name() {
        let kill = bit(9);
        assert_eq!(stat_signals(stat_line("cat", kill, 0, 0, 0).as_bytes()), Signals::Fatal);
        assert_eq!(stat_signals(stat_line("a) S 1 2 (b", kill, 0, 0, 0).as_bytes()), Signals::Fatal);
        assert_eq!(stat_signals(stat_line("a) S 1 2 (b", 0, 0, 0, 0).as_bytes()), Signals::None);
        let int = bit(2);
        assert_eq!(stat_signals(stat_line("cat", int, 0, 0, int).as_bytes()), Signals::Due);
        assert_eq!(stat_signals(stat_line("cat", int, int, 0, 0).as_bytes()), Signals::None);
    }

    #[test]
    fn this_thread_is_not_dying_and_the_answer_survives_a_kept_file() {
        let tid = std::process::id();
        assert!(!caller_dying(tid));
        assert!(!caller_dying(tid), "through the kept file");
    }
}
