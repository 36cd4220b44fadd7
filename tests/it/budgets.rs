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

use crate::common::*;

use std::fs;
use std::path::Path;
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

// ---- 1: open files ----

/// Item 1 with the default budget: a user opening their own segment again
/// and again (one process, descriptors kept) gets EMFILE at exactly the
/// 1025th; meanwhile another user opens, waits and receives as before, and
/// the daemon's mappings stay within the budget and a few hundred. Once the
/// user's files are closed, the budget is theirs again.
#[test]
fn opens_of_ones_own_segment_stop_at_the_budget_and_others_keep_working() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let pid = daemon(&m);
    let hogged = segment_of(A, 4096, 0o600);
    let own_b = segment_of(B, 4096, 0o600);
    let set = set_of(0o666);
    let queue = queue_of(0, 0o666);
    msg::send(queue, 1, b"first", false).unwrap();
    let maps_before = map_count(pid);
    println!("daemon before: {}", figures(pid));

    let most = DEFAULT_USER_FILES + 200;
    let mut hog = Proc::client(A, &["open", path_arg(&m.shm(hogged)), &most.to_string(), "rw", "0"]);
    let line = hog.line("opened", Duration::from_secs(60));
    let maps_held = map_count(pid);
    println!("uid {A}: {line}");
    println!("daemon with them open: {}", figures(pid));
    let (opened, refused, _) = parse_opened(&line);
    assert_eq!(
        (opened, refused.as_str()),
        (DEFAULT_USER_FILES, "EMFILE"),
        "one user's opens must stop with EMFILE after user_files (default {DEFAULT_USER_FILES}) \
         (opened {opened} of {most} tried, then {refused})"
    );
    assert_alive(&m);
    assert!(
        maps_held < maps_before + DEFAULT_USER_FILES + 300,
        "the daemon's mappings went from {maps_before} to {maps_held} for {opened} opens"
    );

    others_still_served(&m, B, Some(own_b), set, queue);

    // The budget comes back with the files: once they are closed (and the
    // kernel has told the daemon), the user may open again.
    hog.kill();
    let probe = format!("exec 3<> {} && echo opened", q(&m.shm(hogged)));
    wait_until("the user may open again after closing everything", LIMIT, || sh_as_user(A, &probe).status.success());
    println!("daemon after: {}", figures(pid));
}

/// Item 1 with `-o user_files=200`: the budget is per user, over all of the
/// user's processes, and counts open directories too; another user has a
/// budget of their own, refused at exactly its end as well.
#[test]
fn the_open_file_budget_is_per_user_over_all_their_processes_and_directories() {
    let m = Mounted::with_options(&["-o", "allow_other,user_files=200"]);
    let pid = daemon(&m);
    let seg_a = segment_of(A, 4096, 0o600);
    let seg_b = segment_of(B, 4096, 0o600);
    let shm_dir = m.path("shm");

    let mut files = Proc::client(A, &["open", path_arg(&m.shm(seg_a)), "150", "rw", "0"]);
    let (opened, refused, _) = parse_opened(&files.line("opened", LIMIT));
    assert_eq!((opened, refused.as_str()), (150, "none"), "150 of 200 opens");
    let mut dirs = Proc::client(A, &["open", path_arg(&shm_dir), "30", "dir", "0"]);
    let (opened, refused, _) = parse_opened(&dirs.line("opened", LIMIT));
    assert_eq!((opened, refused.as_str()), (30, "none"), "30 more, directories");
    let mut more = Proc::client(A, &["open", path_arg(&m.shm(seg_a)), "100", "rw", "0"]);
    let line = more.line("opened", LIMIT);
    println!("uid {A}, a third process after 150 files and 30 directories: {line}");
    let (opened, refused, _) = parse_opened(&line);
    assert_eq!(
        (opened, refused.as_str()),
        (20, "EMFILE"),
        "a third process of the same user gets what is left of user_files=200 (150 files and 30 \
         directories are open), then EMFILE"
    );

    // Another user: a budget of their own, to its last unit.
    let mut other = Proc::client(B, &["open", path_arg(&m.shm(seg_b)), "300", "rw", "0"]);
    let line = other.line("opened", LIMIT);
    println!("uid {B}: {line}");
    let (opened, refused, _) = parse_opened(&line);
    assert_eq!((opened, refused.as_str()), (200, "EMFILE"), "another user's own budget of 200");
    println!("daemon with 400 files open: {}", figures(pid));

    // Closed, the whole budget is the user's again.
    for p in [&mut files, &mut dirs, &mut more] {
        p.kill();
    }
    wait_until("the user's whole budget is back", LIMIT, || {
        let mut probe = Proc::client(A, &["open", path_arg(&m.shm(seg_a)), "201", "rw", "0", "close"]);
        let (opened, _, _) = parse_opened(&probe.line("opened", LIMIT));
        probe.finish(LIMIT);
        opened == 200
    });
    assert_alive(&m);
}

