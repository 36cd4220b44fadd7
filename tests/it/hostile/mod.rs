//! Hostile input: names that are neither ids nor keys, ids that overflow,
//! huge offsets, enormous writes, semaphore commands that are not one,
//! setxattr of the kernel's attributes, `.` and `..`, very long names, and
//! attempts to reshape the tree. Each must get the errno docs/ipcfs.md gives,
//! change nothing in the kernel, and leave the daemon serving.
//!
//! Two kinds of test:
//! - tables of specific inputs ([`Bench`]): around each operation the whole
//!   IPC namespace is read through the kernel's own calls (which objects
//!   exist, their keys, owners, modes, segment bytes, semaphore values, queued
//!   messages and byte limits), and after it the daemon must be alive and
//!   list exactly the kernel's objects;
//! - a reference-model property test: random sequences of valid and hostile
//!   operations on one mount, interleaved with calls of the test's own that
//!   change the objects behind the mount's back (writes, IPC_SET, SETVAL,
//!   semop, msgsnd, msgrcv, IPC_RMID, new objects — some given a removed
//!   object's id through /proc/sys/kernel/*_next_id) and with files kept
//!   open across all that, with a model of what the kernel must hold,
//!   compared after every step with the kernel and with what the mount lists.
//!
//! Cases where ipcfs is known to disagree with the documentation have tests
//! of their own (named after the documented rule), so that the tables stay
//! green and each disagreement shows up once, by name.
//!
//! A [`Watchdog`] kills the daemon when one operation takes longer than
//! [`LIMIT`]: every pending call then returns at once, and the test fails
//! saying which operation hung instead of stalling the suite.
//!
//! Here: the harness both kinds share (the kernel's view of the namespace,
//! [`Kernel`]; the watchdog; [`Bench`] for the tables). The rest:
//! - [`calls`]: the operations as outcomes (count or errno), and [`Want`];
//! - [`tables`] and [`writes`]: the tables;
//! - [`ops`], [`model`] and [`run`]: the property test's operations, its
//!   model of the kernel, and the run that compares the two;
//! - [`pinned`]: the disagreements with the docs and the regressions the
//!   random search found, each a test of its own.
//!
//! The names here (`Kernel`, `Segment`, `Node`, ...) are this module's own,
//! private to it: they are not the library's.

mod calls;
mod model;
mod ops;
mod pinned;
mod run;
mod tables;
mod writes;

use crate::common::*;
use calls::*;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipcfs::ipc::msg::{self, MsqId};
use ipcfs::ipc::sem::{self, Query, SEMVMX, SemId};
use ipcfs::ipc::sysvipc;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long one operation may take before the watchdog kills the daemon.
const LIMIT: Duration = Duration::from_secs(10);
/// An enormous write: far more than one FUSE request (1 MiB) carries.
const HUGE: usize = 64 << 20;
/// The kernel's default `msgmax` in a new IPC namespace.
const MSGMAX: usize = 8192;
const SEG_SIZE: u64 = 4096;

/// Keys with a leading zero digit, so that `{:x}` is a short, non-canonical
/// spelling and `{:08x}` the canonical one.
const KEY_SHM: i32 = 0x0a4a_0001;
const KEY_SEM: i32 = 0x0a4a_0002;
const KEY_MSG: i32 = 0x0a4a_0003;
/// A key no object has.
const KEY_FREE: i32 = 0x0a4a_0077;

const SHM_ATTRS: [&str; 9] = [
    "user.ipc.key",
    "user.ipc.id",
    "user.ipc.cuid",
    "user.ipc.cgid",
    "user.ipc.cpid",
    "user.ipc.lpid",
    "user.ipc.nattch",
    "user.ipc.dest",
    "user.ipc.locked",
];
const SET_ATTRS: [&str; 5] = ["user.ipc.key", "user.ipc.id", "user.ipc.cuid", "user.ipc.cgid", "user.ipc.nsems"];
const SEMAPHORE_ATTRS: [&str; 3] = ["user.ipc.pid", "user.ipc.ncnt", "user.ipc.zcnt"];
const QUEUE_ATTRS: [&str; 9] = [
    "user.ipc.key",
    "user.ipc.id",
    "user.ipc.cuid",
    "user.ipc.cgid",
    "user.ipc.qnum",
    "user.ipc.qbytes",
    "user.ipc.cbytes",
    "user.ipc.lspid",
    "user.ipc.lrpid",
];

