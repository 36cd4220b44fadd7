//! A root daemon no unprivileged user can crash or starve (issue 14): each
//! attack of the issue's "Crash and starvation" findings, and its finding 12,
//! made as unprivileged users (uids 1001, 1002, 1003, through setpriv) on a
//! real `-o allow_other` mount, with what must hold afterwards:
//!
//! - 1: opens of one's own segment file stop at the per-user budget
//!   (`user_files`, 1024 by default) with EMFILE, counted over all of the
//!   user's processes, directories included; other users keep opening,
//!   waiting and receiving; the daemon's mappings stay bounded. All users
//!   together (66 of them, each within their budget) cannot take the
//!   daemon to vm.max_map_count either: a global cap refuses with ENOMEM.
//! - 2: started with a 1024-descriptor soft limit, the daemon raises it to
//!   the hard limit; a user holding 1,100 opens with a 64 KiB read on each
//!   does not take `ls`, receives or P's from anyone else.
//! - 3: parked operations stop at the per-user budget (`user_waits`) with
//!   EAGAIN at once; each costs the daemon at most one thread, idle waiters
//!   almost no CPU, and an interrupted or killed waiter takes nothing.
//! - 4: on a full queue (16,384 messages), stat of a type file by a user
//!   without read permission walks nothing and shows size 0; the owner's
//!   `ls -l` and `rm msg/ID/any` while their senders refill the queue return.
//! - 5 (`-A`): a user's own namespace with kernel.msgmax at 0 or 1 GiB does
//!   not spin or swell the daemon. (At 0 the kernel copies no message
//!   longer than 0 bytes, MSG_COPY fails with EINVAL: a type's size cannot
//!   be learnt, and a refusal is as right as the size.)
//! - 12: 300,000 distinct type names looked up under one queue do not grow
//!   the daemon's memory without bound.
//! - Issue 15: the snapshot a read of a listed queue file holds is charged
//!   to its opener's memory (64 MiB per user): beyond, ENOMEM.
//!
//! Every figure a bound is asserted on (threads, CPU ticks, RSS, mappings,
//! descriptors) is printed: run with `--nocapture` to see them. The only
//! fixed pauses are measurement intervals (CPU ticks over 2 idle seconds);
//! everything else waits for what it can observe, with a deadline.
//!
//! Here: the client program and the helpers the tests share; the tests in
//! [`files`] (1, 2), [`waits`] (3, 4) and [`memory`] (5, 12, issue 15).

mod files;
mod memory;
mod waits;

use crate::common::*;

use std::fs;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipcfs::ipc::msg::{self, MsqId};
use ipcfs::ipc::sem::{self, SemId};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Unprivileged users without passwd entries.
const A: u32 = 1001;
const B: u32 = 1002;
const C: u32 = 1003;

/// How soon an interrupted or killed waiter must be gone (ipcfs looks at
/// its callers' signals every 0.1 s; this is generous for a loaded machine).
const PROMPT: Duration = Duration::from_secs(2);
/// The default budgets of the contract.
const DEFAULT_USER_FILES: usize = 1024;
const DEFAULT_USER_WAITS: usize = 256;
/// Clock ticks a second (`getconf CLK_TCK`).
const HZ: u64 = 100;

// ---- the client program ----

/// Roles (the first argument); every outcome is said on stdout.
///
/// - `open PATH MOST KIND READ [close]`: open PATH (KIND `rw`, or `dir` for
///   opendir) until refused or MOST are open, then pread READ bytes at 0 on
///   each; says `opened N refused ENAME|none read-errors E:N,...|none
///   short-reads N`, then holds every descriptor until killed (or exits
///   with `close`).
/// - `wait PATH COUNT DATA`: COUNT threads (0: the main thread alone, which
///   SIGINT then interrupts), each making one write of DATA, or one read
///   (64 KiB of room) if DATA is `-`; each says `done`, `got BODY` or
///   `error ENAME`. With threads, says `started COUNT` first.
/// - `stat DIR FIRST LAST ROUNDS`: ROUNDS times os.stat of DIR/N for N from
///   FIRST to LAST; says `started`, then `stats N sizes SIZE:COUNT,...
///   errors ENAME:COUNT,...|none`.
/// - `send ID TYPE COUNT SIZE`: COUNT messages (-1: until killed) of SIZE
///   zero bytes and type TYPE, with msgsnd that waits for room; says `ready`
///   after the first, `sent COUNT` at the end.
///
/// The client raises its own descriptor limit to its hard limit, and
/// SIGINT has a handler that does nothing, so that an interrupted call
/// fails with EINTR (single calls go through libc: one call is one read(2)
/// or write(2), never retried).
const CLIENT: &str = r#"
import ctypes, errno, os, resource, signal, sys, threading, time

