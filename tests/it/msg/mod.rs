//! Mounted tests of message queues: the tree and its key links, listing
//! and reading the listed files without taking (they browse), one write =
//! one message and one read under `.recv/` = one message received,
//! E2BIG, msgmax and the 1 MiB - 4 KiB limit of one write, full queues, waiting receives under `.wait/`, interrupted
//! and killed waiters (also racing a message), waits that stall nothing,
//! stat and the extended attributes against msgctl(IPC_STAT), ipcs and
//! lsipc, mkdir/chmod/chown/rm/rmdir, and other users held to the kernel's
//! permission rule.
//!
//! Every test checks the queue behind the files with the kernel's own calls
//! (msgctl, msgsnd, msgrcv, and msgrcv with MSG_COPY to look without taking),
//! so a file that merely looks right is not enough to pass. Whatever may
//! wait runs in a child process and is synchronised by polling what can be
//! seen (the child's state in /proc, the queue's counters), never by fixed
//! sleeps; whatever may hang is bounded.
//!
//! Here: the helpers the tests share; the tests, by subject, in [`layout`],
//! [`io`], [`waits`], [`meta`] and [`manage`].

mod io;
mod layout;
mod manage;
mod meta;
mod waits;

use crate::common::*;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipcfs::ipc::msg::{self, MsqId};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long an interrupted or killed waiter may take to end. ipcfs promises
/// about 0.1 s; this is generous for a loaded machine.
const PROMPTLY: Duration = Duration::from_secs(2);

// ---- helpers: the kernel's view ----

/// msgrcv of any type without waiting; the message must be there.
fn receive(id: MsqId) -> (i64, Vec<u8>) {
    let m = msg::receive(id, 0, BIG, false).unwrap_or_else(|e| panic!("msgrcv on {}: {e}", id.0));
    (m.mtype, m.body)
}

/// Sets the byte limit with msgctl(IPC_SET), keeping the rest.
fn set_qbytes(id: MsqId, qbytes: u64) {
    let k = kstat(id);
    msg::set(id, k.perm.uid, k.perm.gid, k.perm.mode, qbytes).expect("IPC_SET qbytes");
}

/// A queue with room for 10 bytes that holds one 8-byte message of type 1:
/// a 3-byte message does not fit, a 2-byte one does.
fn full_queue(key: i32) -> MsqId {
    let id = create_queue(key, 0o666);
    set_qbytes(id, 10);
    send(id, 1, b"12345678");
    id
}

const CAP_SYS_RESOURCE: u32 = 24;

/// Whether the test process has capability `cap` in effect.
fn has_capability(cap: u32) -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let effective = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap().trim();
    u64::from_str_radix(effective, 16).unwrap() & (1 << cap) != 0
}

// ---- helpers: paths, commands, waiting ----

/// `msg/<id>/<name>` (`name` may be empty for the directory itself). A
/// listed name (`any`, `<type>`) browses when read; `.recv/<name>` receives,
/// `.wait/<name>` receives and waits.
fn qpath(m: &Mounted, id: MsqId, name: &str) -> PathBuf {
    let dir = m.path(format!("msg/{}", id.0));
    if name.is_empty() { dir } else { dir.join(name) }
}

