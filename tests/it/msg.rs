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

use crate::common::*;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipcfs::ipc::Errno;
use ipcfs::ipc::msg::{self, MsgStat, MsqId};
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

// ---- 1. layout ----

#[test]
fn queues_are_directories_with_key_links_only_for_keyed_queues() {
    let m = Mounted::new();
    let keyed = create_queue(0x1234abcd, 0o640);
    let high = create_queue(0xfedc0001_u32 as i32, 0o600);
    let private = create_queue(libc::IPC_PRIVATE, 0o600);
    let mut ids: Vec<String> = [keyed, high, private].iter().map(|id| id.0.to_string()).collect();
    ids.sort();
    assert_eq!(list(&m.path("msg")), ids);
    assert_eq!(list(&m.path("by-key/msg")), ["0x1234abcd", "0xfedc0001"], "a link per keyed queue, none for private");
    assert!(list(&m.path("by-key/shm")).is_empty() && list(&m.path("by-key/sem")).is_empty());

    for (key, id) in [("0x1234abcd", keyed), ("0xfedc0001", high)] {
        let link = m.path(format!("by-key/msg/{key}"));
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "{key} is a symlink");
        assert_eq!(fs::read_link(&link).unwrap(), Path::new(&format!("../../msg/{}", id.0)));
        let followed = fs::metadata(&link).unwrap();
        assert!(followed.is_dir());
        assert_eq!(followed.ino(), fs::metadata(qpath(&m, id, "")).unwrap().ino(), "{key} leads to msg/{}", id.0);
        assert_eq!(list(&link), ["any"]);
    }
    assert!(fs::metadata(qpath(&m, private, "")).unwrap().is_dir());
    assert_eq!(xattr(&qpath(&m, private, ""), "user.ipc.key").unwrap(), "0x00000000");
    assert_eq!(errno(fs::symlink_metadata(m.path("by-key/msg/0x00000000"))), libc::ENOENT);
    for id in [keyed, high, private] {
        assert_eq!(list(&qpath(&m, id, "")), ["any"], "an empty queue lists only any");
        assert!(fs::metadata(qpath(&m, id, "any")).unwrap().is_file());
    }
}

#[test]
fn queues_made_and_removed_by_ipcmk_and_ipcrm_show_at_once() {
    let m = Mounted::new();
    // Looked up (and missed) before they exist: no negative entry may stick.
    assert_eq!(errno(fs::metadata(m.path("msg/0"))), libc::ENOENT);
    assert_eq!(errno(fs::symlink_metadata(m.path("by-key/msg/0x00c0ffee"))), libc::ENOENT);
    assert!(list(&m.path("msg")).is_empty());

    let text = sh_ok("ipcmk -Q -p 0640");
    let made = MsqId(text.trim().strip_prefix("Message queue id: ").unwrap().parse().unwrap());
    assert_eq!(made, MsqId(0), "the first id of a fresh IPC namespace");
    let md = fs::metadata(m.path("msg/0")).unwrap();
    assert!(md.is_dir());
    assert_eq!(md.mode() & 0o7777, 0o750, "0640 plus search where read is granted");
    let made_key = kstat(made).perm.key.to_string();
    assert_eq!(list(&m.path("by-key/msg")), std::slice::from_ref(&made_key));

    let keyed = create_queue(0x00c0ffee, 0o600);
    assert_eq!(fs::read_link(m.path("by-key/msg/0x00c0ffee")).unwrap(), Path::new(&format!("../../msg/{}", keyed.0)));
    let mut both = vec![made.0.to_string(), keyed.0.to_string()];
    both.sort();
    assert_eq!(list(&m.path("msg")), both);

    sh_ok(&format!("ipcrm -q {}", made.0));
    assert_eq!(list(&m.path("msg")), [keyed.0.to_string()]);
    assert_eq!(errno(fs::metadata(qpath(&m, made, ""))), libc::ENOENT);
    assert_eq!(errno(fs::symlink_metadata(m.path(format!("by-key/msg/{made_key}")))), libc::ENOENT);
    assert_eq!(list(&m.path("by-key/msg")), ["0x00c0ffee"]);

    sh_ok("ipcrm -Q 0x00c0ffee");
    assert!(list(&m.path("msg")).is_empty());
    assert!(list(&m.path("by-key/msg")).is_empty());
    assert_eq!(errno(fs::metadata(qpath(&m, keyed, ""))), libc::ENOENT);
    assert_eq!(errno(fs::symlink_metadata(m.path("by-key/msg/0x00c0ffee"))), libc::ENOENT);
}

#[test]
fn listing_shows_any_and_the_queued_types_and_takes_nothing() {
    let m = Mounted::new();
    let id = create_queue(0x11, 0o600);
    let dir = qpath(&m, id, "");
    assert_eq!(list(&dir), ["any"]);

    for (mtype, body) in [(7, "seven"), (1, "one"), (42, "x"), (7, "again"), (100000, "big type"), (3, "")] {
        send(id, mtype, body.as_bytes());
    }
    let before = queued(id);
    let expected = ["1", "100000", "3", "42", "7", "any"];
    assert_eq!(list(&dir), expected, "any and every type with messages, an empty message included");
    let mut ls: Vec<String> = sh_ok(&format!("ls -1 {}", q(&dir))).lines().map(str::to_string).collect();
    ls.sort();
    assert_eq!(ls, expected, "ls");
    let mut ls_a: Vec<String> = sh_ok(&format!("ls -1a {}", q(&dir))).lines().map(str::to_string).collect();
    ls_a.sort();
    assert_eq!(ls_a, [".", "..", "1", "100000", "3", "42", "7", "any"], "ls -a shows neither .recv nor .wait");
    sh_ok(&format!("ls -la {} >/dev/null", q(&dir)));

    let k = kstat(id);
    assert_eq!(queued(id), before, "listing took nothing");
    assert_eq!((k.qnum, k.rtime, k.lrpid), (6, 0, 0), "listing received nothing: {k:?}");

    // .wait is not listed but is there, with the same files.
    assert!(fs::metadata(dir.join(".wait")).unwrap().is_dir());
    assert_eq!(list(&dir.join(".wait")), expected);
    assert!(fs::metadata(dir.join(".wait/42")).unwrap().is_file());
    assert_eq!(queued(id), before, "listing .wait took nothing");

    // A type disappears from the listing once its last message is taken.
    let out = sh_bounded(&format!("dd if={} bs=65536 count=1 status=none", q(&dir.join(".wait/42"))));
    assert_eq!(assert_ok(&out, "one read of .wait/42"), "x");
    assert_eq!(sh_ok(&format!("cat {}", q(&dir.join(".recv/7")))), "sevenagain");
    assert_eq!(list(&dir), ["1", "100000", "3", "any"]);
    drain(id);
    assert_eq!(list(&dir), ["any"]);
}

#[test]
fn reading_a_listed_file_shows_messages_without_taking_them() {
    let m = Mounted::new();
    let id = create_queue(0x12, 0o600);
    for (mtype, body) in [(1, "first\n"), (2, "second message\n"), (1, "third\n")] {
        send(id, mtype, body.as_bytes());
    }
    let before = kstat(id);
    assert_eq!((before.qnum, before.cbytes), (3, 27), "precondition");

    let out = sh_bounded(&format!("cat {}", q(&qpath(&m, id, "any"))));
    assert_eq!(assert_ok(&out, "cat any"), "first\nsecond message\nthird\n", "every message, in queue order");
    let out = sh_bounded(&format!("cat {}", q(&qpath(&m, id, "1"))));
    assert_eq!(assert_ok(&out, "cat 1"), "first\nthird\n", "the type-1 messages only");

    // A freshly opened file: one read, one whole message, then the next.
    let file = File::open(qpath(&m, id, "any")).unwrap();
    assert_eq!(read_once(&file, BIG).unwrap(), b"first\n", "the first read: the first message");
    assert_eq!(read_once(&file, BIG).unwrap(), b"second message\n", "the second read: the second message");
    drop(file);

    let k = kstat(id);
    assert_eq!((k.qnum, k.cbytes), (3, before.cbytes), "reading the listed files took nothing: {k:?}");
    assert_eq!((k.rtime, k.lrpid), (before.rtime, before.lrpid), "nobody received: {k:?}");
    assert_eq!(
        drain(id),
        messages(&[(1, "first\n"), (2, "second message\n"), (1, "third\n")]),
        "msgrcv still gets every message, in the original order"
    );
}

