//! What /proc tells about a caller's process and thread: `/proc/PID/status`
//! ([`Status`]: its ids, groups, capabilities and signal masks), the signal
//! fields of `/proc/TID/stat`, and the owner of `/proc/PID`.
//!
//! Each file has a pure parser over its text (tested on fixtures, as
//! procfs-core does) and a thin reader. A waiting caller's signals are read
//! again and again, so two readers keep files open: a [`StatusFile`] for the
//! length of one wait, and the `/proc/TID/stat` of recent callers in a
//! bounded cache ([`thread_signals`]), where a pread costs about 3 µs against
//! 10 for an open and read.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::SystemTime;

use super::{Errno, io_errno};

/// Room for the text of one /proc/TID/status read on the stack (1.5 KiB is
/// usual; the signal lines come well before 4 KiB).
const STATUS_BUFFER: usize = 4096;
/// Room for one /proc/TID/stat line.
const STAT_BUFFER: usize = 1024;

/// The four ids of one `Uid:` or `Gid:` line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ids {
    pub real: u32,
    pub effective: u32,
    pub saved: u32,
    pub filesystem: u32,
}

/// The signal masks of a thread, from its status (or stat).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignalMasks {
    /// Pending for the thread (SigPnd) or its whole process (ShdPnd).
    pub pending: u64,
    pub blocked: u64,
    pub ignored: u64,
    pub caught: u64,
}

/// `/proc/PID/status`, as much as ipcfs needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// None when the line is missing or malformed: never guessed.
    pub uid: Option<Ids>,
    pub gid: Option<Ids>,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Effective capabilities, in the process's own user namespace.
    pub cap_eff: u64,
    pub signals: SignalMasks,
    /// The process a thread belongs to (`Tgid`).
    pub tgid: Option<u32>,
}

impl Status {
    /// Parses the text of a status file; lines it does not know are skipped.
    pub fn parse(text: &str) -> Status {
        let mut status = Status::default();
        for (name, value) in lines(text.as_bytes()) {
            if status.signals.take(name, value) {
                continue;
            }
            match name {
                b"Uid" => status.uid = Ids::parse(value),
                b"Gid" => status.gid = Ids::parse(value),
                b"Groups" => status.groups = numbers(value).filter_map(|n| n.parse().ok()).collect(),
                b"CapEff" => status.cap_eff = hex(value),
                b"Tgid" => status.tgid = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()),
                _ => {}
            }
        }
        status
    }

    /// Reads `/proc/<pid>/status`.
    pub fn read(pid: u32) -> Result<Status, Errno> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(io_errno)?;
        Ok(Status::parse(&text))
    }
}

impl Ids {
    fn parse(value: &[u8]) -> Option<Ids> {
        let mut ids = numbers(value).map(|n| n.parse().ok());
        let mut next = || ids.next().flatten();
        Some(Ids { real: next()?, effective: next()?, saved: next()?, filesystem: next()? })
    }
}

impl SignalMasks {
    /// Only the signal lines of a status text, in one pass over its bytes
    /// and without an allocation: the watcher reads them for every waiting
    /// caller ten times a second.
    pub fn parse_status(text: &[u8]) -> SignalMasks {
        let mut masks = SignalMasks::default();
        for (name, value) in lines(text) {
            masks.take(name, value);
        }
        masks
    }

    /// Fields 31 to 34 of a `/proc/TID/stat` line (signal, blocked,
    /// sigignore, sigcatch), counted after the command name, which may hold
    /// anything. These are the thread's own pending signals, and only the
    /// first 31. A line with no command name has none.
    pub fn parse_stat(line: &[u8]) -> SignalMasks {
        let Some(end_of_name) = line.iter().rposition(|&b| b == b')') else { return SignalMasks::default() };
        let number = |field: &[u8]| std::str::from_utf8(field).ok().and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        // The first field after the name is field 3 (the state).
        let fields = line[end_of_name + 1..].split(u8::is_ascii_whitespace).filter(|f| !f.is_empty());
        let mut fields = fields.skip(31 - 3).map(number);
        let mut next = || fields.next().unwrap_or(0);
        SignalMasks { pending: next(), blocked: next(), ignored: next(), caught: next() }
    }