/// One read(2) of at most `len` bytes, bounded.
#[track_caller]
fn read_once(file: &File, len: usize) -> std::io::Result<Vec<u8>> {
    let mut file = file.try_clone().unwrap();
    bounded(&format!("a read of {len} bytes"), move || {
        let mut buf = vec![0u8; len];
        let n = file.read(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    })
}

/// One write(2) of `data`, bounded.
#[track_caller]
fn write_once(file: &File, data: &[u8]) -> std::io::Result<usize> {
    let (mut file, data) = (file.try_clone().unwrap(), data.to_vec());
    bounded(&format!("a write of {} bytes", data.len()), move || file.write(&data))
}

/// Waits until the daemon holds `waits` waiting operations (at least).
#[track_caller]
fn wait_until_daemon_holds(m: &Mounted, waits: usize) {
    wait_until(&format!("the daemon holds {waits} waits"), PROMPTLY, || daemon_waits(m) >= waits);
}

#[track_caller]
fn wait_until_daemon_idle(m: &Mounted) {
    wait_until("the daemon has no waiting operation left", PROMPTLY, || daemon_waits(m) == 0);
}

/// A client process whose output is collected as it comes, so that a test
/// can watch a waiting reader print. Killed on drop if still running.
struct Proc {
    child: Child,
    status: Option<ExitStatus>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Proc {
    fn spawn(program: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), stdout.clone()),
            collect(child.stderr.take().unwrap(), stderr.clone()),
        ];
        Proc { child, status: None, stdout, stderr, readers }
    }

    fn sh(script: &str) -> Proc {
        Proc::spawn("sh", &["-c", script])
    }

    /// `cat` of a file.
    fn cat(path: &Path) -> Proc {
        Proc::spawn("cat", &[path.to_str().unwrap()])
    }

    /// Reads one message (one read of 64 KiB) and prints it.
    fn read_one(path: &Path) -> Proc {
        let input = format!("if={}", path.display());
        Proc::spawn("dd", &[&input, "bs=65536", "count=1", "status=none"])
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid()), signal).unwrap();
    }

    fn stdout(&self) -> Vec<u8> {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    fn running(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status.is_none()
    }

    /// Polls until the process waits in a FUSE read or write; fails if it
    /// ends first.
    #[track_caller]
    fn wait_blocked(&mut self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !waiting_on_fuse(self.pid()) {
            assert!(
                self.running(),
                "{what}: ended ({:?}) instead of waiting; stdout {:?}, stderr {:?}",
                self.status,
                String::from_utf8_lossy(&self.stdout()),
                self.stderr()
            );
            assert!(Instant::now() < deadline, "{what}: not waiting in a FUSE call after 10 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits up to `limit` for the process to end, then for its output.
    #[track_caller]
    fn wait_exit(&mut self, limit: Duration, what: &str) -> ExitStatus {
        let deadline = Instant::now() + limit;
        while self.running() {
            assert!(
                Instant::now() < deadline,
                "{what}: still running after {limit:?}; stdout {:?}, stderr {:?}",
                String::from_utf8_lossy(&self.stdout()),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        self.status.unwrap()
    }
}

impl Drop for Proc {
    /// Kills the process if it still runs. A killed process whose FUSE request
    /// the daemon never answers cannot end before the mount goes away, so this
    /// waits only a little: the harness then unmounts and stops the daemon,
    /// which ends the request, and the test fails instead of hanging.
    fn drop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
            let _ = wait_timeout(&mut self.child, Duration::from_secs(1));
        }
    }
}

/// A Python reader that handles SIGUSR1: says "caught" on stderr, then
/// either gives up (exit 3) or returns, so that os.read retries (PEP 475).
/// It reads one message and prints it.
fn python_reader(path: &Path, give_up: bool) -> Proc {
    const SCRIPT: &str = r#"
import os, signal, sys
give_up = sys.argv[2] == "give-up"
def caught(signum, frame):
    os.write(2, b"caught\n")
    if give_up:
        raise SystemExit(3)
signal.signal(signal.SIGUSR1, caught)
fd = os.open(sys.argv[1], os.O_RDONLY)
os.write(1, os.read(fd, 65536))
"#;
    let mode = if give_up { "give-up" } else { "retry" };
    Proc::spawn("python3", &["-c", SCRIPT, path.to_str().unwrap(), mode])
}

/// A Python writer: one write(2) of `body`; on failure prints strerror.
fn python_writer(path: &Path, body: &str) -> Proc {
    const SCRIPT: &str = r#"
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
try:
    os.write(fd, sys.argv[2].encode())
except OSError as e:
    print(e.strerror, file=sys.stderr)
    sys.exit(1)
"#;
    Proc::spawn("python3", &["-c", SCRIPT, path.to_str().unwrap(), body])
}

/// After a waiter has ended: the daemon holds no wait for it, and a message
/// sent now stays queued, sent by us and not taken and put back by the daemon
/// (which would make it the sender), until we receive it exactly once.
#[track_caller]
fn assert_nothing_consumed_for_the_dead(m: &Mounted, id: MsqId, what: &str) {
    wait_until_daemon_idle(m);
    let before = kstat(id);
    assert_eq!(before.qnum, 0, "{what}: precondition, empty queue");
    send(id, 1, b"m");
    let k = kstat(id);
    assert_eq!((k.qnum, k.lspid), (1, std::process::id() as i32), "{what}: the message must stay queued, untouched");
    assert_eq!(k.lrpid, before.lrpid, "{what}: nobody received since");
    assert_eq!(receive(id), (1, b"m".to_vec()), "{what}");
    assert_eq!(qnum(id), 0, "{what}");
}