/// Item 1, all users together: 66 users each opening a shared segment up to
/// their budget (67,584 opens, more than vm.max_map_count, 65,530 by
/// default, could map) do not take the daemon to vm.max_map_count: a global
/// cap refuses the excess with a clear errno (ENOMEM, also for anyone else
/// opening a segment while the cap is reached), the daemon lives, and a P
/// that waits (a thread) and a receive still work; once the files are
/// closed, opens work again.
#[test]
fn all_users_together_cannot_take_the_daemon_to_the_mapping_limit() {
    const USERS: u32 = 66;
    let max_map_count: usize = fs::read_to_string("/proc/sys/vm/max_map_count").unwrap().trim().parse().unwrap();
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let pid = daemon(&m);
    let shared = segment_of(0, 4096, 0o666);
    let own_b = segment_of(B, 4096, 0o600);
    let set = set_of(0o666);
    let queue = queue_of(0, 0o666);
    msg::send(queue, 1, b"first", false).unwrap();
    println!("daemon before: {}; vm.max_map_count {max_map_count}", figures(pid));

    let started = Instant::now();
    let seg = m.shm(shared);
    let mut hogs: Vec<Proc> = (0..USERS)
        .map(|i| Proc::client(2001 + i, &["open", path_arg(&seg), &DEFAULT_USER_FILES.to_string(), "rw", "0"]))
        .collect();
    let mut opened = 0;
    let mut refusals = std::collections::BTreeMap::<String, usize>::new();
    for hog in &mut hogs {
        let (n, refused, _) = parse_opened(&hog.line("opened", Duration::from_secs(60)));
        opened += n;
        *refusals.entry(refused).or_default() += 1;
    }
    let maps = map_count(pid);
    println!(
        "{USERS} users, up to {DEFAULT_USER_FILES} opens each: {opened} opened in {:?}, refusals by process {refusals:?}",
        started.elapsed()
    );
    println!("daemon with them open: {}", figures(pid));
    assert_alive(&m);
    assert!(
        maps < max_map_count / 2,
        "the daemon holds {maps} mappings of vm.max_map_count {max_map_count}: no room left for its threads"
    );
    for refused in refusals.keys() {
        assert!(
            ["none", "ENOMEM", "EMFILE", "EAGAIN"].contains(&refused.as_str()),
            "an open beyond the daemon's whole budget must fail with a clear errno, not {refused}"
        );
    }
    // Segments are what the users spent together: another user's open may be
    // refused too, but only with the errno of the cap. Waits and receives
    // are not segments.
    let out = sh_as_user(B, &format!("exec 3<> {}", q(&m.shm(own_b))));
    println!(
        "another user's open meanwhile: {:?}",
        if out.status.success() { "opened".into() } else { stderr_of(&out) }
    );
    assert!(out.status.success() || stderr_of(&out).contains("Cannot allocate memory"), "{}", stderr_of(&out));
    others_still_served(&m, B, None, set, queue);

    for hog in &mut hogs {
        hog.kill();
    }
    wait_until("opens work again once the files are closed", LIMIT, || {
        sh_as_user(C, &format!("exec 3<> {}", q(&seg))).status.success()
    });
    println!("daemon after: {}", figures(pid));
}

// ---- 2: the daemon's descriptors ----

