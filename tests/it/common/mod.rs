//! Mounted tests: the real `ipcfs` binary on a temporary mount point, in an
//! IPC and mount namespace of the test's own.
//!
//! [`Mounted::new`] first moves the calling test thread into fresh IPC and
//! mount namespaces (unshare affects only the calling thread, and libtest runs
//! each test on a thread of its own). Everything the test then does, and every
//! process it starts, sees only that namespace's objects and mounts: tests run
//! in parallel, never touch the host's IPC objects and leave nothing behind.
//! The daemon runs in the foreground as the thread's child with a parent-death
//! signal, and `Drop` unmounts and stops it even when the test fails.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub use ipcfs::ipc::Key;
pub use ipcfs::ipc::shm::{self, ShmId};

/// The binary under test.
pub fn ipcfs_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ipcfs")
}

/// Moves the calling thread into new IPC and mount namespaces, with every
/// mount private so nothing propagates back to the host. Idempotent per thread.
pub fn isolate() {
    thread_local!(static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    if DONE.with(|d| d.replace(true)) {
        return;
    }
    unshare(CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWNS).expect("unshare(IPC|NS): tests need root");
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .expect("make / private");
}

/// A tag no other test of any run on this machine has at the same time:
/// the process id and a counter. Every test runs in this one process, so a
/// name made of the process id alone (a container's host name, a temporary
/// directory) would be the same for two tests running side by side.
pub fn unique_tag() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ipcfs-test-{tag}-{}", unique_tag()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A running ipcfs mount in the test thread's own namespaces.
pub struct Mounted {
    pub dir: TempDir,
    daemon: Option<Child>,
}

impl Mounted {
    pub fn new() -> Mounted {
        Mounted::with_options(&[])
    }

    /// Mounts with extra command-line arguments (e.g. `["-o", "ro"]`).
    pub fn with_options(args: &[&str]) -> Mounted {
        Mounted::with_wrapper(&[], args)
    }

    fn wait_until_mounted(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !is_mounted(&self.dir.0) {
            if let Some(status) = self.daemon.as_mut().and_then(|d| d.try_wait().unwrap()) {
                panic!("ipcfs exited before mounting: {status}");
            }
            assert!(Instant::now() < deadline, "ipcfs did not mount within 20 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn root(&self) -> &Path {
        &self.dir.0
    }

    /// A path inside the mount.
    pub fn path(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.dir.0.join(relative)
    }

    pub fn shm(&self, id: ShmId) -> PathBuf {
        self.path(format!("shm/{}", id.0))
    }

    pub fn daemon_pid(&self) -> Option<i32> {
        self.daemon.as_ref().map(|d| d.id() as i32)
    }

    /// Sends SIGTERM and waits for the daemon to exit; returns its status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut daemon = self.daemon.take().expect("daemon already stopped");
        kill(Pid::from_raw(daemon.id() as i32), Signal::SIGTERM).unwrap();
        wait_timeout(&mut daemon, Duration::from_secs(20)).expect("daemon did not exit after SIGTERM")
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = umount2(&self.dir.0, MntFlags::MNT_DETACH);
        if let Some(mut daemon) = self.daemon.take() {
            if wait_timeout(&mut daemon, Duration::from_secs(10)).is_none() {
                let _ = daemon.kill();
                let _ = daemon.wait();
            }
        }
    }
}

/// Waits for a child up to `limit`; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether `dir` is a FUSE mount point in this thread's mount namespace.
pub fn is_mounted(dir: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
    let dir = dir.to_str().unwrap();
    table.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let fstype = line.split(" - ").nth(1).and_then(|rest| rest.split_whitespace().next());
        fields.get(4) == Some(&dir) && fstype.is_some_and(|t| t.starts_with("fuse"))
    })
}

/// Runs a shell command line in the test's namespaces.
pub fn sh(script: &str) -> Output {
    Command::new("sh").arg("-c").arg(script).stdin(Stdio::null()).output().unwrap()
}

