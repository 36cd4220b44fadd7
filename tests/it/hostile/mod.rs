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

use crate::common::*;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CString, OsStr};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipcfs::ipc::msg::{self, MsqId};
use ipcfs::ipc::sem::{self, Query, SEMVMX, SemId};
use ipcfs::ipc::{Errno, sysvipc};
use nix::fcntl::{AT_FDCWD, FallocateFlags, RenameFlags, fallocate, renameat2};
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::{Mode, SFlag, mknod};
use nix::unistd::Pid;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

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

fn kernel_msgmax() -> usize {
    fs::read_to_string("/proc/sys/kernel/msgmax").unwrap().trim().parse().unwrap()
}

/// The queue's messages in order, looked at without taking them (MSG_COPY).
fn queued(id: MsqId) -> Vec<(i64, Text)> {
    let room = kernel_msgmax();
    let mut messages = Vec::new();
    loop {
        match msg::peek(id, messages.len() as u64, room) {
            Ok(m) => messages.push((m.mtype, Text(m.body))),
            Err(Errno::ENOMSG) => return messages,
            Err(e) => panic!("msgrcv({}, MSG_COPY): {e}", id.0),
        }
    }
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
                (q.id.0, Queue { perm: Perm::of(&q.perm), qbytes, messages: queued(q.id) })
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

// ---- operations, as errno results ----

/// What an operation gave: a count (or 0), or the errno.
type Outcome = Result<u64, i32>;

fn errno<T>(r: std::io::Result<T>) -> Result<T, i32> {
    r.map_err(|e| errno_of(&e))
}

fn nix_done(r: nix::Result<()>) -> Outcome {
    r.map(|()| 0).map_err(|e| e as i32)
}

fn show(o: &Outcome) -> String {
    match o {
        Ok(n) => format!("Ok({n})"),
        Err(e) => format!("{:?}", Errno::from_raw(*e)),
    }
}

fn open(path: &Path, flags: i32) -> Result<File, i32> {
    let access = flags & libc::O_ACCMODE;
    errno(
        OpenOptions::new()
            .read(access != libc::O_WRONLY)
            .write(access != libc::O_RDONLY)
            .custom_flags(flags & !libc::O_ACCMODE)
            .open(path),
    )
}

/// One write(2) of `data` on a fresh descriptor.
fn write_once(path: &Path, flags: i32, data: &[u8]) -> Outcome {
    let mut file = open(path, libc::O_WRONLY | flags)?;
    errno(file.write(data)).map(|n| n as u64)
}

fn pwrite_once(path: &Path, data: &[u8], offset: u64) -> Outcome {
    let file = open(path, libc::O_WRONLY)?;
    errno(file.write_at(data, offset)).map(|n| n as u64)
}

/// One read(2) of at most `room` bytes on a fresh descriptor.
fn read_once(path: &Path, flags: i32, room: usize) -> Result<Vec<u8>, i32> {
    let mut file = open(path, libc::O_RDONLY | flags)?;
    let mut buf = vec![0u8; room];
    let n = errno(file.read(&mut buf))?;
    buf.truncate(n);
    Ok(buf)
}

fn pread_once(path: &Path, room: usize, offset: u64) -> Result<Vec<u8>, i32> {
    let file = open(path, libc::O_RDONLY)?;
    let mut buf = vec![0u8; room];
    let n = errno(file.read_at(&mut buf, offset))?;
    buf.truncate(n);
    Ok(buf)
}

fn count(r: Result<Vec<u8>, i32>) -> Outcome {
    r.map(|data| data.len() as u64)
}

fn stat(path: &Path) -> Outcome {
    errno(fs::symlink_metadata(path)).map(|_| 0)
}

/// Ok(1) when both paths name the same file, Ok(0) when not.
fn same_file(a: &Path, b: &Path) -> Outcome {
    let (a, b) = (errno(fs::metadata(a))?, errno(fs::metadata(b))?);
    Ok(u64::from((a.dev(), a.ino()) == (b.dev(), b.ino())))
}

fn cstring(bytes: &[u8]) -> CString {
    CString::new(bytes).expect("no NUL in paths and attribute names")
}

fn set_xattr(path: &Path, name: &[u8], value: &[u8]) -> Outcome {
    let (path, name) = (cstring(path.as_os_str().as_bytes()), cstring(name));
    // SAFETY: path and name are NUL-terminated and live across the call;
    // value points to value.len() readable bytes.
    let r = unsafe { libc::lsetxattr(path.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if r < 0 { Err(Errno::last_raw()) } else { Ok(0) }
}

fn remove_xattr(path: &Path, name: &[u8]) -> Outcome {
    let (path, name) = (cstring(path.as_os_str().as_bytes()), cstring(name));
    // SAFETY: path and name are NUL-terminated and live across the call.
    let r = unsafe { libc::lremovexattr(path.as_ptr(), name.as_ptr()) };
    if r < 0 { Err(Errno::last_raw()) } else { Ok(0) }
}

fn truncate(path: &Path, len: i64) -> Outcome {
    nix_done(nix::unistd::truncate(path, len))
}

fn mkdir(path: &Path) -> Outcome {
    errno(fs::create_dir(path)).map(|()| 0)
}

fn make_fifo(path: &Path) -> Outcome {
    nix_done(mknod(path, SFlag::S_IFIFO, Mode::from_bits_truncate(0o644), 0))
}

fn make_regular(path: &Path) -> Outcome {
    nix_done(mknod(path, SFlag::S_IFREG, Mode::from_bits_truncate(0o644), 0))
}

fn symlink(path: &Path) -> Outcome {
    errno(std::os::unix::fs::symlink("../shm", path)).map(|()| 0)
}

fn link(from: &Path, to: &Path) -> Outcome {
    errno(fs::hard_link(from, to)).map(|()| 0)
}

fn rename(from: &Path, to: &Path) -> Outcome {
    errno(fs::rename(from, to)).map(|()| 0)
}

fn unlink(path: &Path) -> Outcome {
    errno(fs::remove_file(path)).map(|()| 0)
}

fn rmdir(path: &Path) -> Outcome {
    errno(fs::remove_dir(path)).map(|()| 0)
}

fn chmod(path: &Path, mode: u32) -> Outcome {
    errno(fs::set_permissions(path, fs::Permissions::from_mode(mode))).map(|()| 0)
}

// ---- what an operation must give ----

#[derive(Clone, Copy, Debug)]
enum Want {
    /// Success with this count (bytes written or read; 0 otherwise).
    Ok(u64),
    Err(i32),
    OneOf(&'static [i32]),
    /// The kernel's business (the request never reaches ipcfs, or the docs
    /// leave the errno open): any error, but never EIO.
    Refused,
    /// Success or any error but EIO; only "nothing changes" is asserted.
    Anything,
}

impl Want {
    fn accepts(self, got: &Outcome) -> bool {
        match (self, got) {
            (Want::Ok(n), Ok(m)) => n == *m,
            (Want::Anything, Ok(_)) => true,
            (Want::Err(e), Err(g)) => e == *g,
            (Want::OneOf(es), Err(g)) => es.contains(g),
            (Want::Refused | Want::Anything, Err(g)) => *g != libc::EIO,
            _ => false,
        }
    }
}

impl fmt::Display for Want {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |e: i32| format!("{:?}", Errno::from_raw(e));
        match self {
            Want::Ok(n) => write!(f, "Ok({n})"),
            Want::Err(e) => write!(f, "{}", name(*e)),
            Want::OneOf(es) => write!(f, "one of {}", es.iter().map(|&e| name(e)).collect::<Vec<_>>().join(", ")),
            Want::Refused => write!(f, "an error other than EIO"),
            Want::Anything => write!(f, "anything but EIO"),
        }
    }
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

#[test]
fn names_that_are_not_canonical_ids_or_keys_are_enoent_and_too_long_names_enametoolong() {
    let m = Mounted::new();
    let w = World::new();
    let mut b = Bench::new(&m);
    let (s, e, q) = (w.seg.0, w.set.0, w.queue.0);

    // The canonical names resolve: the refusals below are about spelling.
    let found = [
        format!("shm/{s}"),
        format!("sem/{e}/2"),
        format!("msg/{q}/any"),
        format!("msg/{q}/9223372036854775807"),
        format!("msg/{q}/.wait/5"),
        format!("msg/{q}/.recv/5"),
        format!("msg/{q}/.recv/any"),
        format!("by-key/shm/0x{KEY_SHM:08x}"),
        format!("sem/0x{KEY_SEM:x}"),
    ];
    for name in found {
        let path = under(&m, &name);
        b.refuses(format!("stat {name}"), Want::Ok(0), || stat(&path));
    }

    let mut enoent: Vec<Vec<u8>> = [
        "shm/abc".to_string(),
        "shm/007".into(),
        format!("shm/0{s}"),
        format!("shm/00{s}"),
        "shm/-1".into(),
        format!("shm/-{s}"),
        format!("shm/+{s}"),
        format!("shm/{s} "),
        format!("shm/ {s}"),
        format!("shm/{s}.0"),
        format!("shm/{s}\n"),
        "shm/99999999999999999999".into(),
        "shm/2147483648".into(),
        "shm/4294967295".into(),
        format!("shm/{}", i64::from(s) + (1 << 32)),
        "shm/1e3".into(),
        "shm/0x10".into(),
        // A key name never finds an existing segment in shm/.
        format!("shm/0x{KEY_SHM:08x}"),
        format!("shm/0x{KEY_SHM:x}"),
        "shm/private".into(),
        "sem/abc".into(),
        format!("sem/0{e}"),
        "sem/-1".into(),
        "sem/2147483648".into(),
        "sem/99999999999999999999".into(),
        format!("sem/{e}/3"),
        format!("sem/{e}/99999"),
        format!("sem/{e}/65536"),
        format!("sem/{e}/65537"),
        format!("sem/{e}/4294967296"),
        format!("sem/{e}/00"),
        format!("sem/{e}/01"),
        format!("sem/{e}/-0"),
        format!("sem/{e}/+1"),
        format!("sem/{e}/0x1"),
        format!("sem/{e}/ 1"),
        format!("sem/{e}/any"),
        "sem/0xdeadbeef".into(),
        format!("sem/0x{KEY_SEM:x}:0"),
        format!("sem/0x{KEY_SEM:x}:abc"),
        format!("sem/0x{KEY_SEM:x}:99999999999"),
        format!("sem/0x{KEY_SHM:x}"),
        "msg/abc".into(),
        format!("msg/0{q}"),
        "msg/-0".into(),
        "msg/0xdeadbeef".into(),
        format!("msg/0x{KEY_MSG:x}:1"),
        format!("msg/{q}/0"),
        format!("msg/{q}/-3"),
        format!("msg/{q}/00"),
        format!("msg/{q}/01"),
        format!("msg/{q}/+1"),
        format!("msg/{q}/9223372036854775808"),
        format!("msg/{q}/18446744073709551617"),
        format!("msg/{q}/99999999999999999999999999999999999999999"),
        format!("msg/{q}/ANY"),
        format!("msg/{q}/Any"),
        format!("msg/{q}/any "),
        format!("msg/{q}/1.0"),
        format!("msg/{q}/0x1"),
        format!("msg/{q}/.WAIT"),
        format!("msg/{q}/.wait/.wait"),
        format!("msg/{q}/.wait/0"),
        format!("msg/{q}/.wait/-1"),
        format!("msg/{q}/.RECV"),
        format!("msg/{q}/.recv/.recv"),
        format!("msg/{q}/.recv/.wait"),
        format!("msg/{q}/.recv/0"),
        format!("msg/{q}/.recv/-1"),
        format!("msg/{q}/.wait/.recv"),
        format!("by-key/shm/0x{KEY_SHM:x}"),
        format!("by-key/shm/0x{KEY_SHM:08X}"),
        format!("by-key/shm/0X{KEY_SHM:08x}"),
        "by-key/shm/0x00000000".into(),
        "by-key/shm/0x100000000".into(),
        format!("by-key/shm/{s}"),
        "by-key/shm/private".into(),
        format!("by-key/sem/0x{KEY_SHM:08x}"),
        format!("by-key/msg/0x{KEY_SEM:08x}"),
        "by-key/x".into(),
        "SHM".into(),
        "shm ".into(),
        ".wait".into(),
        ".recv".into(),
        "x".into(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();
    // Not UTF-8: no name ipcfs shows or accepts.
    for prefix in
        ["shm/".to_string(), "sem/".into(), format!("sem/{e}/"), "msg/".into(), format!("msg/{q}/"), "".into()]
    {
        enoent.push([prefix.as_bytes(), b"\xff"].concat());
        enoent.push([prefix.as_bytes(), b"1\xc3"].concat());
    }
    // 255 bytes is the longest name: looked up, and simply not there.
    enoent.push([b"shm/".as_slice(), &[b'1'; 255]].concat());
    enoent.push(format!("msg/{q}/{}", "9".repeat(255)).into_bytes());
    for name in enoent {
        let path = under(&m, &name);
        b.refuses(format!("stat {:?}", Text(name.clone())), Want::Err(libc::ENOENT), || stat(&path));
        let path = under(&m, &name);
        b.refuses(format!("open {:?}", Text(name)), Want::Err(libc::ENOENT), || open(&path, libc::O_RDONLY).map(|_| 0));
    }

    let too_long: Vec<String> = vec![
        format!("shm/{}", "1".repeat(256)),
        format!("shm/{}", "1".repeat(1024)),
        format!("shm/{}", "1".repeat(1025)),
        format!("shm/{}", "1".repeat(5000)),
        format!("sem/{}", "0".repeat(300)),
        format!("sem/{e}/{}", "0".repeat(256)),
        format!("msg/{q}/{}", "1".repeat(256)),
        format!("msg/{q}/.wait/{}", "a".repeat(4000)),
        format!("msg/{q}/.recv/{}", "1".repeat(256)),
        format!("by-key/shm/0x{}", "0".repeat(300)),
        "x".repeat(256),
    ];
    for name in too_long {
        let path = under(&m, &name);
        let what = format!("stat {:?}", text(&name));
        b.refuses(&what, Want::Err(libc::ENAMETOOLONG), || stat(&path));
        b.refuses(format!("create {what}"), Want::Err(libc::ENAMETOOLONG), || {
            open(&path, libc::O_WRONLY | libc::O_CREAT).map(|_| 0)
        });
    }
    b.finish();
}

#[test]
fn dot_and_dot_dot_are_the_directory_and_its_parent() {
    let m = Mounted::new();
    let w = World::new();
    let mut b = Bench::new(&m);
    let (s, e, q) = (w.seg.0, w.set.0, w.queue.0);
    let same = [
        ("shm/..".to_string(), "".to_string()),
        ("shm/.".into(), "shm".into()),
        ("shm/./../sem/./..".into(), "".into()),
        ("by-key/shm/..".into(), "by-key".into()),
        (format!("sem/{e}/.."), "sem".into()),
        (format!("sem/{e}/."), format!("sem/{e}")),
        (format!("msg/{q}/.."), "msg".into()),
        (format!("msg/{q}/."), format!("msg/{q}")),
        (format!("msg/{q}/.wait/.."), format!("msg/{q}")),
        (format!("msg/{q}/.wait/."), format!("msg/{q}/.wait")),
        (format!("msg/{q}/.recv/.."), format!("msg/{q}")),
        (format!("msg/{q}/.recv/."), format!("msg/{q}/.recv")),
    ];
    for (a, z) in same {
        let (pa, pz) = (under(&m, &a), under(&m, &z));
        b.refuses(format!("{a} is {z}/"), Want::Ok(1), || same_file(&pa, &pz));
    }
    // Semaphore and queue files get an inode per lookup (see src/fs/inode.rs),
    // so these are told by what they answer: the value of semaphore 2, and
    // the first message of the queue, too large for one byte to receive.
    let dotted = under(&m, format!("sem/{e}/../{e}/./2"));
    b.refuses(format!("read sem/{e}/../{e}/./2"), Want::Ok(6), || count(read_once(&dotted, 0, 100)));
    let dotted = under(&m, format!("msg/{q}/.wait/../../{q}/.recv/./any"));
    b.refuses(format!("read msg/{q}/.wait/../../{q}/.recv/./any"), Want::Err(libc::E2BIG), || {
        count(read_once(&dotted, 0, 1))
    });
    // The mount's root's parent is outside the mount.
    let (root, up) = (under(&m, ""), under(&m, ".."));
    b.refuses("the root's .. is not the root", Want::Ok(0), || same_file(&root, &up));
    for file in [
        format!("shm/{s}/.."),
        format!("shm/{s}/."),
        format!("sem/{e}/0/.."),
        format!("msg/{q}/any/."),
        format!("msg/{q}/.recv/any/.."),
    ] {
        let path = under(&m, &file);
        b.refuses(format!("stat {file}"), Want::Err(libc::ENOTDIR), || stat(&path));
    }
    b.finish();
}

#[test]
fn semaphore_text_that_is_not_one_command_is_einval_or_erange_and_changes_nothing() {
    let m = Mounted::new();
    let w = World::new();
    let mut b = Bench::new(&m);
    let e = w.set.0;
    let seven = under(&m, format!("sem/{e}/0"));
    let full = under(&m, format!("sem/{e}/2"));
    let write = |path: &Path, data: &[u8]| write_once(path, libc::O_NONBLOCK, data);

    let einval: &[&[u8]] = &[
        b"-0",
        b"+0",
        b"-00",
        b"+",
        b"-",
        b"=",
        b"=5",
        b"=+0",
        b"=-0",
        b"1 2",
        b"1\n2\n",
        b"7\n\n5",
        b"+1+1",
        b"++1",
        b"--1",
        b"+-1",
        b"5 +1",
        b"+1 -1",
        b"+1\n-1\n",
        b"=0 =0",
        b"0x10",
        b"1e3",
        b"1.5",
        b"abc",
        b"seven",
        b"\xff\xfe",
        b"7\xff",
        b"5\0",
        b"\0",
        "٧".as_bytes(),
        "７".as_bytes(),
        b"+ 1",
        b"- 1",
        b"= 0",
    ];
    for &data in einval {
        b.refuses(format!("write {:?}", text(data)), Want::Err(libc::EINVAL), || write(&seven, data));
    }
    let erange: &[&[u8]] = &[
        b"+99999999999999999999",
        b"99999999999999999999",
        b"-99999999999999999999",
        b"99999999999999999999999999999999999999999",
        b"32768",
        b"+32768",
        b"-32768",
        b"65543",
        b"4294967303",
        b"+65536",
        b"+4294967297",
        b"-65537",
        // 7 + 32767 is beyond SEMVMX.
        b"+32767",
    ];
    for &data in erange {
        b.refuses(format!("write {:?}", text(data)), Want::Err(libc::ERANGE), || write(&seven, data));
    }
    b.refuses("write +1 to a semaphore at 32767", Want::Err(libc::ERANGE), || write(&full, b"+1"));
    b.refuses("write =99999999999999999999", Want::OneOf(&[libc::EINVAL, libc::ERANGE]), || {
        write(&seven, b"=99999999999999999999")
    });
    // What would wait, on a non-blocking file.
    for data in [&b"-8"[..], b"-32767", b"=0"] {
        b.refuses(format!("write {:?} with O_NONBLOCK", text(data)), Want::Err(libc::EAGAIN), || write(&seven, data));
    }
    // Enormous writes: no command is longer than the file (4096 bytes).
    for fill in [b'9', b' ', b'+', 0] {
        let data = vec![fill; HUGE];
        b.refuses(format!("write 64 MiB of {:?}", text([fill])), Want::Err(libc::EINVAL), || write(&seven, &data));
    }
    let mut padded = b"7".to_vec();
    padded.resize(100 << 10, b' ');
    padded.push(b'\n');
    b.refuses("write 7 followed by 100 KiB of spaces", Want::Err(libc::EINVAL), || write(&seven, &padded));
    // Controls: one command with trailing white space up to the file's size is fine (and 7 is 7).
    let mut padded = b"7".to_vec();
    padded.resize(4095, b' ');
    padded.push(b'\n');
    b.refuses("write 7 followed by 4 KiB of spaces", Want::Ok(padded.len() as u64), || write(&seven, &padded));
    b.refuses("an empty write", Want::Ok(0), || write(&seven, b""));
    b.refuses("read with a 64 MiB buffer", Want::Ok(2), || count(read_once(&seven, 0, HUGE)));
    // Truncating is accepted and ignored (`echo N > file` truncates first).
    for len in [0, 5, 4096, 1 << 40, i64::MAX] {
        b.refuses(format!("truncate to {len}"), Want::Ok(0), || truncate(&seven, len));
    }
    b.refuses("open with O_TRUNC and close", Want::Ok(0), || open(&seven, libc::O_WRONLY | libc::O_TRUNC).map(|_| 0));
    b.refuses("truncate to -1", Want::Refused, || truncate(&seven, -1));
    b.finish();
}

#[test]
fn segment_offsets_and_sizes_beyond_the_end_are_refused_and_enormous_writes_write_what_fits() {
    let m = Mounted::new();
    let w = World::new();
    let mut b = Bench::new(&m);
    let seg = w.seg;
    let path = under(&m, format!("shm/{}", seg.0));
    let end = SEG_SIZE;

    for offset in [end, end + 1, 2 * end, 1 << 32, 1 << 40, 1 << 62, u64::MAX / 2 - 1, u64::MAX / 2 - 100] {
        b.refuses(format!("write 1 byte at {offset}"), Want::Err(libc::ENOSPC), || pwrite_once(&path, b"x", offset));
        b.refuses(format!("read at {offset}"), Want::Ok(0), || count(pread_once(&path, 1, offset)));
    }
    for offset in [end, 1 << 40] {
        b.refuses(format!("write 64 MiB at {offset}"), Want::Err(libc::ENOSPC), || {
            pwrite_once(&path, huge_buffer(), offset)
        });
    }
    // offset + count beyond i64::MAX: the kernel refuses before ipcfs sees it.
    b.refuses("write at u64::MAX/2 (= i64::MAX)", Want::Refused, || pwrite_once(&path, b"x", u64::MAX / 2));
    b.refuses("read 4 bytes at i64::MAX - 1", Want::Refused, || count(pread_once(&path, 4, i64::MAX as u64 - 1)));
    b.refuses("append", Want::Err(libc::ENOSPC), || write_once(&path, libc::O_APPEND, b"x"));
    b.refuses("read with a 64 MiB buffer", Want::Ok(end), || count(read_once(&path, 0, HUGE)));

    for len in [end as i64 + 1, 1 << 40, i64::MAX] {
        b.refuses(format!("truncate to {len}"), Want::Err(libc::EFBIG), || truncate(&path, len));
    }
    b.refuses("truncate to its own size", Want::Ok(0), || truncate(&path, end as i64));
    b.refuses("truncate to -1", Want::Refused, || truncate(&path, -1));
    let fallocated = |mode: FallocateFlags, offset: i64, len: i64| {
        let file = open(&path, libc::O_RDWR)?;
        nix_done(fallocate(&file, mode, offset, len))
    };
    b.refuses("fallocate beyond the end", Want::Refused, || fallocated(FallocateFlags::empty(), 0, 2 * end as i64));
    b.refuses("fallocate up to i64::MAX", Want::Refused, || fallocated(FallocateFlags::empty(), i64::MAX - 1, 1));
    b.refuses("punch a hole", Want::Refused, || {
        fallocated(FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE, 0, end as i64)
    });
    b.refuses("zero a range", Want::Refused, || fallocated(FallocateFlags::FALLOC_FL_ZERO_RANGE, 0, 16));
    for mode in [0o4640, 0o2640, 0o1640] {
        b.refuses(format!("chmod {mode:o}"), Want::Err(libc::EINVAL), || chmod(&path, mode));
    }

    // Creating: the key exists, the name is no key, no size yet, a size the
    // kernel cannot give.
    let create = |name: &str| {
        let path = m.path(name);
        move || open(&path, libc::O_WRONLY | libc::O_CREAT).map(|_| 0)
    };
    b.refuses("create the existing id exclusively", Want::Err(libc::EEXIST), || {
        open(&path, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL).map(|_| 0)
    });
    b.refuses("create by an existing key", Want::Err(libc::EEXIST), create(&format!("shm/0x{KEY_SHM:x}")));
    for bad in ["bogus", "0x", "0x123456789", "0xg", "-1", "0x-1", "0x 1", "Private", "private:1", "0x1:1"] {
        // No key: no such file, as `echo x > shm/23` after the segment went.
        b.refuses(format!("create shm/{bad}"), Want::Err(libc::ENOENT), create(&format!("shm/{bad}")));
    }
    let pending = m.path(format!("shm/0x{KEY_FREE:x}"));
    b.refuses("write into a segment not given a size yet", Want::Err(libc::ENOSPC), || {
        let mut file = open(&pending, libc::O_RDWR | libc::O_CREAT)?;
        errno(file.write(b"x")).map(|n| n as u64)
    });
    for size in [1u64 << 46, 1 << 62, i64::MAX as u64] {
        // The kernel's limits: shmmax (EINVAL), shmall (ENOSPC), or memory
        // it will not commit (ENOMEM, shmget's own answer).
        b.refuses(
            format!("create with size {size}"),
            Want::OneOf(&[libc::EINVAL, libc::ENOSPC, libc::ENOMEM, libc::EFBIG]),
            || {
                let file = open(&pending, libc::O_RDWR | libc::O_CREAT)?;
                errno(file.set_len(size)).map(|()| 0)
            },
        );
    }
    b.refuses("fallocate an uncreated segment at i64::MAX", Want::Refused, || {
        let file = open(&pending, libc::O_RDWR | libc::O_CREAT)?;
        nix_done(fallocate(&file, FallocateFlags::empty(), i64::MAX - 1, 1))
    });

    // Enormous writes into the small segment write what fits.
    let big = huge_buffer();
    b.changes(
        "write 64 MiB at 0",
        Want::Ok(end),
        || pwrite_once(&path, big, 0),
        |k| {
            k.bytes(seg).copy_from_slice(&big[..end as usize]);
        },
    );
    b.changes(
        "write 64 MiB at end - 96",
        Want::Ok(96),
        || pwrite_once(&path, &big[1..], end - 96),
        |k| k.bytes(seg)[end as usize - 96..].copy_from_slice(&big[1..97]),
    );
    b.finish();
}

#[test]
fn queue_writes_larger_than_msgmax_send_nothing_and_reads_too_small_take_nothing() {
    let m = Mounted::new();
    let w = World::new();
    let mut b = Bench::new(&m);
    let q = w.queue;
    let file = |name: &str| under(&m, format!("msg/{}/{name}", q.0));
    let (any, five, two, biggest) = (file("any"), file("5"), file("2"), file("9223372036854775807"));
    // Receiving is reading under .recv/.
    let recv = |name: &str| file(&format!(".recv/{name}"));
    assert_eq!(kernel_msgmax(), MSGMAX);

    let big = huge_buffer();
    for (path, name) in [(&any, "any"), (&five, "5"), (&biggest, "9223372036854775807")] {
        b.refuses(format!("write 64 MiB to {name}"), Want::Err(libc::EINVAL), || write_once(path, 0, big));
        b.refuses(format!("write msgmax + 1 bytes to {name}"), Want::Err(libc::EINVAL), || {
            write_once(path, libc::O_NONBLOCK, &big[..MSGMAX + 1])
        });
    }
    b.refuses("write msgmax + 1 bytes to .recv/any", Want::Err(libc::EINVAL), || {
        write_once(&recv("any"), libc::O_NONBLOCK, &big[..MSGMAX + 1])
    });
    // Messages: any "one", 5 "five", 2 "two-two", 5 "5b".
    for (name, room) in [("any", 1), ("any", 2), ("5", 3), ("2", 6)] {
        b.refuses(format!("read .recv/{name} with a {room}-byte buffer"), Want::Err(libc::E2BIG), || {
            count(read_once(&recv(name), 0, room))
        });
    }
    let wait_any = file(".wait/any");
    b.refuses("read .wait/any with a 1-byte buffer", Want::Err(libc::E2BIG), || {
        count(read_once(&wait_any, libc::O_NONBLOCK, 1))
    });
    b.refuses("read .wait/3 with O_NONBLOCK", Want::Err(libc::EAGAIN), || {
        count(read_once(&file(".wait/3"), libc::O_NONBLOCK, 100))
    });
    b.refuses("read .recv/3, nothing queued", Want::Ok(0), || count(read_once(&recv("3"), 0, 100)));
    b.refuses("read .recv/ of the largest type", Want::Ok(0), || {
        count(read_once(&recv("9223372036854775807"), 0, 100))
    });
    b.refuses("read .recv/any with a 0-byte buffer", Want::Ok(0), || count(read_once(&recv("any"), 0, 0)));
    // Reading a listed file takes nothing, whatever the buffer.
    for (path, name, room, want) in
        [(&any, "any", 100, 3), (&five, "5", 100, 4), (&two, "2", 6, 6), (&biggest, "9223372036854775807", 100, 0)]
    {
        b.refuses(format!("read {name} with a {room}-byte buffer"), Want::Ok(want), || count(read_once(path, 0, room)));
    }
    for len in [0, 5, 1 << 40, i64::MAX] {
        b.refuses(format!("truncate any to {len}"), Want::Ok(0), || truncate(&any, len));
        b.refuses(format!("truncate 5 to {len}"), Want::Ok(0), || truncate(&five, len));
    }
    b.refuses("open 5 with O_TRUNC and close", Want::Ok(0), || open(&five, libc::O_WRONLY | libc::O_TRUNC).map(|_| 0));
    b.refuses("discard a type with nothing queued", Want::Ok(0), || unlink(&file("3")));
    b.refuses("discard type 0", Want::Err(libc::ENOENT), || unlink(&file("0")));
    b.refuses("discard type -1", Want::Err(libc::ENOENT), || unlink(&file("-1")));
    b.refuses("unlink .wait", Want::Err(libc::EISDIR), || unlink(&file(".wait")));
    b.refuses("rmdir .wait", Want::Anything, || rmdir(&file(".wait")));
    b.refuses("write to .wait", Want::Err(libc::EISDIR), || write_once(&file(".wait"), 0, b"x"));
    b.refuses("unlink .recv", Want::Err(libc::EISDIR), || unlink(&file(".recv")));
    b.refuses("rmdir .recv", Want::Anything, || rmdir(&file(".recv")));
    b.refuses("write to .recv", Want::Err(libc::EISDIR), || write_once(&file(".recv"), 0, b"x"));

    // Controls: exactly msgmax bytes, and the largest type, go and come back.
    let body = pseudo_random(MSGMAX, 5);
    b.changes(
        "write msgmax bytes to 7",
        Want::Ok(MSGMAX as u64),
        || write_once(&file("7"), libc::O_NONBLOCK, &body),
        |k| k.messages(q).push((7, Text(body.clone()))),
    );
    b.refuses("read 7 with a msgmax buffer", Want::Ok(MSGMAX as u64), || count(read_once(&file("7"), 0, MSGMAX)));
    b.changes(
        "read .recv/7 with a msgmax buffer",
        Want::Ok(MSGMAX as u64),
        || count(read_once(&recv("7"), 0, MSGMAX)),
        |k| {
            k.messages(q).pop();
        },
    );
    b.changes(
        "write to the largest type",
        Want::Ok(3),
        || write_once(&biggest, libc::O_NONBLOCK, b"max"),
        |k| k.messages(q).push((i64::MAX, text("max"))),
    );
    b.refuses("read the largest type", Want::Ok(3), || count(read_once(&biggest, 0, 100)));
    b.changes(
        "read .recv/ of the largest type",
        Want::Ok(3),
        || count(read_once(&recv("9223372036854775807"), 0, 100)),
        |k| {
            k.messages(q).pop();
        },
    );
    b.finish();
}

#[test]
fn kernel_attributes_cannot_be_set_or_removed_and_unknown_ones_are_not_supported() {
    let m = Mounted::new();
    let w = World::new();
    let mut b = Bench::new(&m);
    let (s, e, q) = (w.seg.0, w.set.0, w.queue.0);
    let nodes: [(String, &[&str]); 12] = [
        (format!("shm/{s}"), &SHM_ATTRS),
        (format!("sem/{e}"), &SET_ATTRS),
        (format!("sem/{e}/1"), &SEMAPHORE_ATTRS),
        (format!("msg/{q}"), &QUEUE_ATTRS),
        (format!("msg/{q}/any"), &[]),
        (format!("msg/{q}/5"), &[]),
        (format!("msg/{q}/.wait"), &[]),
        (format!("msg/{q}/.recv"), &[]),
        (format!("msg/{q}/.recv/any"), &[]),
        ("".into(), &[]),
        ("shm".into(), &[]),
        ("by-key/shm".into(), &[]),
    ];
    let every_name: BTreeSet<&str> =
        SHM_ATTRS.iter().chain(&SET_ATTRS).chain(&SEMAPHORE_ATTRS).chain(&QUEUE_ATTRS).copied().collect();
    let unknown: [&[u8]; 8] = [
        b"user.whatever",
        b"user.ipc.KEY",
        b"user.ipc.key.x",
        b"user.ipc.key ",
        b"user.ipc.\xff",
        b"user.IPC.key",
        b"user.ipc",
        b"user.ipc.",
    ];
    for (node, attrs) in &nodes {
        let path = under(&m, node);
        for name in &every_name {
            let is_kernels = attrs.contains(name);
            if *node == format!("msg/{q}") && *name == "user.ipc.qbytes" {
                b.refuses(format!("removexattr {name} on {node}"), Want::Err(libc::EPERM), || {
                    remove_xattr(&path, name.as_bytes())
                });
                continue;
            }
            let want = Want::Err(if is_kernels { libc::EPERM } else { libc::EOPNOTSUPP });
            b.refuses(format!("setxattr {name}=1 on {node:?}"), want, || set_xattr(&path, name.as_bytes(), b"1"));
            b.refuses(format!("removexattr {name} on {node:?}"), want, || remove_xattr(&path, name.as_bytes()));
        }
        for name in unknown {
            let what = format!("{:?} on {node:?}", text(name));
            b.refuses(format!("setxattr {what}"), Want::Err(libc::EOPNOTSUPP), || set_xattr(&path, name, b"x"));
            b.refuses(format!("removexattr {what}"), Want::Err(libc::EOPNOTSUPP), || remove_xattr(&path, name));
        }
        // Other namespaces are the kernel's to judge; nothing may change.
        for name in [&b"trusted.x"[..], b"security.x", b"security.capability", b"system.posix_acl_access", b"foo.bar"] {
            let what = format!("{:?} on {node:?}", text(name));
            b.refuses(format!("setxattr {what}"), Want::Refused, || set_xattr(&path, name, b"1"));
            b.refuses(format!("removexattr {what}"), Want::Refused, || remove_xattr(&path, name));
        }
        b.refuses(format!("setxattr user. on {node:?}"), Want::Refused, || set_xattr(&path, b"user.", b"1"));
        let long = [b"user.".as_slice(), &[b'x'; 300]].concat();
        b.refuses(format!("setxattr of a 305-byte name on {node:?}"), Want::Refused, || set_xattr(&path, &long, b"1"));
        b.refuses(format!("setxattr a 65 KiB value on {node:?}"), Want::Refused, || {
            set_xattr(&path, b"user.ipc.key", &vec![b'1'; 65 << 10])
        });
    }
    // The one writable attribute, with values that are no byte limit.
    let queue = under(&m, format!("msg/{q}"));
    let garbage: [&[u8]; 13] = [
        b"",
        b" ",
        b"-1",
        b"+5",
        b"abc",
        b"1 2",
        b"0x10",
        b"1e3",
        b"16384.0",
        b"99999999999999999999999",
        b"\xff",
        "１".as_bytes(),
        b"5\0",
    ];
    for value in garbage {
        b.refuses(
            format!("setxattr user.ipc.qbytes={:?}", text(value)),
            Want::OneOf(&[libc::EINVAL, libc::ERANGE]),
            || set_xattr(&queue, b"user.ipc.qbytes", value),
        );
    }
    let qbytes = msg::stat_any(w.queue).unwrap().qbytes.to_string();
    b.refuses("setxattr user.ipc.qbytes to its own value", Want::Ok(0), || {
        set_xattr(&queue, b"user.ipc.qbytes", qbytes.as_bytes())
    });
    // user.* is for regular files and directories only: the kernel says so.
    let link = under(&m, format!("by-key/shm/0x{KEY_SHM:08x}"));
    b.refuses("setxattr on a by-key link", Want::Refused, || set_xattr(&link, b"user.ipc.key", b"1"));
    b.finish();
}

#[test]
fn the_tree_cannot_be_reshaped_and_directories_cannot_be_written() {
    let m = Mounted::new();
    let w = World::new();
    let mut b = Bench::new(&m);
    let (s, e, q) = (w.seg.0, w.set.0, w.queue.0);
    let segment = under(&m, format!("shm/{s}"));
    // Every directory, with an entry in it.
    let dirs: [(String, String); 12] = [
        ("".into(), "shm".into()),
        ("shm".into(), s.to_string()),
        ("sem".into(), e.to_string()),
        ("msg".into(), q.to_string()),
        ("by-key".into(), "shm".into()),
        ("by-key/shm".into(), format!("0x{KEY_SHM:08x}")),
        ("by-key/sem".into(), format!("0x{KEY_SEM:08x}")),
        ("by-key/msg".into(), format!("0x{KEY_MSG:08x}")),
        (format!("sem/{e}"), "0".into()),
        (format!("msg/{q}"), "any".into()),
        (format!("msg/{q}/.wait"), "any".into()),
        (format!("msg/{q}/.recv"), "any".into()),
    ];
    for (dir, entry) in &dirs {
        let inside = |name: &str| under(&m, if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") });
        let (new, existing) = (inside("newname"), inside(entry));
        let mkdir_want = if dir == "sem" || dir == "msg" { libc::EINVAL } else { libc::EPERM };
        b.refuses(format!("mkdir {dir}/newname"), Want::Err(mkdir_want), || mkdir(&new));
        b.refuses(format!("mkdir {dir}/{entry}"), Want::Err(libc::EEXIST), || mkdir(&existing));
        b.refuses(format!("mknod fifo {dir}/newname"), Want::Err(libc::EPERM), || make_fifo(&new));
        let keyed = inside(&format!("0x{KEY_FREE:x}"));
        b.refuses(format!("mknod regular {dir}/0x{KEY_FREE:x}"), Want::Err(libc::EPERM), || make_regular(&keyed));
        b.refuses(format!("symlink {dir}/newname"), Want::Err(libc::EPERM), || symlink(&new));
        b.refuses(format!("symlink over {dir}/{entry}"), Want::Err(libc::EEXIST), || symlink(&existing));
        b.refuses(format!("link a segment to {dir}/newname"), Want::Err(libc::EPERM), || link(&segment, &new));
        b.refuses(format!("rename {dir}/{entry} to newname"), Want::Err(libc::EPERM), || rename(&existing, &new));
        b.refuses(format!("rename a segment to {dir}/newname"), Want::Err(libc::EPERM), || rename(&segment, &new));
        // Exchanging the segment with itself is nothing to do for the VFS.
        let want = if dir == "shm" { Want::Anything } else { Want::Refused };
        b.refuses(format!("exchange {dir}/{entry} with a segment"), want, || {
            nix_done(renameat2(AT_FDCWD, &existing, AT_FDCWD, &segment, RenameFlags::RENAME_EXCHANGE))
        });
        if dir != "shm" {
            // Writing where no object has the name: no such file; in a
            // queue's directories, a name that is no message type: EINVAL.
            let want = if dir.starts_with("msg/") { libc::EINVAL } else { libc::ENOENT };
            b.refuses(format!("create {dir}/0x{KEY_FREE:x}"), Want::Err(want), || {
                open(&keyed, libc::O_WRONLY | libc::O_CREAT).map(|_| 0)
            });
        }
        let long = inside(&"1".repeat(256));
        b.refuses(format!("mkdir a 256-byte name in {dir}/"), Want::Err(libc::ENAMETOOLONG), || mkdir(&long));
        b.refuses(format!("symlink a 256-byte name in {dir}/"), Want::Err(libc::ENAMETOOLONG), || symlink(&long));
        let dir_path = under(&m, dir);
        for (flags, how) in [
            (libc::O_WRONLY, "O_WRONLY"),
            (libc::O_RDWR, "O_RDWR"),
            (libc::O_WRONLY | libc::O_TRUNC, "O_WRONLY|O_TRUNC"),
            (libc::O_WRONLY | libc::O_CREAT, "O_WRONLY|O_CREAT"),
        ] {
            b.refuses(format!("open {dir}/ {how}"), Want::Err(libc::EISDIR), || open(&dir_path, flags).map(|_| 0));
        }
        b.refuses(format!("truncate {dir}/"), Want::Err(libc::EISDIR), || truncate(&dir_path, 0));
    }
    // rename between two existing entries of one directory.
    let (zero, one) = (under(&m, format!("sem/{e}/0")), under(&m, format!("sem/{e}/1")));
    b.refuses("rename sem/ID/0 over sem/ID/1", Want::Err(libc::EPERM), || rename(&zero, &one));
    let (any, five) = (under(&m, format!("msg/{q}/any")), under(&m, format!("msg/{q}/5")));
    b.refuses("rename msg/ID/any over msg/ID/5", Want::Err(libc::EPERM), || rename(&any, &five));

    for bad in [
        "abc",
        "0x",
        "0X",
        "0x123456789",
        "0xg",
        "0x-1",
        "0x1:0",
        "0x1:-1",
        "0x1:+1",
        "0x1:01",
        "0x1:",
        ":1",
        "0x1:1:1",
        "0x1:2147483648",
        "0x1:99999999999",
        "0x1:40000",
        "private:0",
        "Private",
    ] {
        let path = under(&m, format!("sem/{bad}"));
        b.refuses(format!("mkdir sem/{bad}"), Want::Err(libc::EINVAL), || mkdir(&path));
    }
    for bad in ["abc", "0x", "0x123456789", "0xg", "0x1:1", "private:1", "PRIVATE"] {
        let path = under(&m, format!("msg/{bad}"));
        b.refuses(format!("mkdir msg/{bad}"), Want::Err(libc::EINVAL), || mkdir(&path));
    }
    for existing in [format!("sem/0x{KEY_SEM:x}"), format!("sem/0x{KEY_SEM:08X}:3"), format!("msg/0x{KEY_MSG:x}")] {
        let path = under(&m, &existing);
        b.refuses(format!("mkdir {existing} (the key exists)"), Want::Err(libc::EEXIST), || mkdir(&path));
    }

    // Removing what cannot go.
    let by_key = under(&m, format!("by-key/shm/0x{KEY_SHM:08x}"));
    b.refuses("rm a by-key link", Want::Err(libc::EPERM), || unlink(&by_key));
    for fixed in ["shm", "sem", "msg", "by-key", "by-key/shm"] {
        let path = under(&m, fixed);
        b.refuses(format!("rmdir {fixed}"), Want::Refused, || rmdir(&path));
        b.refuses(format!("unlink {fixed}"), Want::Refused, || unlink(&path));
    }
    b.refuses("rm sem/ID/0", Want::Ok(0), || unlink(&zero));
    for gone in [format!("sem/{e}/3"), format!("sem/{e}/00"), format!("shm/0{s}"), format!("msg/{q}/00")] {
        let path = under(&m, &gone);
        b.refuses(format!("rm {gone}"), Want::Err(libc::ENOENT), || unlink(&path));
    }
    for gone in [format!("sem/0{e}"), format!("msg/+{q}"), "sem/-1".into()] {
        let path = under(&m, &gone);
        b.refuses(format!("rmdir {gone}"), Want::Err(libc::ENOENT), || rmdir(&path));
    }
    for file in [format!("shm/{s}"), format!("sem/{e}/0"), format!("msg/{q}/any")] {
        let path = under(&m, &file);
        b.refuses(format!("open {file} with O_DIRECTORY"), Want::Err(libc::ENOTDIR), || {
            open(&path, libc::O_RDONLY | libc::O_DIRECTORY).map(|_| 0)
        });
        b.refuses(format!("rmdir {file}"), Want::Err(libc::ENOTDIR), || rmdir(&path));
    }
    for (file, mode, want) in [
        (format!("sem/{e}/0"), 0o666, libc::EPERM),
        (format!("sem/{e}"), 0o1640, libc::EINVAL),
        (format!("msg/{q}"), 0o4640, libc::EINVAL),
    ] {
        let path = under(&m, &file);
        b.refuses(format!("chmod {mode:o} {file}"), Want::Err(want), || chmod(&path, mode));
    }
    b.finish();
}

// ---- where ipcfs disagrees with the documentation ----

/// docs/ipcfs.md: "Bad input changes nothing: text that is not one of these
/// commands (… two commands in one write) fails with EINVAL", and a command
/// may be "followed by white space or a newline". The kernel cuts a write
/// larger than one FUSE request (1 MiB) into several requests; each must not
/// become a command of its own.
#[test]
fn one_write_is_one_semaphore_command_even_beyond_one_fuse_request() {
    let m = Mounted::new();
    let w = World::new();
    let mut b = Bench::new(&m);
    let path = under(&m, format!("sem/{}/1", w.set.0));
    let mut two = vec![b' '; 2 << 20];
    two[0] = b'3';
    two[(1 << 20) + 8..(1 << 20) + 10].copy_from_slice(b"+1");
    b.refuses("one write of `3`, 1 MiB of spaces, `+1`, 1 MiB of spaces", Want::Err(libc::EINVAL), || {
        write_once(&path, 0, &two)
    });
    let mut padded = vec![b' '; 2 << 20];
    padded[0] = b'3';
    b.refuses("one write of `3` and 2 MiB of spaces", Want::Err(libc::EINVAL), || write_once(&path, 0, &padded));
    b.finish();
}

/// docs/ipcfs.md: "One write(2) sends one message (msgsnd), its body exactly
/// the bytes written." With `kernel.msgmax` raised above the size of one
/// FUSE request, a larger write must still be one message, or fail and send
/// nothing — never arrive as several messages.
#[test]
fn one_write_is_one_message_even_beyond_one_fuse_request() {
    let m = Mounted::new();
    let w = World::new();
    let dog = Watchdog::new(&m);
    fs::write("/proc/sys/kernel/msgmax", (8 << 20).to_string()).unwrap();
    fs::write("/proc/sys/kernel/msgmnb", (64 << 20).to_string()).unwrap();
    let stat = msg::stat_any(w.queue).unwrap();
    msg::set(w.queue, stat.perm.uid, stat.perm.gid, stat.perm.mode, 64 << 20).unwrap();
    let path = m.path(format!("msg/{}/9", w.queue.0));
    let mut failures = Vec::new();
    for size in [600 << 10, 1 << 20, (1 << 20) + 1, 3 << 20] {
        let body = pseudo_random(size, size as u64);
        let before = queued(w.queue);
        dog.guard("a large write to a queue");
        let got = write_once(&path, libc::O_NONBLOCK, &body);
        dog.clear();
        let after = queued(w.queue);
        let mut want = before.clone();
        want.push((9, Text(body.clone())));
        let ok = match got {
            Ok(n) => n == size as u64 && after == want,
            Err(e) => e != libc::EIO && after == before,
        };
        if !ok {
            let sizes: Vec<(i64, usize)> = after[before.len()..].iter().map(|(t, b)| (*t, b.0.len())).collect();
            failures.push(format!(
                "a write of {size} bytes gave {}, and queued {} messages (type, size): {sizes:?}",
                show(&got),
                sizes.len()
            ));
        }
        while msg::receive(w.queue, 9, 8 << 20, false).is_ok() {}
    }
    if let Err(e) = serving(&m, &Kernel::now(), &dog) {
        failures.push(e);
    }
    assert!(failures.is_empty(), "one write must be one message:\n{}", failures.join("\n"));
}

/// docs/ipcfs.md: the queue files that receive and send (under `.recv/`
/// and `.wait/`, and listed files opened only to write) "are streams …:
/// there is no file position (lseek and pread fail with ESPIPE)". An offset,
/// however large, must neither be ignored nor change anything there. A
/// listed queue file open for reading and a semaphore file have positions,
/// as sysfs files do: far beyond the text is its end.
#[test]
fn huge_offsets_are_refused_where_there_are_no_positions_and_read_as_end_of_file_elsewhere() {
    let m = Mounted::new();
    let w = World::new();
    let mut b = Bench::new(&m);
    let semaphore = under(&m, format!("sem/{}/1", w.set.0));
    let queue = under(&m, format!("msg/{}/.recv/any", w.queue.0));
    let listed = under(&m, format!("msg/{}/any", w.queue.0));
    for offset in [1u64 << 40, u64::MAX / 2 - 100] {
        // Semaphore files have positions, as sysfs files do: a read past
        // the value's text is end-of-file, and a write is a command wherever
        // it lands (white space alone: one that does nothing).
        b.refuses(format!("pwrite white space at {offset} to a semaphore"), Want::Ok(2), || {
            pwrite_once(&semaphore, b" \n", offset)
        });
        b.refuses(format!("pread a semaphore at {offset}"), Want::Ok(0), || count(pread_once(&semaphore, 16, offset)));
        b.refuses(format!("pwrite a message at {offset}"), Want::Err(libc::ESPIPE), || {
            pwrite_once(&queue, b"hello", offset)
        });
        b.refuses(format!("pread a queue at {offset}"), Want::Err(libc::ESPIPE), || {
            count(pread_once(&queue, 100, offset))
        });
        b.refuses(format!("pread a listed queue file at {offset}"), Want::Ok(0), || {
            count(pread_once(&listed, 100, offset))
        });
    }
    b.finish();
}

/// docs/ipcfs.md: creation names are keys (`0x…`) or `private`; "a bad name
/// … EINVAL" (mkdir in sem/ and msg/), ENOENT for creating a file by any
/// other name (in shm/ and where no file can be made), and EPERM for "mkdir
/// outside `sem/` and `msg/`". A name that is not UTF-8 is such a bad name.
#[test]
fn names_that_are_not_utf8_get_the_errno_of_any_other_bad_name_when_creating() {
    let m = Mounted::new();
    let w = World::new();
    let mut b = Bench::new(&m);
    let (e, q) = (w.set.0, w.queue.0);
    for name in [&b"sem/\xff"[..], b"sem/0x1\xff", b"sem/0x1:\xff", b"msg/\xff", b"msg/0x1\xff"] {
        let path = under(&m, name);
        b.refuses(format!("mkdir {:?}", text(name)), Want::Err(libc::EINVAL), || mkdir(&path));
    }
    for name in [&b"shm/\xff"[..], b"shm/0x1\xff"] {
        let path = under(&m, name);
        b.refuses(format!("create {:?}", text(name)), Want::Err(libc::ENOENT), || {
            open(&path, libc::O_WRONLY | libc::O_CREAT).map(|_| 0)
        });
    }
    for dir in ["".to_string(), "shm/".into(), "by-key/".into(), format!("sem/{e}/"), format!("msg/{q}/")] {
        let name = [dir.as_bytes(), b"\xff"].concat();
        let path = under(&m, &name);
        b.refuses(format!("mkdir {:?}", Text(name)), Want::Err(libc::EPERM), || mkdir(&path));
    }
    for dir in ["", "sem/", "msg/", "by-key/shm/"] {
        let name = [dir.as_bytes(), b"\xff"].concat();
        let path = under(&m, &name);
        b.refuses(format!("create {:?}", Text(name)), Want::Err(libc::ENOENT), || {
            open(&path, libc::O_WRONLY | libc::O_CREAT).map(|_| 0)
        });
    }
    b.finish();
}

// ---- the reference-model property test ----

const NSEMS: u16 = 3;
/// How many files a case may keep open across steps.
const SLOTS: usize = 3;
/// The keys of the objects a case makes are `KEY_MADE + n`: no random name
/// spells one, so none is found by chance.
const KEY_MADE: i32 = 0x5eed_0000;
/// Sizes of the segments a case makes: the usual one, one shorter than a
/// page, one that ends inside a page.
const SEG_SIZES: [u64; 3] = [SEG_SIZE, 100, 3 * 4096 + 5];
/// Sizes of the sets a case makes.
const SET_SIZES: [u16; 2] = [NSEMS, 1];
/// What a call by id on a removed object gives (the kernel's answers).
const GONE_BY_ID: &[i32] = &[libc::EINVAL, libc::EIDRM];
/// What an open file on a removed object gives (docs/ipcfs.md, Errors).
const GONE: &[i32] = &[libc::ENOENT, libc::EIDRM];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    Shm,
    Sem,
    Msg,
}

impl Family {
    fn dir(self) -> &'static str {
        match self {
            Family::Shm => "shm",
            Family::Sem => "sem",
            Family::Msg => "msg",
        }
    }
}

/// A file a case keeps open across steps, on the family's object of the
/// moment it was opened.
#[derive(Clone, Copy, Debug)]
enum HeldFile {
    Segment,
    Semaphore(u16),
    Queue(QFile),
}

/// A call of the test's own, in the mount's IPC namespace but not through
/// the mount, on the family's object.
#[derive(Clone, Debug)]
enum Behind {
    /// shmat and write, at `offset` modulo the segment's size.
    ShmWrite {
        offset: u64,
        data: Text,
    },
    /// IPC_SET: owner and group `owner`, and `mode`.
    ShmSet {
        owner: u32,
        mode: u32,
    },
    SemSetVal {
        num: u16,
        value: i32,
    },
    /// semop with IPC_NOWAIT.
    SemOp {
        num: u16,
        delta: i16,
    },
    SemSet {
        owner: u32,
        mode: u32,
    },
    /// msgsnd with IPC_NOWAIT.
    Send {
        mtype: i64,
        body: Text,
    },
    /// msgrcv with IPC_NOWAIT; `mtype` 0 takes any type.
    Receive {
        mtype: i64,
        room: usize,
    },
    QueueSet {
        owner: u32,
        mode: u32,
        qbytes: u64,
    },
    /// IPC_RMID.
    Remove(Family),
    /// A new object, which becomes the family's; with `same_id`, given the
    /// id of the family's object if that was removed (`*_next_id`).
    Create {
        family: Family,
        same_id: bool,
        keyed: bool,
        shape: usize,
    },
}

/// A queue file: `any` or a type, listed (reading browses), under `.recv/`
/// (reading receives) or under `.wait/` (reading receives, waiting).
#[derive(Clone, Copy, Debug)]
enum QFile {
    Any,
    Type(i64),
    RecvAny,
    RecvType(i64),
    WaitAny,
    WaitType(i64),
}

impl QFile {
    fn name(self) -> String {
        match self {
            QFile::Any => "any".into(),
            QFile::Type(t) => t.to_string(),
            QFile::RecvAny => ".recv/any".into(),
            QFile::RecvType(t) => format!(".recv/{t}"),
            QFile::WaitAny => ".wait/any".into(),
            QFile::WaitType(t) => format!(".wait/{t}"),
        }
    }

    /// The type it reads (0: any) and sends.
    fn mtype(self) -> i64 {
        match self {
            QFile::Any | QFile::RecvAny | QFile::WaitAny => 0,
            QFile::Type(t) | QFile::RecvType(t) | QFile::WaitType(t) => t,
        }
    }

    /// A listed file: reading shows the messages, taking none.
    fn browses(self) -> bool {
        matches!(self, QFile::Any | QFile::Type(_))
    }

    fn waits(self) -> bool {
        matches!(self, QFile::WaitAny | QFile::WaitType(_))
    }
}

/// A directory of the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Root,
    Shm,
    Sem,
    Msg,
    ByKey,
    ByKeyShm,
    Set,
    Queue,
    RecvDir,
    WaitDir,
}

/// Something extended attributes can be asked of.
#[derive(Clone, Copy, Debug)]
enum Node {
    Root,
    ShmDir,
    Segment,
    Set,
    Semaphore(u16),
    Queue,
    QueueFile(QFile),
    RecvDir,
    WaitDir,
}

#[derive(Clone, Copy, Debug)]
enum Reshape {
    Mkdir,
    Mknod,
    Symlink,
    Link,
    Rename,
    Unlink,
    Rmdir,
}

#[derive(Clone, Debug)]
enum Op {
    /// pwrite into the segment (in range, across the end, or far beyond).
    ShmWrite {
        offset: u64,
        data: Text,
    },
    ShmRead {
        offset: u64,
        room: usize,
    },
    ShmTruncate {
        len: u64,
    },
    /// A 64 MiB write.
    ShmWriteHuge {
        offset: u64,
    },
    /// One write to a semaphore file, opened O_NONBLOCK: a command or not.
    SemWrite {
        num: u16,
        text: Text,
    },
    Send {
        to: QFile,
        body: Text,
    },
    SendHuge {
        to: QFile,
        len: usize,
    },
    /// One read, O_NONBLOCK, with a buffer of `room` bytes: a receive, or
    /// a look at a listed file.
    Read {
        from: QFile,
        room: usize,
    },
    Lookup {
        place: Place,
        name: Text,
    },
    Reshape {
        how: Reshape,
        place: Place,
        name: Text,
    },
    OpenDirForWrite {
        place: Place,
    },
    SetXattr {
        node: Node,
        name: Text,
        value: Text,
    },
    RemoveXattr {
        node: Node,
        name: Text,
    },
    TruncateStream {
        node: Node,
        len: i64,
    },
    Behind(Behind),
    /// `rm shm/ID`, `rmdir sem/ID` or `rmdir msg/ID` of the family's object.
    Remove(Family),
    /// A new object made through the mount by a new key (`truncate -s` of
    /// `shm/0xKEY`, `mkdir sem/0xKEY:N`, `mkdir msg/0xKEY`), which becomes
    /// the family's; with `same_id`, given the id of the family's object if
    /// that was removed.
    Create {
        family: Family,
        same_id: bool,
        shape: usize,
    },
    /// Opens the file (read-write; semaphore and queue files O_NONBLOCK) and
    /// keeps it in `slot`, closing what was there.
    Hold {
        slot: usize,
        file: HeldFile,
    },
    /// One read through a kept file: pread at `offset` on a segment.
    HeldRead {
        slot: usize,
        offset: u64,
        room: usize,
    },
    /// One write through a kept file: pwrite at `offset` on a segment.
    HeldWrite {
        slot: usize,
        offset: u64,
        data: Text,
    },
    /// fstat of a kept file.
    HeldStat {
        slot: usize,
    },
    Release {
        slot: usize,
    },
}

fn bytes(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Text> {
    vec(any::<u8>(), len).prop_map(Text)
}

fn shm_offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0..SEG_SIZE,
        1 => SEG_SIZE - 64..SEG_SIZE + 64,
        1 => select(vec![1u64 << 32, 1 << 40, 1 << 62, i64::MAX as u64 - 200]),
    ]
}

fn send_file() -> impl Strategy<Value = QFile> {
    prop_oneof![
        3 => Just(QFile::Any),
        3 => (1i64..=5).prop_map(QFile::Type),
        3 => Just(QFile::Type(i64::MAX)),
        1 => Just(QFile::RecvAny),
        1 => (1i64..=5).prop_map(QFile::RecvType),
    ]
}

fn read_file() -> impl Strategy<Value = QFile> {
    prop_oneof![
        2 => Just(QFile::Any),
        3 => (1i64..=5).prop_map(QFile::Type),
        1 => Just(QFile::Type(i64::MAX)),
        2 => Just(QFile::RecvAny),
        3 => (1i64..=5).prop_map(QFile::RecvType),
        1 => Just(QFile::RecvType(i64::MAX)),
        1 => Just(QFile::WaitAny),
        1 => (1i64..=5).prop_map(QFile::WaitType),
    ]
}

fn is_white(b: u8) -> bool {
    b.is_ascii_whitespace()
}

/// Text for a semaphore file: commands, near misses and garbage. Never
/// starting with white space, and never with a vertical tab, on which the
/// docs say nothing.
fn sem_text() -> impl Strategy<Value = Text> {
    let hostile = [
        "+99999999999999999999",
        "99999999999999999999",
        "-0",
        "+0",
        "+",
        "-",
        "=",
        "=5",
        "=00",
        "1 2",
        "+1+1",
        "5\n6\n",
        "abc",
        "0x10",
        "32768",
        "+32768",
        "-32768",
        "7\0",
        "٧",
    ];
    prop_oneof![
        2 => (0u32..=40000).prop_map(|n| text(format!("{n}\n"))),
        2 => (1u32..=40000).prop_map(|n| text(format!("+{n}"))),
        2 => (1u32..=50).prop_map(|n| text(format!("-{n}\n"))),
        1 => Just(text("=0")),
        2 => select(hostile.to_vec()).prop_map(text),
        2 => vec(select(b"0123456789+-= \n\tx\xff".to_vec()), 1..10).prop_map(Text),
        1 => vec(any::<u8>(), 1..16).prop_map(Text),
    ]
    .prop_filter("no leading white space, no vertical tab", |t| !is_white(t.0[0]) && !t.0.contains(&0x0b))
}

fn name() -> impl Strategy<Value = Text> {
    let tricky = [
        "abc",
        "007",
        "-1",
        "+1",
        "0",
        "1",
        "2",
        "3",
        "5",
        "00",
        "01",
        "-0",
        "1e3",
        " 1",
        "1 ",
        "99999999999999999999",
        "2147483648",
        "4294967296",
        "9223372036854775807",
        "9223372036854775808",
        "any",
        "ANY",
        ".wait",
        ".recv",
        ".",
        "..",
        "private",
        "0x0",
        "0x1",
        "0xdeadbeef",
        "0x00000000",
        "0x1:2",
        "shm",
        "sem",
        "msg",
        "by-key",
    ];
    prop_oneof![
        4 => select(tricky.to_vec()).prop_map(text),
        2 => "[0-9]{1,20}".prop_map(text),
        2 => "[-+0-9a-z.:]{1,12}".prop_map(text),
        1 => (250usize..300).prop_map(|n| text("1".repeat(n))),
        1 => vec(any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0), 1..8).prop_map(Text),
    ]
}

fn place() -> impl Strategy<Value = Place> {
    select(vec![
        Place::Root,
        Place::Shm,
        Place::Sem,
        Place::Msg,
        Place::ByKey,
        Place::ByKeyShm,
        Place::Set,
        Place::Queue,
        Place::RecvDir,
        Place::WaitDir,
    ])
}

fn node() -> impl Strategy<Value = Node> {
    prop_oneof![
        Just(Node::Root),
        Just(Node::ShmDir),
        Just(Node::Segment),
        Just(Node::Set),
        (0..NSEMS).prop_map(Node::Semaphore),
        Just(Node::Queue),
        send_file().prop_map(Node::QueueFile),
        Just(Node::RecvDir),
        Just(Node::WaitDir),
    ]
}

fn xattr_name() -> impl Strategy<Value = Text> {
    let names: Vec<&str> = SHM_ATTRS
        .iter()
        .chain(&SET_ATTRS)
        .chain(&SEMAPHORE_ATTRS)
        .chain(&QUEUE_ATTRS)
        .copied()
        .chain(["user.whatever", "user.ipc.KEY", "trusted.x", "security.x", "foo.bar"])
        .collect();
    prop_oneof![
        3 => select(names).prop_map(text),
        1 => "user\\.[a-z.]{1,12}".prop_map(text),
        1 => vec(1u8..=255, 1..6).prop_map(|tail| Text([b"user.ipc.".as_slice(), &tail].concat())),
    ]
}

fn xattr_value() -> impl Strategy<Value = Text> {
    prop_oneof![
        select(vec!["", "1", "-1", "+5", "abc", "1 2", "0x10", "99999999999999999999999", "\u{ff11}"]).prop_map(text),
        bytes(0..=8),
    ]
}

fn reshape() -> impl Strategy<Value = Reshape> {
    select(vec![
        Reshape::Mkdir,
        Reshape::Mknod,
        Reshape::Symlink,
        Reshape::Link,
        Reshape::Rename,
        Reshape::Unlink,
        Reshape::Rmdir,
    ])
}

fn family() -> impl Strategy<Value = Family> {
    select(vec![Family::Shm, Family::Sem, Family::Msg])
}

/// An owner for IPC_SET: the test's own user, or another.
fn owner() -> impl Strategy<Value = u32> {
    select(vec![nix::unistd::geteuid().as_raw(), 1000])
}

fn ipc_mode() -> impl Strategy<Value = u32> {
    select(vec![0o600, 0o640, 0o644, 0o000, 0o777, 0o422])
}

fn behind() -> impl Strategy<Value = Behind> {
    prop_oneof![
        3 => (0..SEG_SIZE, bytes(1..=32)).prop_map(|(offset, data)| Behind::ShmWrite { offset, data }),
        1 => (owner(), ipc_mode()).prop_map(|(owner, mode)| Behind::ShmSet { owner, mode }),
        2 => (0..NSEMS, prop_oneof![4 => 0..=SEMVMX, 1 => Just(SEMVMX + 1)])
            .prop_map(|(num, value)| Behind::SemSetVal { num, value }),
        2 => (0..NSEMS, -4i16..=4).prop_map(|(num, delta)| Behind::SemOp { num, delta }),
        1 => (owner(), ipc_mode()).prop_map(|(owner, mode)| Behind::SemSet { owner, mode }),
        3 => (1i64..=5, bytes(1..=32)).prop_map(|(mtype, body)| Behind::Send { mtype, body }),
        2 => (0i64..=5, 1usize..=40).prop_map(|(mtype, room)| Behind::Receive { mtype, room }),
        1 => (owner(), ipc_mode(), select(vec![64u64, 200, 16384]))
            .prop_map(|(owner, mode, qbytes)| Behind::QueueSet { owner, mode, qbytes }),
        3 => family().prop_map(Behind::Remove),
        3 => (family(), same_id(), any::<bool>(), 0..SEG_SIZES.len())
            .prop_map(|(family, same_id, keyed, shape)| Behind::Create { family, same_id, keyed, shape }),
    ]
}

/// Mostly: give a new object the id of the family's removed one.
fn same_id() -> impl Strategy<Value = bool> {
    prop_oneof![3 => Just(true), 1 => Just(false)]
}

fn held_file() -> impl Strategy<Value = HeldFile> {
    prop_oneof![
        2 => Just(HeldFile::Segment),
        2 => (0..NSEMS).prop_map(HeldFile::Semaphore),
        3 => read_file().prop_map(HeldFile::Queue),
    ]
}

/// Removing and making objects through the mount, and files kept open.
fn lifecycle() -> impl Strategy<Value = Op> {
    let slot = || 0..SLOTS;
    prop_oneof![
        1 => family().prop_map(Op::Remove),
        1 => (family(), same_id(), 0..SEG_SIZES.len())
            .prop_map(|(family, same_id, shape)| Op::Create { family, same_id, shape }),
        3 => (slot(), held_file()).prop_map(|(slot, file)| Op::Hold { slot, file }),
        4 => (slot(), shm_offset(), 1usize..=128).prop_map(|(slot, offset, room)| Op::HeldRead { slot, offset, room }),
        4 => (slot(), shm_offset(), prop_oneof![sem_text(), bytes(1..=32)])
            .prop_map(|(slot, offset, data)| Op::HeldWrite { slot, offset, data }),
        1 => slot().prop_map(|slot| Op::HeldStat { slot }),
        1 => slot().prop_map(|slot| Op::Release { slot }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => through_the_mount(),
        20 => behind().prop_map(Op::Behind),
        16 => lifecycle(),
    ]
}

/// Operations on the objects through the mount, valid and hostile.
fn through_the_mount() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (shm_offset(), bytes(1..=64)).prop_map(|(offset, data)| Op::ShmWrite { offset, data }),
        2 => (shm_offset(), 1usize..=128).prop_map(|(offset, room)| Op::ShmRead { offset, room }),
        1 => prop_oneof![0..SEG_SIZE + 2, Just(1 << 40), Just(i64::MAX as u64)].prop_map(|len| Op::ShmTruncate { len }),
        1 => select(vec![0, SEG_SIZE - 100, SEG_SIZE, 1 << 40]).prop_map(|offset| Op::ShmWriteHuge { offset }),
        5 => (0..NSEMS, sem_text()).prop_map(|(num, text)| Op::SemWrite { num, text }),
        4 => (send_file(), bytes(1..=32)).prop_map(|(to, body)| Op::Send { to, body }),
        1 => (send_file(), select(vec![MSGMAX + 1, HUGE])).prop_map(|(to, len)| Op::SendHuge { to, len }),
        4 => (read_file(), 1usize..=40).prop_map(|(from, room)| Op::Read { from, room }),
        3 => (place(), name()).prop_map(|(place, name)| Op::Lookup { place, name }),
        3 => (reshape(), place(), name()).prop_map(|(how, place, name)| Op::Reshape { how, place, name }),
        1 => place().prop_map(|place| Op::OpenDirForWrite { place }),
        3 => (node(), xattr_name(), xattr_value()).prop_map(|(node, name, value)| Op::SetXattr { node, name, value }),
        1 => (node(), xattr_name()).prop_map(|(node, name)| Op::RemoveXattr { node, name }),
        1 => (
            prop_oneof![(0..NSEMS).prop_map(Node::Semaphore), send_file().prop_map(Node::QueueFile)],
            select(vec![0, 5, 4096, 1 << 40, i64::MAX]),
        )
            .prop_map(|(node, len)| Op::TruncateStream { node, len }),
    ]
}

/// A decimal without sign or leading zeros, up to `max`.
fn canonical(name: &[u8], max: u128) -> Option<u128> {
    let digits = !name.is_empty() && name.len() <= 38 && name.iter().all(u8::is_ascii_digit);
    if !digits || (name.len() > 1 && name[0] == b'0') {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok().filter(|&n| n <= max)
}

/// A creation name as the docs define it (KEY, KEY:N in sem/, `private`),
/// leniently: anything that might create an object.
fn might_create(place: Place, name: &[u8]) -> bool {
    let Ok(name) = std::str::from_utf8(name) else { return false };
    let key = |k: &str| {
        k == "private"
            || k.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("0x"))
                && (3..=10).contains(&k.len())
                && k[2..].bytes().all(|b| b.is_ascii_hexdigit())
    };
    match (place, name.split_once(':')) {
        (Place::Sem, Some((k, n))) => key(k) && !n.is_empty(),
        (Place::Sem | Place::Msg, _) => key(name),
        _ => false,
    }
}

/// The objects of one case of the moment, one per family: those the
/// paths of a step name. A family's object may have been removed since.
#[derive(Clone, Copy)]
struct Objects {
    seg: ShmId,
    set: SemId,
    queue: MsqId,
}

impl Objects {
    fn place(self, place: Place) -> String {
        match place {
            Place::Root => String::new(),
            Place::Shm => "shm".into(),
            Place::Sem => "sem".into(),
            Place::Msg => "msg".into(),
            Place::ByKey => "by-key".into(),
            Place::ByKeyShm => "by-key/shm".into(),
            Place::Set => format!("sem/{}", self.set.0),
            Place::Queue => format!("msg/{}", self.queue.0),
            Place::RecvDir => format!("msg/{}/.recv", self.queue.0),
            Place::WaitDir => format!("msg/{}/.wait", self.queue.0),
        }
    }

    fn node(self, node: Node) -> String {
        match node {
            Node::Root => String::new(),
            Node::ShmDir => "shm".into(),
            Node::Segment => format!("shm/{}", self.seg.0),
            Node::Set => format!("sem/{}", self.set.0),
            Node::Semaphore(n) => format!("sem/{}/{n}", self.set.0),
            Node::Queue => format!("msg/{}", self.queue.0),
            Node::QueueFile(f) => format!("msg/{}/{}", self.queue.0, f.name()),
            Node::RecvDir => format!("msg/{}/.recv", self.queue.0),
            Node::WaitDir => format!("msg/{}/.wait", self.queue.0),
        }
    }

    /// The family's object: the one paths and new kept files name.
    fn id(self, family: Family) -> i32 {
        match family {
            Family::Shm => self.seg.0,
            Family::Sem => self.set.0,
            Family::Msg => self.queue.0,
        }
    }

    fn set_id(&mut self, family: Family, id: i32) {
        match family {
            Family::Shm => self.seg = ShmId(id),
            Family::Sem => self.set = SemId(id),
            Family::Msg => self.queue = MsqId(id),
        }
    }

    /// The family, object and path of a file to keep open.
    fn held(self, file: HeldFile) -> (Family, i32, String) {
        match file {
            HeldFile::Segment => (Family::Shm, self.seg.0, self.node(Node::Segment)),
            HeldFile::Semaphore(n) => (Family::Sem, self.set.0, self.node(Node::Semaphore(n))),
            HeldFile::Queue(f) => (Family::Msg, self.queue.0, self.node(Node::QueueFile(f))),
        }
    }

    /// Whether the directory exists: the family's set or queue may have
    /// been removed.
    fn place_exists(self, k: &Kernel, place: Place) -> bool {
        match place {
            Place::Set => k.sets.contains_key(&self.set.0),
            Place::Queue | Place::RecvDir | Place::WaitDir => k.queues.contains_key(&self.queue.0),
            _ => true,
        }
    }

    fn node_exists(self, k: &Kernel, node: Node) -> bool {
        match node {
            Node::Root | Node::ShmDir => true,
            Node::Segment => k.segments.contains_key(&self.seg.0),
            Node::Set => k.sets.contains_key(&self.set.0),
            Node::Semaphore(n) => k.sets.get(&self.set.0).is_some_and(|s| usize::from(n) < s.values.len()),
            Node::Queue | Node::QueueFile(_) | Node::RecvDir | Node::WaitDir => k.queues.contains_key(&self.queue.0),
        }
    }

    /// Whether `name` in `place` (which exists) names something now, per
    /// the docs and the objects of `k`.
    fn resolves(self, k: &Kernel, place: Place, name: &[u8]) -> bool {
        if name == b"." || name == b".." {
            return true;
        }
        let id = || canonical(name, i32::MAX as u128).map(|n| n as i32);
        let mtype = || name == b"any" || canonical(name, i64::MAX as u128).is_some_and(|t| t >= 1);
        match place {
            Place::Root => [&b"shm"[..], b"sem", b"msg", b"by-key"].contains(&name),
            Place::ByKey => [&b"shm"[..], b"sem", b"msg"].contains(&name),
            Place::Shm => id().is_some_and(|id| k.segments.contains_key(&id)),
            Place::Sem => id().is_some_and(|id| k.sets.contains_key(&id)),
            Place::Msg => id().is_some_and(|id| k.queues.contains_key(&id)),
            // No random name spells a key a case makes (KEY_MADE + n).
            Place::ByKeyShm => false,
            Place::Set => {
                let nsems = k.sets.get(&self.set.0).map_or(0, |s| s.values.len());
                canonical(name, u128::MAX).is_some_and(|n| n < nsems as u128)
            }
            Place::Queue => name == b".recv" || name == b".wait" || mtype(),
            Place::RecvDir | Place::WaitDir => mtype(),
        }
    }

    /// What a lookup of `name` in `place` gives.
    fn lookup(self, k: &Kernel, place: Place, name: &[u8]) -> Want {
        if !self.place_exists(k, place) {
            // The walk stops at the missing directory.
            Want::Err(libc::ENOENT)
        } else if name.len() > 255 {
            Want::Err(libc::ENAMETOOLONG)
        } else if self.resolves(k, place, name) {
            Want::Ok(0)
        } else {
            Want::Err(libc::ENOENT)
        }
    }
}

/// Removes every object of the namespace and makes the case's: a segment
/// with a pattern, a set of NSEMS semaphores at 0, 3 and 32760, an empty
/// queue. All IPC_PRIVATE, so that no key name resolves.
fn fresh_objects(case: u64) -> Objects {
    // An id asked for through *_next_id by a case that failed before making
    // the object goes to a throwaway one (the sysctl cannot be set back to -1).
    for family in [Family::Shm, Family::Sem, Family::Msg] {
        let asked = fs::read_to_string(format!("/proc/sys/kernel/{}_next_id", family.dir())).unwrap();
        if asked.trim() != "-1" {
            let flags = libc::IPC_CREAT | 0o600;
            let made = match family {
                Family::Shm => shm::get(Key::PRIVATE, 1, flags).map(|id| id.0),
                Family::Sem => sem::get(Key::PRIVATE, 1, flags).map(|id| id.0),
                Family::Msg => msg::get(Key::PRIVATE, flags).map(|id| id.0),
            };
            made.expect("a throwaway object for the id asked for");
        }
    }
    for s in sysvipc::list_shm().unwrap() {
        let _ = shm::remove(s.id);
    }
    for s in sysvipc::list_sem().unwrap() {
        let _ = sem::remove(s.id);
    }
    for q in sysvipc::list_msg().unwrap() {
        let _ = msg::remove(q.id);
    }
    // A segment the daemon still had attached goes with its last detach,
    // which follows the release of its last file.
    let deadline = Instant::now() + LIMIT;
    while !sysvipc::list_shm().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "a removed segment stays attached");
        std::thread::sleep(Duration::from_millis(1));
    }
    let flags = libc::IPC_CREAT | libc::IPC_EXCL | 0o600;
    let seg = shm::get(Key::PRIVATE, SEG_SIZE, flags).unwrap();
    shm::Attachment::attach(seg, SEG_SIZE, true).unwrap().write_at(0, &pseudo_random(SEG_SIZE as usize, case)).unwrap();
    let set = sem::get(Key::PRIVATE, i32::from(NSEMS), flags).unwrap();
    for (num, value) in [0, 3, 32760].into_iter().enumerate() {
        sem::set_value(set, num as u16, value).unwrap();
    }
    let queue = msg::get(Key::PRIVATE, flags).unwrap();
    Objects { seg, set, queue }
}