libc = ctypes.CDLL(None, use_errno=True)
for f in (libc.read, libc.write):
    f.restype = ctypes.c_ssize_t
    f.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
libc.pread.restype = ctypes.c_ssize_t
libc.pread.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_long]
libc.msgsnd.restype = ctypes.c_int
libc.msgsnd.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]

def say(*words):
    os.write(1, (" ".join(str(w) for w in words) + "\n").encode())

def ename(e):
    return errno.errorcode.get(e, str(e))

def count(tally, name):
    tally[name] = tally.get(name, 0) + 1

def text(tally):
    return ",".join("%s:%d" % kv for kv in sorted(tally.items())) or "none"

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
signal.signal(signal.SIGINT, lambda *_: None)

def one(path, data):
    try:
        fd = os.open(path, os.O_RDONLY if data is None else os.O_WRONLY)
    except OSError as e:
        return "error " + ename(e.errno)
    try:
        if data is None:
            buf = ctypes.create_string_buffer(65536)
            n = libc.read(fd, buf, 65536)
            return "error " + ename(ctypes.get_errno()) if n < 0 else "got " + buf.raw[:n].decode(errors="replace")
        n = libc.write(fd, data, len(data))
        return "error " + ename(ctypes.get_errno()) if n < 0 else "done"
    finally:
        os.close(fd)

role, args = sys.argv[1], sys.argv[2:]
if role == "open":
    path, most, kind, size = args[0], int(args[1]), args[2], int(args[3])
    flags = os.O_RDONLY | os.O_DIRECTORY if kind == "dir" else os.O_RDWR
    fds, refused = [], "none"
    while len(fds) < most:
        try:
            fds.append(os.open(path, flags))
        except OSError as e:
            refused = ename(e.errno)
            break
    failed, short = {}, 0
    if size:
        buf = ctypes.create_string_buffer(size)
        for fd in fds:
            n = libc.pread(fd, buf, size, 0)
            if n < 0:
                count(failed, ename(ctypes.get_errno()))
            elif n != size:
                short += 1
    say("opened", len(fds), "refused", refused, "read-errors", text(failed), "short-reads", short)
    if args[4:] != ["close"]:
        while True:
            time.sleep(3600)
elif role == "wait":
    path, n, data = args[0], int(args[1]), None if args[2] == "-" else args[2].encode()
    if n == 0:
        say(one(path, data))
    else:
        threading.stack_size(256 * 1024)
        threads = [threading.Thread(target=lambda: say(one(path, data))) for _ in range(n)]
        for t in threads:
            t.start()
        say("started", n)
        for t in threads:
            t.join()
elif role == "stat":
    directory, first, last, rounds = args[0], int(args[1]), int(args[2]), int(args[3])
    say("started")
    sizes, errors, n = {}, {}, 0
    for _ in range(rounds):
        for t in range(first, last + 1):
            try:
                count(sizes, str(os.stat(directory + "/" + str(t)).st_size))
            except OSError as e:
                count(errors, ename(e.errno))
            n += 1
    say("stats", n, "sizes", text(sizes), "errors", text(errors))
elif role == "send":
    qid, mtype, most, size = map(int, args)
    buf = ctypes.create_string_buffer(8 + size)
    ctypes.c_long.from_buffer(buf).value = mtype
    sent = 0
    while sent != most:
        if libc.msgsnd(qid, buf, size, 0) < 0:
            say("error", ename(ctypes.get_errno()))
            sys.exit(1)
        sent += 1
        if sent == 1:
            say("ready")
    say("sent", sent)