// ---- bytes that print readably ----

/// Bytes that print as an escaped byte string, shortened when long.
#[derive(Clone, PartialEq, Eq)]
struct Text(Vec<u8>);

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() > 48 {
            write!(f, "b\"{}\"…({} bytes)", self.0[..24].escape_ascii(), self.0.len())
        } else {
            write!(f, "b\"{}\"", self.0.escape_ascii())
        }
    }
}

fn text(s: impl AsRef<[u8]>) -> Text {
    Text(s.as_ref().to_vec())
}

/// A 64 MiB buffer whose first 64 KiB are a pattern (the rest zeros, which
/// costs no memory until touched).
fn huge_buffer() -> &'static [u8] {
    static BUFFER: OnceLock<Vec<u8>> = OnceLock::new();
    BUFFER.get_or_init(|| {
        let mut buffer = vec![0u8; HUGE];
        buffer[..64 << 10].copy_from_slice(&pseudo_random(64 << 10, 99));
        buffer
    })
}

// ---- the kernel's view ----

#[derive(Clone, Debug, PartialEq, Eq)]
struct Perm {
    key: i32,
    uid: u32,
    gid: u32,
    cuid: u32,
    cgid: u32,
    mode: u32,
}

impl Perm {
    fn of(p: &ipcfs::ipc::IpcPerm) -> Perm {
        Perm { key: p.key.0, uid: p.uid, gid: p.gid, cuid: p.cuid, cgid: p.cgid, mode: p.mode & 0o3777 }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Segment {
    perm: Perm,
    bytes: Text,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Set {
    perm: Perm,
    values: Vec<i32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Queue {
    perm: Perm,
    qbytes: u64,
    messages: Vec<(i64, Text)>,
}

/// Everything of the IPC namespace an operation could change, except times,
/// pids and attachment counts (which reading and opening change by design).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Kernel {
    segments: BTreeMap<i32, Segment>,
    sets: BTreeMap<i32, Set>,
    queues: BTreeMap<i32, Queue>,
}

/// The queue's messages in order ([`queued`]), their bodies as [`Text`].
fn queued_texts(id: MsqId) -> Vec<(i64, Text)> {
    queued(id).into_iter().map(|(mtype, body)| (mtype, Text(body))).collect()
}

impl Kernel {
    fn now() -> Kernel {
        let segments = sysvipc::list_shm()
            .unwrap()
            .iter()
            .map(|s| {
                let a = shm::Attachment::attach(s.id, s.segsz, false).expect("shmat for a snapshot");
                (s.id.0, Segment { perm: Perm::of(&s.perm), bytes: Text(a.read_at(0, s.segsz as usize)) })
            })
            .collect();
        let sets = sysvipc::list_sem()
            .unwrap()
            .iter()
            .map(|s| {
                let values = (0..s.nsems as u16).map(|n| sem::query(s.id, n, Query::Value).unwrap()).collect();
                (s.id.0, Set { perm: Perm::of(&s.perm), values })
            })
            .collect();
        let queues = sysvipc::list_msg()
            .unwrap()
            .iter()
            .map(|q| {
                let qbytes = msg::stat_any(q.id).unwrap().qbytes;
                (q.id.0, Queue { perm: Perm::of(&q.perm), qbytes, messages: queued_texts(q.id) })
            })
            .collect();
        Kernel { segments, sets, queues }
    }

    fn bytes(&mut self, id: ShmId) -> &mut Vec<u8> {
        &mut self.segments.get_mut(&id.0).expect("segment in the model").bytes.0
    }

    fn values(&mut self, id: SemId) -> &mut Vec<i32> {
        &mut self.sets.get_mut(&id.0).expect("set in the model").values
    }

    fn messages(&mut self, id: MsqId) -> &mut Vec<(i64, Text)> {
        &mut self.queues.get_mut(&id.0).expect("queue in the model").messages
    }
}

/// What differs between the expected and the actual namespace, readably.
fn differences(want: &Kernel, got: &Kernel) -> String {
    fn family<T: fmt::Debug + PartialEq>(
        kind: &str,
        want: &BTreeMap<i32, T>,
        got: &BTreeMap<i32, T>,
        out: &mut Vec<String>,
    ) {
        let ids: BTreeSet<&i32> = want.keys().chain(got.keys()).collect();
        for id in ids {
            match (want.get(id), got.get(id)) {
                (Some(w), Some(g)) if w == g => {}
                (Some(w), Some(g)) => out.push(format!("{kind} {id}: expected {w:?}\n    but the kernel has {g:?}")),
                (Some(_), None) => out.push(format!("{kind} {id} is gone")),
                (None, Some(g)) => out.push(format!("{kind} {id} appeared: {g:?}")),
                (None, None) => {}
            }
        }
    }
    let mut out = Vec::new();
    family("segment", &want.segments, &got.segments, &mut out);
    for (id, w) in &want.segments {
        if let Some(g) = got.segments.get(id) {
            if let Some(at) = w.bytes.0.iter().zip(&g.bytes.0).position(|(a, b)| a != b) {
                out.push(format!("segment {id}: first differing byte at offset {at}"));
            }
        }
    }
    family("semaphore set", &want.sets, &got.sets, &mut out);
    family("queue", &want.queues, &got.queues, &mut out);
    out.join("\n  ")
}

// ---- the daemon ----

/// Kills the daemon when an operation takes longer than [`LIMIT`], so that a
/// hang fails the test (the hung call returns ENOTCONN at once) instead of
/// stalling the suite.
struct Watchdog {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    armed: Mutex<Option<(Instant, String)>>,
    fired: Mutex<Option<String>>,
    stop: AtomicBool,
}

impl Watchdog {
    fn new(m: &Mounted) -> Watchdog {
        let pid = Pid::from_raw(m.daemon_pid().expect("a running daemon"));
        let shared = Arc::new(Shared::default());
        let watched = shared.clone();
        let thread = std::thread::spawn(move || {
            while !watched.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
                let armed = watched.armed.lock().unwrap().clone();
                if let Some((deadline, what)) = armed {
                    if Instant::now() > deadline {
                        let _ = kill(pid, Signal::SIGKILL);
                        *watched.fired.lock().unwrap() = Some(what);
                        return;
                    }
                }
            }
        });
        Watchdog { shared, thread: Some(thread) }
    }

    fn guard(&self, what: &str) {
        *self.shared.armed.lock().unwrap() = Some((Instant::now() + LIMIT, what.to_string()));
    }

    fn clear(&self) {
        *self.shared.armed.lock().unwrap() = None;
    }

    fn fired(&self) -> Option<String> {
        self.shared.fired.lock().unwrap().clone()
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn listed(dir: &Path) -> Result<BTreeSet<String>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("listing {}: {e}", dir.display()))?;
    entries
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()).map_err(|e| format!("listing: {e}")))
        .collect()
}