const EINVAL_OR_ERANGE: &[i32] = &[libc::EINVAL, libc::ERANGE];

/// What a write of `text` to a semaphore at `value` does, per the docs: the
/// new value, or the errno. The file is non-blocking, so what would wait is
/// EAGAIN.
fn sem_command(text: &[u8], value: i32) -> Result<i32, Want> {
    // White space alone does nothing ("A write of white space alone …").
    if text.len() <= 4096 && text.iter().all(|&b| is_white(b)) {
        return Ok(value);
    }
    // White space around the command is no part of it ("surrounding white
    // space is fine"), before as after.
    let end = text.iter().rposition(|&b| !is_white(b)).map_or(0, |i| i + 1);
    let start = text[..end].iter().position(|&b| !is_white(b)).unwrap_or(end);
    let command = &text[start..end];
    let (sign, digits) = match command.first() {
        Some(&sign @ (b'+' | b'-' | b'=')) => (Some(sign), &command[1..]),
        _ => (None, command),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Want::Err(libc::EINVAL));
    }
    let n = std::str::from_utf8(digits).unwrap().parse::<i32>().ok().filter(|&n| n <= SEMVMX);
    match (sign, n) {
        (Some(b'='), Some(0)) if value == 0 => Ok(0),
        (Some(b'='), Some(0)) => Err(Want::Err(libc::EAGAIN)),
        // `=N` is no command, and N out of range: either answer is fair.
        (Some(b'='), None) => Err(Want::OneOf(EINVAL_OR_ERANGE)),
        (Some(b'='), Some(_)) => Err(Want::Err(libc::EINVAL)),
        (_, None) => Err(Want::Err(libc::ERANGE)),
        (None, Some(n)) => Ok(n),
        (Some(_), Some(0)) => Err(Want::Err(libc::EINVAL)),
        (Some(b'+'), Some(n)) if value + n > SEMVMX => Err(Want::Err(libc::ERANGE)),
        (Some(b'+'), Some(n)) => Ok(value + n),
        (Some(_), Some(n)) if value >= n => Ok(value - n),
        (Some(_), Some(_)) => Err(Want::Err(libc::EAGAIN)),
    }
}