/// Item 2: started with the soft descriptor limit systemd gives services
/// (1024), the daemon raises it to its hard limit; a user holding 1,100
/// opens of a 1 MiB segment (as many as the budget lets) and reading 64 KiB
/// through each leaves `ls`, receives and P's working for everyone else.
#[test]
fn a_user_holding_many_reads_leaves_the_daemon_descriptors_for_everyone() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit, which `limit` is.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    let hard = limit.rlim_max;
    assert!(hard >= 4096, "this test needs a hard descriptor limit of at least 4096, not {hard}");
    let nofile = format!("--nofile=1024:{hard}");
    let m = Mounted::with_wrapper(&["prlimit", &nofile, "--"], &["-o", "allow_other"]);
    let pid = daemon(&m);
    let limits = proc_limit(pid, "Max open files");
    println!("daemon started with soft 1024, hard {hard}: now {limits:?}");
    assert_eq!(limits, (hard, hard), "the daemon must raise its soft RLIMIT_NOFILE to the hard limit");

    let big = segment_of(A, 1 << 20, 0o600);
    let own_b = segment_of(B, 4096, 0o600);
    let set = set_of(0o666);
    let queue = queue_of(0, 0o666);
    msg::send(queue, 1, b"first", false).unwrap();
    msg::send(queue, 1, b"second", false).unwrap();
    println!("daemon before: {}", figures(pid));

    let mut hog = Proc::client(A, &["open", path_arg(&m.shm(big)), "1100", "rw", "65536"]);
    let line = hog.line("opened", Duration::from_secs(60));
    println!("uid {A}: {line}");
    println!("daemon with them open and read: {}", figures(pid));
    let (opened, refused, reads) = parse_opened(&line);
    assert!(
        opened == 1100 || (opened >= DEFAULT_USER_FILES && refused == "EMFILE"),
        "1,100 opens, or as many as the budget allows then EMFILE: {line}"
    );
    assert_eq!(reads, "read-errors none short-reads 0", "every open file's 64 KiB read: {line}");
    assert_alive(&m);

    // Everyone else.
    let ls = assert_ok(&sh_as_user(B, &format!("ls {}", q(&m.path("shm")))), "ls shm/ as another user");
    let mut listed: Vec<&str> = ls.lines().collect();
    listed.sort();
    let mut expected = vec![big.0.to_string(), own_b.0.to_string()];
    expected.sort();
    assert_eq!(listed, expected, "ls shm/");
    others_still_served(&m, B, Some(own_b), set, queue);
    assert_eq!(qnum(queue), 1, "one receive took one message");
    let got = msg::receive(queue, 0, 64, false).unwrap();
    assert_eq!(got.body, b"second", "the other message is still there, in order");
}

// ---- 3: parked waiters ----

/// Item 3, the budget: with `-o user_waits=8`, a user's 9th parked
/// operation fails with EAGAIN at once while their 8 stay parked (a receive
/// under `.wait/` as well as a P); another user's P still parks; and a
/// parked operation that ends gives its unit back.
#[test]
fn parked_operations_stop_at_the_budget_with_eagain() {
    let m = Mounted::with_options(&["-o", "allow_other,user_waits=8"]);
    let set = set_of(0o666);
    let queue = queue_of(0, 0o666);
    let sem_file = m.path(format!("sem/{}/0", set.0));
    let wait_any = m.path(format!("msg/{}/.wait/any", queue.0));

    let mut eight = Proc::client(A, &["wait", path_arg(&sem_file), "8", "-1"]);
    wait_until("8 parked P's", LIMIT, || ncnt(set, 0) == 8);

    let started = Instant::now();
    let mut ninth = Proc::client(A, &["wait", path_arg(&sem_file), "0", "-1"]);
    let parked_ninth = || ncnt(set, 0) == 9;
    let outcome = ninth.line("", Duration::from_secs(5));
    println!("the 9th P of uid {A}: {outcome} after {:?}", started.elapsed());
    assert_eq!(outcome, "error EAGAIN", "a user's 9th parked P with user_waits=8 (ncnt now {})", ncnt(set, 0));
    assert!(!parked_ninth() && ncnt(set, 0) == 8, "the 8 stay parked");
    let mut receive = Proc::client(A, &["wait", path_arg(&wait_any), "0", "-"]);
    assert_eq!(receive.line("", Duration::from_secs(5)), "error EAGAIN", "a user's 9th parked operation, a receive");

    // Another user parks.
    let mut other = Proc::client(B, &["wait", path_arg(&sem_file), "0", "-1"]);
    wait_until("another user's P parks", LIMIT, || ncnt(set, 0) == 9 || !other.stdout().is_empty());
    assert_eq!(other.stdout(), "", "another user's P must park");

    // Released, every parked P takes its unit; the budget is free again.
    sem::operate(set, 0, 9, None).expect("V 9");
    assert_eq!(other.line("", LIMIT), "done");
    wait_until("the 8 P's are done", LIMIT, || eight.count("done") == 8);
    assert_eq!(eight.finish(LIMIT).lines().filter(|l| *l != "started 8").collect::<Vec<_>>(), ["done"; 8]);
    assert_eq!(sem_value(set, 0), 0);
    let mut again = Proc::client(A, &["wait", path_arg(&sem_file), "0", "-1"]);
    wait_until("the user parks again", LIMIT, || ncnt(set, 0) == 1 || !again.stdout().is_empty());
    assert_eq!(again.stdout(), "", "after the waits ended, the user may park again");
    sem::operate(set, 0, 1, None).expect("V");
    assert_eq!(again.line("", LIMIT), "done");
}

