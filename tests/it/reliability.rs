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
//! Clients are real processes: one small Python program ([`CLIENT`]) run by
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
//! IPCFS_SOAK=10 cargo test --release --test reliability -- --nocapture
//! ```
//!
//! Tests with random moments print their seed; `IPCFS_SEED=<seed>` replays it.

use crate::common::*;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipcfs::ipc::msg::{self, MsqId};
use ipcfs::ipc::sem::{self, Query, SemId};
use ipcfs::ipc::shm::Attachment;
use ipcfs::ipc::{Errno, sysvipc};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

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

// ---- the client program ----

/// Roles (the first argument):
///
/// - `send PATH PREFIX COUNT`: one write per message, `PREFIX-%06d`; says
///   `ready` after the first, `sent COUNT` at the end.
/// - `receive PATH wait|poll`: one read per message until a `STOP` message;
///   on end-of-file, `poll` (a `.recv/` file) tries again, `wait` (a `.wait/`
///   file) fails. Says `ready` after the first message, then `got BODY` for
///   each at the end.
/// - `count SEM SEG ROUNDS`: ROUNDS times: P on SEM, pread the counter (8
///   bytes at 0 of SEG), pwrite it plus one, V. It also writes its pid at 8
///   on entering and checks it is still there before leaving: a second
///   process inside at the same time shows as an overlap.
/// - `once-write PATH TEXT`, `once-read PATH`: one write(2) or one read(2),
///   which may wait; says `done` or `got BODY`.
/// - `shm-write PATH OFFSET`, `sem-pair PATH FIRST SECOND`: loop forever
///   (until an error), writing a counter into 512 bytes at OFFSET, or writing
///   FIRST then SECOND; `ready` after the first round.
/// - `q-read PATH DIR`, `q-write PATH PREFIX DIR`, `sem-churn PATH DIR`,
///   `sem-take PATH DIR`, `shm-check PATH OFFSET DIR`: loop until the file
///   DIR/stop exists, going on after errors (see `Control`): q-read says
///   `got BODY` for each message as it comes; q-write sends `PREFIX-%06d`;
///   sem-churn writes `+1` and `-1` and reads the value (pread at 0), saying `value V`
///   for each value not seen before; sem-take writes `-1` and says `took`
///   each time it succeeds; shm-check writes its own pattern at OFFSET, reads
///   the whole segment back, and counts the reads that do not show its
///   pattern or that show `NEW!`. Once DIR/mark exists, each counts its
///   operations and says `after-mark` at the 50th; at the end each says
///   `stopped ok-after-mark N errors-after-mark ENAME:COUNT,...
///   errors-before-mark ...` (shm-check adds `bad B`).
/// - `q-follow PATH DIR`, `q-follow-write QUEUE_DIR DIR`, `sem-follow PATH
///   DIR`: follow an object that is replaced again and again, opening the
///   file anew (`opened`) after each error, until DIR/stop. q-follow reads
///   messages `gen-K-I` and says `confused K1 K2` when one file gives
///   messages of two generations; sem-follow does the same with the values
///   read; q-follow-write learns the key of its queue from `user.ipc.key` on
///   the directory it opens `any` from, and sends `KEY-I` messages.
///
/// Elsewhere, an OSError ends the client with `error ENAME` and exit status 1.
const CLIENT: &str = r#"
import ctypes, errno, os, struct, sys, time

libc = ctypes.CDLL(None, use_errno=True)
libc.read.restype = ctypes.c_ssize_t
libc.read.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
libc.write.restype = ctypes.c_ssize_t
libc.write.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]

def say(*words):
    os.write(1, (" ".join(str(w) for w in words) + "\n").encode())

def fail():
    e = ctypes.get_errno()
    raise OSError(e, os.strerror(e))

def read1(fd, size=65536):
    buf = ctypes.create_string_buffer(size)
    n = libc.read(fd, buf, size)
    if n < 0:
        fail()
    return buf.raw[:n]

def write1(fd, data):
    n = libc.write(fd, data, len(data))
    if n < 0:
        fail()
    if n != len(data):
        raise SystemExit("short write: %d of %d bytes" % (n, len(data)))

class Control:
    """For the loops that run until DIR/stop exists: says `ready` after the
    first success and `failing` at the first error, counts the errors of each
    errno before and after DIR/mark appeared, and says `after-mark` once 50
    operations have been made since then."""

    def __init__(self, directory):
        self.stop = os.path.join(directory, "stop")
        self.mark = os.path.join(directory, "mark")
        self.ready, self.failing, self.after, self.ok_after = False, False, None, 0
        self.before, self.errors_after = {}, {}

    def going(self):
        if self.after is None and os.path.exists(self.mark):
            self.after = 0
        return not os.path.exists(self.stop)

    def attempt(self, op):
        try:
            result, ok = op(), True
        except OSError as e:
            name = errno.errorcode.get(e.errno, str(e.errno))
            tally = self.before if self.after is None else self.errors_after
            tally[name] = tally.get(name, 0) + 1
            result, ok = None, False
        if ok and not self.ready:
            self.ready = True
            say("ready")
        if not ok and not self.failing:
            self.failing = True
            say("failing")
        if self.after is not None:
            self.after += 1
            self.ok_after += ok
            if self.after == 50:
                say("after-mark")
        return result

    def end(self, *more):
        def text(tally):
            return ",".join("%s:%d" % kv for kv in sorted(tally.items())) or "none"
        say("stopped ok-after-mark", self.ok_after, "errors-after-mark", text(self.errors_after),
            "errors-before-mark", text(self.before), *more)

def follow(path, control, generation_of):
    """Follows an object replaced again and again: opens PATH anew (`opened`)
    after each error, and says `confused K1 K2` when one file gives two
    generations. generation_of(fd) reads one; b"" is nothing yet."""
    while control.going():
        fd = control.attempt(lambda: os.open(path, os.O_RDONLY))
        if fd is None:
            time.sleep(0.0001)
            continue
        say("opened")
        generation = None
        while control.going():
            now = control.attempt(lambda: generation_of(fd))
            if now is None:
                break
            if not now:
                time.sleep(0.0001)
                continue
            if generation is None:
                generation = now
            elif now != generation:
                say("confused", generation.decode(), now.decode())
        os.close(fd)
    control.end()