/// The daemon is alive and answers: each family's directory, and each of
/// by-key/, lists exactly the kernel's objects.
fn serving(m: &Mounted, k: &Kernel, dog: &Watchdog) -> Result<(), String> {
    if let Some(what) = dog.fired() {
        return Err(format!("`{what}` did not return within {LIMIT:?}; the watchdog killed the daemon"));
    }
    let pid = m.daemon_pid().ok_or("no daemon")?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|_| "the daemon has exited")?;
    if stat.rsplit(')').next().and_then(|rest| rest.trim_start().chars().next()) == Some('Z') {
        return Err("the daemon has exited".into());
    }
    dog.guard("listing shm/, sem/, msg/ and by-key/");
    fn links<'a>(perms: impl Iterator<Item = &'a Perm>) -> BTreeSet<String> {
        perms.filter(|p| p.key != 0).map(|p| format!("0x{:08x}", p.key as u32)).collect()
    }
    let families = [
        ("shm", k.segments.keys().map(i32::to_string).collect::<BTreeSet<_>>()),
        ("sem", k.sets.keys().map(i32::to_string).collect()),
        ("msg", k.queues.keys().map(i32::to_string).collect()),
        ("by-key/shm", links(k.segments.values().map(|s| &s.perm))),
        ("by-key/sem", links(k.sets.values().map(|s| &s.perm))),
        ("by-key/msg", links(k.queues.values().map(|q| &q.perm))),
    ];
    let result = families.into_iter().try_for_each(|(dir, ids)| {
        let names = listed(&m.path(dir))?;
        if names == ids { Ok(()) } else { Err(format!("{dir}/ lists {names:?}, the kernel has {ids:?}")) }
    });
    dog.clear();
    result
}