#[test]
fn the_recv_and_wait_names_are_not_listed_and_receive() {
    let m = Mounted::new();
    let id = create_queue(0x13, 0o600);
    for (mtype, body) in [(1, "one"), (2, "two"), (1, "three")] {
        send(id, mtype, body.as_bytes());
    }
    let dir = qpath(&m, id, "");
    let mut ls_a: Vec<String> = sh_ok(&format!("ls -1a {}", q(&dir))).lines().map(str::to_string).collect();
    ls_a.sort();
    assert_eq!(ls_a, [".", "..", "1", "2", "any"], "ls -a shows neither .recv nor .wait");
    assert_eq!(list(&dir), ["1", "2", "any"]);
    // Unlisted, but there: both are directories.
    for sub in [".recv", ".wait"] {
        assert!(fs::metadata(dir.join(sub)).unwrap().is_dir(), "{sub} is a directory");
        assert_eq!(sh_ok(&format!("stat -c %F {}", q(&dir.join(sub)))), "directory\n", "stat {sub}");
    }
    assert_eq!(qnum(id), 3, "looking took nothing");

    // One read(2), one message received.
    let file = File::open(qpath(&m, id, ".recv/any")).unwrap();
    assert_eq!(read_once(&file, BIG).unwrap(), b"one", "one read, one message");
    assert_eq!(queued(id), messages(&[(2, "two"), (1, "three")]), "the first message was received");
    assert_eq!(read_once(&file, BIG).unwrap(), b"two");
    assert_eq!(queued(id), messages(&[(1, "three")]));
    drop(file);

    // dd's one read of 64 KiB receives one message; cat receives the rest
    // and leaves the queue empty.
    send(id, 5, b"five");
    send(id, 1, b"six");
    let recv_any = q(&qpath(&m, id, ".recv/any"));
    let out = sh_bounded(&format!("dd if={recv_any} bs=65536 count=1 status=none"));
    assert_eq!(assert_ok(&out, "one read of .recv/any"), "three");
    assert_eq!(queued(id), messages(&[(5, "five"), (1, "six")]));
    let out = sh_bounded(&format!("cat {recv_any}"));
    assert_eq!(assert_ok(&out, "cat .recv/any"), "fivesix");
    let k = kstat(id);
    assert_eq!((k.qnum, k.cbytes), (0, 0), "cat .recv/any left the queue empty: {k:?}");
    assert_eq!(k.lrpid, m.daemon_pid().unwrap(), "the daemon received");
    let out = sh_bounded(&format!("cat {recv_any}"));
    assert_eq!(assert_ok(&out, "cat .recv/any of an empty queue"), "", "end-of-file at once");
}

// ---- 2. one write = one message, one read of .recv/ = one message ----

#[test]
fn one_write_sends_one_message_of_the_files_type() {
    let m = Mounted::new();
    let id = create_queue(0x21, 0o600);
    let path = |name: &str| q(&qpath(&m, id, name));

    sh_ok(&format!("echo hi > {}", path("any")));
    assert_eq!(queued(id), messages(&[(1, "hi\n")]), "any sends type 1, the newline included");
    sh_ok(&format!("echo hi > {}", path("42")));
    sh_ok(&format!("printf 'no newline' > {}", path("5")));
    sh_ok(&format!("printf max > {}", path(&i64::MAX.to_string())));
    assert_eq!(
        queued(id),
        messages(&[(1, "hi\n"), (42, "hi\n"), (5, "no newline"), (i64::MAX, "max")]),
        "an unlisted type can be written"
    );
    drain(id);

    // Two writes through one descriptor are two messages, never merged.
    sh_ok(&format!("{{ printf first; printf second; }} > {}", path("9")));
    assert_eq!(queued(id), messages(&[(9, "first"), (9, "second")]));
    drain(id);

    let file = OpenOptions::new().write(true).open(qpath(&m, id, "any")).unwrap();
    assert_eq!(write_once(&file, b"abc").unwrap(), 3);
    assert_eq!(write_once(&file, b"defg").unwrap(), 4);
    assert_eq!(queued(id), messages(&[(1, "abc"), (1, "defg")]));
    let k = kstat(id);
    assert_eq!((k.qnum, k.cbytes), (2, 7));
}

#[test]
fn binary_bodies_with_nul_bytes_round_trip_exactly() {
    let m = Mounted::new();
    let id = create_queue(0x22, 0o600);
    let body: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();

    // Through the file, out through msgrcv.
    let file = OpenOptions::new().write(true).open(qpath(&m, id, "3")).unwrap();
    assert_eq!(write_once(&file, &body).unwrap(), body.len());
    drop(file);
    assert_eq!(receive(id), (3, body.clone()));
    assert_eq!(qnum(id), 0);

    // In through msgsnd, out through the file: one read, exactly the body.
    send(id, 9, &body);
    let file = File::open(qpath(&m, id, ".recv/9")).unwrap();
    assert_eq!(read_once(&file, BIG).unwrap(), body);
    assert_eq!(qnum(id), 0);

    // And through cat.
    send(id, 1, &body);
    send(id, 2, b"\0");
    let out = Command::new("cat").arg(qpath(&m, id, ".recv/any")).output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, [&body[..], b"\0"].concat());
    assert_eq!(qnum(id), 0);
}

#[test]
fn one_read_receives_one_whole_message() {
    let m = Mounted::new();
    let id = create_queue(0x23, 0o600);
    for (mtype, body) in [(1, "first\n"), (2, "second message\n"), (1, "third\n")] {
        send(id, mtype, body.as_bytes());
    }
    let file = File::open(qpath(&m, id, ".recv/any")).unwrap();
    assert_eq!(read_once(&file, BIG).unwrap(), b"first\n", "one read, one message");
    assert_eq!(queued(id), messages(&[(2, "second message\n"), (1, "third\n")]));
    assert_eq!(read_once(&file, BIG).unwrap(), b"second message\n");
    assert_eq!(read_once(&file, BIG).unwrap(), b"third\n");
    assert_eq!(read_once(&file, BIG).unwrap(), b"", "an empty queue reads as end-of-file");
    assert_eq!(read_once(&file, BIG).unwrap(), b"");

    for (mtype, body) in [(1, "first\n"), (2, "second message\n"), (1, "third\n")] {
        send(id, mtype, body.as_bytes());
    }
    let out = sh_bounded(&format!("cat {}", q(&qpath(&m, id, ".recv/any"))));
    assert_eq!(assert_ok(&out, "cat .recv/any"), "first\nsecond message\nthird\n", "every message, in order");
    assert_eq!(qnum(id), 0);
}

/// Receiving and sending have no file position (reading a listed file
/// browses a snapshot, which does).
#[test]
fn receiving_and_sending_files_have_no_file_position() {
    let m = Mounted::new();
    let id = create_queue(0x26, 0o600);
    send(id, 1, b"stays");
    let mut file = File::open(qpath(&m, id, ".recv/any")).unwrap();
    let mut buf = vec![0u8; BIG];
    assert_eq!(errno(file.read_at(&mut buf, 0)), libc::ESPIPE, "pread");
    assert_eq!(queued(id), messages(&[(1, "stays")]), "pread took nothing");
    assert_eq!(errno(file.seek(SeekFrom::Start(0))), libc::ESPIPE, "lseek");
    let writer = OpenOptions::new().write(true).open(qpath(&m, id, "4")).unwrap();
    assert_eq!(errno(writer.write_at(b"x", 0)), libc::ESPIPE, "pwrite");
    assert_eq!(queued(id), messages(&[(1, "stays")]), "pwrite sent nothing");
}

#[test]
fn reads_on_an_empty_queue_return_end_of_file_at_once() {
    let m = Mounted::new();
    let id = create_queue(0x24, 0o600);
    let started = Instant::now();
    for name in [".recv/any", ".recv/1", ".recv/77"] {
        let out = sh_bounded(&format!("cat {}", q(&qpath(&m, id, name))));
        assert_eq!(assert_ok(&out, &format!("cat {name}")), "");
        let file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(qpath(&m, id, name)).unwrap();
        assert_eq!(read_once(&file, 100).unwrap(), b"", "{name} with O_NONBLOCK: end-of-file, not EAGAIN");
        let file = File::open(qpath(&m, id, name)).unwrap();
        assert_eq!(read_once(&file, 100).unwrap(), b"", "{name}: end-of-file");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "reads without .wait must not wait");
    assert_eq!(kstat(id).qnum, 0);
}

