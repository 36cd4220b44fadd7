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

use crate::common::*;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipcfs::ipc::Errno;
use ipcfs::ipc::creds::{Identity, run_as};
use ipcfs::ipc::msg::{self, MsqId};
use ipcfs::ipc::sem::{self, SemId};
use nix::mount::{MntFlags, umount2};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

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

// ---- 6. a daemon that cannot see its callers ----

/// ipcfs started as `unshare --pid --fork -- ipcfs --foreground -o
/// allow_other DIR`, in the test thread's namespaces: the daemon is pid 1 of
/// a pid namespace of its own, so FUSE gives it pid 0 for every caller and
/// it cannot read their /proc status. Drop detaches the mount and kills the
/// daemon and unshare.
struct PidNsMount {
    dir: TempDir,
    unshare: Child,
}

impl PidNsMount {
    fn new() -> PidNsMount {
        isolate();
        let dir = TempDir::new("pidns");
        let unshare = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--", "unshare", "--pid", "--fork", "--kill-child", "--"])
            .arg(ipcfs_bin())
            .args(["--foreground", "-o", "allow_other"])
            .arg(&dir.0)
            .stdin(Stdio::null())
            .spawn()
            .expect("start unshare --pid ipcfs");
        let mut mounted = PidNsMount { dir, unshare };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !is_mounted(&mounted.dir.0) {
            if let Some(status) = mounted.unshare.try_wait().unwrap() {
                panic!("ipcfs in its pid namespace exited before mounting: {status}");
            }
            assert!(Instant::now() < deadline, "ipcfs in its pid namespace did not mount within 20 s");
            std::thread::sleep(Duration::from_millis(5));
        }
        mounted
    }

    fn path(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.dir.0.join(relative)
    }

    /// The daemon: unshare's forked child.
    fn daemon_pid(&self) -> Option<i32> {
        let pid = self.unshare.id();
        let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    }
}

impl Drop for PidNsMount {
    fn drop(&mut self) {
        let _ = umount2(&self.dir.0, MntFlags::MNT_DETACH);
        // Stop the daemon and let unshare reap it and exit (killing unshare
        // first would leave the daemon's zombie to init): SIGTERM, which
        // ipcfs handles even as a pid namespace's init, then SIGKILL.
        for signal in [Signal::SIGTERM, Signal::SIGKILL] {
            if let Some(daemon) = self.daemon_pid() {
                let _ = kill(Pid::from_raw(daemon), signal);
            }
            if wait_timeout(&mut self.unshare, Duration::from_secs(5)).is_some() {
                return;
            }
        }
        let _ = self.unshare.kill();
        let _ = wait_timeout(&mut self.unshare, Duration::from_secs(5));
    }
}

fn pid_ns(pid: &str) -> u64 {
    fs::metadata(format!("/proc/{pid}/ns/pid")).unwrap().ino()
}