/// The attributes ipcfs shows on a node (all read-only but a queue's qbytes).
fn node_attrs(node: Node) -> &'static [&'static str] {
    match node {
        Node::Segment => &SHM_ATTRS,
        Node::Set => &SET_ATTRS,
        Node::Semaphore(_) => &SEMAPHORE_ATTRS,
        Node::Queue => &QUEUE_ATTRS,
        _ => &[],
    }
}

/// What setxattr (`value` Some) or removexattr gives; None: the operation
/// would make a valid change the model does not follow (a new byte limit).
fn xattr_want(node: Node, name: &[u8], value: Option<&[u8]>) -> Option<Want> {
    if !name.starts_with(b"user.") || name == b"user." || name.len() > 255 {
        return Some(Want::Refused);
    }
    let known = std::str::from_utf8(name).is_ok_and(|n| node_attrs(node).contains(&n));
    if matches!(node, Node::Queue) && name == b"user.ipc.qbytes" {
        if let Some(value) = value {
            let trimmed = value.trim_ascii();
            let digits = !trimmed.is_empty() && trimmed.iter().all(u8::is_ascii_digit);
            let fits = std::str::from_utf8(trimmed).ok().and_then(|t| t.parse::<u64>().ok()).is_some();
            return if digits && fits { None } else { Some(Want::OneOf(EINVAL_OR_ERANGE)) };
        }
    }
    Some(Want::Err(if known { libc::EPERM } else { libc::EOPNOTSUPP }))
}

