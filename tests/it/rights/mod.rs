//! Issue 14, failing closed, rights and identity, nothing lost: each attack
//! of the red-team report performed by an unprivileged user (setpriv) on a
//! real mount, asserting the fixed behaviour (docs/security.md).
//!
//! - 6: a caller whose /proc status the daemon cannot read (the daemon runs
//!   in a pid namespace of its own, so FUSE reports the caller's pid as 0)
//!   has no groups and no capabilities, even uid 0: a root with every
//!   capability dropped is refused another user's objects.
//! - 7: with kernel.msgmnb unreadable (garbage bind-mounted over it, or an
//!   empty directory over /proc/sys/kernel), a qbytes change is refused even
//!   below the real limit.
//! - 8: the rights on a queue or semaphore are checked at every read and
//!   write of an open file, against the mode now; a segment file is like an
//!   attachment (checked at open only).
//! - 9: an old descriptor does not reach a new object that took its id
//!   (kernel.msg_next_id / sem_next_id): EACCES for the same creator when the
//!   mode denies, ENOENT for another creator.
//! - 10: a semaphore's pid and waiter counts, and the bytes queued per type,
//!   need read permission.
//! - 11: a message taken for a reader killed as it arrived is put back even
//!   when another sender fills the queue at once.
//!
//! Everything that may wait is bounded and synchronised on what can be seen
//! (a process's state in /proc, the kernel's counters), never on sleeps.
//!
//! Here: the objects, the probe client and the helpers the tests share; the
//! tests, by item, in [`closed`] (6, 7: failing closed), [`checks`] (8, 9, 10:
//! rights and identity) and [`put_back`] (11: nothing lost).

mod checks;
mod closed;
mod put_back;

use crate::common::*;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipcfs::ipc::creds::{Identity, run_as};
use ipcfs::ipc::msg::{self, MsqId};
use ipcfs::ipc::sem::{self, SemId};

/// The owner of the objects attacked, and two other unprivileged users.
const OWNER: u32 = 1001;
const OTHER: u32 = 1002;
const THIRD: u32 = 1003;
/// How long anything that should be prompt may take on a loaded machine.
const PROMPTLY: Duration = Duration::from_secs(10);
/// setpriv's arguments for a process without any capability: after the
/// exec, even uid 0 has none permitted or effective (the bounding set is
/// empty), and none come back at a later exec.
const NO_CAPS: [&str; 3] = ["--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all"];

// ---- objects, made as their owner ----

/// Runs `f` with the test thread's effective ids those of `uid` (gid = uid):
/// what the kernel records as the creator of what `f` makes.
fn as_uid<T>(uid: u32, f: impl FnOnce() -> T) -> T {
    run_as(&Identity { uid, gid: uid, groups: vec![] }, f).expect("switch ids")
}

fn queue_of(uid: u32, mode: i32) -> MsqId {
    as_uid(uid, || msg::get(Key::PRIVATE, libc::IPC_CREAT | libc::IPC_EXCL | mode)).expect("msgget")
}

fn set_of(uid: u32, nsems: i32, mode: i32) -> SemId {
    as_uid(uid, || sem::get(Key::PRIVATE, nsems, libc::IPC_CREAT | libc::IPC_EXCL | mode)).expect("semget")
}

fn segment_of(uid: u32, size: u64, mode: i32) -> ShmId {
    as_uid(uid, || shm::get(Key::PRIVATE, size, libc::IPC_CREAT | libc::IPC_EXCL | mode)).expect("shmget")
}

fn shm_mode(id: ShmId) -> (u32, u32) {
    let s = shm::stat_any(id).expect("the segment is there");
    (s.perm.uid, s.perm.mode & 0o777)
}

/// At most the first 40 characters of a probe's answer, for messages.
fn short(answer: &str) -> String {
    if answer.len() > 40 { format!("{}...", &answer[..40]) } else { answer.to_string() }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the probe prints for a successful read of `bytes`.
fn read_ok(bytes: &[u8]) -> String {
    if bytes.is_empty() { "ok -".into() } else { format!("ok {}", hex(bytes)) }
}

// ---- a client that holds descriptors and acts on command ----

/// Opens the files named on its command line (`NAME:HOW:PATH`, HOW one of
/// r, w, rw; always O_NONBLOCK, so that nothing it does can wait), prints
/// `ready UID CAPEFF`, then performs one command per line of stdin and
/// prints one line per command: `ok [DATA]` or the errno's name.
const PROBE: &str = r#"
import errno, os, sys
fds = {}
for spec in sys.argv[1:]:
    name, how, path = spec.split(":", 2)
    flags = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}[how] | os.O_NONBLOCK
    try:
        fds[name] = os.open(path, flags)
    except OSError as e:
        print("open", name, errno.errorcode.get(e.errno, str(e.errno)), flush=True)
        sys.exit(1)