/// Item 3, the cost: 200 parked P's of one user and 50 parked receives of
/// another cost the daemon at most one thread each (and a few more), and
/// over 2 idle seconds almost no CPU. An interrupted waiter (SIGINT with a
/// handler) ends with EINTR and takes nothing, killed ones take nothing,
/// and their threads go.
#[test]
fn parked_waiters_cost_one_thread_each_and_almost_no_cpu() {
    const PS: usize = 200;
    const RECEIVES: usize = 50;
    const _: () = assert!(PS < DEFAULT_USER_WAITS, "within the default budget");
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let pid = daemon(&m);
    let set = set_of(0o666);
    let queue = queue_of(0, 0o666);
    let sem_file = m.path(format!("sem/{}/0", set.0));
    let wait_any = m.path(format!("msg/{}/.wait/any", queue.0));
    // Warm up: one wait of each kind, begun and ended.
    fs::write(&sem_file, "+1").unwrap();
    fs::write(&sem_file, "-1").unwrap();
    msg::send(queue, 1, b"warm", false).unwrap();
    let mut buf = [0; 64];
    let n = std::io::Read::read(&mut fs::File::open(&wait_any).unwrap(), &mut buf).unwrap();
    assert_eq!(&buf[..n], b"warm");
    let threads_before = thread_count(pid);
    let idle_before = idle_ticks(pid, Duration::from_secs(2));
    println!("daemon idle: {}; {idle_before} ticks in 2 s", figures(pid));

    let mut ps = Proc::client(A, &["wait", path_arg(&sem_file), &PS.to_string(), "-1"]);
    let mut receives = Proc::client(B, &["wait", path_arg(&wait_any), &RECEIVES.to_string(), "-"]);
    wait_until("every P and receive is parked", Duration::from_secs(30), || {
        ncnt(set, 0) == PS as i32 && threads_in_syscall(pid, libc::SYS_msgrcv) == RECEIVES
    });
    let threads = thread_count(pid);
    let ticks = idle_ticks(pid, Duration::from_secs(2));
    println!(
        "daemon with {PS} P's and {RECEIVES} receives parked: {}; {} threads more than idle; {ticks} ticks in 2 s idle",
        figures(pid),
        threads - threads_before
    );
    let waiters = (PS + RECEIVES) as u64;
    assert!(
        threads <= threads_before + waiters + 8,
        "{waiters} parked operations must cost at most one daemon thread each: {threads_before} threads before, {threads} with them"
    );
    // The contract: "well under 5% of a CPU". The daemon under test is a
    // debug build, which spends about twice what a release build does (7-8
    // ticks here, about 4 in release); one thread per waiter polling /proc
    // for itself cost 24-32. 16 ticks in 2 s is 4% of this 2-CPU machine.
    assert!(
        ticks < 16,
        "{waiters} idle waiters cost the daemon {ticks} ticks of CPU in 2 s ({}%)",
        ticks * 100 / (2 * HZ)
    );

    // Interrupted: EINTR, promptly, and nothing taken.
    let mut one = Proc::client(A, &["wait", path_arg(&sem_file), "0", "-1"]);
    wait_until("one more P parked", LIMIT, || ncnt(set, 0) == PS as i32 + 1);
    let sent = Instant::now();
    one.signal(Signal::SIGINT);
    let outcome = one.line("", LIMIT);
    let took = sent.elapsed();
    println!("an interrupted P: {outcome} after {took:?}");
    assert_eq!(outcome, "error EINTR");
    assert!(took < PROMPT, "the interrupted P ended after {took:?}");
    wait_until("the interrupted P is no longer waiting", PROMPT, || ncnt(set, 0) == PS as i32);
    assert_eq!(sem_value(set, 0), 0, "the interrupted P took nothing");

    // Killed: every wait ends, nothing is taken, the threads go.
    ps.kill();
    receives.kill();
    wait_until("the killed waiters' waits end", Duration::from_secs(10), || {
        ncnt(set, 0) == 0 && threads_in_syscall(pid, libc::SYS_msgrcv) == 0
    });
    sem::operate(set, 0, 1, None).expect("V");
    msg::send(queue, 1, b"kept", false).unwrap();
    assert_eq!((sem_value(set, 0), qnum(queue)), (1, 1), "nothing taken for the killed waiters");
    wait_until("the daemon's waiting threads are gone", Duration::from_secs(10), || {
        thread_count(pid) <= threads_before + 2
    });
    println!("daemon after: {}", figures(pid));
}

// ---- 4: a full queue ----

/// The bytes each of `types` (1 to `types`) has when `count` one-byte
/// messages are sent in turn.
fn fill(queue: MsqId, count: usize, types: i64) {
    for i in 0..count {
        msg::send(queue, 1 + (i as i64 % types), &[i as u8], false).unwrap_or_else(|e| panic!("message {i}: {e}"));
    }
}

