//! The client program the tests run in several roles ([`CLIENT`]), and
//! [`Client`], a running one whose output is collected as it comes.

use super::*;

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

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
pub(super) const CLIENT: &str = r#"
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
pub(super) struct Client {
    pub(super) what: String,
    child: Child,
    pub(super) status: Option<ExitStatus>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    collectors: Vec<JoinHandle<()>>,
}

impl Client {
    pub(super) fn start(what: impl Into<String>, args: &[&str]) -> Client {
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

    pub(super) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal`. Until [`Client::running`] has seen the child end, it
    /// is not reaped (at most a zombie), so its pid is still its own.
    pub(super) fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid()), signal).unwrap_or_else(|e| panic!("kill {}: {e}", self.what));
    }

    pub(super) fn running(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status.is_none()
    }

    pub(super) fn output(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// Whether the client printed the line `line`.
    pub(super) fn said(&self, line: &str) -> bool {
        self.output().lines().any(|l| l == line)
    }

    /// Bodies the client printed as `got BODY`.
    pub(super) fn got(&self) -> Vec<String> {
        self.output().lines().filter_map(|l| l.strip_prefix("got ")).map(str::to_string).collect()
    }

    /// The errno name the client ended with, if it ended with one.
    pub(super) fn error(&self) -> Option<String> {
        self.output().lines().find_map(|l| l.strip_prefix("error ")).map(str::to_string)
    }

    pub(super) fn report(&self) -> String {
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
    pub(super) fn finish(&mut self, limit: Duration) -> ExitStatus {
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
    pub(super) fn wait_blocked(&mut self) {
        let deadline = Instant::now() + PROMPTLY;
        while !waiting_on_fuse(self.pid()) {
            assert!(self.running(), "ended instead of waiting: {}", self.report());
            assert!(Instant::now() < deadline, "not waiting in a FUSE call after {PROMPTLY:?}: {}", self.report());
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Polls until the client has printed `line`.
    #[track_caller]
    pub(super) fn wait_said(&mut self, line: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.said(line) {
            assert!(self.running(), "ended before saying {line:?}: {}", self.report());
            assert!(Instant::now() < deadline, "did not say {line:?} within {limit:?}: {}", self.report());
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub(super) fn killed_by(&self, signal: Signal) -> bool {
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