else:
    sys.exit("unknown role " + role)
"#;

/// A process the test started, killed and reaped when dropped (also when
/// the test fails); its stdout and stderr collected as they come.
struct Proc {
    child: Child,
    what: String,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    collectors: Vec<JoinHandle<()>>,
}

impl Proc {
    fn start(mut command: Command, what: &str) -> Proc {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("start {what}: {e}"));
        let (out, err) = (Arc::default(), Arc::default());
        let collectors = vec![
            collect(child.stdout.take().unwrap(), Arc::clone(&out)),
            collect(child.stderr.take().unwrap(), Arc::clone(&err)),
        ];
        Proc { child, what: what.to_string(), out, err, collectors }
    }

    /// The client program in `role` as user `uid`.
    fn client(uid: u32, args: &[&str]) -> Proc {
        let mut command = as_user(uid, uid, &[]);
        command.arg(PYTHON).args(["-c", CLIENT]).args(args);
        Proc::start(command, &format!("uid {uid}: {}", args.join(" ")))
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    /// How many lines of its stdout so far are exactly `line`.
    fn count(&self, line: &str) -> usize {
        self.stdout().lines().filter(|l| *l == line).count()
    }

    /// Waits up to `limit` for a line of stdout starting with `prefix`.
    #[track_caller]
    fn line(&mut self, prefix: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self.stdout().lines().find(|l| l.starts_with(prefix)) {
                return line.to_string();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                for collector in self.collectors.drain(..) {
                    let _ = collector.join();
                }
                if let Some(line) = self.stdout().lines().find(|l| l.starts_with(prefix)) {
                    return line.to_string();
                }
                panic!(
                    "{} ended ({status}) without saying {prefix:?}: {:?} {:?}",
                    self.what,
                    self.stdout(),
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not say {prefix:?} within {limit:?}; it said {:?} {:?}",
                self.what,
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits up to `limit` for it to end with success; its stdout.
    #[track_caller]
    fn finish(&mut self, limit: Duration) -> String {
        let Some(status) = wait_timeout(&mut self.child, limit) else {
            panic!("{} did not end within {limit:?}; it said {:?} {:?}", self.what, self.stdout(), self.stderr());
        };
        for collector in self.collectors.drain(..) {
            let _ = collector.join();
        }
        assert!(status.success(), "{} failed ({status}): {:?} {:?}", self.what, self.stdout(), self.stderr());
        self.stdout()
    }

    /// Waits up to `limit` for it to end, however it ends: stdout if it
    /// succeeded, else stderr.
    #[track_caller]
    fn ended(&mut self, limit: Duration) -> Result<String, String> {
        let Some(status) = wait_timeout(&mut self.child, limit) else {
            panic!("{} did not end within {limit:?}; it said {:?} {:?}", self.what, self.stdout(), self.stderr());
        };
        for collector in self.collectors.drain(..) {
            let _ = collector.join();
        }
        if status.success() { Ok(self.stdout()) } else { Err(self.stderr()) }
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid()), signal).unwrap();
    }

    /// SIGKILL, and waits until it is gone.
    #[track_caller]
    fn kill(&mut self) {
        let _ = self.child.kill();
        assert!(
            wait_timeout(&mut self.child, LIMIT).is_some(),
            "{} did not die within {LIMIT:?} of SIGKILL",
            self.what
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        // A process in a FUSE call the daemon is still working on cannot
        // die until it answers: give up after a while (the mount's guard
        // then stops the daemon, which ends the call).
        let _ = wait_timeout(&mut self.child, Duration::from_secs(5));
    }
}

// ---- objects, made with the kernel's calls (as root) ----

/// A segment of `size` bytes owned by `uid` (and its group) with `mode`.
fn segment_of(uid: u32, size: u64, mode: u32) -> ShmId {
    let id = shm::get(Key(0), size, libc::IPC_CREAT | 0o600).expect("shmget");
    shm::set(id, uid, uid, mode).expect("shmctl(IPC_SET)");
    id
}

/// A set of one semaphore (value 0) owned by root with `mode`.
fn set_of(mode: i32) -> SemId {
    sem::get(Key(0), 1, libc::IPC_CREAT | mode).expect("semget")
}

/// A queue owned by `uid` (and its group) with `mode`.
fn queue_of(uid: u32, mode: u32) -> MsqId {
    let id = msg::get(Key(0), libc::IPC_CREAT | 0o600).expect("msgget");
    let qbytes = msg::stat_any(id).unwrap().qbytes;
    msg::set(id, uid, uid, mode, qbytes).expect("msgctl(IPC_SET)");
    id
}

/// Waits up to `limit` until process `pid` is in a FUSE request (waiting
/// for the daemon's answer); whether it was seen there.
fn wait_for_fuse_call(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
        if wchan.contains("request_wait_answer") || wchan.contains("fuse") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// The bytes each of `types` (1 to `types`) has when `count` one-byte
/// messages are sent in turn.
fn fill(queue: MsqId, count: usize, types: i64) {
    for i in 0..count {
        msg::send(queue, 1 + (i as i64 % types), &[i as u8], false).unwrap_or_else(|e| panic!("message {i}: {e}"));
    }
}

// ---- what the daemon spends ----

fn daemon(m: &Mounted) -> i32 {
    m.daemon_pid().expect("daemon running")
}

/// The daemon is still there and answering: fails the test otherwise.
#[track_caller]
fn assert_alive(m: &Mounted) {
    let pid = daemon(m);
    assert!(
        proc_status_number(pid, "Threads").is_some() && fs::metadata(m.path("shm")).is_ok(),
        "the daemon (pid {pid}) is dead or does not answer"
    );
}

/// The daemon's CPU ticks over `interval` of (what the test leaves) idle.
fn idle_ticks(pid: i32, interval: Duration) -> u64 {
    let before = cpu_ticks(pid);
    std::thread::sleep(interval);
    cpu_ticks(pid) - before
}

/// A line of figures for the test's output.
fn figures(pid: i32) -> String {
    format!(
        "threads {} rss {} KiB (peak {} KiB) cpu {} ticks fds {} mappings {}",
        thread_count(pid),
        rss_kib(pid),
        peak_rss_kib(pid),
        cpu_ticks(pid),
        fd_count(pid),
        map_count(pid)
    )
}

/// `opened N refused E ...` of the `open` role: (N, E, the rest).
fn parse_opened(line: &str) -> (usize, String, String) {
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!((words[0], words[2]), ("opened", "refused"), "{line}");
    (words[1].parse().unwrap(), words[3].to_string(), words[4..].join(" "))
}

/// What another user (`uid`, not the one spending a budget) must still be
/// able to do: write and read their own segment `own` (if given), make a P on `set`
/// (value 0, mode 0666) that waits until the test's V, and receive (through
/// `msg/<id>/.recv/any`) the first message of `queue` (mode 0666), which
/// must be `first`.
#[track_caller]
fn others_still_served(m: &Mounted, uid: u32, own: Option<ShmId>, set: SemId, queue: MsqId) {
    if let Some(own) = own {
        let seg = q(&m.shm(own));
        let out = sh_as(uid, uid, &[], &format!("printf served > {seg} && head -c 6 {seg}"));
        assert_eq!(assert_ok(&out, "another user's segment write and read"), "served");
    }

    let sem_file = m.path(format!("sem/{}/0", set.0));
    let mut p = Proc::client(uid, &["wait", path_arg(&sem_file), "0", "-1"]);
    wait_until("another user's P waits", LIMIT, || ncnt(set, 0) == 1 || !p.stdout().is_empty());
    assert_eq!(p.stdout(), "", "the P could not wait: it ended at once");
    sem::operate(set, 0, 1, None).expect("V");
    assert_eq!(p.line("", LIMIT), "done", "another user's P after the V");
    assert_eq!(sem_value(set, 0), 0, "the P took the V's unit");

    let recv_any = m.path(format!("msg/{}/.recv/any", queue.0));
    let mut r = Proc::client(uid, &["wait", path_arg(&recv_any), "0", "-"]);
    assert_eq!(r.line("", LIMIT), "got first", "another user's receive");
}

fn sh_as_user(uid: u32, script: &str) -> std::process::Output {
    sh_as(uid, uid, &[], script)
}