    /// Reads the signal lines of `/proc/<tid>/status`: one open and one
    /// read into a buffer on the stack. An empty read (the thread has gone)
    /// is `ESRCH`.
    pub fn read(tid: u32) -> Result<SignalMasks, Errno> {
        let mut buffer = [0u8; STATUS_BUFFER];
        let n = File::open(format!("/proc/{tid}/status")).and_then(|mut f| f.read(&mut buffer)).map_err(io_errno)?;
        nonempty(&buffer[..n]).map(SignalMasks::parse_status)
    }

    /// Takes in one status line if it is a signal mask; whether it was.
    fn take(&mut self, name: &[u8], value: &[u8]) -> bool {
        match name {
            b"SigPnd" | b"ShdPnd" => self.pending |= hex(value),
            b"SigBlk" => self.blocked = hex(value),
            b"SigIgn" => self.ignored = hex(value),
            b"SigCgt" => self.caught = hex(value),
            _ => return false,
        }
        true
    }
}

/// A thread's `/proc/<tid>/status`, kept open for the length of a wait:
/// each look at its signals is then one pread.
#[derive(Debug)]
pub struct StatusFile(File);

impl StatusFile {
    pub fn open(tid: u32) -> Result<StatusFile, Errno> {
        File::open(format!("/proc/{tid}/status")).map(StatusFile).map_err(io_errno)
    }

    /// The thread's signal masks now; `ESRCH` once it has gone.
    pub fn signals(&self) -> Result<SignalMasks, Errno> {
        let mut buffer = [0u8; STATUS_BUFFER];
        let n = self.0.read_at(&mut buffer, 0).map_err(io_errno)?;
        nonempty(&buffer[..n]).map(SignalMasks::parse_status)
    }
}

/// Thread `tid`'s own signal masks from its `/proc/<tid>/stat`, read through
/// a file kept open for recent callers (see [`SignalMasks::parse_stat`] for
/// what it shows). None when the thread cannot be read: it has gone.
pub fn thread_signals(tid: u32) -> Option<SignalMasks> {
    let mut buffer = [0u8; STAT_BUFFER];
    let mut read = |file: Arc<File>| file.read_at(&mut buffer, 0).ok().filter(|&n| n > 0);
    // No answer from a kept file: its thread has died, and the number may
    // now belong to another thread, so open the number's file anew.
    let n = stat_file(tid, false).and_then(&mut read).or_else(|| stat_file(tid, true).and_then(&mut read))?;
    Some(SignalMasks::parse_stat(&buffer[..n]))
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

/// A process's directory in /proc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Process {
    /// `/proc/self`: the daemon.
    Daemon,
    Pid(u32),
}

/// Who owns a process's /proc directory (its effective user and group,
/// unless it is not dumpable), and when it was last changed (about when the
/// process started).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessDir {
    pub uid: u32,
    pub gid: u32,
    /// None where the filesystem keeps no such time.
    pub modified: Option<SystemTime>,
}

impl ProcessDir {
    pub fn read(process: Process) -> Result<ProcessDir, Errno> {
        let path = match process {
            Process::Daemon => "/proc/self".to_string(),
            Process::Pid(pid) => format!("/proc/{pid}"),
        };
        let meta = std::fs::metadata(path).map_err(io_errno)?;
        Ok(ProcessDir { uid: meta.uid(), gid: meta.gid(), modified: meta.modified().ok() })
    }
}

/// The lines of a status text as (name, value): `SigPnd:\t0000…` gives
/// (`SigPnd`, `0000…`), the value trimmed.
fn lines(text: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    text.split(|&b| b == b'\n').filter_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        Some((&line[..colon], line[colon + 1..].trim_ascii()))
    })
}

fn numbers(value: &[u8]) -> impl Iterator<Item = &str> {
    std::str::from_utf8(value).unwrap_or("").split_whitespace()
}

/// A hexadecimal mask; 0 if it is not one.
fn hex(value: &[u8]) -> u64 {
    std::str::from_utf8(value).ok().and_then(|v| u64::from_str_radix(v, 16).ok()).unwrap_or(0)
}