#[test]
fn a_recv_type_file_receives_only_its_type() {
    let m = Mounted::new();
    let id = create_queue(0x25, 0o600);
    for (mtype, body) in [(5, "a5"), (6, "b6"), (5, "c5"), (7, "d7")] {
        send(id, mtype, body.as_bytes());
    }
    assert_eq!(sh_ok(&format!("cat {}", q(&qpath(&m, id, ".recv/5")))), "a5c5");
    assert_eq!(queued(id), messages(&[(6, "b6"), (7, "d7")]), "other types stay queued");
    assert_eq!(sh_ok(&format!("cat {}", q(&qpath(&m, id, ".recv/8")))), "", "no type-8 message");
    assert_eq!(queued(id), messages(&[(6, "b6"), (7, "d7")]));
    let file = File::open(qpath(&m, id, ".recv/7")).unwrap();
    assert_eq!(read_once(&file, BIG).unwrap(), b"d7");
    assert_eq!(read_once(&file, BIG).unwrap(), b"");
    assert_eq!(queued(id), messages(&[(6, "b6")]));
}

// ---- 3, 4. sizes ----

#[test]
fn a_read_buffer_smaller_than_the_message_is_e2big_and_the_message_stays() {
    let m = Mounted::new();
    let id = create_queue(0x31, 0o600);
    let body: Vec<u8> = (0..100u8).collect();
    send(id, 4, &body);
    send(id, 1, b"after");
    let before = queued(id);

    for name in [".recv/any", ".recv/4", ".wait/any", ".wait/4"] {
        let file = File::open(qpath(&m, id, name)).unwrap();
        assert_eq!(errno(read_once(&file, 10)), libc::E2BIG, "{name}: 10-byte buffer, 100-byte message");
        assert_eq!(errno(read_once(&file, 99)), libc::E2BIG, "{name}: one byte short");
        assert_eq!(queued(id), before, "{name}: the message stays queued, first");
    }
    let out = sh_bounded(&format!("LC_ALL=C dd if={} bs=10 count=1 status=none", q(&qpath(&m, id, ".recv/any"))));
    assert_refused(&out, "Argument list too long", "dd with a 10-byte block");
    assert!(out.stdout.is_empty());
    assert_eq!(queued(id), before);
    assert_eq!(kstat(id).lrpid, 0, "nothing was received");

    // Exactly the message's size is enough.
    let file = File::open(qpath(&m, id, ".recv/any")).unwrap();
    assert_eq!(read_once(&file, 100).unwrap(), body);
    assert_eq!(queued(id), messages(&[(1, "after")]));
}

#[test]
fn a_message_larger_than_msgmax_is_einval_and_exactly_msgmax_is_sent() {
    let m = Mounted::new();
    let id = create_queue(0x41, 0o600);
    let msgmax = kernel_msgmax();
    assert!(kstat(id).qbytes as usize >= 2 * msgmax, "precondition: room for two of the largest messages");

    let file = OpenOptions::new().write(true).open(qpath(&m, id, "any")).unwrap();
    assert_eq!(errno(write_once(&file, &vec![b'x'; msgmax + 1])), libc::EINVAL, "msgmax + 1 bytes");
    let k = kstat(id);
    assert_eq!((k.qnum, k.cbytes, k.stime), (0, 0, 0), "nothing was sent");

    let body: Vec<u8> = (0..msgmax).map(|i| (i % 251) as u8).collect();
    assert_eq!(write_once(&file, &body).unwrap(), msgmax, "exactly msgmax bytes");
    assert_eq!(queued(id), vec![(1, body.clone())]);

    let reader = File::open(qpath(&m, id, ".recv/any")).unwrap();
    assert_eq!(read_once(&reader, BIG).unwrap(), body);
    assert_eq!(qnum(id), 0);
}

/// The largest message a write(2) can send, whatever kernel.msgmax says:
/// 1 MiB less 4 KiB.
const LARGEST_WRITE: usize = 1_044_480;

#[test]
fn one_write_is_one_message_up_to_1_mib_less_4_kib_and_longer_writes_send_nothing() {
    let m = Mounted::new();
    // Room in this IPC namespace for messages beyond what one FUSE request carries.
    fs::write("/proc/sys/kernel/msgmax", (4usize << 20).to_string()).unwrap();
    fs::write("/proc/sys/kernel/msgmnb", (16usize << 20).to_string()).unwrap();
    let id = create_queue(0x42, 0o600);
    assert_eq!(kstat(id).qbytes, 16 << 20, "precondition");
    let take = |id| msg::receive(id, 0, 4 << 20, false).map(|m| (m.mtype, m.body));
    let file = OpenOptions::new().write(true).open(qpath(&m, id, "8")).unwrap();
    let data: Vec<u8> = (0..(3usize << 20)).map(|i| (i % 253) as u8).collect();

    // Any page offset of the caller's buffer: the kernel splits long writes there.
    for offset in [0, 1, 100, 4095] {
        for len in [LARGEST_WRITE + 1, 1 << 20, (1 << 20) + 1, (2 << 20) + 3] {
            let what = format!("a write of {len} bytes at buffer offset {offset}");
            assert_eq!(errno(write_once(&file, &data[offset..offset + len])), libc::EINVAL, "{what}");
            let k = kstat(id);
            assert_eq!((k.qnum, k.cbytes), (0, 0), "{what}: nothing may be sent, not even a piece");
        }
        let body = &data[offset..offset + LARGEST_WRITE];
        assert_eq!(write_once(&file, body).unwrap(), LARGEST_WRITE, "the largest write at offset {offset}");
        assert_eq!(qnum(id), 1, "one write, one message");
        assert_eq!(take(id), Ok((8, body.to_vec())));
    }

    // Reading: the largest message whole; a longer one (sent with msgsnd)
    // fails with E2BIG and stays queued.
    let reader = File::open(qpath(&m, id, ".recv/any")).unwrap();
    send(id, 1, &data[..LARGEST_WRITE]);
    assert_eq!(read_once(&reader, 2 << 20).unwrap(), &data[..LARGEST_WRITE]);
    send(id, 1, &data[..LARGEST_WRITE + 1]);
    assert_eq!(errno(read_once(&reader, 2 << 20)), libc::E2BIG, "a message longer than ipcfs moves");
    assert_eq!(take(id), Ok((1, data[..LARGEST_WRITE + 1].to_vec())), "it stayed queued");
}

// ---- 5. full queues ----

#[test]
fn a_write_to_a_full_queue_through_o_nonblock_fails_with_eagain() {
    let m = Mounted::new();
    let id = create_queue(0x51, 0o600);
    send(id, 1, b"12345678");
    sh_ok(&format!("setfattr -n user.ipc.qbytes -v 10 {}", q(&qpath(&m, id, ""))));
    assert_eq!(kstat(id).qbytes, 10);

    let file = OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(qpath(&m, id, "any")).unwrap();
    assert_eq!(errno(write_once(&file, b"abc")), libc::EAGAIN, "8 + 3 bytes do not fit in 10");
    assert_eq!(queued(id), messages(&[(1, "12345678")]), "nothing was sent");
    assert_eq!(write_once(&file, b"ab").unwrap(), 2, "8 + 2 bytes fit");
    assert_eq!(queued(id), messages(&[(1, "12345678"), (1, "ab")]));
    assert_eq!(errno(write_once(&file, b"c")), libc::EAGAIN);
    assert_eq!(queued(id), messages(&[(1, "12345678"), (1, "ab")]));
}

#[test]
fn a_write_to_a_full_queue_waits_until_there_is_room() {
    let m = Mounted::new();
    let id = full_queue(0x52);
    let mut writer = Proc::sh(&format!("printf abc > {}", q(&qpath(&m, id, "3"))));
    writer.wait_blocked("a writer to a full queue");
    wait_until_daemon_holds(&m, 1);
    assert_eq!(queued(id), messages(&[(1, "12345678")]), "nothing sent while waiting");

    assert_eq!(receive(id), (1, b"12345678".to_vec()));
    let status = writer.wait_exit(PROMPTLY, "the writer once there is room");
    assert!(status.success(), "{status}: {}", writer.stderr());
    assert_eq!(queued(id), messages(&[(3, "abc")]), "the message arrived exactly once, with its type");
    wait_until_daemon_idle(&m);
    assert_eq!(queued(id), messages(&[(3, "abc")]));
}

#[test]
fn a_killed_waiting_writer_sends_nothing() {
    let m = Mounted::new();
    let id = full_queue(0x53);
    for signal in [Signal::SIGKILL, Signal::SIGTERM, Signal::SIGINT] {
        let before = queued(id);
        let mut writer = Proc::sh(&format!("printf abc > {}", q(&qpath(&m, id, "any"))));
        writer.wait_blocked("a writer to a full queue");
        wait_until_daemon_holds(&m, 1);
        writer.signal(signal);
        let status = writer.wait_exit(PROMPTLY, &format!("a waiting writer after {signal}"));
        assert_eq!(exit_signal(&status), Some(signal as i32), "{status}");
        wait_until_daemon_idle(&m);
        assert_eq!(queued(id), before, "after {signal}: nothing partial, nothing sent");
    }
    // Room now: a send left behind by a dead writer would show.
    assert_eq!(receive(id), (1, b"12345678".to_vec()));
    wait_until_daemon_idle(&m);
    assert!(queued(id).is_empty());
}

