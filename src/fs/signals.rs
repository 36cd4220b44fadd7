//! Has the caller given up? FUSE (as fuser 0.18 speaks it) does not tell the
//! filesystem when a waiting caller is interrupted or killed: the caller stays
//! inside the kernel until the filesystem replies. So a waiting operation
//! looks at the calling thread's pending signals in /proc/<tid>/status.
//!
//! An operation that did not wait asks a cheaper question, "is the caller
//! being killed?", of /proc/<tid>/stat, through a file kept open per recent
//! caller: a pread of it costs about 3 µs, where opening and reading status
//! costs about 10, as much as the whole FUSE round trip it would guard.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, LazyLock, Mutex};

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
    // One open and one read into a buffer on the stack: this runs after
    // every message received, so it is kept to the fewest system calls.
    let mut buffer = [0u8; 4096];
    let read = std::fs::File::open(format!("/proc/{tid}/status")).and_then(|mut f| f.read(&mut buffer));
    match read {
        Ok(n) if n > 0 => parse_status(&String::from_utf8_lossy(&buffer[..n])),
        _ => Signals::Fatal,
    }
}

/// The signal state of the thread whose /proc/<tid>/status `file` is (kept
/// open by a wait): one pread. A thread that has gone counts as killed.
pub fn signals_in(file: &File) -> Signals {
    let mut buffer = [0u8; 4096];
    match file.read_at(&mut buffer, 0) {
        Ok(n) if n > 0 => parse_status_bytes(&buffer[..n]),
        _ => Signals::Fatal,
    }
}

/// Reads SigPnd, ShdPnd, SigBlk, SigIgn and SigCgt from a status text.
pub fn parse_status(text: &str) -> Signals {
    parse_status_bytes(text.as_bytes())
}

/// [`parse_status`] in one pass over the bytes: the watcher runs it for every
/// waiting caller ten times a second.
fn parse_status_bytes(text: &[u8]) -> Signals {
    let (mut pending, mut blocked, mut ignored, mut caught) = (0, 0, 0, 0);
    for line in text.split(|&b| b == b'\n') {
        let Some(value) = line.strip_prefix(b"Sig").or_else(|| line.strip_prefix(b"Shd")) else { continue };
        let Some((name, hex)) = value.split_at_checked(4) else { continue };
        let number = || hex.trim_ascii().iter().try_fold(0u64, |n, &d| Some(n << 4 | (d as char).to_digit(16)? as u64));
        match (line[..3].as_ref(), name) {
            (b"Sig", b"Pnd:") | (b"Shd", b"Pnd:") => pending |= number().unwrap_or(0),
            (b"Sig", b"Blk:") => blocked = number().unwrap_or(0),
            (b"Sig", b"Ign:") => ignored = number().unwrap_or(0),
            (b"Sig", b"Cgt:") => caught = number().unwrap_or(0),
            _ => {}
        }
    }
    classify(pending, blocked, ignored, caught)
}

/// What pending signals mean, given the blocked, ignored and caught sets.
fn classify(pending: u64, blocked: u64, ignored: u64, caught: u64) -> Signals {
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
    let mut buffer = [0u8; 1024];
    let mut read = |file: Arc<File>| file.read_at(&mut buffer, 0).ok().filter(|&n| n > 0);
    // No answer from a kept file: its thread has died, and the number may
    // now belong to another thread, so open the number's file anew.
    let n = stat_file(tid, false).and_then(&mut read).or_else(|| stat_file(tid, true).and_then(&mut read));
    match n {
        Some(n) => parse_stat(&buffer[..n]) == Signals::Fatal,
        None => true,
    }
}

/// The open /proc/<tid>/stat of recent callers.
static STAT_FILES: LazyLock<Mutex<HashMap<u32, Arc<File>>>> = LazyLock::new(Mutex::default);
/// Kept for at most this many callers at once; then the files start anew.
const STAT_FILES_KEPT: usize = 64;

fn stat_file(tid: u32, fresh: bool) -> Option<Arc<File>> {
    let mut files = STAT_FILES.lock().unwrap_or_else(|p| p.into_inner());
    if !fresh {
        if let Some(file) = files.get(&tid) {
            return Some(file.clone());
        }
    }
    files.remove(&tid);
    let file = Arc::new(File::open(format!("/proc/{tid}/stat")).ok()?);
    if files.len() >= STAT_FILES_KEPT {
        files.clear();
    }
    files.insert(tid, file.clone());
    Some(file)
}

/// Reads the signal, blocked, sigignore and sigcatch fields (31 to 34) of
/// a stat line, counting after the command name, which may hold anything.
fn parse_stat(line: &[u8]) -> Signals {
    let Some(end_of_name) = line.iter().rposition(|&b| b == b')') else { return Signals::None };
    let number = |field: &[u8]| std::str::from_utf8(field).ok().and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // The first field after the name is field 3 (the state).
    let fields = line[end_of_name + 1..].split(u8::is_ascii_whitespace).filter(|f| !f.is_empty());
    let mut fields = fields.skip(31 - 3).map(number);
    let mut next = || fields.next().unwrap_or(0);
    let (pending, blocked, ignored, caught) = (next(), next(), next(), next());
    classify(pending, blocked, ignored, caught)
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
        assert!(caller_dying(u32::MAX - 1));
        assert!(!caller_dying(0));
    }

    fn stat_line(name: &str, pending: u64, blocked: u64, ignored: u64, caught: u64) -> String {
        let before: Vec<String> = (4..31).map(|n| n.to_string()).collect();
        format!("1234 ({name}) S {} {pending} {blocked} {ignored} {caught} 0 0 0 17 1", before.join(" "))
    }

    #[test]
    fn stat_lines_are_read_past_any_command_name() {
        let kill = bit(9);
        assert_eq!(parse_stat(stat_line("cat", kill, 0, 0, 0).as_bytes()), Signals::Fatal);
        assert_eq!(parse_stat(stat_line("a) S 1 2 (b", kill, 0, 0, 0).as_bytes()), Signals::Fatal);
        assert_eq!(parse_stat(stat_line("a) S 1 2 (b", 0, 0, 0, 0).as_bytes()), Signals::None);
        let int = bit(2);
        assert_eq!(parse_stat(stat_line("cat", int, 0, 0, int).as_bytes()), Signals::Due);
        assert_eq!(parse_stat(stat_line("cat", int, int, 0, 0).as_bytes()), Signals::None);
    }

    #[test]
    fn this_thread_is_not_dying_and_the_answer_survives_a_kept_file() {
        let tid = std::process::id();
        assert!(!caller_dying(tid));
        assert!(!caller_dying(tid), "through the kept file");
    }
}