/// Item 4: on a queue of user A (mode 0600) filled with 16,384 one-byte
/// messages, user B (no read permission) stats type files in two loops:
/// each shows size 0, costs the daemon almost nothing, and user C's
/// `ls -l shm/` meanwhile completes at once. A's `ls -l` of the queue
/// completes with the right sizes, and A's `rm msg/ID/any` returns while
/// A's senders keep refilling the queue; the daemon serves on.
#[test]
fn a_full_queue_stalls_nothing() {
    const MESSAGES: usize = 16384;
    const TYPES: i64 = 3;
    const SENDERS: i64 = 16;
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let pid = daemon(&m);
    let queue = queue_of(A, 0o600);
    let qdir = m.path(format!("msg/{}", queue.0));
    fill(queue, MESSAGES, TYPES);
    assert_eq!(qnum(queue), MESSAGES as u64, "the default msgmnb (16384) holds 16384 one-byte messages");
    let segment = segment_of(C, 4096, 0o600);

    let ticks_before = cpu_ticks(pid);
    let started = Instant::now();
    let mut loops: Vec<Proc> =
        (0..2).map(|_| Proc::client(B, &["stat", path_arg(&qdir), "1", &(TYPES + 2).to_string(), "20"])).collect();
    for l in &mut loops {
        l.line("started", LIMIT);
    }
    let ls_started = Instant::now();
    let ls = sh_as_user(C, &format!("ls -l {}", q(&m.path("shm"))));
    let ls_took = ls_started.elapsed();
    assert!(assert_ok(&ls, "ls -l shm/ as a third user").contains(&format!(" {}\n", segment.0)));
    let results: Vec<String> = loops.iter_mut().map(|l| l.line("stats", Duration::from_secs(30))).collect();
    let took = started.elapsed();
    let ticks = cpu_ticks(pid) - ticks_before;
    println!("uid {B} without read permission, two loops: {results:?} in {took:?}; the daemon spent {ticks} ticks");
    println!("uid {C}'s ls -l shm/ meanwhile: {ls_took:?}");
    for result in &results {
        assert_eq!(result, &format!("stats {} sizes 0:{} errors none", 20 * (TYPES + 2), 20 * (TYPES + 2)));
    }
    assert!(ticks < 50, "240 stats without read permission cost the daemon {ticks} ticks");
    assert!(ls_took < Duration::from_secs(3), "another user's ls -l shm/ took {ls_took:?}");

    // The owner lists the full queue, with the bytes of each type; a third
    // user's `ls -l shm/` meanwhile completes at once.
    let started = Instant::now();
    let mut listing = Proc::start(
        {
            let mut c = as_user(A, A, &[]);
            c.arg("ls").arg("-l").arg(&qdir);
            c
        },
        "ls -l of the full queue as its owner",
    );
    let busy = wait_for_fuse_call(listing.pid(), Duration::from_secs(5));
    let ls_started = Instant::now();
    let ls = sh_as_user(C, &format!("ls -l {}", q(&m.path("shm"))));
    let ls_took = ls_started.elapsed();
    let text = listing.finish(Duration::from_secs(30));
    let took = started.elapsed();
    println!("uid {A}'s ls -l of the full queue: {took:?}\n{text}");
    println!(
        "uid {C}'s ls -l shm/ meanwhile: {ls_took:?} (the listing {})",
        if busy { "was in a FUSE call" } else { "was not seen in a FUSE call" }
    );
    assert!(assert_ok(&ls, "ls -l shm/ as a third user").contains(&format!(" {}\n", segment.0)));
    assert!(
        ls_took < Duration::from_secs(3),
        "another user's ls -l shm/ took {ls_took:?} while the owner listed a full queue"
    );
    let sizes: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.starts_with("total"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[8].to_string(), f[4].to_string())
        })
        .collect();
    let mut expected = vec![("any".to_string(), MESSAGES.to_string())];
    expected.extend((1..=TYPES).map(|t| {
        let count = (0..MESSAGES as i64).filter(|i| 1 + i % TYPES == t).count();
        (t.to_string(), count.to_string())
    }));
    expected.sort();
    let mut sizes_sorted = sizes.clone();
    sizes_sorted.sort();
    assert_eq!(sizes_sorted, expected, "types and their bytes");

    // rm of every message while the owner's senders refill the queue: they
    // wait in msgsnd for room (the queue is full) when it starts.
    let senders: Vec<Proc> =
        (1..=SENDERS).map(|t| Proc::client(A, &["send", &queue.0.to_string(), &t.to_string(), "-1", "1"])).collect();
    for sender in &senders {
        wait_until("a sender waits for room", LIMIT, || threads_in_syscall(sender.pid(), libc::SYS_msgsnd) == 1);
    }
    let started = Instant::now();
    let mut rm = Proc::start(
        {
            let mut c = as_user(A, A, &[]);
            c.args(["rm", path_arg(&qdir.join("any"))]);
            c
        },
        "rm msg/ID/any with the owner's senders refilling the queue",
    );
    rm.finish(Duration::from_secs(30));
    let took = started.elapsed();
    // The senders say so once their msgsnd returns: after the rm, maybe. A
    // sender the kernel did not wake before the others refilled the queue
    // (its wakeups are not fair under load) waits for room again: the test
    // takes a message at a time until every sender has sent.
    wait_until("the senders sent (the rm made room)", LIMIT, || {
        let all = senders.iter().all(|s| s.stdout().starts_with("ready"));
        if !all {
            let _ = msg::receive(queue, 0, 64, false);
        }
        all
    });
    let sent: Vec<String> = senders.iter().map(|s| s.stdout()).collect();
    println!("uid {A}'s rm msg/ID/any with {SENDERS} senders refilling: {took:?} (senders said {sent:?})");
    drop(senders);
    assert_alive(&m);
    let ls = assert_ok(&sh_as_user(C, &format!("ls {}", q(&m.path("shm")))), "ls shm/ afterwards");
    assert_eq!(ls, format!("{}\n", segment.0));
    let out = assert_ok(&sh_as_user(A, &format!("stat -c %s {}", q(&qdir.join("any")))), "stat any afterwards");
    assert_eq!(out.trim(), msg::stat_any(queue).unwrap().cbytes.to_string());
}