/// Item 6. A root with every capability dropped, whose status the daemon
/// cannot read, is refused another user's 0600 segment, a chmod of it and
/// the removal of that user's set, as the kernel would refuse it (EACCES
/// for access, EPERM for changes), and nothing changes.
#[test]
fn a_caller_the_daemon_cannot_see_has_no_capabilities_even_as_root() {
    let m = PidNsMount::new();
    let daemon = m.daemon_pid().expect("the daemon under unshare");
    assert_ne!(
        pid_ns(&daemon.to_string()),
        pid_ns("self"),
        "precondition: the daemon is in a pid namespace of its own"
    );

    let segment = segment_of(OWNER, 4096, 0o600);
    let attachment = shm::Attachment::attach(segment, 4096, true).unwrap();
    attachment.write_at(0, b"secret").unwrap();
    let set = set_of(OWNER, 1, 0o600);
    let queue = queue_of(OWNER, 0o600);
    msg::send(queue, 1, b"private", false).unwrap();
    let (seg_path, set_path, queue_file) = (
        m.path(format!("shm/{}", segment.0)),
        m.path(format!("sem/{}", set.0)),
        m.path(format!("msg/{}/.recv/any", queue.0)),
    );

    let mut root = Probe::start(0, &NO_CAPS, &[]);
    assert_eq!(root.cap_eff, 0, "precondition: the caller is uid 0 with no effective capability");
    let attacks = [
        (format!("cat {}", seg_path.display()), "EACCES"),
        (format!("put {} X", seg_path.display()), "EACCES"),
        (format!("chmod {} 666", seg_path.display()), "EPERM"),
        (format!("unlink {}", seg_path.display()), "EPERM"),
        (format!("chmod {} 666", set_path.display()), "EPERM"),
        (format!("rmdir {}", set_path.display()), "EPERM"),
        (format!("cat {}", queue_file.display()), "EACCES"),
    ];
    let mut wrong = Vec::new();
    for (attack, refusal) in &attacks {
        let got = root.ask(attack);
        if got != *refusal {
            wrong.push(format!("`{attack}` as a capability-less root gave {:?}, want {refusal}", short(&got)));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(shm_mode(segment), (OWNER, 0o600), "the segment's owner and mode are unchanged");
    assert_eq!(attachment.read_at(0, 7), b"secret\0", "the segment's bytes are unchanged");
    assert_eq!(sem::stat_any(set).map(|s| s.perm.mode & 0o777), Ok(0o600), "the set is there, unchanged");
    assert_eq!(queued(queue), messages(&[(1, "private")]), "the message is still queued");
    drop(attachment);
    shm::remove(segment).unwrap();
}

/// Item 6, the other side: the owner, equally unseen by the daemon, needs
/// neither groups nor capabilities for their own objects, and keeps using
/// them: read, write, send, receive, V, chmod, rmdir.
#[test]
fn a_caller_the_daemon_cannot_see_keeps_using_their_own_objects() {
    let m = PidNsMount::new();
    let segment = segment_of(OWNER, 4096, 0o600);
    let attachment = shm::Attachment::attach(segment, 4096, false).unwrap();
    let set = set_of(OWNER, 1, 0o600);
    let queue = queue_of(OWNER, 0o600);
    msg::send(queue, 1, b"private", false).unwrap();
    let (seg_path, set_path, queue_file, recv_file) = (
        m.path(format!("shm/{}", segment.0)),
        m.path(format!("sem/{}", set.0)),
        m.path(format!("msg/{}/any", queue.0)),
        m.path(format!("msg/{}/.recv/any", queue.0)),
    );
    let mut owner = Probe::start(OWNER, &[], &[]);
    assert_eq!(owner.ask(&format!("put {} mine", seg_path.display())), "ok");
    assert_eq!(attachment.read_at(0, 5), b"mine\0", "the owner's write reached the segment");
    let read = owner.ask(&format!("cat {}", seg_path.display()));
    assert!(read == read_ok(&attachment.read_at(0, 4096)), "the owner's read of the segment: {}", short(&read));
    assert_eq!(owner.ask(&format!("put {}/0 +1", set_path.display())), "ok");
    assert_eq!(sem_value(set, 0), 1, "the owner's V happened");
    assert_eq!(owner.ask(&format!("cat {}", recv_file.display())), read_ok(b"private"));
    assert_eq!(owner.ask(&format!("put {} reply", queue_file.display())), "ok");
    assert_eq!(queued(queue), messages(&[(1, "reply")]), "the owner received one message and sent one");
    assert_eq!(owner.ask(&format!("chmod {} 640", seg_path.display())), "ok");
    assert_eq!(shm_mode(segment), (OWNER, 0o640));
    assert_eq!(owner.ask(&format!("rmdir {}", set_path.display())), "ok");
    assert_eq!(sem::stat_any(set), Err(Errno::ENOENT), "the owner removed the set");
    drop(attachment);
    shm::remove(segment).unwrap();
}

// ---- 7. an unreadable limit refuses ----

const MSGMNB: &str = "/proc/sys/kernel/msgmnb";

/// Item 7. With kernel.msgmnb unreadable, the owner's setfattr of
/// user.ipc.qbytes to a value below the real limit is refused and changes
/// nothing; with it readable again, the same setfattr works.
#[test]
fn a_qbytes_change_is_refused_when_msgmnb_cannot_be_read() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let limit: u64 = fs::read_to_string(MSGMNB).unwrap().trim().parse().unwrap();
    assert!(limit > 1000, "precondition: 1000 is below kernel.msgmnb ({limit})");
    let id = queue_of(OWNER, 0o600);
    let dir = m.path(format!("msg/{}", id.0));
    let qbytes = || msg::stat_any(id).unwrap().qbytes;
    let setfattr = || sh_as(OWNER, OWNER, &[], &format!("LC_ALL=C setfattr -n user.ipc.qbytes -v 1000 {}", q(&dir)));
    let reset = || {
        let k = msg::stat_any(id).unwrap();
        msg::set(id, k.perm.uid, k.perm.gid, k.perm.mode, 2000).unwrap();
        assert_eq!(qbytes(), 2000);
    };

    // Control: readable, the owner may lower the limit.
    assert_ok(&setfattr(), "setfattr qbytes 1000 with msgmnb readable");
    assert_eq!(qbytes(), 1000, "the control setfattr set qbytes");

    let scratch = Scratch::new("msgmnb");
    let garbage = scratch.path("msgmnb");
    fs::write(&garbage, "not a number\n").unwrap();
    let empty_dir = scratch.path("kernel");
    fs::create_dir(&empty_dir).unwrap();
    // A file over the file: it cannot be parsed. An empty directory over
    // /proc/sys/kernel: it cannot be opened.
    for (what, source, target) in
        [("a file of garbage", &garbage, MSGMNB), ("an empty directory", &empty_dir, "/proc/sys/kernel")]
    {
        reset();
        let over = Unmount::bind(source, target);
        assert!(
            fs::read_to_string(MSGMNB).map_or(true, |t| t.trim().parse::<u64>().is_err()),
            "precondition: {what} over {target} makes msgmnb unreadable"
        );
        let out = setfattr();
        assert!(!out.status.success(), "with {what} over {target}, setfattr qbytes 1000 was allowed");
        assert_eq!(qbytes(), 2000, "with {what} over {target}, the refused setfattr changed qbytes");
        drop(over);
    }

    // Readable again: allowed again.
    assert_eq!(fs::read_to_string(MSGMNB).unwrap().trim().parse::<u64>().unwrap(), limit);
    assert_ok(&setfattr(), "setfattr qbytes 1000 with msgmnb readable again");
    assert_eq!(qbytes(), 1000);
}

// ---- 8. rights checked at each read and write ----

/// What uid 1002's descriptors, opened on 0666 objects of uid 1001, can do
/// after the owner's chmod to `mode_after` through the mount.
struct AfterChmod {
    results: Vec<(&'static str, String)>,
    queue: Vec<(i64, Vec<u8>)>,
    value: i32,
    segment_read: String,
}

fn descriptors_after_chmod(mode_after: u32) -> AfterChmod {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let queue = queue_of(OWNER, 0o666);
    for (t, body) in [(1, "one"), (7, "seven"), (1, "two")] {
        msg::send(queue, t, body.as_bytes(), false).unwrap();
    }
    let set = set_of(OWNER, 1, 0o666);
    sem::set_value(set, 0, 2).unwrap();
    let segment = segment_of(OWNER, 4096, 0o666);
    let attachment = shm::Attachment::attach(segment, 4096, true).unwrap();
    attachment.write_at(0, b"segment bytes").unwrap();

    let (qdir, sdir, seg) = (m.path(format!("msg/{}", queue.0)), m.path(format!("sem/{}", set.0)), m.shm(segment));
    let (any, recv_any, recv_seven, wait_any, sem0) =
        (qdir.join("any"), qdir.join(".recv/any"), qdir.join(".recv/7"), qdir.join(".wait/any"), sdir.join("0"));
    let mut other = Probe::start(
        OTHER,
        &[],
        &[
            ("any_r", "r", &recv_any),
            ("any_w", "w", &any),
            ("seven_r", "r", &recv_seven),
            ("wait_r", "r", &wait_any),
            ("sem_r", "r", &sem0),
            ("sem_w", "w", &sem0),
            ("shm_r", "r", &seg),
        ],
    );
    assert_ok(
        &sh_as(OWNER, OWNER, &[], &format!("chmod {mode_after:o} {} {} {}", q(&qdir), q(&sdir), q(&seg))),
        "the owner's chmod",
    );
    for (path, what) in [(&qdir, "queue"), (&sdir, "set")] {
        assert_eq!(fs::metadata(path).unwrap().mode() & 0o666, mode_after, "the {what}'s mode after the chmod");
    }
    assert_eq!(shm_mode(segment), (OWNER, mode_after));
    let results = [
        ("read .recv/any", "read any_r"),
        ("read .recv/7", "read seven_r"),
        ("read .wait/any", "read wait_r"),
        ("write any", "write any_w hi"),
        ("read sem", "read sem_r"),
        ("write sem +1", "write sem_w +1"),
    ]
    .into_iter()
    .map(|(what, command)| (what, other.ask(command)))
    .collect();
    let segment_read = other.ask("pread shm_r 13");
    let after = AfterChmod { results, queue: queued(queue), value: sem_value(set, 0), segment_read };
    drop(other);
    drop(attachment);
    shm::remove(segment).unwrap();
    after
}

/// Item 8. After the owner's `chmod 600`, another user's descriptors opened
/// before it can neither receive, send, read nor change the semaphore, and
/// nothing changes in the kernel; an open segment file still reads.
#[test]
fn open_queue_and_semaphore_files_are_checked_again_at_each_read_and_write() {
    let after = descriptors_after_chmod(0o600);
    let want: Vec<(&str, String)> =
        ["read .recv/any", "read .recv/7", "read .wait/any", "write any", "read sem", "write sem +1"]
            .into_iter()
            .map(|what| (what, "EACCES".to_string()))
            .collect();
    assert_eq!(after.results, want, "uid {OTHER}'s descriptors after the owner's chmod 600");
    assert_eq!(after.queue, messages(&[(1, "one"), (7, "seven"), (1, "two")]), "nothing received or sent");
    assert_eq!(after.value, 2, "the semaphore's value is unchanged");
    assert_eq!(
        after.segment_read,
        read_ok(b"segment bytes"),
        "a segment file opened before the chmod reads, as shmat would"
    );
}

/// Control for the test above: the same descriptors after a chmod that
/// still grants them (0666) do everything.
#[test]
fn open_files_keep_working_after_a_chmod_that_still_grants_them() {
    let after = descriptors_after_chmod(0o666);
    let want: Vec<(&str, String)> = vec![
        ("read .recv/any", read_ok(b"one")),
        ("read .recv/7", read_ok(b"seven")),
        ("read .wait/any", read_ok(b"two")),
        ("write any", "ok".into()),
        ("read sem", read_ok(b"2\n")),
        ("write sem +1", "ok".into()),
    ];
    assert_eq!(after.results, want);
    assert_eq!(after.queue, messages(&[(1, "hi")]));
    assert_eq!(after.value, 3);
    assert_eq!(after.segment_read, read_ok(b"segment bytes"));
}

// ---- 9. forced id reuse ----

/// Makes the next object of a kind (`msg` or `sem`) in the test thread's
/// IPC namespace get `id`: root writes it to kernel.<kind>_next_id.
fn force_next_id(kind: &str, id: i32) {
    fs::write(format!("/proc/sys/kernel/{kind}_next_id"), id.to_string())
        .unwrap_or_else(|e| panic!("write {kind}_next_id: {e}"));
}

/// Item 9, queues. Uid 1002 holds `msg/<id>/.recv/any` (to receive) and
/// `msg/<id>/any` (to send) of uid 1001's 0666 queue; 1001 removes it and
/// makes a 0600 queue with the same id (forced): the old descriptors get
/// EACCES for receiving and sending; a queue with the id made
/// by another user gives ENOENT. The message stays queued either way.
#[test]
fn an_old_queue_descriptor_does_not_reach_a_new_queue_with_its_id() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    for (creator, mode, refusal) in [(OWNER, 0o600, "EACCES"), (THIRD, 0o666, "ENOENT")] {
        let old = queue_of(OWNER, 0o666);
        let (any, recv_any) = (m.path(format!("msg/{}/any", old.0)), m.path(format!("msg/{}/.recv/any", old.0)));
        let mut other = Probe::start(OTHER, &[], &[("r", "r", &recv_any), ("w", "w", &any)]);
        as_uid(OWNER, || msg::remove(old)).unwrap();
        force_next_id("msg", old.0);
        let new = queue_of(creator, mode);
        assert_eq!(new, old, "precondition: the new queue took the old id");
        msg::send(new, 1, b"for the owner only", false).unwrap();
        let case = format!("new queue by uid {creator}, mode {mode:o}");
        assert_eq!(other.ask("read r"), refusal, "{case}: receive through the old descriptor");
        assert_eq!(other.ask("write w intruder"), refusal, "{case}: write through the old descriptor");
        assert_eq!(queued(new), messages(&[(1, "for the owner only")]), "{case}: the message stays, alone");
        drop(other);
        msg::remove(new).unwrap();
    }
}

/// Item 9, semaphore sets, the same with sem_next_id: the value stays.
#[test]
fn an_old_semaphore_descriptor_does_not_reach_a_new_set_with_its_id() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    for (creator, mode, refusal) in [(OWNER, 0o600, "EACCES"), (THIRD, 0o666, "ENOENT")] {
        let old = set_of(OWNER, 1, 0o666);
        let sem0 = m.path(format!("sem/{}/0", old.0));
        let mut other = Probe::start(OTHER, &[], &[("r", "r", &sem0), ("w", "w", &sem0)]);
        as_uid(OWNER, || sem::remove(old)).unwrap();
        force_next_id("sem", old.0);
        let new = set_of(creator, 1, mode);
        assert_eq!(new, old, "precondition: the new set took the old id");
        sem::set_value(new, 0, 5).unwrap();
        let case = format!("new set by uid {creator}, mode {mode:o}");
        assert_eq!(other.ask("read r"), refusal, "{case}: read through the old descriptor");
        assert_eq!(other.ask("write w +1"), refusal, "{case}: V through the old descriptor");
        assert_eq!(sem_value(new, 0), 5, "{case}: the value is unchanged");
        drop(other);
        sem::remove(new).unwrap();
    }
}