/// Runs a shell command line and requires success; returns stdout.
pub fn sh_ok(script: &str) -> String {
    let out = sh(script);
    assert!(out.status.success(), "`{script}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `setpriv` set to run what follows as another user, with the given
/// supplementary groups; add the command with `.args([...])`.
pub fn as_user(uid: u32, gid: u32, groups: &[u32]) -> Command {
    let groups_arg = if groups.is_empty() {
        "--clear-groups".to_string()
    } else {
        format!("--groups={}", groups.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
    };
    let mut command = Command::new("setpriv");
    command.args([format!("--reuid={uid}"), format!("--regid={gid}"), groups_arg, "--".into()]).stdin(Stdio::null());
    command
}

/// Runs a shell command line as another user (`setpriv`), with the given
/// supplementary groups.
pub fn sh_as(uid: u32, gid: u32, groups: &[u32], script: &str) -> Output {
    as_user(uid, gid, groups).args(["sh", "-c", script]).output().unwrap()
}

/// The errno a failed syscall returned.
pub fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or_else(|| panic!("not an OS error: {e}"))
}

/// Creates a segment with the kernel directly (as ipcmk would).
pub fn create_segment(key: i32, size: u64, mode: i32) -> ShmId {
    shm::get(Key(key), size, libc::IPC_CREAT | libc::IPC_EXCL | mode).expect("shmget")
}

/// Reads an extended attribute through the filesystem, as text.
pub fn xattr(path: &Path, name: &str) -> std::io::Result<String> {
    let out = Command::new("getfattr").args(["--only-values", "--absolute-names", "-n", name]).arg(path).output()?;
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(std::io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned()))
    }
}

/// Names of a directory's entries, sorted.
pub fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

pub fn exit_signal(status: &std::process::ExitStatus) -> Option<i32> {
    status.signal()
}

pub fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// A path quoted for sh.
pub fn q(path: &Path) -> String {
    format!("'{}'", path.display())
}

/// Sleeps into the next wall-clock second (and a little past it, as the
/// kernel's coarse clock follows the fine one by up to a tick). The kernel
/// keeps IPC times in whole seconds; this makes consecutive ones distinct, so
/// that a field shown in the wrong place is visible.
pub fn wait_for_next_second() {
    use std::time::{SystemTime, UNIX_EPOCH};
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    std::thread::sleep(Duration::from_secs(now.as_secs() + 1) - now + Duration::from_millis(30));
}

/// "rw-r-----" as bits.
pub fn perm_bits(symbolic: &str) -> u32 {
    assert_eq!(symbolic.len(), 9, "{symbolic:?}");
    symbolic.bytes().fold(0, |bits, c| bits << 1 | u32::from(c != b'-'))
}

/// `getfattr -d` of one path: every user.* attribute and its value.
#[track_caller]
pub fn getfattr_dump(path: &Path) -> std::collections::HashMap<String, String> {
    let text = sh_ok(&format!("getfattr -d --absolute-names {}", q(path)));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.split_once('=').unwrap_or_else(|| panic!("getfattr line {l:?}"));
            (name.to_string(), value.trim_matches('"').to_string())
        })
        .collect()
}