caps = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff:")][0]
print("ready", os.getuid(), caps, flush=True)
for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    op, args = words[0], words[1:]
    try:
        if op == "read":
            data = os.read(fds[args[0]], 65536)
            print("ok", data.hex() or "-", flush=True)
        elif op == "pread":
            data = os.pread(fds[args[0]], int(args[1]), 0)
            print("ok", data.hex() or "-", flush=True)
        elif op == "write":
            os.write(fds[args[0]], args[1].encode())
            print("ok", flush=True)
        elif op == "cat":
            fd = os.open(args[0], os.O_RDONLY | os.O_NONBLOCK)
            try:
                data = os.read(fd, 65536)
            finally:
                os.close(fd)
            print("ok", data.hex() or "-", flush=True)
        elif op == "put":
            fd = os.open(args[0], os.O_WRONLY | os.O_NONBLOCK)
            try:
                os.write(fd, args[1].encode())
            finally:
                os.close(fd)
            print("ok", flush=True)
        elif op == "chmod":
            os.chmod(args[0], int(args[1], 8))
            print("ok", flush=True)
        elif op == "rmdir":
            os.rmdir(args[0])
            print("ok", flush=True)
        elif op == "unlink":
            os.unlink(args[0])
            print("ok", flush=True)
        else:
            print("unknown", op, flush=True)
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)), flush=True)
"#;

/// The probe, running as some user; killed on drop.
struct Probe {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// The uid and CapEff it reported.
    uid: u32,
    cap_eff: u64,
}

impl Probe {
    /// Starts the probe as `uid` (gid = uid, no supplementary groups), with
    /// extra setpriv arguments `caps`, holding `files` open; waits until it
    /// has opened them.
    #[track_caller]
    fn start(uid: u32, caps: &[&str], files: &[(&str, &str, &Path)]) -> Probe {
        let mut command = Command::new("setpriv");
        command
            .args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".into()])
            .args(caps)
            .args(["--", PYTHON, "-c", PROBE])
            .args(files.iter().map(|(name, how, path)| format!("{name}:{how}:{}", path.display())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start the probe");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        collect(child.stderr.take().unwrap(), stderr.clone());
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut probe = Probe { child, stdin, lines, stderr, uid: u32::MAX, cap_eff: u64::MAX };
        let ready = probe.next_line("the probe's first line");
        let words: Vec<&str> = ready.split_whitespace().collect();
        assert!(words.len() == 3 && words[0] == "ready", "the probe as uid {uid} did not start: {ready:?}");
        probe.uid = words[1].parse().unwrap();
        probe.cap_eff = u64::from_str_radix(words[2], 16).unwrap();
        assert_eq!(probe.uid, uid, "the probe runs as uid {uid}");
        probe
    }

    #[track_caller]
    fn next_line(&mut self, what: &str) -> String {
        match self.lines.recv_timeout(PROMPTLY) {
            Ok(line) => line,
            Err(_) => panic!(
                "{what}: no answer within {PROMPTLY:?} (exited: {:?}); stderr {:?}",
                self.child.try_wait(),
                String::from_utf8_lossy(&self.stderr.lock().unwrap())
            ),
        }
    }

    /// One command; its one-line result.
    #[track_caller]
    fn ask(&mut self, command: &str) -> String {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").and_then(|()| stdin.flush()).expect("talk to the probe");
        self.next_line(command)
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if wait_timeout(&mut self.child, Duration::from_millis(500)).is_none() {
            let _ = self.child.kill();
            let _ = wait_timeout(&mut self.child, Duration::from_secs(2));
        }
    }
}

/// A child process killed on drop (also when the test fails).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = wait_timeout(&mut self.0, Duration::from_secs(2));
        }
    }
}