// ---- 6. waiting receives ----

#[test]
fn a_read_under_wait_blocks_until_a_message_comes() {
    let m = Mounted::new();
    let id = create_queue(0x61, 0o600);
    let mut reader = Proc::read_one(&qpath(&m, id, ".wait/any"));
    reader.wait_blocked("a reader of .wait/any on an empty queue");
    assert_eq!(qnum(id), 0);
    send(id, 9, b"wake up\n");
    let status = reader.wait_exit(PROMPTLY, "the reader once a message came");
    assert!(status.success(), "{status}: {}", reader.stderr());
    assert_eq!(reader.stdout(), b"wake up\n");
    assert_eq!(qnum(id), 0);

    // A message already queued is returned at once.
    send(id, 1, b"ready");
    let out = sh_bounded(&format!("dd if={} bs=65536 count=1 status=none", q(&qpath(&m, id, ".wait/any"))));
    assert_eq!(assert_ok(&out, "dd of .wait/any"), "ready");
    assert_eq!(qnum(id), 0);
}

#[test]
fn cat_of_wait_any_prints_messages_as_they_come_until_interrupted() {
    let m = Mounted::new();
    let id = create_queue(0x62, 0o600);
    let mut reader = Proc::cat(&qpath(&m, id, ".wait/any"));
    let mut expected = Vec::new();
    for (mtype, body) in [(1, "one\n"), (5, "two\n"), (1, "three\n")] {
        reader.wait_blocked("cat .wait/any");
        send(id, mtype, body.as_bytes());
        expected.extend_from_slice(body.as_bytes());
        wait_until(&format!("cat printed {body:?}"), PROMPTLY, || reader.stdout() == expected);
    }
    reader.wait_blocked("cat .wait/any after three messages");
    reader.signal(Signal::SIGINT);
    let status = reader.wait_exit(PROMPTLY, "cat .wait/any after SIGINT");
    assert_eq!(exit_signal(&status), Some(libc::SIGINT));
    assert_eq!(reader.stdout(), expected);
    assert_eq!(qnum(id), 0);
}

#[test]
fn a_wait_type_file_wakes_only_for_its_type() {
    let m = Mounted::new();
    let id = create_queue(0x63, 0o600);
    let mut reader = Proc::read_one(&qpath(&m, id, ".wait/7"));
    reader.wait_blocked("a reader of .wait/7");
    send(id, 3, b"three");
    send(id, 1, b"one");
    send(id, 7, b"seven");
    let status = reader.wait_exit(PROMPTLY, "the reader of .wait/7");
    assert!(status.success(), "{status}: {}", reader.stderr());
    assert_eq!(reader.stdout(), b"seven", "the first type-7 message, not an earlier one of another type");
    assert_eq!(queued(id), messages(&[(3, "three"), (1, "one")]), "other types stay queued");
}

#[test]
fn a_wait_file_opened_with_o_nonblock_fails_with_eagain() {
    let m = Mounted::new();
    let id = create_queue(0x64, 0o600);
    let open_nonblocking =
        |name: &str| OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(qpath(&m, id, name)).unwrap();
    let any = open_nonblocking(".wait/any");
    assert_eq!(errno(read_once(&any, 100)), libc::EAGAIN, ".wait/any on an empty queue");
    send(id, 3, b"three");
    let seven = open_nonblocking(".wait/7");
    assert_eq!(errno(read_once(&seven, 100)), libc::EAGAIN, ".wait/7 with only type 3 queued");
    assert_eq!(queued(id), messages(&[(3, "three")]));

    send(id, 7, b"seven");
    assert_eq!(read_once(&seven, 100).unwrap(), b"seven", "a queued message is returned");
    assert_eq!(read_once(&any, 100).unwrap(), b"three");
    assert_eq!(errno(read_once(&any, 100)), libc::EAGAIN);
    assert_eq!(qnum(id), 0);
}

// ---- 7. interrupted and killed waiters ----

#[test]
fn interrupted_and_terminated_waiters_end_promptly_and_take_nothing() {
    let m = Mounted::new();
    let id = create_queue(0x71, 0o600);
    for (signal, file) in [(Signal::SIGINT, ".wait/any"), (Signal::SIGTERM, ".wait/any"), (Signal::SIGTERM, ".wait/5")]
    {
        let what = format!("cat {file} after {signal}");
        let mut reader = Proc::cat(&qpath(&m, id, file));
        reader.wait_blocked(&what);
        wait_until_daemon_holds(&m, 1);
        reader.signal(signal);
        let status = reader.wait_exit(PROMPTLY, &what);
        assert_eq!(exit_signal(&status), Some(signal as i32), "{what}: {status}");
        assert!(reader.stdout().is_empty());
        assert_nothing_consumed_for_the_dead(&m, id, &what);
    }
}

#[test]
fn waiters_killed_with_sigkill_end_promptly_and_take_nothing() {
    let m = Mounted::new();
    let id = create_queue(0x72, 0o600);
    for round in 0..10 {
        let file = if round % 2 == 0 { ".wait/any" } else { ".wait/1" };
        let what = format!("round {round}: cat {file} after SIGKILL");
        let mut reader = Proc::cat(&qpath(&m, id, file));
        reader.wait_blocked(&what);
        wait_until_daemon_holds(&m, 1);
        reader.signal(Signal::SIGKILL);
        let status = reader.wait_exit(PROMPTLY, &what);
        assert_eq!(exit_signal(&status), Some(libc::SIGKILL), "{what}: {status}");
        assert_nothing_consumed_for_the_dead(&m, id, &what);
    }
}

#[test]
fn a_waiter_ended_by_timeout_s_int_takes_nothing() {
    let m = Mounted::new();
    let id = create_queue(0x73, 0o600);
    let started = Instant::now();
    let path = qpath(&m, id, ".wait/any");
    let mut timeout = Proc::spawn("timeout", &["-s", "INT", "1.5", "cat", path.to_str().unwrap()]);
    // The cat that timeout started must be waiting before the signal comes.
    let children = format!("/proc/{0}/task/{0}/children", timeout.pid());
    let mut cat = 0;
    wait_until("timeout started cat", Duration::from_secs(1), || {
        cat = fs::read_to_string(&children).unwrap_or_default().trim().parse().unwrap_or(0);
        cat != 0
    });
    wait_until("cat waits", Duration::from_secs(1), || waiting_on_fuse(cat));
    // timeout(1) waits for cat before it exits.
    let status = timeout.wait_exit(Duration::from_secs_f64(1.5) + PROMPTLY, "timeout -s INT 1.5 cat .wait/any");
    assert_eq!(status.code(), Some(124), "timeout says the command timed out: {status}, {}", timeout.stderr());
    assert!(started.elapsed() >= Duration::from_secs_f64(1.5));
    assert!(timeout.stdout().is_empty());
    assert_nothing_consumed_for_the_dead(&m, id, "timeout -s INT");
}

#[test]
fn a_reader_that_catches_the_signal_gets_eintr_and_takes_nothing() {
    let m = Mounted::new();
    let id = create_queue(0x74, 0o600);

    // Gives up in its handler: the read failed with EINTR, promptly.
    let mut quitter = python_reader(&qpath(&m, id, ".wait/any"), true);
    quitter.wait_blocked("a python reader of .wait/any");
    wait_until_daemon_holds(&m, 1);
    let signalled = Instant::now();
    quitter.signal(Signal::SIGUSR1);
    let status = quitter.wait_exit(PROMPTLY, "the python reader after SIGUSR1");
    assert_eq!(status.code(), Some(3), "{status}: {}", quitter.stderr());
    assert!(signalled.elapsed() < PROMPTLY);
    assert_eq!(quitter.stderr(), "caught\n");
    assert!(quitter.stdout().is_empty());
    assert_nothing_consumed_for_the_dead(&m, id, "a python reader that gave up");

    // Returns from its handler: Python retries the read, which gets the next
    // message and only that.
    let mut stayer = python_reader(&qpath(&m, id, ".wait/any"), false);
    stayer.wait_blocked("a python reader of .wait/any");
    wait_until_daemon_holds(&m, 1);
    stayer.signal(Signal::SIGUSR1);
    wait_until("the handler ran", PROMPTLY, || stayer.stderr() == "caught\n");
    stayer.wait_blocked("the python reader, retrying");
    wait_until_daemon_holds(&m, 1);
    assert_eq!(qnum(id), 0);
    send(id, 4, b"for the survivor");
    let status = stayer.wait_exit(PROMPTLY, "the python reader once a message came");
    assert!(status.success(), "{status}: {}", stayer.stderr());
    assert_eq!(stayer.stdout(), b"for the survivor");
    wait_until_daemon_idle(&m);
    assert_eq!(qnum(id), 0, "received exactly once");
}