fn nonempty(read: &[u8]) -> Result<&[u8], Errno> {
    if read.is_empty() { Err(Errno::ESRCH) } else { Ok(read) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tcat\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t1000\t1001\t1002\t1003\n\
                          Gid:\t100\t101\t102\t103\nGroups:\t4 24 27 \nSigQ:\t0/63504\n\
                          SigPnd:\t0000000000000002\nShdPnd:\t0000000000004000\nSigBlk:\t0000000000010000\n\
                          SigIgn:\t0000000000001000\nSigCgt:\t0000000180000002\nCapInh:\t0000000000000000\n\
                          CapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n";

    #[test]
    fn parses_ids_groups_capabilities_and_signals() {
        let s = Status::parse(STATUS);
        assert_eq!(s.uid, Some(Ids { real: 1000, effective: 1001, saved: 1002, filesystem: 1003 }));
        assert_eq!(s.gid.map(|g| (g.real, g.filesystem)), Some((100, 103)));
        assert_eq!(s.groups, vec![4, 24, 27]);
        assert_eq!(s.cap_eff, 0x1ff_ffff_ffff);
        let signals = SignalMasks { pending: 0x4002, blocked: 0x10000, ignored: 0x1000, caught: 0x1_8000_0002 };
        assert_eq!(s.signals, signals);
        assert_eq!(SignalMasks::parse_status(STATUS.as_bytes()), signals, "the same masks, without the rest");
    }

    #[test]
    fn missing_or_malformed_lines_are_not_guessed() {
        let s = Status::parse("Groups:\n");
        assert_eq!(s.groups, Vec::<u32>::new());
        assert_eq!((s.uid, s.gid, s.cap_eff), (None, None, 0));
        assert_eq!(Status::parse("Uid:\t0\t0\n").uid, None);
        assert_eq!(Status::parse("Uid:\t0\tx\t0\t0\n").uid, None);
        assert_eq!(Status::parse("CapEff:\tnot hex\n").cap_eff, 0);
        assert_eq!(SignalMasks::parse_status(b"SigPnd:\tzz\nSigQ:\t1/2\n"), SignalMasks::default());
    }

    fn stat_line(name: &str, pending: u64, blocked: u64, ignored: u64, caught: u64) -> String {
        let before: Vec<String> = (4..31).map(|n| n.to_string()).collect();
        format!("1234 ({name}) S {} {pending} {blocked} {ignored} {caught} 0 0 0 17 1", before.join(" "))
    }

    #[test]
    fn stat_lines_are_read_past_any_command_name() {
        let masks = SignalMasks { pending: 256, blocked: 2, ignored: 4, caught: 8 };
        assert_eq!(SignalMasks::parse_stat(stat_line("cat", 256, 2, 4, 8).as_bytes()), masks);
        assert_eq!(SignalMasks::parse_stat(stat_line("a) S 1 2 (b", 256, 2, 4, 8).as_bytes()), masks);
        assert_eq!(SignalMasks::parse_stat(b"1234 cat S 1 2"), SignalMasks::default());
        assert_eq!(SignalMasks::parse_stat(b"1234 (cat) S 1 2").pending, 0, "short: missing fields are 0");
    }

    #[test]
    fn this_thread_reads_and_a_vanished_one_does_not() {
        let tid = nix::unistd::gettid().as_raw() as u32;
        assert!(Status::read(tid).is_ok_and(|s| s.uid.is_some()));
        assert!(SignalMasks::read(tid).is_ok());
        assert!(StatusFile::open(tid).and_then(|f| f.signals()).is_ok());
        assert!(thread_signals(tid).is_some());
        assert!(thread_signals(tid).is_some(), "through the kept file");
        assert!(SignalMasks::read(u32::MAX - 1).is_err());
        assert!(thread_signals(u32::MAX - 1).is_none());
        assert!(ProcessDir::read(Process::Daemon).is_ok());
        assert!(ProcessDir::read(Process::Pid(u32::MAX - 1)).is_err());
    }
}