/// The rows of `lsipc --json` output, by column name (lower case); null is
/// "". lsipc pretty-prints one `"name": value` per line, which is all this
/// parses.
pub fn parse_lsipc_json(text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut rows = Vec::new();
    let mut row: Option<std::collections::HashMap<String, String>> = None;
    for line in text.lines() {
        let line = line.trim().trim_end_matches(',');
        if let Some((name, value)) = line.split_once(": ") {
            if value == "[" {
                continue;
            }
            let value = if value == "null" { "" } else { value.trim_matches('"') };
            row.get_or_insert_with(Default::default).insert(name.trim_matches('"').to_string(), value.to_string());
        } else if line.starts_with('}') {
            rows.extend(row.take());
        }
    }
    rows
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The command succeeded; its stdout.
#[track_caller]
pub fn assert_ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "`{what}` failed ({}): {}", out.status, stderr_of(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The command failed and said `message` (the strerror text of the expected errno).
#[track_caller]
pub fn assert_refused(out: &Output, message: &str, what: &str) {
    let stderr = stderr_of(out);
    assert!(
        !out.status.success() && stderr.contains(message),
        "`{what}`: expected a failure saying {message:?}, got {} with stderr {stderr:?} and stdout {:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The errno of a call that must fail.
#[track_caller]
pub fn errno<T: std::fmt::Debug>(result: std::io::Result<T>) -> i32 {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(e) => errno_of(&e),
    }
}

/// `ls FLAGS DIR` (a long listing) with ISO times in UTC, by name:
/// (perms, owner, group, size, time).
pub fn ls_long(dir: &Path, flags: &str) -> std::collections::HashMap<String, Vec<String>> {
    let text = sh_ok(&format!("TZ=UTC LC_ALL=C ls {flags} --time-style=+%Y-%m-%dT%H:%M:%S%:z {}", q(dir)));
    text.lines()
        .filter(|l| !l.starts_with("total"))
        .map(|l| {
            let f: Vec<String> = l.split_whitespace().map(str::to_string).collect();
            assert_eq!(f.len(), 7, "ls line {l:?}");
            (f[6].clone(), vec![f[0].clone(), f[2].clone(), f[3].clone(), f[4].clone(), f[5].clone()])
        })
        .collect()
}

/// Polls `done` until it holds, failing after `limit`: how a test waits for
/// a condition (never a sleep as synchronisation).
#[track_caller]
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Copies what `from` gives (a child's stdout or stderr) into `into`, on a
/// thread of its own.
pub fn collect(
    mut from: impl std::io::Read + Send + 'static,
    into: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
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

/// The IPC namespace a `/proc/.../ns/ipc` link names (`ipc:[N]` → N): its
/// name under an `-A` mount's `ns/`.
pub fn ns_at(link: impl AsRef<Path>) -> Option<u64> {
    let target = std::fs::read_link(link).ok()?;
    target.to_str()?.strip_prefix("ipc:[")?.strip_suffix(']')?.parse().ok()
}

// ---- issue 14 (budgets): a daemon under a wrapper, and what it spends ----

impl Mounted {
    /// Mounts with the daemon started under `wrapper`, a command that sets
    /// something up and then execs what follows it (such as
    /// `["prlimit", "--nofile=1024:4096", "--"]`), so that the daemon keeps
    /// the wrapper's pid; `args` as for [`Mounted::with_options`].
    /// Every mount adds the options in `IPCFS_TEST_OPTIONS` (split at white
    /// space): tests/run.sh runs the segment tests again with
    /// `-o nopassthrough`, so that the daemon's path passes them too.
    pub fn with_wrapper(wrapper: &[&str], args: &[&str]) -> Mounted {
        isolate();
        let dir = TempDir::new("mnt");
        let extra = std::env::var("IPCFS_TEST_OPTIONS").unwrap_or_default();
        let daemon = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--"])
            .args(wrapper)
            .arg(ipcfs_bin())
            .arg("--foreground")
            .args(extra.split_whitespace())
            .args(args)
            .arg(&dir.0)
            .stdin(Stdio::null())
            .spawn()
            .expect("start ipcfs");
        let mut mounted = Mounted { dir, daemon: Some(daemon) };
        mounted.wait_until_mounted();
        mounted
    }
}

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

/// How many threads of process `pid` are inside a read(2) or write(2)
/// waiting for the FUSE daemon's answer (see [`waiting_on_fuse`]).
pub fn threads_waiting_on_fuse(pid: i32) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter_map(|task| task.file_name().to_str().and_then(|t| t.parse::<i32>().ok()))
        .filter(|&tid| waiting_on_fuse(tid))
        .count()
}

/// Deterministic pseudo-random bytes (xorshift64*), so that every run checks
/// the same data and no two offsets are likely to hold the same pattern.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A writable attachment of the test's own: "another process" using shmat.
pub fn attach(id: ShmId) -> shm::Attachment {
    let size = shm::stat_any(id).expect("SHM_STAT_ANY").segsz;
    shm::Attachment::attach(id, size, true).expect("shmat")
}

/// The segment's bytes now, read through a fresh attachment (not ipcfs).
pub fn segment_bytes(id: ShmId) -> Vec<u8> {
    let a = attach(id);
    a.read_at(0, a.len() as usize)
}

/// Fills the whole segment through an attachment of the test's own.
pub fn fill_segment_with(id: ShmId, data: &[u8]) {
    let a = attach(id);
    assert_eq!(data.len() as u64, a.len(), "fill needs exactly the segment's size");
    assert_eq!(a.write_at(0, data).unwrap(), data.len());
}

/// The log file of a daemon started by [`Mounted::with_log`]; removed when dropped.
pub struct DaemonLog {
    pub path: PathBuf,
    _dir: TempDir,
}

impl Drop for DaemonLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Mounted {
    /// Mounts with the daemon logging at `rust_log` (a RUST_LOG value) into
    /// a file of its own, and no other options.
    pub fn with_log(rust_log: &str) -> (Mounted, DaemonLog) {
        let dir = TempDir::new("log");
        let path = dir.0.join("daemon.log");
        let redirect = format!("exec \"$@\" 2>>{}", q(&path));
        let env = format!("RUST_LOG={rust_log}");
        let mounted = Mounted::with_wrapper(&["env", &env, "sh", "-c", &redirect, "sh"], &[]);
        (mounted, DaemonLog { path, _dir: dir })
    }
}