/// A reader of `.wait/any` that the daemon holds in msgrcv, killed by
/// `signal` around the moment `body` is sent; returns what it printed.
fn kill_as_a_message_comes(m: &Mounted, id: MsqId, signal: Signal, kill_first: bool, body: &str) -> String {
    let what = format!("{signal} {} {body}", if kill_first { "before" } else { "after" });
    let mut reader = Proc::read_one(&qpath(m, id, ".wait/any"));
    reader.wait_blocked(&what);
    wait_until_daemon_holds(m, 1);
    if kill_first {
        reader.signal(signal);
        send(id, 1, body.as_bytes());
    } else {
        send(id, 1, body.as_bytes());
        reader.signal(signal);
    }
    let status = reader.wait_exit(PROMPTLY, &what);
    assert!(!status.success() || !reader.stdout().is_empty(), "{what}: {status} without output");
    String::from_utf8(reader.stdout()).unwrap()
}

/// The message arrives while the reader's fatal signal is pending: the
/// daemon either gives up before it receives anything, or sees the signal
/// when the message is received and puts it back. Either way the message
/// stays queued, once.
#[test]
fn waiters_killed_just_before_a_message_arrives_leave_it_queued() {
    let m = Mounted::new();
    let id = create_queue(0x75, 0o600);
    for round in 0..20u32 {
        let body = format!("m{round:02}");
        let signal = if round % 2 == 0 { Signal::SIGKILL } else { Signal::SIGTERM };
        let printed = kill_as_a_message_comes(&m, id, signal, true, &body);
        assert_eq!(printed, "", "round {round}: a reader killed before the message came printed it");
        wait_until_daemon_idle(&m);
        assert_eq!(drain(id), messages(&[(1, &body)]), "round {round}: {body} must stay queued exactly once");
    }
}

/// The message is sent first and the signal follows at once. The daemon may
/// hand the message over before the signal comes (the sender may even be
/// preempted in between), and a reader killed after that takes it down with
/// it: no filesystem can undo that. What must never happen is a message
/// delivered twice: put back although a reader printed it.
#[test]
fn waiters_killed_just_after_a_message_arrives_never_double_it() {
    let m = Mounted::new();
    let id = create_queue(0x77, 0o600);
    for round in 0..20u32 {
        let body = format!("m{round:02}");
        let signal = if round % 2 == 0 { Signal::SIGKILL } else { Signal::SIGTERM };
        let printed = kill_as_a_message_comes(&m, id, signal, false, &body);
        wait_until_daemon_idle(&m);
        let left = drain(id);
        assert!(printed.is_empty() || printed == body, "round {round}: printed {printed:?}");
        assert!(left.is_empty() || left == messages(&[(1, &body)]), "round {round}: left {left:?}");
        assert!(printed.is_empty() || left.is_empty(), "round {round}: {body} printed and also put back");
    }
}

#[test]
fn a_reader_interrupted_as_a_message_arrives_gets_it_exactly_once() {
    let m = Mounted::new();
    let id = create_queue(0x76, 0o600);
    for round in 0..20u32 {
        let body = format!("m{round:02}");
        // dd catches SIGUSR1 and reads again after EINTR.
        let mut reader = Proc::read_one(&qpath(&m, id, ".wait/any"));
        reader.wait_blocked("a reader of .wait/any");
        wait_until_daemon_holds(&m, 1);
        send(id, 1, body.as_bytes());
        // Vary the moment the signal comes, from at once to a little later.
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_micros(u64::from(round % 5) * 50) {
            std::hint::spin_loop();
        }
        reader.signal(Signal::SIGUSR1);
        let status = reader.wait_exit(PROMPTLY, &format!("round {round}: a reader interrupted as {body} came"));
        assert!(status.success(), "round {round}: {status}: {}", reader.stderr());
        assert_eq!(String::from_utf8(reader.stdout()).unwrap(), body, "round {round}");
        wait_until_daemon_idle(&m);
        assert_eq!(qnum(id), 0, "round {round}: received exactly once");
    }
}

// ---- 8. waits stall nothing ----

#[test]
fn waiting_readers_and_writers_stall_nothing_else() {
    let m = Mounted::new();
    let waited = create_queue(0x81, 0o666);
    let full = full_queue(0x82);
    let other = create_queue(0x83, 0o666);
    send(other, 1, b"other1 ");
    send(other, 2, b"other2 ");
    let segment = create_segment(0x84, 4096, 0o666);
    let sem_text = sh_ok("ipcmk -S 1");
    let sem: i32 = sem_text.trim().strip_prefix("Semaphore id: ").unwrap().parse().unwrap();

    let mut readers: Vec<Proc> = (0..10)
        .map(|i| {
            let file = if i % 2 == 0 { ".wait/any".to_string() } else { format!(".wait/{}", i) };
            Proc::cat(&qpath(&m, waited, &file))
        })
        .collect();
    let mut writer = Proc::sh(&format!("printf abc > {}", q(&qpath(&m, full, "any"))));
    for reader in &mut readers {
        reader.wait_blocked("a waiting reader");
    }
    writer.wait_blocked("a waiting writer");
    wait_until_daemon_holds(&m, 11);

    let p = |rel: String| q(&m.path(rel));
    let script = [
        format!("ls {} >/dev/null", p("msg".into())),
        format!(
            "ls {} {} {}",
            p(format!("msg/{}", waited.0)),
            p(format!("msg/{}/.wait", full.0)),
            p("by-key/msg".into())
        ),
        format!("stat -c %s {} {}", p(format!("msg/{}", full.0)), p(format!("msg/{}/.wait/any", waited.0))),
        format!("getfattr -n user.ipc.qnum --only-values {}; echo", p(format!("msg/{}", full.0))),
        format!("cat {}", p(format!("msg/{}/.recv/any", other.0))),
        format!("printf again > {}", p(format!("msg/{}/5", other.0))),
        format!("cat {}; echo", p(format!("msg/{}/.recv/5", other.0))),
        format!("printf seg > {}", p(format!("shm/{}", segment.0))),
        format!("head -c 3 {}; echo", p(format!("shm/{}", segment.0))),
        format!("echo 3 > {}", p(format!("sem/{sem}/0"))),
        format!("cat {}", p(format!("sem/{sem}/0"))),
        format!("getfattr -n user.ipc.qnum --only-values {}; echo", p(format!("msg/{}", waited.0))),
    ]
    .join(" && ");
    let started = Instant::now();
    let out = sh_bounded(&format!("set -e; {script}"));
    let text = assert_ok(&out, "operations while 11 waits are held");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let expected_tail = "8\n0\n1\nother1 other2 again\nseg\n3\n0\n";
    assert!(text.ends_with(expected_tail), "got {text:?}, expected it to end with {expected_tail:?}");
    assert_eq!(fs::read(m.shm(segment)).unwrap()[..3], *b"seg");
    assert!(readers.iter_mut().all(Proc::running) && writer.running(), "the waits are still held");

    // Now feed the waiters: every message goes to exactly one of them (the
    // readers of .wait/any may take any type; every type has a reader).
    let mut sent = Vec::new();
    for i in 0..10 {
        let mtype = if i % 2 == 0 { 1 } else { i };
        let body = format!("<w{i}>");
        send(waited, mtype, body.as_bytes());
        sent.push(body);
    }
    let all_output = |readers: &[Proc]| {
        let mut got: Vec<String> = readers
            .iter()
            .flat_map(|r| {
                let text = String::from_utf8(r.stdout()).unwrap();
                text.split_inclusive('>').map(str::to_string).collect::<Vec<_>>()
            })
            .collect();
        got.sort();
        got
    };
    sent.sort();
    wait_until("every waiter got a message", PROMPTLY, || all_output(&readers).len() >= sent.len());
    assert_eq!(all_output(&readers), sent, "each message went to exactly one waiter");
    assert_eq!(qnum(waited), 0);

    assert_eq!(receive(full), (1, b"12345678".to_vec()));
    let status = writer.wait_exit(PROMPTLY, "the waiting writer once there is room");
    assert!(status.success());
    assert_eq!(queued(full), messages(&[(1, "abc")]));
}