def main(role, args):
    if role == "send":
        fd = os.open(args[0], os.O_WRONLY)
        prefix, count = args[1].encode(), int(args[2])
        for i in range(count):
            write1(fd, b"%s-%06d" % (prefix, i))
            if i == 0:
                say("ready")
        say("sent", count)
    elif role == "receive":
        fd = os.open(args[0], os.O_RDONLY)
        got = []
        while True:
            body = read1(fd)
            if body == b"STOP":
                break
            if body:
                if not got:
                    say("ready")
                got.append(body)
            elif args[1] == "wait":
                raise SystemExit("end-of-file from a file that waits")
            else:
                time.sleep(0.0002)
        sys.stdout.write("".join("got %s\n" % b.decode() for b in got))
    elif role == "count":
        sem = os.open(args[0], os.O_RDWR)
        seg = os.open(args[1], os.O_RDWR)
        rounds, me, overlaps = int(args[2]), struct.pack("<Q", os.getpid()), 0
        for _ in range(rounds):
            write1(sem, b"-1")
            os.pwrite(seg, me, 8)
            (value,) = struct.unpack("<Q", os.pread(seg, 8, 0))
            os.pwrite(seg, struct.pack("<Q", value + 1), 0)
            if os.pread(seg, 8, 8) != me:
                overlaps += 1
            write1(sem, b"+1")
        say("counted", rounds, "overlaps", overlaps)
    elif role == "once-write":
        fd = os.open(args[0], os.O_RDWR)
        write1(fd, args[1].encode())
        say("done")
    elif role == "once-read":
        fd = os.open(args[0], os.O_RDONLY)
        say("got", read1(fd).decode())
    elif role == "shm-write":
        fd, offset, i = os.open(args[0], os.O_RDWR), int(args[1]), 0
        while True:
            os.pwrite(fd, (b"%08d" % i) * 64, offset)
            if i == 0:
                say("ready")
            i += 1
    elif role == "sem-pair":
        fd = os.open(args[0], os.O_RDWR)
        first, second, ready = args[1].encode(), args[2].encode(), False
        while True:
            write1(fd, first)
            write1(fd, second)
            if not ready:
                say("ready")
                ready = True
    elif role == "q-read":
        fd, control = os.open(args[0], os.O_RDONLY), Control(args[1])
        while control.going():
            body = control.attempt(lambda: read1(fd))
            if body:
                say("got", body.decode())
            elif body == b"":
                time.sleep(0.0002)
        control.end()
    elif role == "q-write":
        fd, prefix, control = os.open(args[0], os.O_WRONLY), args[1].encode(), Control(args[2])
        i = 0
        while control.going():
            control.attempt(lambda: write1(fd, b"%s-%06d" % (prefix, i)))
            i += 1
        control.end()
    elif role == "sem-churn":
        fd, control, seen = os.open(args[0], os.O_RDWR), Control(args[1]), set()
        def value():
            return os.pread(fd, 64, 0).decode().strip()
        while control.going():
            control.attempt(lambda: write1(fd, b"+1"))
            control.attempt(lambda: write1(fd, b"-1"))
            v = control.attempt(value)
            if v is not None and v not in seen:
                seen.add(v)
                say("value", v)
        control.end()
    elif role == "q-follow":
        def generation(fd):
            body = read1(fd)
            return body.split(b"-")[1] if body else b""
        follow(args[0], Control(args[1]), generation)
    elif role == "sem-follow":
        def value(fd):
            return os.pread(fd, 64, 0).strip()
        follow(args[0], Control(args[1]), value)
    elif role == "q-follow-write":
        control, i = Control(args[1]), 0
        while control.going():
            def open_any():
                d = os.open(args[0], os.O_RDONLY | os.O_DIRECTORY)
                try:
                    key = os.getxattr(d, "user.ipc.key")
                    return key, os.open("any", os.O_WRONLY, dir_fd=d)
                finally:
                    os.close(d)
            opened = control.attempt(open_any)
            if opened is None:
                time.sleep(0.0001)
                continue
            key, fd = opened
            say("opened")
            while control.going():
                if control.attempt(lambda: write1(fd, b"%s-%06d" % (key, i))) is None:
                    break
                i += 1
            os.close(fd)
        control.end()
    elif role == "sem-take":
        fd, control = os.open(args[0], os.O_RDWR), Control(args[1])
        while control.going():
            if control.attempt(lambda: write1(fd, b"-1") or True):
                say("took")
        control.end()
    elif role == "shm-check":
        fd, offset, control = os.open(args[0], os.O_RDWR), int(args[1]), Control(args[2])
        size, bad = os.fstat(fd).st_size, [0]
        def check(n):
            mine = b"old%05d" % (n % 100000)
            os.pwrite(fd, mine, offset)
            whole = os.pread(fd, size, 0)
            if whole[offset:offset + len(mine)] != mine or b"NEW!" in whole:
                bad[0] += 1
        n = 0
        while control.going():
            control.attempt(lambda: check(n))
            n += 1
        control.end("bad", bad[0])
    else:
        raise SystemExit("unknown role " + role)

try:
    main(sys.argv[1], sys.argv[2:])
except OSError as e:
    say("error", errno.errorcode.get(e.errno, str(e.errno)))
    sys.exit(1)
"#;

/// A client process whose output is collected as it comes. Killed (by its
/// own pid) on drop if it still runs.
struct Client {
    what: String,
    child: Child,
    status: Option<ExitStatus>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    collectors: Vec<JoinHandle<()>>,
}

