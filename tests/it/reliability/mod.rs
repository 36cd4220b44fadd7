//! Reliability (issue 7): ipcfs under load and when things go wrong.
//!
//! - Load: 8 writer and 4 reader processes move 10,000 messages through queue
//!   files, each received exactly once; 6 processes count to 6,000 in a
//!   segment file under a semaphore file used as a mutex.
//! - Killed clients: 20 waiters (P's and blocking receives) killed with
//!   SIGKILL at random moments, some while blocked, some just as a V or a
//!   message arrives; nothing is consumed for the dead.
//! - A killed daemon: `kill -9` under load; after `umount -l` and a new mount
//!   everything equals what the kernel holds, and no attachment is left.
//! - Objects removed and replaced (with the same id) behind the daemon's back
//!   while clients use open files: ENOENT or EIDRM, never the new object.
//! - SIGTERM to the daemon with waits blocked: the waiters are released with
//!   EINTR, nothing is consumed, and the daemon exits cleanly.
//!
//! Two disagreements with docs/ipcfs.md found here have tests of their own,
//! ignored until fixed, at the end of the file: an object removed and made
//! again at once at the same id can be reached through a file opened on the
//! old one, and an operation on a queue removed at that moment gets EINVAL.
//!
//! Clients are real processes: one small Python program ([`client::CLIENT`]) run by
//! the system's python3 in several roles. Its single reads and writes go
//! through libc, so that one call is one read(2) or write(2), never retried
//! after EINTR. The test synchronises only on what it can see (a client's
//! output, a process blocked in a FUSE call, the daemon's waiting threads,
//! the kernel's counters), each awaited with a deadline; the only pauses are
//! the random ones that vary the moment of a kill.
//!
//! Soak mode: `IPCFS_SOAK=N` multiplies every count and number of rounds by N,
//! for example, by hand:
//!
//! ```text
//! IPCFS_SOAK=10 cargo test --release --test it -- reliability:: --nocapture
//! ```
//!
//! Tests with random moments print their seed; `IPCFS_SEED=<seed>` replays it.
//!
//! Here: the helpers the tests share; the client program in [`client`];
//! the tests in [`load`] (load, killed clients), [`daemon`] (a killed
//! daemon, unmount with waits blocked) and [`replaced`] (objects replaced,
//! and the bugs found).

mod client;
mod daemon;
mod load;
mod replaced;

use crate::common::*;

use client::Client;

use std::fs;
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use ipcfs::ipc::msg::MsqId;
use ipcfs::ipc::sem::{self, SemId};
use ipcfs::ipc::shm::Attachment;
use ipcfs::ipc::sysvipc;

/// How long a client or waiter may take to end once it has reason to: ipcfs
/// promises about 0.1 s for an interrupted wait; this is generous for a
/// loaded machine.
const PROMPTLY: Duration = Duration::from_secs(10);

/// The soak factor: `IPCFS_SOAK`, 1 by default.
fn soak() -> usize {
    std::env::var("IPCFS_SOAK").ok().and_then(|s| s.parse().ok()).filter(|&n| n >= 1).unwrap_or(1)
}

/// How long a load phase may take: far more than it needs, scaled by the soak.
fn load_limit() -> Duration {
    Duration::from_secs(120 * soak() as u64)
}

/// The end of a long output, for failure messages.
fn tail(text: &str) -> &str {
    let start = text.len().saturating_sub(600);
    let start = (start..text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
    &text[start..]
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

// ---- waiting for conditions ----

/// The daemon runs (exists and is not a zombie).
fn daemon_alive(m: &Mounted) -> bool {
    let pid = m.daemon_pid().expect("daemon not yet reaped");
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// Waits for the daemon to exit by itself, then reaps it: its exit status.
/// (`terminate` then sends SIGTERM to a zombie, which does nothing.)
#[track_caller]
fn reap(m: &mut Mounted, limit: Duration) -> ExitStatus {
    wait_until("the daemon exits", limit, || !daemon_alive(m));
    m.terminate()
}

// ---- the kernel's view ----

fn sem_values(id: SemId, count: u16) -> Vec<i32> {
    (0..count).map(|n| sem_value(id, n)).collect()
}

fn set_sem_values(id: SemId, values: &[i32]) {
    for (n, &v) in values.iter().enumerate() {
        sem::set_value(id, n as u16, v).unwrap();
    }
}

/// Every message queued ([`queued`]), its body as text.
fn queued_text(id: MsqId) -> Vec<(i64, String)> {
    queued(id).into_iter().map(|(mtype, body)| (mtype, String::from_utf8_lossy(&body).into_owned())).collect()
}

fn fill_segment(id: ShmId, pattern: &[u8]) {
    let size = shm::stat_any(id).unwrap().segsz as usize;
    let bytes: Vec<u8> = pattern.iter().copied().cycle().take(size).collect();
    Attachment::attach(id, size as u64, true).expect("shmat").write_at(0, &bytes).unwrap();
}

/// The ids of every object of the test's IPC namespace, as the mount names them.
fn kernel_objects() -> [Vec<String>; 3] {
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    [
        sorted(sysvipc::list_shm().unwrap().iter().map(|s| s.id.0.to_string()).collect()),
        sorted(sysvipc::list_sem().unwrap().iter().map(|s| s.id.0.to_string()).collect()),
        sorted(sysvipc::list_msg().unwrap().iter().map(|s| s.id.0.to_string()).collect()),
    ]
}

/// The daemon runs and its listings show exactly the kernel's objects.
#[track_caller]
fn assert_serving_the_kernels_objects(m: &Mounted) {
    assert!(daemon_alive(m), "the daemon died");
    let mounted = [list(&m.path("shm")), list(&m.path("sem")), list(&m.path("msg"))];
    assert_eq!(mounted, kernel_objects(), "listings of shm/, sem/, msg/ against /proc/sysvipc");
}

// ---- random moments ----

/// A small xorshift generator: the moments of kills vary from run to run,
/// and a failing run can be replayed from its printed seed.
struct Moments(u64);

impl Moments {
    fn new(test: &str) -> Moments {
        let seed = std::env::var("IPCFS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
            now.as_nanos() as u64 ^ u64::from(std::process::id())
        });
        eprintln!("{test}: IPCFS_SEED={seed}");
        Moments(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }

    /// A random pause of up to `max_micros`: busy for short ones, so that
    /// they are not all rounded up to a timer tick.
    fn pause(&mut self, max_micros: u64) {
        let length = Duration::from_micros(self.below(max_micros + 1));
        if length < Duration::from_micros(200) {
            let start = Instant::now();
            while start.elapsed() < length {
                std::hint::spin_loop();
            }
        } else {
            std::thread::sleep(length);
        }
    }
}