// ---- 9. stat and extended attributes ----

#[test]
fn stat_of_a_queue_and_its_files() {
    let m = Mounted::new();
    let id = create_queue(0x91, 0o640);
    let qbytes = kstat(id).qbytes;
    msg::set(id, NOBODY_UID, NOBODY_GID, 0o604, qbytes).unwrap();
    for (mtype, body) in [(5, "abc"), (7, "wxyz"), (5, "de"), (1, "")] {
        send(id, mtype, body.as_bytes());
    }
    let k = kstat(id);
    assert_eq!((k.cbytes, k.qnum, k.perm.cuid), (9, 4, 0), "precondition");

    let dir = fs::metadata(qpath(&m, id, "")).unwrap();
    assert!(dir.is_dir());
    assert_eq!(dir.size(), 9, "a queue's size is msg_cbytes");
    assert_eq!(dir.mode(), libc::S_IFDIR | 0o705, "0604 plus search where read is granted");
    assert_eq!((dir.uid(), dir.gid()), (NOBODY_UID, NOBODY_GID), "the owner, not the creator");

    for (name, size) in [("any", 9), ("5", 5), ("7", 4), ("1", 0), ("9", 0)] {
        let md = fs::metadata(qpath(&m, id, name)).unwrap();
        assert!(md.is_file(), "{name}");
        assert_eq!(md.size(), size, "size of {name}: bytes queued for it");
        assert_eq!(md.mode(), libc::S_IFREG | 0o604, "mode of {name}: the queue's permission bits");
        assert_eq!((md.uid(), md.gid()), (NOBODY_UID, NOBODY_GID), "owner of {name}");
    }
    assert_eq!(queued(id).len(), 4, "stat took nothing");

    // Sizes follow the queue.
    receive(id);
    assert_eq!(fs::metadata(qpath(&m, id, "5")).unwrap().size(), 2);
    assert_eq!(fs::metadata(qpath(&m, id, "any")).unwrap().size(), 6);
    assert_eq!(fs::metadata(qpath(&m, id, "")).unwrap().size(), 6);

    for (mode, dir_mode) in [(0o640, 0o750), (0o622, 0o722), (0o444, 0o555), (0o200, 0o200), (0o000, 0o000)] {
        msg::set(id, NOBODY_UID, NOBODY_GID, mode, qbytes).unwrap();
        assert_eq!(fs::metadata(qpath(&m, id, "")).unwrap().mode() & 0o7777, dir_mode, "queue mode {mode:o}");
        assert_eq!(fs::metadata(qpath(&m, id, "any")).unwrap().mode() & 0o7777, mode, "any with mode {mode:o}");
    }
}

#[test]
fn queue_times_are_the_kernels_receive_send_and_change_times() {
    let m = Mounted::new();
    let id = create_queue(0x92, 0o600);
    let times = |name: &str| {
        let md = fs::metadata(qpath(&m, id, name)).unwrap();
        (md.atime(), md.mtime(), md.ctime())
    };
    let k = kstat(id);
    assert_eq!((k.stime, k.rtime), (0, 0));
    assert_eq!(times(""), (k.ctime, k.ctime, k.ctime), "times never set show ctime");

    wait_for_next_second();
    sh_ok(&format!("printf x > {}", q(&qpath(&m, id, "any"))));
    let k = kstat(id);
    assert!(k.stime > k.ctime && k.rtime == 0, "precondition: {k:?}");
    assert_eq!(times(""), (k.ctime, k.stime, k.ctime), "mtime = msg_stime");

    wait_for_next_second();
    sh_ok(&format!("cat {} >/dev/null", q(&qpath(&m, id, ".recv/any"))));
    let k = kstat(id);
    assert!(k.rtime > k.stime && k.stime > k.ctime, "precondition: {k:?}");
    assert_eq!(times(""), (k.rtime, k.stime, k.ctime), "atime = msg_rtime");
    assert_eq!(times("any"), (k.rtime, k.stime, k.ctime), "the files show the queue's times");
}

#[test]
fn extended_attributes_equal_ipc_stat_ipcs_and_lsipc() {
    let m = Mounted::new();
    // Made by another user, then given to root: creator and owner differ.
    let text = assert_ok(&sh_as(USER, USER_GID, &[], "ipcmk -Q -p 0660"), "ipcmk as uid 1000");
    let id = MsqId(text.trim().strip_prefix("Message queue id: ").unwrap().parse().unwrap());
    msg::set(id, 0, NOBODY_GID, 0o664, 12345).unwrap();
    send(id, 2, b"hello");
    send(id, 3, b"there!");
    send(id, 4, b"x");
    // Received through ipcfs: the daemon is the last receiver.
    assert_eq!(sh_ok(&format!("cat {}", q(&qpath(&m, id, ".recv/3")))), "there!");
    let k = kstat(id);
    let daemon = m.daemon_pid().unwrap();
    assert_eq!((k.perm.cuid, k.perm.cgid, k.perm.uid), (USER, USER_GID, 0), "precondition");
    assert_eq!((k.lspid, k.lrpid), (std::process::id() as i32, daemon), "precondition");

    let expected: HashMap<String, String> = [
        ("user.ipc.key", k.perm.key.to_string()),
        ("user.ipc.id", id.0.to_string()),
        ("user.ipc.cuid", USER.to_string()),
        ("user.ipc.cgid", USER_GID.to_string()),
        ("user.ipc.qnum", "2".to_string()),
        ("user.ipc.qbytes", "12345".to_string()),
        ("user.ipc.cbytes", "6".to_string()),
        ("user.ipc.lspid", k.lspid.to_string()),
        ("user.ipc.lrpid", daemon.to_string()),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v))
    .collect();
    let path = qpath(&m, id, "");
    assert_eq!(getfattr_dump(&path), expected, "getfattr -d");
    for (name, value) in &expected {
        assert_eq!(&xattr(&path, name).unwrap(), value, "getfattr -n {name}");
    }

    // ipcs -q -i: numbers throughout.
    let detail = sh_ok(&format!("LC_ALL=C ipcs -q -i {}", id.0));
    let fields: HashMap<&str, &str> = detail.split_whitespace().filter_map(|w| w.split_once('=')).collect();
    let md = fs::metadata(&path).unwrap();
    for (field, value) in [
        ("uid", md.uid().to_string()),
        ("gid", md.gid().to_string()),
        ("cuid", expected["user.ipc.cuid"].clone()),
        ("cgid", expected["user.ipc.cgid"].clone()),
        ("cbytes", expected["user.ipc.cbytes"].clone()),
        ("cbytes", md.size().to_string()),
        ("qbytes", expected["user.ipc.qbytes"].clone()),
        ("qnum", expected["user.ipc.qnum"].clone()),
        ("lspid", expected["user.ipc.lspid"].clone()),
        ("lrpid", expected["user.ipc.lrpid"].clone()),
    ] {
        assert_eq!(fields.get(field).copied(), Some(value.as_str()), "ipcs -q -i {field}: {detail}");
    }
    assert_eq!(u32::from_str_radix(fields["mode"], 8).unwrap(), 0o664, "ipcs -q -i mode: {detail}");
    assert_eq!(md.mode() & 0o7777, 0o775, "0664 plus search where read is granted");

    // lsipc.
    let rows = lsipc_rows("-q --bytes", "KEY,ID,PERMS,CUID,CGID,UID,GID,USEDBYTES,MSGS,LSPID,LRPID");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    for (column, attribute) in [
        ("key", "user.ipc.key"),
        ("id", "user.ipc.id"),
        ("cuid", "user.ipc.cuid"),
        ("cgid", "user.ipc.cgid"),
        ("usedbytes", "user.ipc.cbytes"),
        ("msgs", "user.ipc.qnum"),
        ("lspid", "user.ipc.lspid"),
        ("lrpid", "user.ipc.lrpid"),
    ] {
        assert_eq!(row[column], expected[attribute], "lsipc {column}");
    }
    assert_eq!((row["uid"].as_str(), row["gid"].as_str()), ("0", &*NOBODY_GID.to_string()), "lsipc owner");
    assert_eq!(perm_bits(&row["perms"]), md.mode() & 0o666, "lsipc perms: the queue's, without search bits");
}