// ---- 5: a user's own namespace (-A) ----

/// A process holding an IPC namespace of user `uid`'s own (`unshare -r
/// --ipc`, a rootless container) after running `setup` there; killed and
/// reaped when dropped.
struct Rootless {
    proc: Proc,
    ns: u64,
}

impl Rootless {
    fn new(uid: u32, setup: &str) -> Rootless {
        isolate();
        let own = ns_at("/proc/thread-self/ns/ipc").unwrap();
        let mut command = as_user(uid, uid, &[]);
        command
            .args(["setpriv", "--pdeathsig", "KILL", "--", "unshare", "-r", "--ipc", "sh", "-ec"])
            .arg(format!("{setup}\nexec sleep 1000"))
            .env("CLIENT", CLIENT);
        let mut proc = Proc::start(command, "unshare -r --ipc");
        let comm = |pid: i32| fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let pid = proc.pid();
        wait_until("the namespace's holder is ready", LIMIT, || {
            if let Some(status) = proc.child.try_wait().unwrap() {
                panic!("the namespace's setup failed ({status}): {:?} {:?}", proc.stdout(), proc.stderr());
            }
            comm(pid) == "sleep\n" && ns_at(format!("/proc/{pid}/ns/ipc")).is_some_and(|ns| ns != own)
        });
        let ns = ns_at(format!("/proc/{pid}/ns/ipc")).unwrap();
        Rootless { proc, ns }
    }

    /// Runs a shell command line as the namespace's root (its user, on the
    /// host): what that user can do there.
    fn sh(&self, uid: u32, script: &str) -> String {
        let out = as_user(uid, uid, &[])
            .args([
                "nsenter",
                "-U",
                "-i",
                "--preserve-credentials",
                "-t",
                &self.proc.pid().to_string(),
                "sh",
                "-c",
                script,
            ])
            .output()
            .unwrap();
        assert_ok(&out, script)
    }
}

/// A command run as root from the test's namespaces, bounded: it may wait
/// on a daemon that spins (the process cannot even be killed until the
/// daemon answers), so it runs as a process of its own.
fn run(program: &str, args: &[&str], paths: &[&Path]) -> Proc {
    let mut command = Command::new(program);
    command.args(args).args(paths).stdin(Stdio::null());
    Proc::start(command, &format!("{program} {}", args.join(" ")))
}

/// `ls -l` output: (name, size) of each entry.
fn names_and_sizes(listing: &str) -> Vec<(String, String)> {
    listing
        .lines()
        .filter(|l| !l.starts_with("total"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[8].to_string(), f[4].to_string())
        })
        .collect()
}