/// What a step found, checked against what it had to give.
fn expect(want: Want, got: Outcome) -> Result<(), String> {
    if want.accepts(&got) { Ok(()) } else { Err(format!("gave {}, want {want}", show(&got))) }
}

/// What a read gave, checked against the bytes it had to give (or `Err`:
/// what it had to give instead).
fn expect_read(want: Result<&[u8], Want>, got: Result<Vec<u8>, i32>) -> Result<(), String> {
    match (want, got) {
        (Ok(want), Ok(got)) if want == got.as_slice() => Ok(()),
        (Ok(want), Ok(got)) => Err(format!("read {:?}, want {:?}", Text(got), Text(want.to_vec()))),
        (Ok(want), Err(e)) => Err(format!("gave {}, want to read {:?}", show(&Err(e)), Text(want.to_vec()))),
        (Err(want), got) => expect(want, count(got)),
    }
}

/// The bodies of the messages of type `mtype` (0: all), in queue order.
fn of_type(messages: &[(i64, Text)], mtype: i64) -> Vec<Text> {
    messages.iter().filter(|(t, _)| mtype == 0 || *t == mtype).map(|(_, body)| body.clone()).collect()
}

/// What one read at `position` of a listed queue file gives, per the docs:
/// the snapshot's bytes there, at most `room`, never beyond the end of the
/// message they are in; nothing past the last message.
fn browsed(snapshot: &[Text], position: u64, room: usize) -> &[u8] {
    let mut start = 0;
    for body in snapshot {
        let end = start + body.0.len() as u64;
        if position < end {
            let from = (position - start) as usize;
            return &body.0[from..body.0.len().min(from + room)];
        }
        start = end;
    }
    &[]
}