impl Client {
    fn start(what: impl Into<String>, args: &[&str]) -> Client {
        let what = what.into();
        let mut child = Command::new(PYTHON)
            .arg("-c")
            .arg(CLIENT)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let collectors = vec![
            collect(child.stdout.take().unwrap(), stdout.clone()),
            collect(child.stderr.take().unwrap(), stderr.clone()),
        ];
        Client { what, child, status: None, stdout, stderr, collectors }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal`. Until [`Client::running`] has seen the child end, it
    /// is not reaped (at most a zombie), so its pid is still its own.
    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid()), signal).unwrap_or_else(|e| panic!("kill {}: {e}", self.what));
    }

    fn running(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status.is_none()
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// Whether the client printed the line `line`.
    fn said(&self, line: &str) -> bool {
        self.output().lines().any(|l| l == line)
    }

    /// Bodies the client printed as `got BODY`.
    fn got(&self) -> Vec<String> {
        self.output().lines().filter_map(|l| l.strip_prefix("got ")).map(str::to_string).collect()
    }

    /// The errno name the client ended with, if it ended with one.
    fn error(&self) -> Option<String> {
        self.output().lines().find_map(|l| l.strip_prefix("error ")).map(str::to_string)
    }

    fn report(&self) -> String {
        format!(
            "{} (pid {}): {:?}, stdout {:?}, stderr {:?}",
            self.what,
            self.pid(),
            self.status,
            tail(&self.output()),
            String::from_utf8_lossy(&self.stderr.lock().unwrap())
        )
    }

    /// Waits up to `limit` for the client to end, then for all its output.
    #[track_caller]
    fn finish(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        while self.running() {
            assert!(Instant::now() < deadline, "still running after {limit:?}: {}", self.report());
            std::thread::sleep(Duration::from_millis(2));
        }
        for collector in self.collectors.drain(..) {
            collector.join().unwrap();
        }
        self.status.unwrap()
    }

    /// Polls until the client waits inside a FUSE read or write.
    #[track_caller]
    fn wait_blocked(&mut self) {
        let deadline = Instant::now() + PROMPTLY;
        while !waiting_on_fuse(self.pid()) {
            assert!(self.running(), "ended instead of waiting: {}", self.report());
            assert!(Instant::now() < deadline, "not waiting in a FUSE call after {PROMPTLY:?}: {}", self.report());
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Polls until the client has printed `line`.
    #[track_caller]
    fn wait_said(&mut self, line: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.said(line) {
            assert!(self.running(), "ended before saying {line:?}: {}", self.report());
            assert!(Instant::now() < deadline, "did not say {line:?} within {limit:?}: {}", self.report());
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn killed_by(&self, signal: Signal) -> bool {
        self.status.as_ref().and_then(exit_signal) == Some(signal as i32)
    }
}

impl Drop for Client {
    /// A client blocked in a FUSE call that the daemon never answers cannot
    /// end before the mount goes away, so this waits only a little: the
    /// harness then unmounts and stops the daemon, which ends the call.
    fn drop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
            let _ = wait_timeout(&mut self.child, Duration::from_secs(1));
        }
    }
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

// ---- 1. load ----

/// 8 writers (four to `any`, four to type files) and 4 readers (two on
/// `.wait/any`, two polling `.recv/any`) move 10,000 unique messages: each is
/// received exactly once, and each reader gets each writer's messages in the
/// order they were sent.
#[test]
fn eight_writers_four_readers_move_every_message_exactly_once() {
    let m = Mounted::new();
    let per_writer = 1250 * soak();
    fs::create_dir(m.path("msg/0x7e1a0001")).unwrap();
    let id = msg::get(Key(0x7e1a0001), 0).unwrap();
    let dir = m.path(format!("msg/{}", id.0));

    let mut readers: Vec<Client> = (0..4)
        .map(|r| {
            let (file, mode) = if r < 2 { (".wait/any", "wait") } else { (".recv/any", "poll") };
            Client::start(format!("reader {r} of {file}"), &["receive", arg(&dir.join(file)), mode])
        })
        .collect();
    let mut writers: Vec<Client> = (0..8)
        .map(|w| {
            let file = if w % 2 == 0 { "any".to_string() } else { (w + 1).to_string() };
            let prefix = format!("w{w}");
            Client::start(
                format!("writer {w} to {file}"),
                &["send", arg(&dir.join(&file)), &prefix, &per_writer.to_string()],
            )
        })
        .collect();
    let started = Instant::now();
    for writer in &mut writers {
        let status = writer.finish(load_limit());
        assert!(status.success() && writer.said(&format!("sent {per_writer}")), "{}", writer.report());
    }
    // Every message is queued before these, so a reader that takes a STOP has
    // nothing more to take.
    for _ in &readers {
        let deadline = Instant::now() + load_limit();
        while let Err(e) = msg::send(id, 1, b"STOP", false) {
            assert!(e == Errno::EAGAIN && Instant::now() < deadline, "msgsnd STOP: {e}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let mut times: HashMap<String, usize> = HashMap::new();
    let mut per_reader = Vec::new();
    for reader in &mut readers {
        let status = reader.finish(load_limit());
        assert!(status.success(), "{}", reader.report());
        let got = reader.got();
        // Each writer's messages come in order (within one reader's sequence).
        let mut last: BTreeMap<String, usize> = BTreeMap::new();
        for body in &got {
            let (writer, index) = body.split_once('-').unwrap_or_else(|| panic!("{}: got {body:?}", reader.what));
            let index: usize = index.parse().unwrap();
            if let Some(&before) = last.get(writer) {
                assert!(index > before, "{}: {body} after {writer}-{before:06}", reader.what);
            }
            last.insert(writer.to_string(), index);
            *times.entry(body.clone()).or_default() += 1;
        }
        per_reader.push(got.len());
    }
    eprintln!("{} messages in {:?}, per reader {per_reader:?}", 8 * per_writer, started.elapsed());

    let sent: HashSet<String> = (0..8).flat_map(|w| (0..per_writer).map(move |i| format!("w{w}-{i:06}"))).collect();
    let doubled: Vec<_> = times.iter().filter(|&(_, &n)| n > 1).take(10).collect();
    assert!(doubled.is_empty(), "received more than once: {doubled:?}");
    let unknown: Vec<_> = times.keys().filter(|b| !sent.contains(*b)).take(10).collect();
    assert!(unknown.is_empty(), "received but never sent: {unknown:?}");
    let mut lost: Vec<_> = sent.iter().filter(|b| !times.contains_key(*b)).collect();
    lost.sort();
    assert!(
        lost.is_empty(),
        "{} of {} messages never received, e.g. {:?}",
        lost.len(),
        sent.len(),
        &lost[..lost.len().min(10)]
    );
    assert_eq!(qnum(id), 0, "nothing left behind");
}

/// Six processes each do 1,000 P/V pairs through a semaphore file used as a
/// mutex (initial value 1) around a counter they read and write with
/// pread/pwrite through a segment file: the counter ends at exactly 6,000,
/// no process ever saw another inside, and the semaphore is back at 1.
#[test]
fn six_processes_count_exactly_under_a_semaphore_mutex() {
    let m = Mounted::new();
    let rounds = 1000 * soak();
    fs::create_dir(m.path("sem/0x7e1a0002")).unwrap();
    let set = sem::get(Key(0x7e1a0002), 0, 0).unwrap();
    let semaphore = m.path(format!("sem/{}/0", set.0));
    fs::write(&semaphore, "1").unwrap();
    assert_eq!(sem_value(set, 0), 1);
    sh_ok(&format!("truncate -s 4096 {}", q(&m.path("shm/0x7e1a0003"))));
    let seg = shm::get(Key(0x7e1a0003), 0, 0).unwrap();
    assert_eq!(segment_bytes(seg), vec![0; 4096], "precondition: a new segment is zero");

    let started = Instant::now();
    let mut counters: Vec<Client> = (0..6)
        .map(|c| {
            Client::start(format!("counter {c}"), &["count", arg(&semaphore), arg(&m.shm(seg)), &rounds.to_string()])
        })
        .collect();
    for counter in &mut counters {
        let status = counter.finish(load_limit());
        assert!(status.success(), "{}", counter.report());
        assert!(counter.said(&format!("counted {rounds} overlaps 0")), "{}", counter.report());
    }
    eprintln!("{} critical sections in {:?}", 6 * rounds, started.elapsed());

    let mut through_mount = [0u8; 8];
    File::open(m.shm(seg)).unwrap().read_exact_at(&mut through_mount, 0).unwrap();
    let kernel: [u8; 8] = segment_bytes(seg)[..8].try_into().unwrap();
    assert_eq!(u64::from_le_bytes(through_mount), 6 * rounds as u64, "the counter, read through the mount");
    assert_eq!(u64::from_le_bytes(kernel), 6 * rounds as u64, "the counter, read through shmat");
    assert_eq!(fs::read_to_string(&semaphore).unwrap(), "1\n");
    assert_eq!(sem_value(set, 0), 1);
    assert_eq!(sem::query(set, 0, Query::WaitingToTake).unwrap(), 0);
}

// ---- 2. killed clients ----

/// What happens to one waiter of the killed-clients test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// Killed while blocked, nothing given.
    KillBlocked,
    /// Killed, then (a random few microseconds later) given what it waits for.
    KillThenGive,
    /// Given what it waits for, then killed a random few microseconds later.
    GiveThenKill,
    /// Given what it waits for, not killed.
    Survive,
}

/// A waiter of the killed-clients test: a P or a receive, on a resource it
/// shares with four others (`sem/S/0`, `Q1/.wait/any`) or on one of its own
/// (`sem/S/n`, `Q2/.wait/t`), so that what it is given can go to nobody else.
struct Waiter {
    client: Client,
    receive: bool,
    /// Semaphore number, or message type, of its own; `None`: shared.
    own: Option<u16>,
    fate: Fate,
}

/// 20 waiters, half blocked P's and half blocking receives, killed with
/// SIGKILL at random moments: while blocked, or just before or just after a
/// V or a message arrives. Then nothing was consumed that no process
/// received: units and messages put in = what is left + what the processes
/// reported they received (all that exited normally did, and a few killed
/// just after saying so). The one exception docs/ipcfs.md makes, a process
/// killed just after its call returned taking the unit or message with it,
/// is allowed only where it can happen: a give that came before the kill,
/// to a resource no other waiter could take from. Afterwards the daemon
/// still serves.
#[test]
fn twenty_waiters_killed_at_random_moments_consume_nothing() {
    let m = Mounted::new();
    let mut moments = Moments::new("twenty_waiters_killed_at_random_moments_consume_nothing");
    let mut documented_losses = 0;
    for round in 0..3 * soak() {
        // sem 0 shared, 1..=5 one per waiter; Q1 shared, Q2 types 1..=5 one per waiter.
        let set = create_set(libc::IPC_PRIVATE, 6, 0o600);
        let (shared_q, own_q) = (create_queue(libc::IPC_PRIVATE, 0o600), create_queue(libc::IPC_PRIVATE, 0o600));
        let own_fates =
            || [Fate::KillBlocked, Fate::KillThenGive, Fate::GiveThenKill, Fate::GiveThenKill, Fate::Survive];
        let mut fates_p = own_fates();
        let mut fates_r = own_fates();
        moments.shuffle(&mut fates_p);
        moments.shuffle(&mut fates_r);
        // Three of the five sharing each resource are killed while blocked.
        let mut shared_fates = [Fate::KillBlocked, Fate::KillBlocked, Fate::KillBlocked, Fate::Survive, Fate::Survive];
        let mut shared_fates_r = shared_fates;
        moments.shuffle(&mut shared_fates);
        moments.shuffle(&mut shared_fates_r);

        let mut waiters = Vec::new();
        for i in 0..5u16 {
            let p = |n: u16| m.path(format!("sem/{}/{n}", set.0));
            let r = |q: MsqId, name: String| m.path(format!("msg/{}/.wait/{name}", q.0));
            let shared_p = Client::start(format!("round {round}: shared P {i}"), &["once-write", arg(&p(0)), "-1"]);
            waiters.push(Waiter { client: shared_p, receive: false, own: None, fate: shared_fates[i as usize] });
            let own_p = Client::start(format!("round {round}: P on {}", i + 1), &["once-write", arg(&p(i + 1)), "-1"]);
            waiters.push(Waiter { client: own_p, receive: false, own: Some(i + 1), fate: fates_p[i as usize] });
            let path = r(shared_q, "any".into());
            let shared_r = Client::start(format!("round {round}: shared receive {i}"), &["once-read", arg(&path)]);
            waiters.push(Waiter { client: shared_r, receive: true, own: None, fate: shared_fates_r[i as usize] });
            let path = r(own_q, (i + 1).to_string());
            let own_r = Client::start(format!("round {round}: receive of type {}", i + 1), &["once-read", arg(&path)]);
            waiters.push(Waiter { client: own_r, receive: true, own: Some(i + 1), fate: fates_r[i as usize] });
        }
        for w in &mut waiters {
            w.client.wait_blocked();
        }
        wait_until("the daemon holds 20 waits", PROMPTLY, || daemon_waits(&m) >= 20);

        let give = |w: &Waiter| match (w.receive, w.own) {
            (false, Some(n)) => sem::operate(set, n, 1, None).unwrap(),
            (true, Some(t)) => send(own_q, i64::from(t), format!("own-{round}-{t}").as_bytes()),
            _ => unreachable!("shared resources are given to after every kill"),
        };
        let mut order: Vec<usize> = (0..waiters.len()).filter(|&i| waiters[i].fate != Fate::Survive).collect();
        order.extend((0..waiters.len()).filter(|&i| waiters[i].fate == Fate::Survive && waiters[i].own.is_some()));
        moments.shuffle(&mut order);
        for &i in &order {
            let w = &waiters[i];
            match w.fate {
                Fate::KillBlocked => w.client.signal(Signal::SIGKILL),
                Fate::KillThenGive => {
                    w.client.signal(Signal::SIGKILL);
                    moments.pause(100);
                    give(w);
                }
                Fate::GiveThenKill => {
                    give(w);
                    moments.pause(100);
                    w.client.signal(Signal::SIGKILL);
                }
                Fate::Survive => give(w),
            }
            moments.pause(2000);
        }
        // Just after the last kills: one unit and one message more than the
        // two survivors of each shared resource take.
        for k in 0..3 {
            sem::operate(set, 0, 1, None).unwrap();
            send(shared_q, 1, format!("shared-{round}-{k}").as_bytes());
            moments.pause(100);
        }

        for w in &mut waiters {
            w.client.finish(PROMPTLY);
        }
        wait_until("the daemon holds no wait", PROMPTLY, || daemon_waits(&m) == 0);

        // Each waiter of its own resource.
        for w in waiters.iter().filter(|w| w.own.is_some()) {
            let n = w.own.unwrap();
            let body = format!("own-{round}-{n}");
            let (reported, left) = if w.receive {
                let left = queued_text(own_q).iter().filter(|(t, _)| *t == i64::from(n)).count();
                assert!(left <= 1 && w.client.got().iter().all(|b| *b == body), "{}: left {left}", w.client.report());
                (w.client.got().len(), left)
            } else {
                (usize::from(w.client.said("done")), sem_value(set, n) as usize)
            };
            let report = format!("{:?}: {}, left {left}", w.fate, w.client.report());
            let killed = w.client.killed_by(Signal::SIGKILL);
            let exited = w.client.status.is_some_and(|s| s.success());
            match w.fate {
                Fate::KillBlocked => assert!(killed && reported == 0 && left == 0, "{report}"),
                Fate::KillThenGive => assert!(killed && reported == 0 && left == 1, "{report}"),
                Fate::GiveThenKill => {
                    // Received (and perhaps killed after saying so), left
                    // (never taken, or given back), or taken by a process
                    // killed just after its call returned: never two of these.
                    assert!(reported + left <= 1 && (killed || (exited && reported == 1)), "{report}");
                    if reported + left == 0 {
                        documented_losses += 1;
                    }
                }
                Fate::Survive => assert!(exited && reported == 1 && left == 0, "{report}"),
            }
        }
        // Each shared resource: the killed took nothing, the survivors one each.
        for receive in [false, true] {
            let sharing: Vec<&Waiter> = waiters.iter().filter(|w| w.own.is_none() && w.receive == receive).collect();
            let mut reported = Vec::new();
            for w in &sharing {
                let got = if receive {
                    w.client.got()
                } else {
                    w.client.said("done").then(String::new).into_iter().collect()
                };
                if w.fate == Fate::KillBlocked {
                    assert!(w.client.killed_by(Signal::SIGKILL) && got.is_empty(), "{}", w.client.report());
                } else {
                    assert!(w.client.status.unwrap().success() && got.len() == 1, "{}", w.client.report());
                }
                reported.extend(got);
            }
            if receive {
                let mut all: Vec<String> = reported.clone();
                all.extend(queued_text(shared_q).into_iter().map(|(_, b)| b));
                all.sort();
                let given: Vec<String> = (0..3).map(|k| format!("shared-{round}-{k}")).collect();
                assert_eq!(all, given, "messages put in = left + received by the survivors, each once");
            } else {
                assert_eq!(
                    sem_value(set, 0) as usize + reported.len(),
                    3,
                    "units put in = left + taken by the survivors"
                );
            }
        }

        // The daemon still serves: a stat and a read.
        assert!(fs::metadata(m.path(format!("sem/{}", set.0))).unwrap().is_dir());
        assert_eq!(fs::read_to_string(m.path(format!("sem/{}/0", set.0))).unwrap(), "1\n");
        assert_serving_the_kernels_objects(&m);
        sem::remove(set).unwrap();
        msg::remove(shared_q).unwrap();
        msg::remove(own_q).unwrap();
    }
    eprintln!("waiters killed just after their call returned (documented loss): {documented_losses}");
}

// ---- 3. a killed daemon ----

/// `kill -9` of the daemon in the middle of message, semaphore and segment
/// load. Every client ends with ENOTCONN (or ECONNABORTED for a call in
/// flight); the kernel drops the daemon's attachments at once; after
/// `umount -l` a new mount shows every segment byte, semaphore value and
/// message the kernel holds, and only the test's own attachment is left.
#[test]
fn a_daemon_killed_under_load_loses_nothing() {
    for round in 0..soak() {
        let mut m = Mounted::new();
        let key = 0x7e1a0100 + round as i32 * 4;
        sh_ok(&format!("truncate -s 65536 {}", q(&m.path(format!("shm/{}", Key(key))))));
        let seg = shm::get(Key(key), 0, 0).unwrap();
        fs::create_dir(m.path(format!("sem/{}:4", Key(key + 1)))).unwrap();
        let set = sem::get(Key(key + 1), 0, 0).unwrap();
        for (n, value) in ["0", "5", "2", "7"].iter().enumerate() {
            fs::write(m.path(format!("sem/{}/{n}", set.0)), value).unwrap();
        }
        fs::create_dir(m.path(format!("msg/{}", Key(key + 2)))).unwrap();
        let queue = msg::get(Key(key + 2), 0).unwrap();
        // The test's own attachment, which must be all that is left at the end.
        let own = Attachment::attach(seg, 65536, false).unwrap();
        assert_eq!(nattch(seg), 1);

        let segment = m.shm(seg);
        let semaphore = |n: u16| m.path(format!("sem/{}/{n}", set.0));
        let queue_file = |name: &str| m.path(format!("msg/{}/{name}", queue.0));
        let mut looping = vec![
            Client::start("segment writer at 0", &["shm-write", arg(&segment), "0"]),
            Client::start("segment writer at 8192", &["shm-write", arg(&segment), "8192"]),
            Client::start("segment writer at 60000", &["shm-write", arg(&segment), "60000"]),
            Client::start("P/V on sem 1", &["sem-pair", arg(&semaphore(1)), "-1", "+1"]),
            Client::start("P/V on sem 1", &["sem-pair", arg(&semaphore(1)), "-1", "+1"]),
            Client::start("V/P on sem 3", &["sem-pair", arg(&semaphore(3)), "+1", "-1"]),
            Client::start("sender to any", &["send", arg(&queue_file("any")), "s0", "999999"]),
            Client::start("sender to 4", &["send", arg(&queue_file("4")), "s1", "999999"]),
            Client::start("receiver of .wait/any", &["receive", arg(&queue_file(".wait/any")), "wait"]),
            Client::start("receiver of .recv/any", &["receive", arg(&queue_file(".recv/any")), "poll"]),
        ];
        let mut blocked = vec![
            Client::start("P on sem 0", &["once-write", arg(&semaphore(0)), "-1"]),
            Client::start("P on sem 0", &["once-write", arg(&semaphore(0)), "-1"]),
            Client::start("=0 on sem 2", &["once-write", arg(&semaphore(2)), "=0"]),
            Client::start("receive of .wait/99", &["once-read", arg(&queue_file(".wait/99"))]),
        ];
        for client in &mut looping {
            client.wait_said("ready", PROMPTLY);
        }
        for client in &mut blocked {
            client.wait_blocked();
        }
        assert_eq!(nattch(seg), 1, "ours alone: the daemon holds open segment files by their shmem file");

        let pid = m.daemon_pid().unwrap();
        kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
        let status = reap(&mut m, PROMPTLY);
        assert_eq!(exit_signal(&status), Some(libc::SIGKILL), "{status}");
        for client in looping.iter_mut().chain(blocked.iter_mut()) {
            let status = client.finish(PROMPTLY);
            let error = client.error();
            assert!(
                !status.success() && matches!(error.as_deref(), Some("ENOTCONN" | "ECONNABORTED")),
                "{}",
                client.report()
            );
        }
        assert_eq!(nattch(seg), 1, "the dead daemon left no attachment");
        assert_eq!(errno(fs::metadata(m.path("shm"))), libc::ENOTCONN, "the dead mount");

        // The recovery docs/ipcfs.md gives: lazy unmount, then mount again.
        sh_ok(&format!("umount -l {}", q(m.root())));
        assert!(!is_mounted(m.root()));
        let again = Mounted::new();
        assert_serving_the_kernels_objects(&again);
        assert_eq!(fs::read(again.shm(seg)).unwrap(), own.read_at(0, 65536), "every segment byte");
        assert_ne!(own.read_at(0, 8), vec![0; 8], "precondition: the writers wrote");
        for n in 0..4u16 {
            let text = fs::read_to_string(again.path(format!("sem/{}/{n}", set.0))).unwrap();
            assert_eq!(text, format!("{}\n", sem_value(set, n)), "semaphore {n}");
        }
        // The blocked P's took nothing; each P/V client held at most one unit
        // when the daemon died.
        let values = sem_values(set, 4);
        assert!(values[0] == 0 && (3..=5).contains(&values[1]) && values[2] == 2, "{values:?}");
        assert!((7..=8).contains(&values[3]), "{values:?}");
        // Every message, received through the new mount's `.recv/any` (one
        // read each), against what the kernel held.
        let kernel = queued_text(queue);
        let mut file = File::open(again.path(format!("msg/{}/.recv/any", queue.0))).unwrap();
        let mut through_mount = Vec::new();
        let mut buf = vec![0u8; BIG];
        loop {
            let n = file.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            through_mount.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(through_mount, kernel.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>(), "every message, in order");
        let unique: HashSet<&String> = through_mount.iter().collect();
        assert_eq!(unique.len(), through_mount.len(), "no message twice");
        assert_eq!(qnum(queue), 0);
        drop(file);
        assert_eq!(nattch(seg), 1, "the new daemon attached nothing to read the segment");
        drop(own);
        assert_eq!(nattch(seg), 0, "nothing else holds the segment");
    }
}

// ---- 4. objects removed or replaced behind the daemon's back ----

/// While clients read and write open files of a queue, a semaphore set and
/// a segment, `ipcrm` removes all three and new ones are made, with other
/// keys, at the same ids where the kernel allows it (the queue and the set;
/// a segment still attached keeps its id). The clients go on using their
/// open files throughout. Every operation on an open queue or semaphore file
/// then fails with ENOENT (EIDRM for a wait in progress) and none reaches
/// the new objects; an open segment file keeps reaching its own, removed,
/// segment, as documented, and never the new one. The daemon keeps running
/// and lists exactly the kernel's objects.
///
/// The new objects differ from the old in their key, which ipcfs compares
/// along with the id. A queue or set equal in every field the kernel keeps
/// (same key, creator and id) cannot be told from the old one by any
/// filesystem, nor by a program holding the old id; no test asks for that.
#[test]
fn objects_removed_or_replaced_under_load_are_never_confused() {
    let m = Mounted::new();
    for round in 0..3 * soak() {
        let control = TempDir::new("control");
        let key = 0x7e1a0200 + round as i32 * 8;
        let queue = msg::get(Key(key), libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
        let set = sem::get(Key(key + 1), 2, libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
        set_sem_values(set, &[5, 0]);
        let seg = create_segment(key + 2, 4096, 0o600);
        for i in 0..20 {
            send(queue, 1, format!("old-first-{i:06}").as_bytes());
        }
        let dir = arg(&control.0).to_string();
        let qfile = |name: &str| m.path(format!("msg/{}/{name}", queue.0));
        let semaphore = |n: u16| m.path(format!("sem/{}/{n}", set.0));

        let mut queue_clients = vec![
            Client::start("reader of .recv/any", &["q-read", arg(&qfile(".recv/any")), &dir]),
            Client::start("reader of .wait/any", &["q-read", arg(&qfile(".wait/any")), &dir]),
            Client::start("reader of .recv/1", &["q-read", arg(&qfile(".recv/1")), &dir]),
            Client::start("writer to any", &["q-write", arg(&qfile("any")), "old", &dir]),
        ];
        let mut churn = Client::start("churn on sem 0", &["sem-churn", arg(&semaphore(0)), &dir]);
        let mut taker = Client::start("P's on sem 1", &["sem-take", arg(&semaphore(1)), &dir]);
        let mut checker = Client::start("segment checker", &["shm-check", arg(&m.shm(seg)), "64", &dir]);
        for client in queue_clients.iter_mut().chain([&mut churn, &mut checker]) {
            client.wait_said("ready", PROMPTLY);
        }
        taker.wait_blocked();

        sh_ok(&format!("ipcrm -q {} -s {} -m {}", queue.0, set.0, seg.0));
        // Every queue and semaphore client has met the removal before the new
        // objects come: none has an operation still on its way that checked
        // the old object's identity before the removal. (An operation caught
        // in that gap is `an_open_file_never_reaches_an_object_that_replaced_its_own_at_once`.)
        for client in queue_clients.iter_mut().chain([&mut churn, &mut taker]) {
            client.wait_said("failing", PROMPTLY);
        }
        fs::write("/proc/sys/kernel/msg_next_id", queue.0.to_string()).unwrap();
        let new_queue = msg::get(Key(key + 4), libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
        fs::write("/proc/sys/kernel/sem_next_id", set.0.to_string()).unwrap();
        let new_set = sem::get(Key(key + 5), 2, libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
        fs::write("/proc/sys/kernel/shm_next_id", seg.0.to_string()).unwrap();
        let new_seg = create_segment(key + 6, 4096, 0o600);
        assert_eq!((new_queue, new_set), (queue, set), "precondition: the kernel gave the ids again");
        assert_eq!(
            new_seg, seg,
            "precondition: the id again (open files are no attachments: rm destroyed the segment)"
        );
        let new_messages: Vec<(i64, String)> = (0..50).map(|i| (1, format!("new-{i:06}"))).collect();
        for (t, body) in &new_messages {
            send(new_queue, *t, body.as_bytes());
        }
        set_sem_values(new_set, &[1000, 7]);
        fill_segment(new_seg, b"NEW!");

        // The replacement is complete: every client makes 50 more operations.
        fs::write(control.0.join("mark"), "").unwrap();
        let mut clients: Vec<&mut Client> = queue_clients.iter_mut().collect();
        clients.extend([&mut churn, &mut taker, &mut checker]);
        for client in &mut clients {
            client.wait_said("after-mark", PROMPTLY);
        }
        fs::write(control.0.join("stop"), "").unwrap();
        let mut ends = HashMap::new();
        for client in &mut clients {
            assert!(client.finish(PROMPTLY).success(), "{}", client.report());
            let end = client.output().lines().find(|l| l.starts_with("stopped ")).unwrap_or_default().to_string();
            ends.insert(client.what.clone(), end);
        }
        drop(clients);

        // After the replacement, every operation on an old queue or set file
        // failed with ENOENT: no object has the id it was opened on. Around
        // the removal, ENOENT or EIDRM (and EINVAL, which
        // `an_operation_on_a_queue_removed_under_it_fails_with_enoent_not_einval`
        // is about).
        let tally = |end: &str, name: &str| -> Vec<String> {
            let after = end.split(&format!(" {name} ")).nth(1).unwrap_or_default();
            let field = after.split(' ').next().unwrap_or_default();
            field.split(',').filter(|e| *e != "none").map(|e| e.split(':').next().unwrap().to_string()).collect()
        };
        for client in queue_clients.iter().chain([&churn, &taker]) {
            let end = &ends[&client.what];
            assert!(end.starts_with("stopped ok-after-mark 0 "), "an operation succeeded: {}", client.report());
            assert_eq!(tally(end, "errors-after-mark"), ["ENOENT"], "{}", client.report());
            let before = tally(end, "errors-before-mark");
            assert!(before.iter().all(|e| ["ENOENT", "EIDRM", "EINVAL"].contains(&e.as_str())), "{}", client.report());
        }
        // The open segment file went on working, on the old segment.
        let end = &ends[&checker.what];
        assert!(end.ends_with(" errors-after-mark none errors-before-mark none bad 0"), "{}", checker.report());
        assert!(!end.starts_with("stopped ok-after-mark 0 "), "{}", checker.report());

        // Nothing reached the new objects, and nothing of theirs came out.
        for client in &queue_clients {
            let got = client.got();
            assert!(got.iter().all(|b| b.starts_with("old-")), "{}: {:?}", client.what, got);
        }
        let values: Vec<String> =
            churn.output().lines().filter_map(|l| l.strip_prefix("value ")).map(str::to_string).collect();
        assert_eq!(values, ["5"], "values seen through the old semaphore file: {}", churn.report());
        assert!(!taker.said("took"), "a P through the old file took a unit: {}", taker.report());
        assert_eq!(queued_text(new_queue), new_messages, "the new queue holds exactly its own messages");
        assert_eq!(sem_values(new_set, 2), [1000, 7], "the new set's values");
        assert_eq!(segment_bytes(new_seg), b"NEW!".repeat(1024), "the new segment's bytes");

        // The mount shows exactly the kernel's objects, the new ones under
        // the old names (the old segment went at its removal).
        assert_serving_the_kernels_objects(&m);
        assert_eq!(kernel_objects(), [vec![new_seg.0.to_string()], vec![set.0.to_string()], vec![queue.0.to_string()]]);
        assert_eq!(fs::read_to_string(semaphore(0)).unwrap(), "1000\n", "the name leads to the new set");
        sem::remove(new_set).unwrap();
        msg::remove(new_queue).unwrap();
        shm::remove(new_seg).unwrap();
        for name in ["mark", "stop"] {
            fs::remove_file(control.0.join(name)).unwrap();
        }
    }
}

// ---- 5. unmount with waits blocked ----

/// SIGTERM to the daemon while P's, a wait for zero, receives and a send to
/// a full queue are blocked and a segment file is open: every waiter is
/// released with EINTR, nothing is taken or sent, the mount leaves the tree,
/// the open segment file is still served, and once it is closed the daemon
/// exits with status 0.
#[test]
fn unmount_releases_blocked_waiters_and_takes_nothing() {
    for round in 0..soak() {
        let mut m = Mounted::new();
        let set = create_set(libc::IPC_PRIVATE, 3, 0o600);
        set_sem_values(set, &[0, 1, 3]);
        let (empty, holding, full) = (
            create_queue(libc::IPC_PRIVATE, 0o600),
            create_queue(libc::IPC_PRIVATE, 0o600),
            create_queue(libc::IPC_PRIVATE, 0o600),
        );
        send(holding, 1, b"one");
        send(holding, 2, b"two");
        let k = msg::stat_any(full).unwrap();
        msg::set(full, k.perm.uid, k.perm.gid, k.perm.mode, 10).unwrap();
        send(full, 1, b"12345678");
        let seg = create_segment(0x7e1a0300 + round as i32, 4096, 0o600);
        fill_segment(seg, b"kept");

        let semaphore = |n: u16| arg(&m.path(format!("sem/{}/{n}", set.0))).to_string();
        let wait_file = |q: MsqId, name: &str| arg(&m.path(format!("msg/{}/{name}", q.0))).to_string();
        let mut waiters = vec![
            Client::start("P on sem 0", &["once-write", &semaphore(0), "-1"]),
            Client::start("P on sem 0", &["once-write", &semaphore(0), "-1"]),
            Client::start("P of 2 on sem 1", &["once-write", &semaphore(1), "-2"]),
            Client::start("=0 on sem 2", &["once-write", &semaphore(2), "=0"]),
            Client::start("receive of .wait/any", &["once-read", &wait_file(empty, ".wait/any")]),
            Client::start("receive of .wait/any", &["once-read", &wait_file(empty, ".wait/any")]),
            Client::start("receive of .wait/9", &["once-read", &wait_file(holding, ".wait/9")]),
            Client::start("send to a full queue", &["once-write", &wait_file(full, "any"), "more"]),
        ];
        let held = OpenOptions::new().read(true).write(true).open(m.shm(seg)).unwrap();
        for waiter in &mut waiters {
            waiter.wait_blocked();
        }
        wait_until("the daemon holds every wait", PROMPTLY, || daemon_waits(&m) >= waiters.len());
        let before = (sem_values(set, 3), queued_text(empty), queued_text(holding), queued_text(full));

        kill(Pid::from_raw(m.daemon_pid().unwrap()), Signal::SIGTERM).unwrap();
        for waiter in &mut waiters {
            let status = waiter.finish(PROMPTLY);
            assert!(!status.success() && waiter.error().as_deref() == Some("EINTR"), "{}", waiter.report());
        }
        wait_until("the mount leaves the tree", PROMPTLY, || !is_mounted(m.root()));
        assert_eq!(
            (sem_values(set, 3), queued_text(empty), queued_text(holding), queued_text(full)),
            before,
            "nothing consumed"
        );

        // The open file is still served, until it is closed.
        assert!(daemon_alive(&m), "the daemon serves the open file");
        assert_eq!(held.write_at(b"still", 0).unwrap(), 5);
        let mut buf = [0u8; 8];
        held.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"stillept");
        drop(held);
        let status = reap(&mut m, PROMPTLY);
        assert!(status.success(), "the daemon's exit: {status}");
        assert_eq!(nattch(seg), 0, "no attachment left");
        assert_eq!(segment_bytes(seg)[..8], *b"stillept");
        assert_eq!(
            (sem_values(set, 3), queued_text(empty), queued_text(holding), queued_text(full)),
            before,
            "nothing consumed"
        );
        sem::remove(set).unwrap();
        for queue in [empty, holding, full] {
            msg::remove(queue).unwrap();
        }
        shm::remove(seg).unwrap();
    }
}

// ---- bugs found by this file, each pinned by a test of its own ----

/// Replaces a queue `generations` times at once (IPC_RMID, then a new queue
/// with another key at the same id, filled with 200 messages `gen-K-I`)
/// while 4 processes follow it with `q-follow` through `msg/<id>/.recv/any`;
/// each generation waits until the followers have read from the new queue.
/// Returns the followers, finished.
fn follow_queue_reads(m: &Mounted, generations: i32) -> Vec<Client> {
    let control = TempDir::new("control");
    let key = 0x7e1a0400;
    let first = msg::get(Key(key), libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
    let fill = |queue: MsqId, generation: i32| {
        for i in 0..200 {
            send(queue, 1, format!("gen-{generation}-{i}").as_bytes());
        }
    };
    fill(first, 0);
    let path = m.path(format!("msg/{}/.recv/any", first.0));
    let mut followers: Vec<Client> =
        (0..4).map(|c| Client::start(format!("follower {c}"), &["q-follow", arg(&path), arg(&control.0)])).collect();
    for follower in &mut followers {
        follower.wait_said("ready", PROMPTLY);
    }
    let mut queue = first;
    for generation in 1..=generations {
        msg::remove(queue).unwrap();
        fs::write("/proc/sys/kernel/msg_next_id", first.0.to_string()).unwrap();
        queue = msg::get(Key(key + generation), libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
        assert_eq!(queue, first, "precondition: the kernel gave the id again");
        fill(queue, generation);
        wait_until("the followers read from the new queue", PROMPTLY, || qnum(queue) < 150);
    }
    fs::write(control.0.join("stop"), "").unwrap();
    for follower in &mut followers {
        assert!(follower.finish(PROMPTLY).success(), "{}", follower.report());
    }
    msg::remove(queue).unwrap();
    fs::remove_file(control.0.join("stop")).unwrap();
    followers
}

/// What docs/ipcfs.md and the style guide promise: an open file reaches the
/// object it was opened on or fails, "never the new object's bytes". Here
/// the object is removed and another made at once at the same id (with
/// another key, so that ipcfs can tell them apart), again and again, while
/// processes use files opened on the old ones: queue reads, queue writes,
/// and semaphore reads. Each generation is marked in what it holds, so a
/// file that reaches the next generation shows.
///
/// ipcfs checks the object's identity (msgctl/semctl STAT) and then makes
/// the call by id (msgrcv, msgsnd, semctl GETVAL); an object replaced
/// between the two is reached. The window is short, but a daemon thread
/// preempted in it keeps it open: in a few hundred replacements, reads met
/// it a few times each, writes about once. ipcfs now checks again after the
/// call and undoes what it can (a message received goes back, units go
/// back, a value read is dropped: ENOENT), which leaves the sends, and a
/// message received from the old queue just before its removal, which the
/// check after cannot tell from one of the new queue's. A known limit,
/// written down in docs/reliability.md; run with `--ignored` to see it.
#[test]
#[ignore = "known limit (docs/reliability.md): an id reused between the identity check and the call by id"]
fn an_open_file_never_reaches_an_object_that_replaced_its_own_at_once() {
    let m = Mounted::new();
    let generations = 300 * soak() as i32;
    let mut confusions = Vec::new();

    // Queue reads: one file must not give messages of two generations.
    for follower in follow_queue_reads(&m, generations) {
        confusions
            .extend(follower.output().lines().filter(|l| l.starts_with("confused")).map(|l| format!("queue read {l}")));
    }

    // Queue writes: a queue must hold only messages sent through files
    // opened on it (each says the key of its file's queue).
    let control = TempDir::new("control");
    let key = 0x7e1a0600;
    let first = msg::get(Key(key), libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
    let dir = m.path(format!("msg/{}", first.0));
    let mut writers: Vec<Client> =
        (0..4).map(|c| Client::start(format!("writer {c}"), &["q-follow-write", arg(&dir), arg(&control.0)])).collect();
    let opened = |c: &Client| c.output().lines().filter(|l| *l == "opened").count();
    let mut queue = first;
    for generation in 1..=generations {
        wait_until("every writer has a file on this queue", PROMPTLY, || {
            writers.iter().all(|w| opened(w) >= generation as usize)
        });
        let own = Key(key + generation - 1).to_string();
        for (_, body) in queued_text(queue) {
            if !body.starts_with(&own) {
                confusions.push(format!("queue write: the queue with key {own} holds {body}"));
            }
        }
        msg::remove(queue).unwrap();
        fs::write("/proc/sys/kernel/msg_next_id", first.0.to_string()).unwrap();
        queue = msg::get(Key(key + generation), libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
        assert_eq!(queue, first, "precondition: the kernel gave the id again");
    }
    fs::write(control.0.join("stop"), "").unwrap();
    for writer in &mut writers {
        assert!(writer.finish(PROMPTLY).success(), "{}", writer.report());
    }
    msg::remove(queue).unwrap();
    fs::remove_file(control.0.join("stop")).unwrap();

    // Semaphore reads: each generation's value is its number.
    let key = 0x7e1a0500;
    let first = sem::get(Key(key), 1, libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
    sem::set_value(first, 0, 1).unwrap();
    let path = m.path(format!("sem/{}/0", first.0));
    let mut followers: Vec<Client> =
        (0..4).map(|c| Client::start(format!("follower {c}"), &["sem-follow", arg(&path), arg(&control.0)])).collect();
    let mut set = first;
    for generation in 1..=generations {
        wait_until("every follower has a file on this set", PROMPTLY, || {
            followers.iter().all(|f| opened(f) >= generation as usize)
        });
        sem::remove(set).unwrap();
        fs::write("/proc/sys/kernel/sem_next_id", first.0.to_string()).unwrap();
        set = sem::get(Key(key + generation), 1, libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
        assert_eq!(set, first, "precondition: the kernel gave the id again");
        sem::set_value(set, 0, generation + 1).unwrap();
    }
    fs::write(control.0.join("stop"), "").unwrap();
    for follower in &mut followers {
        assert!(follower.finish(PROMPTLY).success(), "{}", follower.report());
        confusions.extend(
            follower.output().lines().filter(|l| l.starts_with("confused")).map(|l| format!("semaphore read {l}")),
        );
    }
    sem::remove(set).unwrap();
    fs::remove_file(control.0.join("stop")).unwrap();

    assert!(confusions.is_empty(), "files reached the objects that replaced theirs: {confusions:#?}");
}

/// docs/ipcfs.md: ENOENT when "no object has that id"; EIDRM when the queue
/// was removed while an operation waited on it. EINVAL is for bad input. A
/// read or write on an open queue file whose queue is removed between
/// ipcfs's identity check and its msgrcv/msgsnd gets the kernel's EINVAL for
/// a vanished id, passed on as it is (`map_error` in src/fs/msg.rs maps
/// EINVAL to `Error::Invalid` rather than to "not found").
#[test]
fn an_operation_on_a_queue_removed_under_it_fails_with_enoent_not_einval() {
    let m = Mounted::new();
    let mut unexpected = Vec::new();
    for follower in follow_queue_reads(&m, 600 * soak() as i32) {
        let end = follower.output().lines().find(|l| l.starts_with("stopped ")).unwrap_or_default().to_string();
        let errors = end.split(" errors-before-mark ").nth(1).unwrap_or_default();
        let ok = errors.split(',').all(|e| e.starts_with("ENOENT:") || e.starts_with("EIDRM:"));
        if !ok {
            unexpected.push(format!("{}: {errors}", follower.what));
        }
    }
    assert!(unexpected.is_empty(), "errors of reads on removed queues: {unexpected:#?}");
}
