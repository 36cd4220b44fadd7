//! Has the caller given up? FUSE (as fuser 0.18 speaks it) does not tell the
//! filesystem when a waiting caller is interrupted or killed: the caller stays
//! inside the kernel until the filesystem replies. So a waiting operation
//! looks at the calling thread's pending signals in /proc/<tid>/status.

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
    match std::fs::read_to_string(format!("/proc/{tid}/status")) {
        Ok(text) => parse_status(&text),
        Err(_) => Signals::Fatal,
    }
}

/// Reads SigPnd, ShdPnd, SigBlk, SigIgn and SigCgt from a status text.
pub fn parse_status(text: &str) -> Signals {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    let pending = field("SigPnd") | field("ShdPnd");
    // SIGKILL can be neither blocked nor ignored.
    let due = (pending & !field("SigBlk") & !field("SigIgn")) | (pending & bit(9));
    if due == 0 {
        Signals::None
    } else if due & bit(9) != 0 || due & !field("SigCgt") & !NOT_FATAL_BY_DEFAULT != 0 {
        Signals::Fatal
    } else {
        Signals::Due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(pnd: u64, shd: u64, blk: u64, ign: u64, cgt: u64) -> String {
        format!(
            "Name:\tcat\nSigQ:\t0/1\nSigPnd:\t{pnd:016x}\nShdPnd:\t{shd:016x}\nSigBlk:\t{blk:016x}\nSigIgn:\t{ign:016x}\nSigCgt:\t{cgt:016x}\n"
        )
    }

    #[test]
    fn nothing_pending() {
        assert_eq!(parse_status(&status(0, 0, 0, 0, 0)), Signals::None);
    }

    #[test]
    fn kill_is_always_fatal() {
        assert_eq!(parse_status(&status(bit(9), 0, 0, 0, 0)), Signals::Fatal);
        assert_eq!(parse_status(&status(0, bit(9), u64::MAX, 0, u64::MAX)), Signals::Fatal);
    }

    #[test]
    fn default_term_is_fatal_but_caught_term_is_due() {
        let sigint = bit(2);
        assert_eq!(parse_status(&status(0, sigint, 0, 0, 0)), Signals::Fatal);
        assert_eq!(parse_status(&status(0, sigint, 0, 0, sigint)), Signals::Due);
    }

    #[test]
    fn blocked_and_ignored_signals_do_not_interrupt() {
        let sigterm = bit(15);
        assert_eq!(parse_status(&status(sigterm, 0, sigterm, 0, 0)), Signals::None);
        assert_eq!(parse_status(&status(0, sigterm, 0, sigterm, 0)), Signals::None);
    }

    #[test]
    fn stop_signals_interrupt_without_killing() {
        assert_eq!(parse_status(&status(bit(20), 0, 0, 0, 0)), Signals::Due);
    }

    #[test]
    fn a_vanished_thread_counts_as_killed() {
        assert_eq!(caller_signals(u32::MAX - 1), Signals::Fatal);
        assert_eq!(caller_signals(0), Signals::None);
    }
}