// ---- 10. information needs read permission ----

/// Item 10. On uid 1001's 0600 set, uid 1002 gets none of a semaphore's
/// pid and waiter counts (semctl GETPID/GETNCNT/GETZCNT need read); on its
/// 0600 queue, the bytes queued of one type show as 0 to 1002, while the
/// total (public in /proc/sysvipc/msg) shows to both.
#[test]
fn a_semaphores_pid_and_counts_and_a_types_bytes_need_read_permission() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let set = set_of(OWNER, 1, 0o600);
    as_uid(OWNER, || sem::operate(set, 0, 1, None)).unwrap();
    let sem0 = m.path(format!("sem/{}/0", set.0));
    for name in ["user.ipc.pid", "user.ipc.ncnt", "user.ipc.zcnt"] {
        let script = format!("LC_ALL=C getfattr --only-values --absolute-names -n {name} {}", q(&sem0));
        let owners = assert_ok(&sh_as(OWNER, OWNER, &[], &script), &format!("{name} as the owner"));
        assert!(owners.trim().parse::<i32>().is_ok(), "{name} as the owner: {owners:?}");
        assert_refused(&sh_as(OTHER, OTHER, &[], &script), "Permission denied", &format!("{name} as uid {OTHER}"));
    }
    assert_eq!(xattr(&sem0, "user.ipc.pid").unwrap().trim(), std::process::id().to_string(), "root sees the last pid");

    let queue = queue_of(OWNER, 0o600);
    for _ in 0..5 {
        msg::send(queue, 7, b"ten bytes!", false).unwrap();
    }
    let size = |uid: u32, name: &str| {
        let path = m.path(format!("msg/{}/{name}", queue.0));
        assert_ok(&sh_as(uid, uid, &[], &format!("stat -c %s {}", q(&path))), &format!("stat {name} as {uid}"))
            .trim()
            .to_string()
    };
    assert_eq!(size(OWNER, "7"), "50", "the owner sees the bytes of type 7");
    assert_eq!(size(OTHER, "7"), "0", "uid {OTHER} may not read the queue: no bytes per type");
    assert_eq!(size(OTHER, "any"), "50", "the total is public");
    assert_eq!(size(OWNER, "any"), "50");
    assert_eq!(msg::stat_any(queue).unwrap().qnum, 5, "nothing taken");
}