#[test]
fn setfattr_qbytes_sets_the_byte_limit_and_every_other_attribute_is_read_only() {
    let m = Mounted::new();
    let id = create_queue(0x93, 0o600);
    send(id, 1, b"queued");
    let path = qpath(&m, id, "");

    sh_ok(&format!("setfattr -n user.ipc.qbytes -v 100 {}", q(&path)));
    assert_eq!(kstat(id).qbytes, 100);
    assert_eq!(xattr(&path, "user.ipc.qbytes").unwrap(), "100");
    // Above kernel.msgmnb needs CAP_SYS_RESOURCE, which a container's root
    // may lack: ipcfs must agree with the kernel either way.
    let msgmnb = kernel_msgmnb();
    let out = sh(&format!("LC_ALL=C setfattr -n user.ipc.qbytes -v {} {}", msgmnb + 1, q(&path)));
    if has_capability(CAP_SYS_RESOURCE) {
        assert_ok(&out, "root raising qbytes above kernel.msgmnb");
        assert_eq!(kstat(id).qbytes, msgmnb + 1);
    } else {
        assert_refused(&out, "Operation not permitted", "root without CAP_SYS_RESOURCE going above msgmnb");
        assert_eq!(kstat(id).qbytes, 100);
        assert_eq!(msg::set(id, 0, 0, 0o600, msgmnb + 1), Err(Errno::EPERM), "the kernel agrees");
    }

    let before = (snapshot(id), kstat(id).perm.cuid);
    for name in [
        "user.ipc.key",
        "user.ipc.id",
        "user.ipc.cuid",
        "user.ipc.cgid",
        "user.ipc.qnum",
        "user.ipc.cbytes",
        "user.ipc.lspid",
        "user.ipc.lrpid",
    ] {
        let out = sh(&format!("LC_ALL=C setfattr -n {name} -v 1 {}", q(&path)));
        assert_refused(&out, "Operation not permitted", &format!("setfattr {name}"));
    }
    for bad in ["abc", "12x", "-5", "1.5", "0x10"] {
        let out = sh(&format!("LC_ALL=C setfattr -n user.ipc.qbytes -v {bad} {}", q(&path)));
        assert_refused(&out, "Invalid argument", &format!("setfattr user.ipc.qbytes {bad}"));
    }
    let out = sh(&format!("LC_ALL=C setfattr -n user.other -v 1 {}", q(&path)));
    assert_refused(&out, "Operation not supported", "setfattr of an unknown name");
    assert_eq!((snapshot(id), kstat(id).perm.cuid), before, "refused setfattr changed something");
}

#[test]
fn only_the_owner_creator_or_root_may_set_qbytes() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let root_queue = create_queue(0x94, 0o666);
    let before = snapshot(root_queue);
    let out = sh_as(
        USER,
        USER_GID,
        &[],
        &format!("LC_ALL=C setfattr -n user.ipc.qbytes -v 100 {}", q(&qpath(&m, root_queue, ""))),
    );
    assert_refused(&out, "Operation not permitted", "uid 1000 setting qbytes of a root queue");
    assert_eq!(snapshot(root_queue), before);

    let text = assert_ok(&sh_as(USER, USER_GID, &[], "ipcmk -Q -p 0600"), "ipcmk as uid 1000");
    let own = MsqId(text.trim().strip_prefix("Message queue id: ").unwrap().parse().unwrap());
    let path = q(&qpath(&m, own, ""));
    let out = sh_as(USER, USER_GID, &[], &format!("LC_ALL=C setfattr -n user.ipc.qbytes -v 1000 {path}"));
    assert_ok(&out, "the owner lowering qbytes");
    assert_eq!(kstat(own).qbytes, 1000);
    let msgmnb = kernel_msgmnb();
    let out = sh_as(USER, USER_GID, &[], &format!("LC_ALL=C setfattr -n user.ipc.qbytes -v {} {path}", msgmnb + 1));
    assert_refused(&out, "Operation not permitted", "an unprivileged owner going above kernel.msgmnb");
    assert_eq!(kstat(own).qbytes, 1000);
}

// ---- 10. creating, changing and removing queues ----

#[test]
fn mkdir_creates_a_queue_owned_by_the_caller() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let msg_dir = m.path("msg");
    let key_path = |key: &str| q(&msg_dir.join(key));

    sh_ok(&format!("umask 022; mkdir {}", key_path("0x1234")));
    let id = msg::get(Key(0x1234), 0).expect("mkdir made a queue with key 0x1234");
    let k = kstat(id);
    assert_eq!((k.perm.mode & 0o777, k.perm.uid, k.perm.cuid, k.qnum), (0o644, 0, 0, 0), "mkdir's mode without x");
    assert_eq!(list(&msg_dir), [id.0.to_string()], "listed by id only");
    assert_eq!(fs::read_link(m.path("by-key/msg/0x00001234")).unwrap(), Path::new(&format!("../../msg/{}", id.0)));
    // The creation name finds the queue, unlisted.
    let by_name = fs::metadata(msg_dir.join("0x1234")).unwrap();
    assert!(by_name.is_dir());
    assert_eq!(xattr(&msg_dir.join("0x1234"), "user.ipc.id").unwrap(), id.0.to_string());

    let out = sh_as(USER, USER_GID, &[], &format!("umask 022; mkdir {}", key_path("0x1236")));
    assert_ok(&out, "mkdir as uid 1000");
    let k = kstat(msg::get(Key(0x1236), 0).unwrap());
    assert_eq!((k.perm.uid, k.perm.gid, k.perm.cuid, k.perm.cgid), (USER, USER_GID, USER, USER_GID), "{k:?}");
    assert_eq!(k.perm.mode & 0o777, 0o644);

    // One mkdir(2), no chmod after it: the mode the call asks for, without x.
    fs::DirBuilder::new().mode(0o750).create(msg_dir.join("0x1237")).unwrap();
    assert_eq!(kstat(msg::get(Key(0x1237), 0).unwrap()).perm.mode & 0o777, 0o640 & !umask());
    sh_ok(&format!("umask 077; mkdir {}", key_path("0x1238")));
    assert_eq!(kstat(msg::get(Key(0x1238), 0).unwrap()).perm.mode & 0o777, 0o600, "mkdir with umask 077");

    let out = sh(&format!("LC_ALL=C mkdir -m 600 {}", key_path("0x1235")));
    assert_ok(&out, "mkdir -m 600");
    assert_eq!(kstat(msg::get(Key(0x1235), 0).unwrap()).perm.mode & 0o777, 0o600);

    let count = kernel_object_count("msg");
    let out = sh(&format!("LC_ALL=C mkdir -m 640 {}", key_path("private")));
    assert_ok(&out, "mkdir -m 640 msg/private");
    assert_eq!(kernel_object_count("msg"), count + 1, "one new queue");
    let private: Vec<MsgStat> = list(&msg_dir)
        .iter()
        .map(|name| kstat(MsqId(name.parse().unwrap())))
        .filter(|k| k.perm.key.is_private())
        .collect();
    assert_eq!(private.len(), 1, "{private:?}");
    assert_eq!(private[0].perm.mode & 0o777, 0o640);

    // Existing keys.
    let count = kernel_object_count("msg");
    let before = snapshot(id);
    let out = sh(&format!("LC_ALL=C mkdir -p {}", key_path("0x1234")));
    assert_ok(&out, "mkdir -p of an existing key");
    let out = sh(&format!("LC_ALL=C mkdir {}", key_path("0x1234")));
    assert_refused(&out, "File exists", "mkdir of an existing key");
    assert_eq!(errno(fs::create_dir(msg_dir.join("0x1234"))), libc::EEXIST);
    assert_eq!(snapshot(id), before);

    // Names that are not keys.
    for bad in ["hello", "1234", "0x", "0x123456789", "0xg"] {
        let out = sh(&format!("LC_ALL=C mkdir {}", key_path(bad)));
        assert_refused(&out, "Invalid argument", &format!("mkdir msg/{bad}"));
    }
    assert_eq!(kernel_object_count("msg"), count, "nothing was created");
}

#[test]
fn chmod_and_chown_on_a_queue_run_ipc_set() {
    let m = Mounted::new();
    let id = create_queue(0xa1, 0o600);
    set_qbytes(id, 777);
    send(id, 1, b"kept");
    let path = q(&qpath(&m, id, ""));

    sh_ok(&format!("chmod 640 {path}"));
    assert_eq!(kstat(id).perm.mode & 0o777, 0o640);
    assert_eq!(fs::metadata(qpath(&m, id, "")).unwrap().mode(), libc::S_IFDIR | 0o750);
    sh_ok(&format!("chmod 755 {path}"));
    assert_eq!(kstat(id).perm.mode & 0o777, 0o644, "execute bits are dropped");

    sh_ok(&format!("chown {NOBODY_UID}:{NOBODY_GID} {path}"));
    let k = kstat(id);
    assert_eq!((k.perm.uid, k.perm.gid, k.perm.mode & 0o777), (NOBODY_UID, NOBODY_GID, 0o644));
    assert_eq!((k.perm.cuid, k.perm.cgid), (0, 0), "the creator never changes");
    assert_eq!(k.qbytes, 777, "chmod and chown keep the byte limit");
    assert_eq!(queued(id), messages(&[(1, "kept")]));
    let md = fs::metadata(qpath(&m, id, "")).unwrap();
    assert_eq!((md.uid(), md.gid()), (NOBODY_UID, NOBODY_GID));
}