// ---- the tables ----

/// A path inside the mount, from bytes (names need not be UTF-8).
fn under(m: &Mounted, relative: impl AsRef<[u8]>) -> PathBuf {
    let relative = relative.as_ref();
    if relative.is_empty() { m.root().to_path_buf() } else { m.path(OsStr::from_bytes(relative)) }
}

/// One of each kind of object, with a key and contents.
struct World {
    seg: ShmId,
    set: SemId,
    queue: MsqId,
}

impl World {
    fn new() -> World {
        let seg = create_segment(KEY_SHM, SEG_SIZE, 0o640);
        let a = shm::Attachment::attach(seg, SEG_SIZE, true).unwrap();
        a.write_at(0, &pseudo_random(SEG_SIZE as usize, 1)).unwrap();
        let set = sem::get(Key(KEY_SEM), 3, libc::IPC_CREAT | libc::IPC_EXCL | 0o640).unwrap();
        for (num, value) in [7, 0, SEMVMX].into_iter().enumerate() {
            sem::set_value(set, num as u16, value).unwrap();
        }
        let queue = msg::get(Key(KEY_MSG), libc::IPC_CREAT | libc::IPC_EXCL | 0o640).unwrap();
        for (mtype, body) in [(1, "one"), (5, "five"), (2, "two-two"), (5, "5b")] {
            msg::send(queue, mtype, body.as_bytes(), false).unwrap();
        }
        World { seg, set, queue }
    }
}

/// Runs operations on a mount, each with what it must give and how it may
/// change the kernel's objects (by default: not at all), and collects every
/// disagreement.
struct Bench<'m> {
    m: &'m Mounted,
    dog: Watchdog,
    failures: Vec<String>,
    checked: usize,
}

impl<'m> Bench<'m> {
    fn new(m: &'m Mounted) -> Bench<'m> {
        Bench { m, dog: Watchdog::new(m), failures: Vec::new(), checked: 0 }
    }

    /// `op` must give `want` and change nothing.
    fn refuses(&mut self, what: impl fmt::Display, want: Want, op: impl FnOnce() -> Outcome) {
        self.changes(what, want, op, |_| {});
    }

    /// `op` must give `want` and change the kernel's objects as `change` does.
    fn changes(
        &mut self,
        what: impl fmt::Display,
        want: Want,
        op: impl FnOnce() -> Outcome,
        change: impl FnOnce(&mut Kernel),
    ) {
        let what = what.to_string();
        let mut expected = Kernel::now();
        change(&mut expected);
        self.dog.guard(&what);
        let got = op();
        self.dog.clear();
        self.checked += 1;
        if !want.accepts(&got) {
            self.failures.push(format!("{what}: gave {}, want {want}", show(&got)));
        }
        let after = Kernel::now();
        if after != expected {
            self.failures.push(format!("{what}: {}", differences(&expected, &after)));
        }
        if let Err(e) = serving(self.m, &after, &self.dog) {
            self.failures.push(format!("{what}: {e}"));
            panic!("the daemon stopped serving; stopping here.\n{}", self.report());
        }
    }

    fn report(&self) -> String {
        format!(
            "{} problems in {} hostile operations:\n{}",
            self.failures.len(),
            self.checked,
            self.failures.join("\n")
        )
    }

    fn finish(self) {
        assert!(self.failures.is_empty(), "{}", self.report());
    }
}