/// Item 5: in a user's own namespace (`unshare -Ur --ipc`) the user sets
/// kernel.msgmax to 0 after queueing messages of two types (types 5: 3 of 4
/// bytes, 9: 2 of 7). Through `ns/<inode>/`, stat of the type files and
/// `ls -l` of the queue complete (the kernel then refuses to copy any of
/// those messages, so a type's size cannot be learnt: the right size or a
/// refusal, never a wrong size), `any` shows the queue's bytes, and the
/// daemon is idle afterwards. With msgmax at 1 GiB, stat and `ls -l` show
/// the right sizes, and a stat neither swells the daemon nor costs it
/// much CPU.
#[test]
fn a_users_own_namespace_with_any_msgmax_does_not_drive_the_daemon() {
    let holder = Rootless::new(
        A,
        "ipcmk -Q >/dev/null\n\
         /usr/bin/python3 -c \"$CLIENT\" send 0 5 3 4 >/dev/null\n\
         /usr/bin/python3 -c \"$CLIENT\" send 0 9 2 7 >/dev/null\n\
         echo 0 > /proc/sys/kernel/msgmax",
    );
    let m = Mounted::with_options(&["-o", "all_namespaces,allow_other"]);
    let pid = daemon(&m);
    let qdir = m.path(format!("ns/{}/msg/0", holder.ns));
    assert_eq!(holder.sh(A, "cat /proc/sys/kernel/msgmax"), "0\n");
    println!("daemon before: {}", figures(pid));

    // msgmax 0.
    for (name, size) in [("any", "26"), ("5", "12"), ("9", "14")] {
        let started = Instant::now();
        let outcome = run("stat", &["-c", "%s"], &[&qdir.join(name)]).ended(LIMIT);
        println!("msgmax 0: stat {name}: {outcome:?} after {:?}", started.elapsed());
        match (name, outcome) {
            (_, Ok(shown)) => assert_eq!(shown.trim(), size, "stat of {name} with msgmax 0"),
            ("any", Err(e)) => panic!("stat of any (the queue's byte count) with msgmax 0: {e}"),
            (_, Err(_)) => {}
        }
    }
    let started = Instant::now();
    let outcome = run("ls", &["-l"], &[&qdir]).ended(LIMIT);
    println!("msgmax 0: ls -l of the queue after {:?}: {outcome:?}", started.elapsed());
    if let Ok(listing) = &outcome {
        assert_eq!(
            names_and_sizes(listing),
            [("5".into(), "12".into()), ("9".into(), "14".into()), ("any".into(), "26".into())],
            "{listing}"
        );
    }
    let ticks = idle_ticks(pid, Duration::from_secs(2));
    println!("daemon after, msgmax 0: {}; {ticks} ticks in the next 2 s", figures(pid));
    assert!(ticks < 20, "the daemon stays busy after a stat in a namespace with msgmax 0: {ticks} ticks in 2 s");
    assert_alive(&m);

    // msgmax 1 GiB.
    holder.sh(A, "echo 1073741824 > /proc/sys/kernel/msgmax");
    let (rss, peak, ticks) = (rss_kib(pid), peak_rss_kib(pid), cpu_ticks(pid));
    let started = Instant::now();
    let shown = run("stat", &["-c", "%s"], &[&qdir.join("9")]).finish(LIMIT);
    let took = started.elapsed();
    let (rss_after, peak_after, ticks_after) = (rss_kib(pid), peak_rss_kib(pid), cpu_ticks(pid));
    println!(
        "msgmax 1 GiB: stat 9 shows {} after {took:?}, {} ticks; daemon RSS {rss} -> {rss_after} KiB, peak {peak} -> {peak_after} KiB",
        shown.trim(),
        ticks_after - ticks
    );
    assert_eq!(shown, "14\n", "type 9's bytes with msgmax 1 GiB");
    assert!(
        peak_after < peak + 64 * 1024 && rss_after < rss + 64 * 1024,
        "a stat with msgmax 1 GiB grew the daemon from {rss} KiB (peak {peak}) to {rss_after} KiB (peak {peak_after})"
    );
    assert!(ticks_after - ticks < HZ, "a stat with msgmax 1 GiB cost the daemon {} ticks", ticks_after - ticks);
    let listing = run("ls", &["-l"], &[&qdir]).finish(LIMIT);
    assert_eq!(
        names_and_sizes(&listing),
        [("5".into(), "12".into()), ("9".into(), "14".into()), ("any".into(), "26".into())],
        "ls -l with msgmax 1 GiB: {listing}"
    );
    println!("daemon after, msgmax 1 GiB: {}", figures(pid));
    drop(holder);
}

// ---- 12: names looked up ----