#[test]
fn rm_of_a_type_file_discards_that_type_and_rm_any_discards_all() {
    let m = Mounted::new();
    let id = create_queue(0xa2, 0o600);
    for (mtype, body) in [(7, "a"), (1, "b"), (7, "c"), (3, "d")] {
        send(id, mtype, body.as_bytes());
    }
    sh_ok(&format!("rm {}", q(&qpath(&m, id, "7"))));
    assert_eq!(queued(id), messages(&[(1, "b"), (3, "d")]), "rm 7 discards type 7 only");
    assert_eq!(list(&qpath(&m, id, "")), ["1", "3", "any"]);
    sh_ok(&format!("rm {}", q(&qpath(&m, id, "any"))));
    assert!(queued(id).is_empty(), "rm any discards every message");
    assert!(!is_gone(id), "the queue stays");
    assert_eq!(list(&qpath(&m, id, "")), ["any"]);
}

#[test]
fn rmdir_and_rm_r_remove_the_queue_and_its_messages() {
    let m = Mounted::new();
    let a = create_queue(0xa3, 0o600);
    let b = create_queue(0xa4, 0o600);
    let kept = create_queue(0xa5, 0o600);
    for id in [a, b, kept] {
        send(id, 1, b"one");
        send(id, 4, b"four");
    }
    sh_ok(&format!("rmdir {}", q(&qpath(&m, a, ""))));
    assert!(is_gone(a), "rmdir ran IPC_RMID");
    sh_ok(&format!("rm -r {}", q(&qpath(&m, b, ""))));
    assert!(is_gone(b), "rm -r ran IPC_RMID");
    assert_eq!(list(&m.path("msg")), [kept.0.to_string()]);
    assert_eq!(list(&m.path("by-key/msg")), ["0x000000a5"]);
    assert_eq!(errno(fs::metadata(qpath(&m, a, ""))), libc::ENOENT);
    assert_eq!(queued(kept), messages(&[(1, "one"), (4, "four")]), "the other queue is untouched");
}

#[test]
fn waiters_on_a_removed_queue_end_with_eidrm() {
    let m = Mounted::new();
    let id = full_queue(0xa6);
    let mut reader = Proc::cat(&qpath(&m, id, ".wait/5"));
    let mut writer = python_writer(&qpath(&m, id, "any"), "abc");
    reader.wait_blocked("a reader of .wait/5");
    writer.wait_blocked("a writer to a full queue");
    wait_until_daemon_holds(&m, 2);

    let removed = Instant::now();
    sh_ok(&format!("rmdir {}", q(&qpath(&m, id, ""))));
    assert!(is_gone(id));
    let status = reader.wait_exit(PROMPTLY, "a reader of a removed queue");
    assert!(!status.success() && reader.stderr().contains("Identifier removed"), "{status}: {}", reader.stderr());
    let status = writer.wait_exit(PROMPTLY, "a writer to a removed queue");
    assert!(!status.success() && writer.stderr().contains("Identifier removed"), "{status}: {}", writer.stderr());
    assert!(removed.elapsed() < PROMPTLY);
}

// ---- 11. other users ----

#[test]
fn other_users_are_held_to_the_queues_mode() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let id = create_queue(0xb1, 0o600);
    send(id, 1, b"secret");
    send(id, 2, b"more");
    let before = snapshot(id);
    let dir = qpath(&m, id, "");
    let any = q(&qpath(&m, id, "any"));

    for (what, script, message) in [
        ("cat any", format!("cat {any}"), "Permission denied"),
        ("cat 2", format!("cat {}", q(&qpath(&m, id, "2"))), "Permission denied"),
        ("cat .recv/any", format!("cat {}", q(&qpath(&m, id, ".recv/any"))), "Permission denied"),
        ("cat .recv/2", format!("cat {}", q(&qpath(&m, id, ".recv/2"))), "Permission denied"),
        ("cat .wait/any", format!("timeout 20 cat {}", q(&qpath(&m, id, ".wait/any"))), "Permission denied"),
        ("echo", format!("echo x > {any}"), "Permission denied"),
        ("ls", format!("ls {}", q(&dir)), "Permission denied"),
        ("rm any", format!("rm -f {any}"), "Permission denied"),
        ("rmdir", format!("rmdir {}", q(&dir)), "Operation not permitted"),
        ("chmod", format!("chmod 666 {}", q(&dir)), "Operation not permitted"),
        ("chown", format!("chown {USER} {}", q(&dir)), "Operation not permitted"),
    ] {
        let out = sh_as(USER, USER_GID, &[], &format!("LC_ALL=C {script}"));
        assert_refused(&out, message, &format!("uid 1000: {what} of a 0600 root queue"));
        assert!(out.stdout.is_empty(), "{what}: {:?}", String::from_utf8_lossy(&out.stdout));
        assert_eq!(snapshot(id), before, "after the refused {what}");
    }
    // Looking is open to everyone.
    let out = sh_as(
        USER,
        USER_GID,
        &[],
        &format!("stat -c %s {}; getfattr --only-values -n user.ipc.qnum {}", q(&dir), q(&dir)),
    );
    assert_eq!(assert_ok(&out, "stat and getfattr by uid 1000"), "10\n2");
}

#[test]
fn a_0622_queue_takes_messages_from_others_but_does_not_give_them() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let id = create_queue(0xb2, 0o622);
    let any = q(&qpath(&m, id, "any"));
    let out = sh_as(USER, USER_GID, &[], &format!("printf hello > {any}; printf typed > {}", q(&qpath(&m, id, "6"))));
    assert_ok(&out, "uid 1000 writing to a 0622 queue");
    assert_eq!(queued(id), messages(&[(1, "hello"), (6, "typed")]));
    for name in ["any", ".recv/any"] {
        let out = sh_as(USER, USER_GID, &[], &format!("LC_ALL=C cat {}", q(&qpath(&m, id, name))));
        assert_refused(&out, "Permission denied", &format!("uid 1000 reading {name} of a 0622 queue"));
        assert!(out.stdout.is_empty(), "{name}");
        assert_eq!(queued(id), messages(&[(1, "hello"), (6, "typed")]), "{name}: nothing was taken");
    }
}

#[test]
fn group_members_get_the_group_bits_and_the_creator_the_owners() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let id = create_queue(0xb3, 0o640);
    msg::set(id, 0, SHARED_GID, 0o640, kstat(id).qbytes).unwrap();
    let any = q(&qpath(&m, id, "any"));
    let recv_any = q(&qpath(&m, id, ".recv/any"));

    send(id, 1, b"for the group");
    let out = sh_as(USER, USER_GID, &[SHARED_GID], &format!("cat {recv_any}"));
    assert_eq!(assert_ok(&out, "a member of the queue's group receiving"), "for the group");
    let out = sh_as(USER, USER_GID, &[SHARED_GID], &format!("LC_ALL=C printf x > {any}"));
    assert_refused(&out, "Permission denied", "a member of the queue's group writing (group bits r--)");
    send(id, 1, b"not for others");
    let out = sh_as(USER, USER_GID, &[], &format!("LC_ALL=C cat {recv_any}"));
    assert_refused(&out, "Permission denied", "a non-member receiving (other bits ---)");
    assert_eq!(queued(id), messages(&[(1, "not for others")]));

    // The creator counts as owner even when the queue was given away.
    let text = assert_ok(&sh_as(USER, USER_GID, &[], "ipcmk -Q -p 0600"), "ipcmk as uid 1000");
    let made = MsqId(text.trim().strip_prefix("Message queue id: ").unwrap().parse().unwrap());
    let k = kstat(made);
    msg::set(made, 0, 0, 0o600, k.qbytes).unwrap();
    send(made, 1, b"creator");
    let out = sh_as(USER, USER_GID, &[], &format!("cat {}", q(&qpath(&m, made, ".recv/any"))));
    assert_eq!(assert_ok(&out, "the creator receiving from a queue it no longer owns"), "creator");
    assert_eq!(qnum(made), 0, "received");
    let out = sh_as(USER, USER_GID, &[], &format!("rmdir {}", q(&qpath(&m, made, ""))));
    assert_ok(&out, "the creator removing a queue it no longer owns");
    assert!(is_gone(made));
}