// ---- 11. a put-back is never lost ----

/// The daemon's threads sleeping in a given kernel function (wchan), such as
/// `do_msgrcv` or `do_msgsnd`.
fn daemon_threads_in(daemon: i32, function: &str) -> usize {
    let Ok(tasks) = fs::read_dir(format!("/proc/{daemon}/task")) else { return 0 };
    tasks.flatten().filter(|t| fs::read_to_string(t.path().join("wchan")).is_ok_and(|w| w.trim() == function)).count()
}

/// Item 11. A reader of `.wait/any` (uid 1001) held by the daemon in msgrcv
/// is SIGKILLed; at once a message M is sent and the queue (64 bytes) filled
/// by another sender. The daemon takes M for the dead reader and must put it
/// back, also when the queue is full by then: after draining, M is there,
/// exactly once. The rounds where M came out behind the filler of the whole
/// queue are those where the put-back met a full queue.
#[test]
fn a_message_taken_for_a_killed_reader_is_put_back_even_into_a_full_queue() {
    const ROUNDS: u32 = 20;
    const QBYTES: u64 = 64;
    const FILLER: &[u8] = b"filler!!"; // 8 bytes, type 3
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let daemon = m.daemon_pid().unwrap();
    let id = queue_of(OWNER, 0o600);
    let k = msg::stat_any(id).unwrap();
    msg::set(id, k.perm.uid, k.perm.gid, k.perm.mode, QBYTES).unwrap();
    let wait_any = m.path(format!("msg/{}/.wait/any", id.0));
    // Rounds where M was out of the queue when it was filled whole, and
    // where M came out behind that filler: put back into a full queue.
    // And where the daemon was seen waiting for room to put M back.
    let (mut full_at_once, mut behind, mut waited) = (0, 0, 0);
    for round in 0..ROUNDS {
        let body = format!("M{round:02}");
        let reader = as_user(OWNER, OWNER, &[])
            .args(["dd", &format!("if={}", wait_any.display()), "bs=65536", "count=1", "status=none"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut reader = KillOnDrop(reader);
        let pid = reader.0.id() as i32;
        wait_until(&format!("round {round}: the reader waits in the daemon's msgrcv"), PROMPTLY, || {
            waiting_on_fuse(pid) && daemon_threads_in(daemon, "do_msgrcv") >= 1
        });

        // Kill, send M, fill: as close together as one process can. M goes
        // straight to the daemon's waiting msgrcv, so the queue stays empty
        // and one message of QBYTES fills it in a single call; if M is
        // queued by then (the daemon gave up the receive first, or put M
        // back already), that one does not fit and small ones fill the rest.
        kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
        msg::send(id, 1, body.as_bytes(), false).unwrap();
        let whole = match msg::send(id, 2, &[b'F'; QBYTES as usize], false) {
            Ok(()) => true,
            Err(Errno::EAGAIN) => false,
            Err(e) => panic!("round {round}: the filler of {QBYTES} bytes: {e}"),
        };
        let mut fillers = usize::from(whole);
        loop {
            match msg::send(id, 3, FILLER, false) {
                Ok(()) => fillers += 1,
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("round {round}: filler: {e}"),
            }
            assert!(fillers <= QBYTES as usize, "round {round}: the queue does not fill");
        }
        if whole {
            full_at_once += 1;
        }

        // Before making room: the daemon has either answered the killed
        // reader (after its put-back, whatever became of it) or waits to put
        // M back, in msgsnd.
        let mut waits_for_room = false;
        wait_until(&format!("round {round}: the daemon is done with the killed reader"), PROMPTLY, || {
            waits_for_room = daemon_threads_in(daemon, "do_msgsnd") > 0;
            waits_for_room || !matches!(reader.0.try_wait(), Ok(None))
        });
        if waits_for_room && whole {
            waited += 1;
        }

        // Drain; the put-back may be waiting for room, so M may come late.
        let mut drained: Vec<(i64, Vec<u8>)> = Vec::new();
        let deadline = Instant::now() + PROMPTLY;
        while !drained.iter().any(|(_, b)| *b == body.as_bytes()) {
            match msg::receive(id, 0, 1 << 16, false) {
                Ok(message) => drained.push((message.mtype, message.body)),
                Err(Errno::ENOMSG) => {
                    assert!(
                        Instant::now() < deadline,
                        "round {round}: {body} is lost (drained {} fillers and nothing else; {} fillers were sent)",
                        drained.len(),
                        fillers
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("round {round}: msgrcv: {e}"),
            }
        }
        let status = wait_timeout(&mut reader.0, PROMPTLY)
            .unwrap_or_else(|| panic!("round {round}: the killed reader did not end"));
        assert_eq!(status.signal(), Some(libc::SIGKILL), "round {round}: the reader died of SIGKILL");
        let mut printed = Vec::new();
        reader.0.stdout.take().unwrap().read_to_end(&mut printed).unwrap();
        assert!(printed.is_empty(), "round {round}: the killed reader printed {printed:?}");
        wait_until(&format!("round {round}: the daemon holds no receive or send"), PROMPTLY, || {
            daemon_threads_in(daemon, "do_msgrcv") + daemon_threads_in(daemon, "do_msgsnd") == 0
        });
        // Whatever is left now is fillers only: M exactly once.
        drained.extend(std::iter::from_fn(|| msg::receive(id, 0, 1 << 16, false).ok().map(|m| (m.mtype, m.body))));
        let copies = drained.iter().filter(|(_, b)| *b == body.as_bytes()).count();
        assert_eq!(copies, 1, "round {round}: {body} must be queued exactly once: {drained:?}");
        assert!(
            drained.iter().all(|(t, b)| match t {
                1 => *b == body.as_bytes(),
                2 => b.len() == QBYTES as usize,
                3 => b == FILLER,
                _ => false,
            }),
            "round {round}: only {body} and fillers: {drained:?}"
        );
        let position = drained.iter().position(|(_, b)| *b == body.as_bytes()).unwrap();
        if drained[..position].iter().any(|(t, _)| *t == 2) {
            behind += 1;
        }
        assert_eq!(msg::stat_any(id).unwrap().qnum, 0, "round {round}: the queue is empty again");
    }
    println!(
        "put-back race: in {full_at_once} of {ROUNDS} rounds the queue was filled while the daemon held M; \
         in {waited} the daemon was seen waiting for room to put M back; \
         in {behind} M came out behind the filler (put back into a full queue)"
    );
    assert!(behind > 0, "the race was never produced (M never met a full queue): this run proved nothing");
}