/// A call the test makes itself, as an outcome.
fn sys<T>(r: Result<T, Errno>) -> Outcome {
    r.map(|_| 0).map_err(|e| e as i32)
}

/// The errno of semaphore text that is no command whatever the value; None
/// for a command.
fn sem_syntax(text: &[u8]) -> Option<Want> {
    let valid = |r: &Result<i32, Want>| matches!(r, Ok(_) | Err(Want::Err(libc::EAGAIN)));
    let at_zero = sem_command(text, 0);
    if valid(&at_zero) || valid(&sem_command(text, SEMVMX)) { None } else { at_zero.err() }
}

fn kernel_msgmnb() -> u64 {
    fs::read_to_string("/proc/sys/kernel/msgmnb").unwrap().trim().parse().unwrap()
}

/// Waits until the daemon holds no segment's file beyond those the kept
/// files hold. The kernel tells the daemon of a close after close(2) has
/// returned, and until then a stat of a removed segment's name may be the
/// open file's fstat, which shows it with no links (docs/ipcfs.md).
fn settle(m: &Mounted, held: &[Option<Held>]) {
    let kept = held.iter().flatten().filter(|h| h.family == Family::Shm).count();
    let fds = format!("/proc/{}/fd", m.daemon_pid().expect("a running daemon"));
    let segment_files = || {
        let Ok(entries) = fs::read_dir(&fds) else { return 0 };
        let targets = entries.filter_map(|e| fs::read_link(e.ok()?.path()).ok());
        targets.filter(|t| t.to_string_lossy().starts_with("/SYSV")).count()
    };
    let deadline = Instant::now() + LIMIT;
    while segment_files() > kept && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The bytes a read of `room` at `offset` gets: fewer at the end, none past it.
fn window(bytes: &[u8], offset: u64, room: usize) -> &[u8] {
    let start = offset.min(bytes.len() as u64) as usize;
    let end = offset.saturating_add(room as u64).min(bytes.len() as u64) as usize;
    &bytes[start..end]
}

/// A write of `data` at `offset` to a segment's `bytes`: what fits, and
/// ENOSPC at or past the end.
fn write_within(bytes: &mut [u8], offset: u64, data: &[u8]) -> Want {
    let size = bytes.len() as u64;
    if offset >= size {
        return Want::Err(libc::ENOSPC);
    }
    let n = data.len().min((size - offset) as usize);
    bytes[offset as usize..offset as usize + n].copy_from_slice(&data[..n]);
    Want::Ok(n as u64)
}

/// Each set's directory lists its semaphores, each queue's `any` and the
/// types that have messages queued.
fn contents_listed(m: &Mounted, k: &Kernel, dog: &Watchdog) -> Result<(), String> {
    dog.guard("listing every set and queue");
    let sets =
        k.sets.iter().map(|(id, set)| (format!("sem/{id}"), (0..set.values.len()).map(|n| n.to_string()).collect()));
    let queues = k.queues.iter().map(|(id, queue)| {
        let types = queue.messages.iter().map(|(t, _)| t.to_string());
        (format!("msg/{id}"), std::iter::once("any".to_string()).chain(types).collect::<BTreeSet<_>>())
    });
    let result = sets.chain(queues).try_for_each(|(dir, want)| {
        let names = listed(&m.path(&dir))?;
        if names == want { Ok(()) } else { Err(format!("{dir}/ lists {names:?}, the kernel has {want:?}")) }
    });
    dog.clear();
    result
}

/// A file kept open across steps.
struct Held {
    file: File,
    what: HeldFile,
    family: Family,
    id: i32,
    /// Which object of that id it was opened on (see [`Run::born`]).
    born: u64,
    /// What ipcfs tells sets and queues of one id apart by, besides the
    /// creator: the key, and a set's number of semaphores.
    key: i32,
    nsems: usize,
    /// A semaphore file's stream: the text being read and how far
    /// (usize::MAX: read to its end, so the next read is end-of-file).
    stream: (Vec<u8>, usize),
    /// A listed queue file's snapshot (the messages of its type queued when
    /// it was opened) and the file's position.
    snapshot: (Vec<Text>, u64),
}

/// One case's run: the mount, its objects and the model of the kernel.
struct Run<'a> {
    m: &'a Mounted,
    /// The family's object of the moment: the one paths name.
    o: Objects,
    model: Kernel,
    /// Leave out operations whose disagreement with the docs has a test of
    /// its own, so that the random search looks for new ones.
    skip_known: bool,
    held: [Option<Held>; SLOTS],
    /// For every object of the model, a number given at its creation, so
    /// that an object which gets a removed one's id is told from it.
    born: BTreeMap<(Family, i32), u64>,
    /// Objects made so far (the last number given).
    made: u64,
    /// The bytes of removed segments that kept files still reach (an open
    /// file is no attachment: the segment is gone from the kernel at once),
    /// by the number given at their creation.
    unlinked: BTreeMap<u64, Vec<u8>>,
}

