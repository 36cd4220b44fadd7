//! The harness every area of the mounted tests shares.
//!
//! [`Mounted::new`] first moves the calling test thread into fresh IPC and
//! mount namespaces (unshare affects only the calling thread, and libtest runs
//! each test on a thread of its own). Everything the test then does, and every
//! process it starts, sees only that namespace's objects and mounts: tests run
//! in parallel, never touch the host's IPC objects and leave nothing behind.
//! The daemon runs in the foreground as the thread's child with a parent-death
//! signal, and `Drop` unmounts and stops it even when the test fails.
//!
//! Every area's tests run in this one process, side by side: nothing here
//! changes what is process-wide (the umask, rlimits, signal dispositions, the
//! environment), and names that must not collide take a [`unique_tag`].
//!
//! What the areas share besides the mount: [`shell`] (commands, as root or as
//! another user, and what they print), [`kernel`] (the IPC objects as the
//! kernel's own calls see them, behind the mount's back) and [`procfs`] (what
//! /proc says about a process, the daemon's above all).

mod kernel;
mod procfs;
mod shell;

pub use kernel::*;
pub use procfs::*;
pub use shell::*;

use std::fs::{File, OpenOptions};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The bound on anything that must not block: a deadlock fails after this.
pub const LIMIT: Duration = Duration::from_secs(20);
/// A real user of the test machine, with no privileges.
pub const USER: u32 = 1000;
pub const USER_GID: u32 = 1000;
/// Ids with no passwd or group entry, so that every tool prints them as numbers.
pub const NOBODY_UID: u32 = 4242;
pub const NOBODY_GID: u32 = 4343;
/// A group the tests give to objects and users (no group entry either).
pub const SHARED_GID: u32 = 2000;
/// The system's Python, which every user may run.
pub const PYTHON: &str = "/usr/bin/python3";

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

/// A directory for what a test writes outside the mount, removed with
/// everything in it on drop, also when the test fails ([`TempDir`] removes
/// only an empty one).
pub struct Scratch(TempDir);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        Scratch(TempDir::new(tag))
    }

    pub fn dir(&self) -> &Path {
        &self.0.0
    }

    /// The directory as text (for command lines and environment variables).
    pub fn root(&self) -> &str {
        self.dir().to_str().unwrap()
    }

    /// A path inside the directory.
    pub fn path(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.dir().join(relative)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.dir());
    }
}

/// Whatever is mounted on a directory, unmounted (lazily) on drop: every
/// layer, should a test have stacked mounts there, also when the test fails.
/// Made before the mount is tried (`Unmount(dir)`, [`Unmount::tmpfs`]), so
/// that no failure can come between the two.
pub struct Unmount(pub PathBuf);

impl Unmount {
    /// A tmpfs over `dir`, in the test thread's own mount namespace.
    pub fn tmpfs(dir: &Path) -> Unmount {
        let guard = Unmount(dir.to_path_buf());
        mount(Some("tmpfs"), dir, Some("tmpfs"), MsFlags::empty(), Some("mode=0755")).expect("mount tmpfs");
        guard
    }

    /// `source` bound over `target` in the test thread's mount namespace
    /// (which the daemon shares).
    pub fn bind(source: &Path, target: impl AsRef<Path>) -> Unmount {
        let target = target.as_ref();
        mount(Some(source), target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .unwrap_or_else(|e| panic!("bind-mount {} over {}: {e}", source.display(), target.display()));
        Unmount(target.to_path_buf())
    }
}

impl Drop for Unmount {
    fn drop(&mut self) {
        for _ in 0..8 {
            if umount2(&self.0, MntFlags::MNT_DETACH).is_err() {
                break;
            }
        }
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

/// Polls `done` until it holds, failing after [`LIMIT`].
#[track_caller]
pub fn wait_for(what: &str, done: impl FnMut() -> bool) {
    wait_until(what, LIMIT, done)
}

/// Runs `f` on a thread of its own (in the test's namespaces, which threads
/// inherit) and fails if it takes longer than [`LIMIT`]: for system calls
/// the test makes itself that would hang if ipcfs were wrong.
#[track_caller]
pub fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    use std::sync::mpsc::{self, RecvTimeoutError};
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(result) => result,
        Err(RecvTimeoutError::Timeout) => panic!("{what} did not return within {LIMIT:?}: ipcfs stalled it"),
        Err(RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
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

/// Sleeps into the next wall-clock second (and a little past it, as the
/// kernel's coarse clock follows the fine one by up to a tick). The kernel
/// keeps IPC times in whole seconds; this makes consecutive ones distinct, so
/// that a field shown in the wrong place is visible.
pub fn wait_for_next_second() {
    use std::time::{SystemTime, UNIX_EPOCH};
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    std::thread::sleep(Duration::from_secs(now.as_secs() + 1) - now + Duration::from_millis(30));
}

pub fn open_read_only(path: &Path) -> File {
    File::open(path).unwrap_or_else(|e| panic!("open O_RDONLY {}: {e}", path.display()))
}

pub fn open_write_only(path: &Path) -> File {
    OpenOptions::new().write(true).open(path).unwrap_or_else(|e| panic!("open O_WRONLY {}: {e}", path.display()))
}

pub fn open_read_write(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open O_RDWR {}: {e}", path.display()))
}

/// Names of a directory's entries, sorted.
pub fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

/// The errno a failed syscall returned.
pub fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or_else(|| panic!("not an OS error: {e}"))
}

/// The errno of a call that must fail.
#[track_caller]
pub fn errno<T: std::fmt::Debug>(result: std::io::Result<T>) -> i32 {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(e) => errno_of(&e),
    }
}

pub fn exit_signal(status: &std::process::ExitStatus) -> Option<i32> {
    status.signal()
}

/// "rw-r-----" as bits.
pub fn perm_bits(symbolic: &str) -> u32 {
    assert_eq!(symbolic.len(), 9, "{symbolic:?}");
    symbolic.bytes().fold(0, |bits, c| bits << 1 | u32::from(c != b'-'))
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