/// Item 12: 300,000 distinct type names looked up under one queue (mode
/// 0600, three messages), half by a user without read permission and half
/// by its owner, all at once, do not grow the daemon's memory by more than
/// 16 MB (without a bound on what a name costs: about 50 MB).
#[test]
fn names_looked_up_do_not_grow_the_daemon() {
    const NAMES: u64 = 300_000;
    const LOOPS: u64 = 4;
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let pid = daemon(&m);
    let queue = queue_of(A, 0o600);
    fill(queue, 3, 2);
    let qdir = m.path(format!("msg/{}", queue.0));
    // Warm up: a few lookups of each kind.
    for uid in [A, B] {
        Proc::client(uid, &["stat", path_arg(&qdir), "1", "100", "1"]).finish(LIMIT);
    }
    let (rss, ticks) = (rss_kib(pid), cpu_ticks(pid));
    println!("daemon before: {}", figures(pid));

    // Each loop its own names: B's from 1000, A's from 1,000,000.
    let per_loop = NAMES / LOOPS;
    let started = Instant::now();
    let mut loops: Vec<(u32, Proc)> = (0..LOOPS)
        .map(|i| {
            let uid = if i % 2 == 0 { B } else { A };
            let first = if uid == B { 1000 } else { 1_000_000 } + (i / 2) * per_loop;
            (
                uid,
                Proc::client(
                    uid,
                    &["stat", path_arg(&qdir), &first.to_string(), &(first + per_loop - 1).to_string(), "1"],
                ),
            )
        })
        .collect();
    let results: Vec<(u32, String)> =
        loops.iter_mut().map(|(uid, l)| (*uid, l.line("stats", Duration::from_secs(120)))).collect();
    let (rss_after, ticks_after) = (rss_kib(pid), cpu_ticks(pid));
    println!(
        "{NAMES} names ({} by uid {B} without read permission, {} by uid {A} the owner): {results:?} in {:?}",
        NAMES / 2,
        NAMES / 2,
        started.elapsed()
    );
    println!(
        "daemon after: {}; RSS growth {} KiB; {} ticks ({} µs a lookup)",
        figures(pid),
        rss_after as i64 - rss as i64,
        ticks_after - ticks,
        (ticks_after - ticks) * 1_000_000 / HZ / NAMES
    );
    for (_, result) in &results {
        assert_eq!(result, &format!("stats {per_loop} sizes 0:{per_loop} errors none"));
    }
    assert!(
        rss_after < rss + 16 * 1024,
        "{NAMES} distinct names looked up grew the daemon from {rss} KiB to {rss_after} KiB"
    );
    assert_alive(&m);
}

/// Reading a listed queue file holds a snapshot of its messages in the
/// daemon, charged to the opener: 64 MiB per user. Beyond, open fails with
/// ENOMEM and nothing changes; another user still opens; a close gives the
/// bytes back; a type file is charged only its own bytes.
#[test]
fn snapshots_of_queues_are_charged_to_their_openers_memory() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    fs::write("/proc/sys/kernel/msgmax", (1 << 20).to_string()).unwrap();
    fs::write("/proc/sys/kernel/msgmnb", (8 << 20).to_string()).unwrap();
    let queue = queue_of(1001, 0o644);
    // The largest message ipcfs moves: 1 MiB less a page.
    let body = vec![b'm'; (1 << 20) - 4096];
    for mtype in [1, 1, 1, 1, 1, 1, 1, 2] {
        msg::send(queue, mtype, &body, false).unwrap();
    }
    let before = msg::stat_any(queue).unwrap();
    assert_eq!(before.cbytes, 8 * body.len() as u64, "precondition: about 8 MiB queued");
    let any = m.path(format!("msg/{}/any", queue.0));
    let two = m.path(format!("msg/{}/2", queue.0));

    // Root's share (64 MiB) holds eight snapshots of the whole queue, and
    // the type-2 file's (1 MiB) are each shrunk to their own bytes.
    let mut held: Vec<fs::File> = (0..8).map(|_| fs::File::open(&any).unwrap()).collect();
    let ninth = fs::File::open(&any).map(drop);
    assert_eq!(errno(ninth), libc::ENOMEM, "the ninth snapshot of 8 MiB is beyond the 64 MiB share");
    // With six held (about 50 MiB), nine snapshots of type 2 fit: each is
    // charged the whole queue while it is taken, then only its 1 MiB.
    held.truncate(6);
    let type_files: Vec<fs::File> = (0..9).map(|_| fs::File::open(&two).unwrap()).collect();
    assert_eq!(errno(fs::File::open(&any).map(drop)), libc::ENOMEM, "nine 1 MiB snapshots leave less than 8 MiB");
    drop(type_files);
    held.push(fs::File::open(&any).expect("a close gives the bytes back"));

    // Another user has a share of its own.
    let out = sh_as_user(1002, &format!("head -c 16 {} | wc -c", path_arg(&any)));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "16");
    drop(held);
    let after = msg::stat_any(queue).unwrap();
    assert_eq!((after.qnum, after.cbytes, after.lrpid), (before.qnum, before.cbytes, before.lrpid), "nothing taken");
    msg::remove(queue).unwrap();
}