/// What a step found wrong.
enum Failure {
    /// The outcome or the objects disagree with the model.
    Mismatch(String),
    /// The daemon is gone or hung: nothing after this means anything.
    Gone(String),
}

impl<'a> Run<'a> {
    fn new(m: &'a Mounted, o: Objects, skip_known: bool) -> Run<'a> {
        let born =
            BTreeMap::from([((Family::Shm, o.seg.0), 1), ((Family::Sem, o.set.0), 2), ((Family::Msg, o.queue.0), 3)]);
        Run {
            m,
            o,
            model: Kernel::now(),
            skip_known,
            held: Default::default(),
            born,
            made: 3,
            unlinked: BTreeMap::new(),
        }
    }

    fn at(&self, relative: impl AsRef<[u8]>) -> PathBuf {
        under(self.m, relative)
    }

    fn inside(&self, place: Place, name: &[u8]) -> PathBuf {
        let dir = self.o.place(place);
        if dir.is_empty() { self.at(name) } else { self.at([dir.as_bytes(), b"/", name].concat()) }
    }

    fn has(&self, family: Family, id: i32) -> bool {
        match family {
            Family::Shm => self.model.segments.contains_key(&id),
            Family::Sem => self.model.sets.contains_key(&id),
            Family::Msg => self.model.queues.contains_key(&id),
        }
    }

    fn segment_size(&self, seg: ShmId) -> Option<u64> {
        self.model.segments.get(&seg.0).map(|s| s.bytes.0.len() as u64)
    }

    /// Whether a kept file is open on the object.
    fn holds(&self, family: Family, id: i32) -> bool {
        self.held.iter().flatten().any(|h| h.family == family && h.id == id)
    }

    /// Whether a kept file's object is still there (its id may have gone to
    /// another).
    fn alive(&self, h: &Held) -> bool {
        self.born.get(&(h.family, h.id)) == Some(&h.born)
    }

    /// Whether a new set or queue with this key and shape, given the removed
    /// one's id, would meet ipcfs's known confusion of the two (nobody can
    /// tell them apart: same key, creator and number of semaphores) while a
    /// file is kept open on the old one. See
    /// regression_a_queue_file_kept_open_never_reaches_a_new_queue_with_the_same_id.
    fn kept_on_lookalike(&self, family: Family, id: i32, key: i32, shape: usize) -> bool {
        let nsems = usize::from(SET_SIZES[shape % SET_SIZES.len()]);
        let alike = |f: Family, i: i32, k: i32, n: usize| {
            f == family && i == id && k == key && (f == Family::Msg || n == nsems)
        };
        family != Family::Shm && self.held.iter().flatten().any(|h| alike(h.family, h.id, h.key, h.nsems))
    }

    /// An object came into being: the model gains it, empty, and it becomes
    /// the family's.
    fn made_object(&mut self, family: Family, id: i32, key: i32, mode: u32, shape: usize) {
        let (uid, gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
        let perm = Perm { key, uid, gid, cuid: uid, cgid: gid, mode };
        match family {
            Family::Shm => {
                let bytes = Text(vec![0; SEG_SIZES[shape % SEG_SIZES.len()] as usize]);
                self.model.segments.insert(id, Segment { perm, bytes });
            }
            Family::Sem => {
                let values = vec![0; usize::from(SET_SIZES[shape % SET_SIZES.len()])];
                self.model.sets.insert(id, Set { perm, values });
            }
            Family::Msg => {
                self.model.queues.insert(id, Queue { perm, qbytes: kernel_msgmnb(), messages: Vec::new() });
            }
        }
        self.born.insert((family, id), self.made);
        self.o.set_id(family, id);
    }

    /// For a new object: a number, and its key if it is to have one.
    fn next_object(&mut self, keyed: bool) -> i32 {
        self.made += 1;
        if keyed { KEY_MADE + self.made as i32 } else { 0 }
    }

    /// Asks the kernel to give the family's next object (with this key and
    /// shape) the id of the family's object, if that is free; whether it
    /// asked.
    fn reuse_id(&self, family: Family, key: i32, shape: usize) -> bool {
        let id = self.o.id(family);
        if self.has(family, id) || self.skip_known && self.kept_on_lookalike(family, id, key, shape) {
            return false;
        }
        fs::write(format!("/proc/sys/kernel/{}_next_id", family.dir()), id.to_string()).unwrap();
        true
    }

    /// The object was removed (IPC_RMID): gone. A segment's kept files
    /// still reach its bytes, as an unlinked file's open files do.
    fn removed(&mut self, family: Family, id: i32) {
        if family == Family::Shm && self.holds(family, id) {
            let born = self.born[&(family, id)];
            self.unlinked.insert(born, self.model.segments[&id].bytes.0.clone());
        }
        self.forget(family, id);
    }

    fn forget(&mut self, family: Family, id: i32) {
        let was = match family {
            Family::Shm => self.model.segments.remove(&id).is_some(),
            Family::Sem => self.model.sets.remove(&id).is_some(),
            Family::Msg => self.model.queues.remove(&id).is_some(),
        };
        assert!(was, "{family:?} {id} is in the model");
        self.born.remove(&(family, id));
    }

    /// Closes the kept file; a removed segment's bytes go with the last one.
    fn release(&mut self, slot: usize) {
        let Some(h) = self.held[slot].take() else { return };
        drop(h.file);
        if !self.held.iter().flatten().any(|other| other.family == h.family && other.born == h.born) {
            self.unlinked.remove(&h.born);
        }
        settle(self.m, &self.held);
    }

    /// Runs `op`; checks its outcome (and what a read returned) against the
    /// model, and updates the model. Err: the outcome is wrong.
    fn step(&mut self, op: &Op) -> Result<(), String> {
        let o = self.o;
        let k = &self.model;
        match op {
            Op::ShmWrite { offset, data } => {
                let path = self.at(o.node(Node::Segment));
                let got = pwrite_once(&path, &data.0, *offset);
                self.segment_write(o.seg, *offset, &data.0, got)
            }
            Op::ShmWriteHuge { offset } => {
                let path = self.at(o.node(Node::Segment));
                let got = pwrite_once(&path, huge_buffer(), *offset);
                self.segment_write(o.seg, *offset, huge_buffer(), got)
            }
            Op::ShmRead { offset, room } => {
                let got = pread_once(&self.at(o.node(Node::Segment)), *room, *offset);
                self.segment_read(o.seg, *offset, *room, got)
            }
            Op::ShmTruncate { len } => {
                let got = truncate(&self.at(o.node(Node::Segment)), *len as i64);
                match self.segment_size(o.seg) {
                    None => expect(Want::Err(libc::ENOENT), got),
                    Some(size) if *len > size => expect(Want::Err(libc::EFBIG), got),
                    Some(_) => {
                        self.model.bytes(o.seg)[*len as usize..].fill(0);
                        expect(Want::Ok(0), got)
                    }
                }
            }
            Op::SemWrite { num, text } => {
                let exists = o.node_exists(k, Node::Semaphore(*num));
                let got = write_once(&self.at(o.node(Node::Semaphore(*num))), libc::O_NONBLOCK, &text.0);
                if !exists {
                    return expect(Want::Err(libc::ENOENT), got);
                }
                self.semaphore_write(o.set, *num, &text.0, got)
            }
            Op::Send { to, body } => {
                let exists = k.queues.contains_key(&o.queue.0);
                let got = write_once(&self.at(o.node(Node::QueueFile(*to))), libc::O_NONBLOCK, &body.0);
                if !exists {
                    return expect(Want::Err(libc::ENOENT), got);
                }
                self.queue_send(o.queue, *to, &body.0, got)
            }
            Op::SendHuge { to, len } => {
                let want = if k.queues.contains_key(&o.queue.0) { libc::EINVAL } else { libc::ENOENT };
                let path = self.at(o.node(Node::QueueFile(*to)));
                expect(Want::Err(want), write_once(&path, libc::O_NONBLOCK, &huge_buffer()[..*len]))
            }
            Op::Read { from, room } => {
                let exists = k.queues.contains_key(&o.queue.0);
                let got = read_once(&self.at(o.node(Node::QueueFile(*from))), libc::O_NONBLOCK, *room);
                if !exists {
                    return expect_read(Err(Want::Err(libc::ENOENT)), got);
                }
                if from.browses() {
                    let snapshot = of_type(&k.queues[&o.queue.0].messages, from.mtype());
                    return expect_read(Ok(browsed(&snapshot, 0, *room)), got);
                }
                self.queue_receive(o.queue, *from, *room, got)
            }
            Op::Lookup { place, name } => expect(o.lookup(k, *place, &name.0), stat(&self.inside(*place, &name.0))),
            Op::Reshape { how, place, name } => self.reshape(*how, *place, &name.0),
            Op::OpenDirForWrite { place } => {
                let want = if o.place_exists(k, *place) { libc::EISDIR } else { libc::ENOENT };
                let path = self.at(o.place(*place));
                expect(Want::Err(want), open(&path, libc::O_WRONLY).map(|_| 0))
            }
            Op::SetXattr { node, name, value } => {
                let want = if o.node_exists(k, *node) {
                    xattr_want(*node, &name.0, Some(&value.0))
                } else {
                    Some(Want::Err(libc::ENOENT))
                };
                match want {
                    Some(want) => expect(want, set_xattr(&self.at(o.node(*node)), &name.0, &value.0)),
                    None => Ok(()),
                }
            }
            Op::RemoveXattr { node, name } => {
                let want = if o.node_exists(k, *node) {
                    xattr_want(*node, &name.0, None).expect("removal is never valid")
                } else {
                    Want::Err(libc::ENOENT)
                };
                expect(want, remove_xattr(&self.at(o.node(*node)), &name.0))
            }
            Op::TruncateStream { node, len } => {
                let want = if o.node_exists(k, *node) { Want::Ok(0) } else { Want::Err(libc::ENOENT) };
                expect(want, truncate(&self.at(o.node(*node)), *len))
            }
            Op::Behind(call) => self.behind(call),
            Op::Remove(family) => {
                let id = o.id(*family);
                let path = self.at(format!("{}/{id}", family.dir()));
                let got = if *family == Family::Shm { unlink(&path) } else { rmdir(&path) };
                if !self.has(*family, id) {
                    return expect(Want::Err(libc::ENOENT), got);
                }
                self.removed(*family, id);
                expect(Want::Ok(0), got)
            }
            Op::Create { family, same_id, shape } => self.create(*family, *same_id, *shape),
            Op::Hold { slot, file } => self.hold(*slot, *file),
            Op::HeldRead { slot, offset, room } => self.with_held(*slot, |run, h| run.held_read(h, *offset, *room)),
            Op::HeldWrite { slot, offset, data } => self.with_held(*slot, |run, h| run.held_write(h, *offset, &data.0)),
            Op::HeldStat { slot } => self.with_held(*slot, |run, h| {
                let got = errno(h.file.metadata()).map(|md| u64::from(md.nlink() > 0));
                let want = match run.unlinked.get(&h.born) {
                    // A removed segment's file: no links, as an unlinked
                    // file; ESTALE once another segment has its id, as for a
                    // stat by a path the kernel kept (docs/ipcfs.md).
                    Some(_) if run.has(Family::Shm, h.id) => Want::Err(libc::ESTALE),
                    Some(_) => Want::Ok(0),
                    None if run.alive(h) => Want::Ok(1),
                    None => Want::OneOf(GONE),
                };
                expect(want, got)
            }),
            Op::Release { slot } => {
                self.release(*slot);
                Ok(())
            }
        }
    }

    /// A write of `data` at `offset` to the segment, which gave `got`.
    fn segment_write(&mut self, seg: ShmId, offset: u64, data: &[u8], got: Outcome) -> Result<(), String> {
        let want = match self.model.segments.get_mut(&seg.0) {
            None => Want::Err(libc::ENOENT),
            Some(segment) => write_within(&mut segment.bytes.0, offset, data),
        };
        expect(want, got)
    }

    fn segment_read(&self, seg: ShmId, offset: u64, room: usize, got: Result<Vec<u8>, i32>) -> Result<(), String> {
        let Some(segment) = self.model.segments.get(&seg.0) else {
            return expect_read(Err(Want::Err(libc::ENOENT)), got);
        };
        expect_read(Ok(window(&segment.bytes.0, offset, room)), got)
    }

    fn semaphore_write(&mut self, set: SemId, num: u16, text: &[u8], got: Outcome) -> Result<(), String> {
        let value = &mut self.model.values(set)[usize::from(num)];
        match sem_command(text, *value) {
            Ok(new) => {
                *value = new;
                expect(Want::Ok(text.len() as u64), got)
            }
            Err(want) => expect(want, got),
        }
    }

    /// A message sent through `to`; O_NONBLOCK, so a full queue is EAGAIN.
    fn queue_send(&mut self, queue: MsqId, to: QFile, body: &[u8], got: Outcome) -> Result<(), String> {
        let mtype = if to.mtype() == 0 { 1 } else { to.mtype() };
        self.model_send(queue, mtype, body, got)
    }

    /// msgsnd without waiting: queued if it fits (the kernel's rule, with
    /// qbytes as the limit of both bytes and messages), else EAGAIN.
    fn model_send(&mut self, queue: MsqId, mtype: i64, body: &[u8], got: Outcome) -> Result<(), String> {
        let q = self.model.queues.get_mut(&queue.0).expect("queue in the model");
        let bytes: usize = q.messages.iter().map(|(_, b)| b.0.len()).sum();
        // ipc/msg.c: msgsz + q_cbytes <= q_qbytes && 1 + q_qnum <= q_qbytes.
        let fits = (bytes + body.len()) as u64 <= q.qbytes && (q.messages.len() as u64) < q.qbytes;
        if !fits {
            return expect(Want::Err(libc::EAGAIN), got);
        }
        q.messages.push((mtype, text(body)));
        expect(Want::Ok(body.len() as u64), got)
    }

    /// A read of a file under `.recv/` or `.wait/`: one message taken.
    fn queue_receive(
        &mut self,
        queue: MsqId,
        from: QFile,
        room: usize,
        got: Result<Vec<u8>, i32>,
    ) -> Result<(), String> {
        let messages = self.model.messages(queue);
        let mtype = from.mtype();
        match messages.iter().position(|(t, _)| mtype == 0 || *t == mtype) {
            None if from.waits() => expect_read(Err(Want::Err(libc::EAGAIN)), got),
            None => expect_read(Ok(b""), got),
            Some(i) if messages[i].1.0.len() > room => expect_read(Err(Want::Err(libc::E2BIG)), got),
            Some(i) => {
                let (_, body) = messages.remove(i);
                expect_read(Ok(&body.0), got)
            }
        }
    }

    fn behind(&mut self, call: &Behind) -> Result<(), String> {
        let o = self.o;
        let has = |run: &Run, family| run.has(family, o.id(family));
        // A call on a removed object fails, and changes nothing.
        let gone = |got| expect(Want::OneOf(GONE_BY_ID), got);
        match call {
            Behind::ShmWrite { offset, data } => {
                let Some(size) = self.segment_size(o.seg) else {
                    return gone(sys(shm::Attachment::attach(o.seg, 1, false)));
                };
                let offset = offset % size;
                let written = shm::Attachment::attach(o.seg, size, true).and_then(|a| a.write_at(offset, &data.0));
                self.segment_write(o.seg, offset, &data.0, written.map(|n| n as u64).map_err(|e| e as i32))
            }
            Behind::ShmSet { owner, mode } => {
                let got = sys(shm::set(o.seg, *owner, *owner, *mode));
                if !has(self, Family::Shm) {
                    return gone(got);
                }
                let perm = &mut self.model.segments.get_mut(&o.seg.0).unwrap().perm;
                (perm.uid, perm.gid, perm.mode) = (*owner, *owner, perm.mode & !0o777 | mode);
                expect(Want::Ok(0), got)
            }
            Behind::SemSetVal { num, value } => {
                let got = sys(sem::set_value(o.set, *num, *value));
                // semctl checks the value before it looks for the set.
                if !(0..=SEMVMX).contains(value) {
                    return expect(Want::Err(libc::ERANGE), got);
                }
                let Some(set) = self.model.sets.get_mut(&o.set.0) else { return gone(got) };
                let want = match set.values.get_mut(usize::from(*num)) {
                    None => Want::Err(libc::EINVAL),
                    Some(v) => {
                        *v = *value;
                        Want::Ok(0)
                    }
                };
                expect(want, got)
            }
            Behind::SemOp { num, delta } => {
                let got = sys(sem::operate(o.set, *num, *delta, None));
                let Some(set) = self.model.sets.get_mut(&o.set.0) else { return gone(got) };
                let want = match set.values.get_mut(usize::from(*num)) {
                    None => Want::Err(libc::EFBIG),
                    Some(v) if *delta == 0 && *v != 0 => Want::Err(libc::EAGAIN),
                    Some(v) if *v + i32::from(*delta) < 0 => Want::Err(libc::EAGAIN),
                    Some(v) if *v + i32::from(*delta) > SEMVMX => Want::Err(libc::ERANGE),
                    Some(v) => {
                        *v += i32::from(*delta);
                        Want::Ok(0)
                    }
                };
                expect(want, got)
            }
            Behind::SemSet { owner, mode } => {
                let got = sys(sem::set(o.set, *owner, *owner, *mode));
                let Some(set) = self.model.sets.get_mut(&o.set.0) else { return gone(got) };
                (set.perm.uid, set.perm.gid, set.perm.mode) = (*owner, *owner, set.perm.mode & !0o777 | mode);
                expect(Want::Ok(0), got)
            }
            Behind::Send { mtype, body } => {
                let got = sys(msg::send(o.queue, *mtype, &body.0, false)).map(|_| body.0.len() as u64);
                if !has(self, Family::Msg) {
                    return gone(got);
                }
                self.model_send(o.queue, *mtype, &body.0, got)
            }
            Behind::Receive { mtype, room } => {
                let got = msg::receive(o.queue, *mtype, *room, false);
                if !has(self, Family::Msg) {
                    return gone(sys(got));
                }
                let messages = self.model.messages(o.queue);
                match messages.iter().position(|(t, _)| *mtype == 0 || t == mtype) {
                    None => expect(Want::Err(libc::ENOMSG), sys(got)),
                    Some(i) if messages[i].1.0.len() > *room => expect(Want::Err(libc::E2BIG), sys(got)),
                    Some(i) => {
                        let (t, body) = messages.remove(i);
                        match got {
                            Ok(m) if m.mtype == t && m.body == body.0 => Ok(()),
                            got => Err(format!("msgrcv gave {got:?}, want type {t} {body:?}")),
                        }
                    }
                }
            }
            Behind::QueueSet { owner, mode, qbytes } => {
                let got = sys(msg::set(o.queue, *owner, *owner, *mode, *qbytes));
                let Some(q) = self.model.queues.get_mut(&o.queue.0) else { return gone(got) };
                (q.perm.uid, q.perm.gid, q.perm.mode, q.qbytes) =
                    (*owner, *owner, q.perm.mode & !0o777 | mode, *qbytes);
                expect(Want::Ok(0), got)
            }
            Behind::Remove(family) => {
                let id = o.id(*family);
                let got = sys(match family {
                    Family::Shm => shm::remove(ShmId(id)),
                    Family::Sem => sem::remove(SemId(id)),
                    Family::Msg => msg::remove(MsqId(id)),
                });
                if !self.has(*family, id) {
                    return gone(got);
                }
                self.removed(*family, id);
                expect(Want::Ok(0), got)
            }
            Behind::Create { family, same_id, keyed, shape } => {
                let key = self.next_object(*keyed);
                let reuse = *same_id && self.reuse_id(*family, key, *shape);
                let flags = libc::IPC_CREAT | libc::IPC_EXCL | 0o600;
                let id = match family {
                    Family::Shm => shm::get(Key(key), SEG_SIZES[shape % SEG_SIZES.len()], flags).map(|id| id.0),
                    Family::Sem => sem::get(Key(key), SET_SIZES[shape % SET_SIZES.len()].into(), flags).map(|id| id.0),
                    Family::Msg => msg::get(Key(key), flags).map(|id| id.0),
                };
                let id = id.map_err(|e| format!("creating: {e}"))?;
                self.made(*family, id, reuse, key, *shape)
            }
        }
    }

    /// A new object has id `id`: it had to be the family's old id when that
    /// was asked for.
    fn made(&mut self, family: Family, id: i32, reused: bool, key: i32, shape: usize) -> Result<(), String> {
        if reused && id != self.o.id(family) {
            return Err(format!("the kernel gave id {id}, not {} as asked through *_next_id", self.o.id(family)));
        }
        self.made_object(family, id, key, 0o600, shape);
        Ok(())
    }

    /// Makes an object through the mount, by a new key, with mode 0600.
    fn create(&mut self, family: Family, same_id: bool, shape: usize) -> Result<(), String> {
        use std::os::unix::fs::DirBuilderExt;
        let key = self.next_object(true);
        let reuse = same_id && self.reuse_id(family, key, shape);
        let mkdir_700 = |path: PathBuf| errno(fs::DirBuilder::new().mode(0o700).create(path)).map(|()| 0);
        let got = match family {
            Family::Shm => {
                let path = self.at(format!("shm/0x{key:x}"));
                let size = SEG_SIZES[shape % SEG_SIZES.len()];
                errno(OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path))
                    .and_then(|file| errno(file.set_len(size)))
                    .map(|()| 0)
            }
            Family::Sem => mkdir_700(self.at(format!("sem/0x{key:x}:{}", SET_SIZES[shape % SET_SIZES.len()]))),
            Family::Msg => mkdir_700(self.at(format!("msg/0x{key:x}"))),
        };
        expect(Want::Ok(0), got)?;
        let id = match family {
            Family::Shm => shm::get(Key(key), 0, 0).map(|id| id.0),
            Family::Sem => sem::get(Key(key), 0, 0).map(|id| id.0),
            Family::Msg => msg::get(Key(key), 0).map(|id| id.0),
        };
        let id = id.map_err(|e| format!("no object has the key it was made with: {e}"))?;
        self.made(family, id, reuse, key, shape)
    }

    fn hold(&mut self, slot: usize, file: HeldFile) -> Result<(), String> {
        self.release(slot);
        let (family, id, path) = self.o.held(file);
        let (flags, node) = match file {
            HeldFile::Segment => (libc::O_RDWR, Node::Segment),
            HeldFile::Semaphore(n) => (libc::O_RDWR | libc::O_NONBLOCK, Node::Semaphore(n)),
            HeldFile::Queue(f) => (libc::O_RDWR | libc::O_NONBLOCK, Node::QueueFile(f)),
        };
        let got = open(&self.at(path), flags);
        if !self.o.node_exists(&self.model, node) {
            return expect(Want::Err(libc::ENOENT), got.map(|_| 0));
        }
        let opened = match got {
            Ok(f) => f,
            Err(e) => return expect(Want::Ok(0), Err(e)),
        };
        let (key, nsems) = match family {
            Family::Shm => (self.model.segments[&id].perm.key, 0),
            Family::Sem => (self.model.sets[&id].perm.key, self.model.sets[&id].values.len()),
            Family::Msg => (self.model.queues[&id].perm.key, 0),
        };
        let born = self.born[&(family, id)];
        let snapshot = match file {
            HeldFile::Queue(f) if f.browses() => of_type(&self.model.queues[&id].messages, f.mtype()),
            _ => Vec::new(),
        };
        let (stream, snapshot) = ((Vec::new(), 0), (snapshot, 0));
        self.held[slot] = Some(Held { file: opened, what: file, family, id, born, key, nsems, stream, snapshot });
        Ok(())
    }

    /// Runs `f` on the file kept in `slot`, if any (nothing kept: nothing to
    /// do).
    fn with_held(
        &mut self,
        slot: usize,
        f: impl FnOnce(&mut Self, &mut Held) -> Result<(), String>,
    ) -> Result<(), String> {
        let Some(mut h) = self.held[slot].take() else { return Ok(()) };
        let result = f(self, &mut h);
        self.held[slot] = Some(h);
        result
    }

    fn held_read(&mut self, h: &mut Held, offset: u64, room: usize) -> Result<(), String> {
        let alive = self.alive(h);
        let mut buf = vec![0u8; room];
        match h.what {
            HeldFile::Segment => {
                let got = errno(h.file.read_at(&mut buf, offset)).map(|n| buf[..n].to_vec());
                match self.unlinked.get(&h.born) {
                    Some(bytes) => expect_read(Ok(window(bytes, offset, room)), got),
                    None if !alive => expect_read(Err(Want::OneOf(GONE)), got),
                    None => self.segment_read(ShmId(h.id), offset, room, got),
                }
            }
            HeldFile::Semaphore(num) => {
                let got = errno(h.file.read_at(&mut buf, offset)).map(|n| buf[..n].to_vec());
                // Positions, as sysfs: at offset 0 the value's text fresh,
                // further on the rest of the text the last read at 0 took.
                if !alive {
                    return expect_read(Err(Want::OneOf(GONE)), got);
                }
                let (text, _) = &mut h.stream;
                if offset == 0 || text.is_empty() {
                    *text = format!("{}\n", self.model.sets[&h.id].values[usize::from(num)]).into_bytes();
                }
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(text.len());
                let want = text[start..start.saturating_add(room).min(text.len())].to_vec();
                expect_read(Ok(&want), got)
            }
            HeldFile::Queue(from) if from.browses() => {
                let got = errno(h.file.read(&mut buf)).map(|n| buf[..n].to_vec());
                // The snapshot is the daemon's: once the queue is gone, the
                // docs leave open whether it still shows it.
                if !alive && got.is_err() {
                    return expect_read(Err(Want::OneOf(GONE)), got);
                }
                let (snapshot, position) = &mut h.snapshot;
                let want = browsed(snapshot, *position, room);
                *position += want.len() as u64;
                expect_read(Ok(want), got)
            }
            HeldFile::Queue(from) => {
                let got = errno(h.file.read(&mut buf)).map(|n| buf[..n].to_vec());
                if !alive {
                    return expect_read(Err(Want::OneOf(GONE)), got);
                }
                self.queue_receive(MsqId(h.id), from, room, got)
            }
        }
    }

    fn held_write(&mut self, h: &mut Held, offset: u64, data: &[u8]) -> Result<(), String> {
        let alive = self.alive(h);
        match h.what {
            HeldFile::Segment => {
                let got = errno(h.file.write_at(data, offset)).map(|n| n as u64);
                match self.unlinked.get_mut(&h.born) {
                    Some(bytes) => expect(write_within(bytes, offset, data), got),
                    None if !alive => expect(Want::OneOf(GONE), got),
                    None => self.segment_write(ShmId(h.id), offset, data, got),
                }
            }
            HeldFile::Semaphore(num) => {
                let got = errno(h.file.write(data)).map(|n| n as u64);
                if !alive {
                    // The command is read before the set is looked for.
                    return expect(sem_syntax(data).unwrap_or(Want::OneOf(GONE)), got);
                }
                self.semaphore_write(SemId(h.id), num, data, got)
            }
            HeldFile::Queue(to) => {
                let got = errno(h.file.write(data)).map(|n| n as u64);
                if !alive {
                    return expect(Want::OneOf(GONE), got);
                }
                // A listed file has a position, which a write moves on.
                if let (true, Ok(n)) = (to.browses(), got) {
                    h.snapshot.1 += n;
                }
                self.queue_send(MsqId(h.id), to, data, got)
            }
        }
    }

    fn reshape(&mut self, how: Reshape, place: Place, name: &[u8]) -> Result<(), String> {
        let o = self.o;
        let path = self.inside(place, name);
        let segment = self.at(o.node(Node::Segment));
        let resolves = o.place_exists(&self.model, place) && o.resolves(&self.model, place, name);
        let dots = name == b"." || name == b"..";
        let long = name.len() > 255;
        let dir_entry = matches!(place, Place::Root | Place::ByKey | Place::Sem | Place::Msg)
            || (place == Place::Queue && (name == b".recv" || name == b".wait"));
        let want = match how {
            // The walk stops at the missing directory.
            _ if !o.place_exists(&self.model, place) => Want::Err(libc::ENOENT),
            // From a removed segment: the VFS answers first.
            Reshape::Link | Reshape::Rename if !self.model.segments.contains_key(&o.seg.0) => Want::Refused,
            _ if long => Want::Err(libc::ENAMETOOLONG),
            Reshape::Mkdir if resolves => Want::Err(libc::EEXIST),
            // A valid creation name would create: not this model's business.
            Reshape::Mkdir if might_create(place, name) => return Ok(()),
            // Known to give ENOENT: see
            // names_that_are_not_utf8_get_the_errno_of_any_other_bad_name_when_creating.
            Reshape::Mkdir if self.skip_known && std::str::from_utf8(name).is_err() => return Ok(()),
            Reshape::Mkdir if matches!(place, Place::Sem | Place::Msg) && std::str::from_utf8(name).is_err() => {
                Want::Err(libc::EINVAL)
            }
            Reshape::Mkdir if matches!(place, Place::Sem | Place::Msg) => Want::Err(libc::EINVAL),
            Reshape::Mkdir => Want::Err(libc::EPERM),
            Reshape::Mknod | Reshape::Symlink | Reshape::Link if resolves => Want::Err(libc::EEXIST),
            Reshape::Mknod | Reshape::Symlink | Reshape::Link => Want::Err(libc::EPERM),
            // Onto an existing name the VFS has its own answers (EISDIR,
            // ENOTEMPTY, or nothing at all for the segment itself).
            Reshape::Rename if resolves => Want::Anything,
            Reshape::Rename => Want::Err(libc::EPERM),
            Reshape::Unlink | Reshape::Rmdir if dots => Want::Refused,
            // The kernel keeps a segment's own name (issue 16): rmdir of a
            // removed segment's name may meet the kept file, and the VFS
            // answers ENOTDIR before asking the filesystem.
            Reshape::Rmdir if !resolves && place == Place::Shm => Want::OneOf(&[libc::ENOENT, libc::ENOTDIR]),
            Reshape::Unlink | Reshape::Rmdir if !resolves => Want::Err(libc::ENOENT),
            Reshape::Unlink if dir_entry => Want::Err(libc::EISDIR),
            Reshape::Unlink => match place {
                Place::Set => Want::Ok(0),
                Place::Queue => {
                    let mtype = if name == b"any" { 0 } else { canonical(name, i64::MAX as u128).unwrap() as i64 };
                    self.model.messages(o.queue).retain(|(t, _)| mtype != 0 && *t != mtype);
                    Want::Ok(0)
                }
                // Removing a segment, or discarding through .recv/ or .wait/: skip.
                _ => return Ok(()),
            },
            Reshape::Rmdir => match place {
                Place::Sem | Place::Msg => return Ok(()),
                Place::Queue if name == b".recv" || name == b".wait" => Want::Anything,
                Place::Set | Place::Queue | Place::RecvDir | Place::WaitDir => Want::Err(libc::ENOTDIR),
                _ => Want::Refused,
            },
        };
        let got = match how {
            Reshape::Mkdir => mkdir(&path),
            Reshape::Mknod => make_fifo(&path),
            Reshape::Symlink => symlink(&path),
            Reshape::Link => link(&segment, &path),
            Reshape::Rename => rename(&segment, &path),
            Reshape::Unlink => unlink(&path),
            Reshape::Rmdir => rmdir(&path),
        };
        expect(want, got)
    }
}

fn run_case(m: &Mounted, dog: &Watchdog, ops: &[Op], case: u64, skip_known: bool) -> Result<(), Failure> {
    let mut run = Run::new(m, fresh_objects(case), skip_known);
    for (i, op) in ops.iter().enumerate() {
        dog.guard(&format!("step {i}: {op:?}"));
        let outcome = run.step(op);
        dog.clear();
        settle(m, &run.held);
        let now = Kernel::now();
        serving(m, &now, dog).map_err(|e| Failure::Gone(format!("step {i}, {op:?}: {e}")))?;
        outcome.map_err(|e| Failure::Mismatch(format!("step {i}, {op:?}: {e}")))?;
        if now != run.model {
            let diff = differences(&run.model, &now);
            return Err(Failure::Mismatch(format!("after step {i}, {op:?}, the kernel is not the model:\n  {diff}")));
        }
        contents_listed(m, &now, dog).map_err(|e| Failure::Mismatch(format!("after step {i}, {op:?}: {e}")))?;
    }
    Ok(())
}

/// Replays a sequence of operations on a fresh mount (for regressions).
fn replay(ops: &[Op]) {
    let m = Mounted::new();
    let dog = Watchdog::new(&m);
    match run_case(&m, &dog, ops, 1, false) {
        Ok(()) => {}
        Err(Failure::Mismatch(e) | Failure::Gone(e)) => panic!("{e}"),
    }
}

#[test]
fn random_valid_and_hostile_operations_agree_with_a_model_of_the_kernel() {
    let m = Mounted::new();
    let dog = Watchdog::new(&m);
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64);
    let config = Config { cases, max_shrink_iters: 4096, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let counter = RefCell::new(0u64);
    let gone: RefCell<Option<String>> = RefCell::new(None);
    let result = runner.run(&vec(op(), 1..=50), |ops| {
        if gone.borrow().is_some() {
            // Nothing can be learnt without a daemon: stop shrinking.
            return Ok(());
        }
        *counter.borrow_mut() += 1;
        match run_case(&m, &dog, &ops, *counter.borrow(), true) {
            Ok(()) => Ok(()),
            Err(Failure::Mismatch(e)) => Err(TestCaseError::fail(e)),
            Err(Failure::Gone(e)) => {
                *gone.borrow_mut() = Some(format!("{e}\nafter the operations {ops:#?}"));
                Err(TestCaseError::fail(e))
            }
        }
    });
    if let Some(e) = gone.into_inner() {
        panic!("the daemon stopped serving: {e}");
    }
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---- what the random search found, kept as regressions ----

/// Found by the property test: mkdir of a name that is not UTF-8 outside
/// sem/ and msg/ gives ENOENT; the docs say EPERM ("mkdir outside `sem/` and
/// `msg/`"). The same cause as
/// names_that_are_not_utf8_get_the_errno_of_any_other_bad_name_when_creating.
#[test]
fn regression_mkdir_of_a_name_that_is_not_utf8_in_by_key() {
    replay(&[Op::Reshape { how: Reshape::Mkdir, place: Place::ByKey, name: text(b"\x80") }]);
}

/// Found by the property test, shrunk from a random sequence: a queue file
/// kept open while its queue is removed behind the mount's back, and a new
/// queue given the same id (`msg_next_id`, as checkpoint/restore does, or
/// after the id's sequence number wraps). docs/ipcfs.md (Identity of
/// objects, Errors) and the style guide: a file opened on an object whose id
/// went to another gives ENOENT, never the new object's data. ipcfs tells
/// queues apart by id, key, creator uid and gid only, so the write through
/// the old file lands in the new queue (and a read would take its messages).
/// Kept sets behave the same (by id, key, creator and size). The kernel
/// shows no field that would tell such a look-alike from the original
/// (ctime changes with IPC_SET and SETVAL, and there is no creator pid), so
/// this is a known limit, written down in docs/reliability.md.
#[test]
#[ignore = "known limit (docs/reliability.md): a look-alike object given a removed one's id cannot be told apart"]
fn regression_a_queue_file_kept_open_never_reaches_a_new_queue_with_the_same_id() {
    replay(&[
        Op::Hold { slot: 2, file: HeldFile::Queue(QFile::RecvAny) },
        Op::Behind(Behind::Remove(Family::Msg)),
        Op::Behind(Behind::Create { family: Family::Msg, same_id: true, keyed: false, shape: 0 }),
        Op::HeldWrite { slot: 2, offset: 0, data: text("0\n") },
    ]);
}

/// Found by the property test, shrunk from a random sequence: a semaphore
/// file kept open, its set removed through the mount (rmdir), and a new set
/// of the same size given the same id behind the mount's back. The new set
/// is listed in sem/, but `sem/ID/` lists nothing and `sem/ID/N` is ENOENT:
/// ipcfs cannot tell the two sets apart, so it gives the new one the old
/// directory's inode number, which the kernel still holds as a removed
/// directory. docs/ipcfs.md: an object made by any program "appears … at
/// once". Fixed: rmdir retires the removed object's inodes.
#[test]
fn regression_a_set_given_a_removed_sets_id_can_be_used_while_a_file_of_the_old_one_is_open() {
    replay(&[
        Op::Hold { slot: 0, file: HeldFile::Semaphore(0) },
        Op::Remove(Family::Sem),
        Op::Behind(Behind::Create { family: Family::Sem, same_id: true, keyed: false, shape: 2 }),
    ]);
}

/// Found by the property test, shrunk from a random sequence: the same as
/// regression_a_set_given_a_removed_sets_id_can_be_used_while_a_file_of_the_old_one_is_open,
/// for a queue, and with the old file closed (its slot reused) before the
/// new queue is made: the kernel keeps the removed directory's inode even
/// then, so `msg/ID/` stays empty and `msg/ID/any` ENOENT (seconds later
/// too). Fixed with the one before.
#[test]
fn regression_a_queue_given_a_removed_queues_id_can_be_used_after_a_file_open_during_the_rmdir_is_closed() {
    replay(&[
        Op::Hold { slot: 2, file: HeldFile::Queue(QFile::Type(1)) },
        Op::Remove(Family::Msg),
        Op::Hold { slot: 2, file: HeldFile::Segment },
        Op::Behind(Behind::Create { family: Family::Msg, same_id: true, keyed: false, shape: 0 }),
    ]);
}

/// Constructed, not shrunk: the property test's hardest case, pinned. The
/// random search found no failure here; this is the path it must keep
/// passing. Files kept open on a set, a queue and a segment while all three
/// are removed — through the mount and behind its back — and new objects
/// take the set's and the queue's ids (told apart by their keys): the kept
/// set and queue files give ENOENT and never touch the new objects; the kept
/// segment file still reaches its own segment's bytes, while the segment is
/// gone from the kernel and the listing at once (an open file is no
/// attachment), as an unlinked file's open files do.
#[test]
fn regression_files_kept_open_on_removed_objects_never_reach_the_objects_that_take_their_ids() {
    replay(&[
        // A segment with a key, so that its by-key link can be seen to go.
        Op::Behind(Behind::Create { family: Family::Shm, same_id: false, keyed: true, shape: 0 }),
        Op::Hold { slot: 0, file: HeldFile::Semaphore(1) },
        Op::Hold { slot: 1, file: HeldFile::Queue(QFile::RecvType(3)) },
        Op::Hold { slot: 2, file: HeldFile::Segment },
        Op::HeldWrite { slot: 2, offset: 10, data: text("old bytes") },
        Op::Send { to: QFile::Type(3), body: text("old") },
        Op::Remove(Family::Sem),
        Op::Behind(Behind::Remove(Family::Msg)),
        Op::Behind(Behind::Remove(Family::Shm)),
        Op::Behind(Behind::Create { family: Family::Sem, same_id: true, keyed: true, shape: 0 }),
        Op::Create { family: Family::Msg, same_id: true, shape: 0 },
        Op::Behind(Behind::SemSetVal { num: 1, value: 7 }),
        Op::Behind(Behind::Send { mtype: 3, body: text("new") }),
        Op::HeldRead { slot: 0, offset: 0, room: 64 },
        Op::HeldWrite { slot: 0, offset: 0, data: text("5") },
        Op::HeldStat { slot: 0 },
        Op::HeldRead { slot: 1, offset: 0, room: 64 },
        Op::HeldWrite { slot: 1, offset: 0, data: text("x") },
        Op::HeldStat { slot: 1 },
        Op::SemWrite { num: 1, text: text("+1") },
        Op::Read { from: QFile::RecvType(3), room: 64 },
        Op::HeldRead { slot: 2, offset: 0, room: 64 },
        Op::HeldStat { slot: 2 },
        Op::ShmRead { offset: 8, room: 16 },
        Op::HeldWrite { slot: 2, offset: 0, data: text("still mine") },
        Op::Release { slot: 2 },
        Op::Behind(Behind::Create { family: Family::Shm, same_id: true, keyed: false, shape: 1 }),
        Op::ShmRead { offset: 0, room: 128 },
        Op::ShmWrite { offset: 90, data: text("new segment, 100 bytes") },
        Op::HeldRead { slot: 0, offset: 0, room: 64 },
    ]);
}
