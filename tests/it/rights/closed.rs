//! Failing closed: a caller the daemon cannot see has no capabilities (item
//! 6), and an unreadable kernel.msgmnb refuses a qbytes change (item 7).

use super::*;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipcfs::ipc::Errno;
use ipcfs::ipc::msg;
use ipcfs::ipc::sem;
use nix::mount::{MntFlags, umount2};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

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
