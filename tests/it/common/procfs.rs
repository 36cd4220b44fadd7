//! What /proc says about a process (the daemon above all): its threads,
//! memory, CPU time, descriptors, mappings, limits and system calls, and
//! which IPC namespace a process or thread is in.

use std::path::Path;

use super::Mounted;

/// The first number on the `Field:` line of /proc/<pid>/status (`Threads`,
/// `VmRSS` and `VmHWM` in KiB, ...); None if the process or field is gone.
pub fn proc_status_number(pid: i32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let prefix = format!("{field}:");
    let line = status.lines().find(|l| l.starts_with(&prefix))?;
    line[prefix.len()..].split_whitespace().next()?.parse().ok()
}

/// How many threads process `pid` has now.
#[track_caller]
pub fn thread_count(pid: i32) -> u64 {
    proc_status_number(pid, "Threads").unwrap_or_else(|| panic!("no Threads: for process {pid}"))
}

/// Resident memory of process `pid` now (VmRSS), in KiB.
#[track_caller]
pub fn rss_kib(pid: i32) -> u64 {
    proc_status_number(pid, "VmRSS").unwrap_or_else(|| panic!("no VmRSS for process {pid}"))
}

/// The most resident memory process `pid` has had (VmHWM), in KiB.
#[track_caller]
pub fn peak_rss_kib(pid: i32) -> u64 {
    proc_status_number(pid, "VmHWM").unwrap_or_else(|| panic!("no VmHWM for process {pid}"))
}

/// CPU time process `pid` has used, all its threads (past and present),
/// user and system: utime + stime of /proc/<pid>/stat, in clock ticks
/// (`getconf CLK_TCK`, 100 a second on Linux).
#[track_caller]
pub fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_else(|e| panic!("/proc/{pid}/stat: {e}"));
    // The command name, in parentheses, may hold spaces: count from its end.
    let rest = &stat[stat.rfind(')').expect("comm in /proc/PID/stat") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// How many descriptors process `pid` has open.
#[track_caller]
pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}")).count()
}

/// How many memory mappings process `pid` has (lines of /proc/<pid>/maps),
/// what vm.max_map_count bounds.
#[track_caller]
pub fn map_count(pid: i32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/maps: {e}"))
        .lines()
        .count()
}

/// A limit of process `pid` from /proc/<pid>/limits, by its name there
/// (such as "Max open files"): (soft, hard), `u64::MAX` for unlimited.
#[track_caller]
pub fn proc_limit(pid: i32, name: &str) -> (u64, u64) {
    let limits =
        std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_else(|e| panic!("/proc/{pid}/limits: {e}"));
    let line = limits.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name:?} in {limits}"));
    let values: Vec<u64> = line[name.len()..]
        .split_whitespace()
        .take(2)
        .map(|v| if v == "unlimited" { u64::MAX } else { v.parse().unwrap() })
        .collect();
    (values[0], values[1])
}

/// How many threads of process `pid` are inside system call `number` now
/// (/proc/<pid>/task/*/syscall): e.g. the daemon's threads parked in
/// `libc::SYS_msgrcv`.
pub fn threads_in_syscall(pid: i32, number: i64) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter(|task| {
            let syscall = std::fs::read_to_string(task.path().join("syscall")).unwrap_or_default();
            syscall.split_whitespace().next().and_then(|n| n.parse::<i64>().ok()) == Some(number)
        })
        .count()
}

/// Whether process `pid` is inside a read(2) or write(2) waiting for the
/// FUSE daemon's answer.
pub fn waiting_on_fuse(pid: i32) -> bool {
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    let syscall = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
    let number: Option<i64> = syscall.split_whitespace().next().and_then(|n| n.parse().ok());
    (wchan == "request_wait_answer" || wchan.contains("fuse"))
        && number.is_some_and(|n| n == libc::SYS_read || n == libc::SYS_write)
}

/// The daemon's threads that each carry one waiting operation (it runs every
/// wait on an `ipcfs-wait` thread of its own). None left means no receive or
/// send can still happen on behalf of a caller that is gone. Tests that await
/// zero first await a positive number, so that a renamed thread fails loudly
/// instead of passing vacuously.
pub fn daemon_waits(m: &Mounted) -> usize {
    let pid = m.daemon_pid().expect("daemon running");
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == "ipcfs-wait")
        .count()
}

/// The test process's umask (no test changes it: it is the whole process's).
pub fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let mask = status.lines().find_map(|l| l.strip_prefix("Umask:")).unwrap().trim();
    u32::from_str_radix(mask, 8).unwrap()
}

/// The IPC namespace a `/proc/.../ns/ipc` link names (`ipc:[N]` → N): its
/// name under an `-A` mount's `ns/`.
pub fn ns_at(link: impl AsRef<Path>) -> Option<u64> {
    let target = std::fs::read_link(link).ok()?;
    target.to_str()?.strip_prefix("ipc:[")?.strip_suffix(']')?.parse().ok()
}
