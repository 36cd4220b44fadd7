//! `users/`: which processes use each object now, as links to /proc/PID.
//!
//! ```text
//! users/shm/<shmid>/<pid> -> /proc/<pid>   attached (shmat), or the segment's file open through the mount
//! users/sem/<semid>/<pid> -> /proc/<pid>   blocked in semop on the set, or waiting on it through the mount
//! users/msg/<msqid>/<pid> -> /proc/<pid>   blocked in msgrcv/msgsnd on the queue, or waiting through the mount
//! ```
//! Each use is made by a child process of the test's (in its IPC namespace),
//! which the test first sees using the object by the kernel's own account
//! (shm_nattch, GETNCNT/GETZCNT, the call a thread is in, a descriptor held
//! open, the daemon's waiting threads); only then is `users/` read, once.
//! What disappears after a use ends is polled for, with a deadline (the
//! daemon hears of a close slightly after it returns).

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use ipcfs::ipc::msg;
use ipcfs::ipc::sem;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::common::*;

/// Attaches segment argv[1] read-write with shmat(2), then waits on stdin.
const ATTACH: &str = r#"
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
if libc.shmat(int(sys.argv[1]), None, 0) in (None, ctypes.c_void_p(-1).value):
    sys.exit('shmat: errno %d' % ctypes.get_errno())
sys.stdin.read()
"#;

/// semop(2) of argv[3] on semaphore argv[2] of set argv[1], waiting.
const SEMOP: &str = r#"
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
class Op(ctypes.Structure):
    _fields_ = [('num', ctypes.c_ushort), ('op', ctypes.c_short), ('flg', ctypes.c_short)]
op = Op(int(sys.argv[2]), int(sys.argv[3]), 0)
if libc.semop(int(sys.argv[1]), ctypes.byref(op), 1) != 0:
    sys.exit('semop: errno %d' % ctypes.get_errno())
"#;

/// msgrcv(2) of any message from queue argv[1], waiting.
const MSGRCV: &str = r#"
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(8 + 4096)
if libc.msgrcv(int(sys.argv[1]), buf, 4096, ctypes.c_long(0), 0) < 0:
    sys.exit('msgrcv: errno %d' % ctypes.get_errno())
"#;

/// msgsnd(2) of a 3-byte message of type 1 to queue argv[1], waiting.
const MSGSND: &str = r#"
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(8 + 3)
ctypes.c_long.from_buffer(buf).value = 1
buf[8:11] = b'xyz'
if libc.msgsnd(int(sys.argv[1]), buf, 3, 0) != 0:
    sys.exit('msgsnd: errno %d' % ctypes.get_errno())
"#;

/// A child process using an object; it ends when its stdin closes (or when
/// its call returns). Killed, by its own pid, if the test ends first.
struct User {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl User {
    fn start(mut command: Command) -> User {
        let mut child =
            command.stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap_or_else(|e| panic!("{command:?}: {e}"));
        let stdin = child.stdin.take();
        User { child, stdin }
    }

    fn python(script: &str, args: &[String]) -> User {
        let mut command = Command::new(PYTHON);
        command.arg("-c").arg(script).args(args);
        User::start(command)
    }

    fn sh(script: &str) -> User {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        User::start(command)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Closes its stdin and requires it to end, successfully, within [`LIMIT`].
    #[track_caller]
    fn finish(&mut self, what: &str) {
        drop(self.stdin.take());
        let status = wait_timeout(&mut self.child, LIMIT).unwrap_or_else(|| panic!("{what}: still running"));
        assert!(status.success(), "{what}: {status}");
    }
}

impl Drop for User {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = wait_timeout(&mut self.child, LIMIT);
        }
    }
}

/// Whether process `pid` has a descriptor open on `path` (/proc/PID/fd).
fn holds_open(pid: u32, path: &Path) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().any(|fd| fs::read_link(fd.path()).is_ok_and(|target| target == path))
}

/// Whether process `pid` has segment `id` attached (/proc/PID/maps).
fn attached(pid: u32, id: i32) -> bool {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let id = id.to_string();
    maps.lines().any(|l| l.contains("/SYSV") && l.split_whitespace().nth(4) == Some(id.as_str()))
}

/// `users/<family>/<id>`.
fn used(m: &Mounted, family: &str, id: i32) -> PathBuf {
    m.path(format!("users/{family}/{id}"))
}

/// The pids listed under `users/<family>/<id>/`, sorted.
fn listed(m: &Mounted, family: &str, id: i32) -> Vec<u32> {
    let mut pids: Vec<u32> = list(&used(m, family, id)).iter().map(|n| n.parse().unwrap()).collect();
    pids.sort_unstable();
    pids
}

/// Whether object `id` has no directory: not listed, and its lookup ENOENT.
fn unused(m: &Mounted, family: &str, id: i32) -> bool {
    let absent = fs::symlink_metadata(used(m, family, id)).is_err_and(|e| e.kind() == ErrorKind::NotFound);
    absent && !list(&m.path(format!("users/{family}"))).contains(&id.to_string())
}

#[track_caller]
fn wait_unused(m: &Mounted, family: &str, id: i32) {
    wait_for(&format!("users/{family}/{id} is gone"), || unused(m, family, id));
}

/// `user.ipc.users` of `users/<family>/<id>/`.
fn users_attr(m: &Mounted, family: &str, id: i32) -> String {
    xattr(&used(m, family, id), "user.ipc.users").unwrap()
}

/// The attribute's lines for these (pid, roles), in pid order.
fn lines(uses: &[(u32, &str)]) -> String {
    let mut uses = uses.to_vec();
    uses.sort_unstable();
    uses.iter()
        .map(|(pid, roles)| {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
            format!("{pid} {roles} {comm}")
        })
        .collect()
}

/// Exactly these processes are listed under `users/<family>/<id>/`, with
/// these roles, as links to /proc/PID owned by the process's owner; the
/// directory is 0555; the daemon is not among them.
#[track_caller]
fn check(m: &Mounted, family: &str, id: i32, uses: &[(u32, &str)]) {
    let dir = used(m, family, id);
    let mut pids: Vec<u32> = uses.iter().map(|u| u.0).collect();
    pids.sort_unstable();
    assert_eq!(listed(m, family, id), pids, "users/{family}/{id}/");
    assert!(list(&m.path(format!("users/{family}"))).contains(&id.to_string()), "users/{family}/ lists {id}");
    let meta = fs::metadata(&dir).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.mode() & 0o7777, 0o555, "users/{family}/{id}");
    assert_eq!(users_attr(m, family, id), lines(uses), "user.ipc.users of users/{family}/{id}");
    for pid in pids {
        let link = dir.join(pid.to_string());
        assert_eq!(fs::read_link(&link).unwrap(), PathBuf::from(format!("/proc/{pid}")));
        let (meta, process) = (fs::symlink_metadata(&link).unwrap(), fs::metadata(format!("/proc/{pid}")).unwrap());
        assert!(meta.file_type().is_symlink());
        assert_eq!((meta.uid(), meta.gid()), (process.uid(), process.gid()), "owner of {}", link.display());
    }
    let daemon = m.daemon_pid().unwrap().to_string();
    assert!(!list(&dir).contains(&daemon), "the daemon ({daemon}) is listed in users/{family}/{id}");
}

#[test]
fn the_tree_is_read_only_and_an_object_nobody_uses_has_no_directory() {
    let m = Mounted::new();
    let segment = create_segment(0x7001, 4096, 0o600);
    let set = create_set(0x7002, 1, 0o600);
    let queue = create_queue(0x7003, 0o600);
    for dir in ["users", "users/shm", "users/sem", "users/msg"] {
        let meta = fs::metadata(m.path(dir)).unwrap();
        assert!(meta.is_dir(), "{dir}");
        assert_eq!(meta.mode() & 0o7777, 0o555, "{dir}");
    }
    assert_eq!(list(&m.path("users")), ["msg", "sem", "shm"]);
    for (family, id) in [("shm", segment.0), ("sem", set.0), ("msg", queue.0)] {
        assert!(list(&m.path(format!("users/{family}"))).is_empty(), "users/{family}/ with no users");
        assert_eq!(errno(fs::metadata(used(&m, family, id))), libc::ENOENT, "stat users/{family}/{id}");
        let ls = sh(&format!("ls {}", q(&m.path(format!("users/{family}")))));
        assert_eq!(assert_ok(&ls, "ls users/..."), "");
    }
    // Not even an attachment of the daemon's own (a segment file read
    // through the mount maps it there) makes a user.
    assert_eq!(sh_bytes(&format!("head -c 4 {}", q(&m.shm(segment)))), [0; 4]);
    assert!(unused(&m, "shm", segment.0));
}

#[test]
fn a_process_attached_with_shmat_is_listed_until_it_detaches() {
    let m = Mounted::new();
    let id = create_segment(0x7101, 4096, 0o666);
    let mut root = User::python(ATTACH, &[id.0.to_string()]);
    wait_for("root's process attached (nattch 1)", || nattch(id) == 1);
    check(&m, "shm", id.0, &[(root.pid(), "attached")]);

    // Another user's process: its link is owned by that user.
    let mut command = as_user(USER, USER_GID, &[]);
    command.args([PYTHON, "-c", ATTACH, &id.0.to_string()]);
    let mut other = User::start(command);
    wait_for("user 1000's process attached (nattch 2)", || nattch(id) == 2);
    check(&m, "shm", id.0, &[(root.pid(), "attached"), (other.pid(), "attached")]);
    let link = fs::symlink_metadata(used(&m, "shm", id.0).join(other.pid().to_string())).unwrap();
    assert_eq!((link.uid(), link.gid()), (USER, USER_GID));

    root.finish("root's attacher");
    wait_for("nattch 1", || nattch(id) == 1);
    check(&m, "shm", id.0, &[(other.pid(), "attached")]);
    other.finish("user 1000's attacher");
    wait_unused(&m, "shm", id.0);
    assert_eq!(errno(fs::symlink_metadata(used(&m, "shm", id.0).join(other.pid().to_string()))), libc::ENOENT);
}

#[test]
fn a_process_with_the_segment_file_open_is_listed_until_it_closes_it() {
    let m = Mounted::new();
    let id = create_segment(0x7201, 4096, 0o600);
    let path = m.shm(id);
    let mut opener = User::sh(&format!("exec 3<{}; read line || :", q(&path)));
    wait_for("the child holds the segment file open", || holds_open(opener.pid(), &path));
    // The daemon maps the segment to serve the file: it is not a user.
    check(&m, "shm", id.0, &[(opener.pid(), "open")]);

    // Attached as well: both roles on one line.
    let script = format!("import os, sys\nfd = os.open({:?}, os.O_RDONLY)\n{ATTACH}", path.to_str().unwrap());
    let mut both = User::python(&script, &[id.0.to_string()]);
    wait_for("the second child has the file open and the segment attached", || {
        holds_open(both.pid(), &path) && attached(both.pid(), id.0)
    });
    check(&m, "shm", id.0, &[(opener.pid(), "open"), (both.pid(), "attached,open")]);

    opener.finish("the opener");
    both.finish("the opener that attached");
    wait_unused(&m, "shm", id.0);
}

/// A mapping made through the mount and kept after the descriptor is
/// closed: the process is listed as mapping it (its /proc/PID/maps shows the
/// mount's file), and goes when it unmaps.
#[test]
fn a_process_that_mapped_the_segment_file_is_listed_until_it_unmaps_it() {
    let m = Mounted::new();
    let id = create_segment(0x7202, 8192, 0o600);
    let path = m.shm(id);
    let script = format!(
        "import mmap, os, sys\nfd = os.open({:?}, os.O_RDWR)\nm = mmap.mmap(fd, 8192)\nos.close(fd)\n\
         print('ready', flush=True)\nsys.stdin.readline()\nm.close()\nsys.stdin.readline()",
        path.to_str().unwrap()
    );
    let mut mapper = User::python(&script, &[]);
    let maps_it = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|maps| maps.contains(path.to_str().unwrap()))
    };
    wait_for("the child maps the file", || maps_it(mapper.pid()));
    assert_eq!(listed(&m, "shm", id.0), [mapper.pid()]);
    let roles = users_attr(&m, "shm", id.0);
    assert!(roles.starts_with(&format!("{} ", mapper.pid())) && roles.contains("mapped"), "{roles:?}");
    mapper.finish("the mapper");
    wait_unused(&m, "shm", id.0);
}

#[test]
fn semop_waiters_of_their_own_and_through_the_mount_are_listed_until_released() {
    let m = Mounted::new();
    let id = create_set(0x7301, 2, 0o600);
    sem::set_value(id, 1, 1).unwrap();
    let mut own = User::python(SEMOP, &[id.0.to_string(), "0".into(), "-1".into()]);
    wait_for("the semop -1 waits (GETNCNT 1)", || ncnt(id, 0) == 1);
    check(&m, "sem", id.0, &[(own.pid(), "waiting")]);

    let file = |n: u16| q(&m.path(format!("sem/{}/{n}", id.0)));
    let mut take = User::sh(&format!("echo -1 > {}", file(0)));
    wait_for("the P through the mount waits (GETNCNT 2)", || ncnt(id, 0) == 2);
    let mut zero = User::sh(&format!("echo =0 > {}", file(1)));
    wait_for("the =0 through the mount waits (GETZCNT 1)", || zcnt(id, 1) == 1);
    assert!(daemon_waits(&m) >= 2, "the daemon's threads wait in semop for the two callers");
    check(&m, "sem", id.0, &[(own.pid(), "waiting"), (take.pid(), "waiting-take"), (zero.pid(), "waiting-zero")]);

    sem::operate(id, 0, 2, None).unwrap();
    sem::set_value(id, 1, 0).unwrap();
    for (user, what) in [(&mut own, "the semop"), (&mut take, "echo -1"), (&mut zero, "echo =0")] {
        user.finish(what);
    }
    wait_unused(&m, "sem", id.0);
    assert_eq!((sem::query(id, 0, sem::Query::Value).unwrap(), ncnt(id, 0), zcnt(id, 1)), (0, 0, 0));
}

#[test]
fn receivers_of_their_own_and_through_the_mount_are_listed_until_a_message_comes() {
    let m = Mounted::new();
    let id = create_queue(0x7401, 0o600);
    let mut own = User::python(MSGRCV, &[id.0.to_string()]);
    wait_for("the msgrcv waits", || threads_in_syscall(own.pid() as i32, libc::SYS_msgrcv) == 1);
    check(&m, "msg", id.0, &[(own.pid(), "waiting-receive")]);

    let wait_any = m.path(format!("msg/{}/.wait/any", id.0));
    let mut command = Command::new("dd");
    command.args([format!("if={}", wait_any.display()), "bs=65536".into(), "count=1".into(), "status=none".into()]);
    let mut reader = User::start(command);
    wait_for("the reader of .wait/any waits", || waiting_on_fuse(reader.pid() as i32) && daemon_waits(&m) >= 1);
    check(&m, "msg", id.0, &[(own.pid(), "waiting-receive"), (reader.pid(), "waiting-receive")]);

    send(id, 1, b"one");
    send(id, 1, b"two");
    own.finish("the msgrcv");
    reader.finish("the reader of .wait/any");
    wait_unused(&m, "msg", id.0);
    assert_eq!(qnum(id), 0);
}

#[test]
fn senders_to_a_full_queue_are_listed_until_there_is_room() {
    let m = Mounted::new();
    let id = create_queue(0x7501, 0o600);
    let k = kstat(id);
    msg::set(id, k.perm.uid, k.perm.gid, k.perm.mode, 10).unwrap();
    send(id, 1, b"12345678");
    let mut own = User::python(MSGSND, &[id.0.to_string()]);
    wait_for("the msgsnd waits", || threads_in_syscall(own.pid() as i32, libc::SYS_msgsnd) == 1);
    let mut writer = User::sh(&format!("printf abc > {}", q(&m.path(format!("msg/{}/3", id.0)))));
    wait_for("the writer waits", || waiting_on_fuse(writer.pid() as i32) && daemon_waits(&m) >= 1);
    check(&m, "msg", id.0, &[(own.pid(), "waiting-send"), (writer.pid(), "waiting-send")]);

    assert_eq!(msg::receive(id, 0, BIG, false).unwrap().body, b"12345678", "the message that filled the queue");
    own.finish("the msgsnd");
    writer.finish("printf abc");
    assert_eq!(qnum(id), 2, "both waiting messages were sent");
    wait_unused(&m, "msg", id.0);
}

/// A proc filesystem mounted over /proc in the test thread's own mount
/// namespace (which the daemon shares); only that one layer is unmounted on
/// drop.
struct PrivateProc;

impl PrivateProc {
    fn mount(options: &str) -> PrivateProc {
        mount(Some("proc"), "/proc", Some("proc"), MsFlags::empty(), Some(options)).expect("mount proc");
        PrivateProc
    }
}

impl Drop for PrivateProc {
    fn drop(&mut self) {
        umount2("/proc", MntFlags::MNT_DETACH).expect("unmount the private /proc");
    }
}

#[test]
fn another_user_sees_only_the_processes_proc_shows_it() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let id = create_segment(0x7601, 4096, 0o666);
    let mut root = User::python(ATTACH, &[id.0.to_string()]);
    wait_for("root's process attached", || nattch(id) == 1);
    let mut command = as_user(USER, USER_GID, &[]);
    command.args([PYTHON, "-c", ATTACH, &id.0.to_string()]);
    let mut own = User::start(command);
    wait_for("user 1000's process attached", || nattch(id) == 2);
    let dir = used(&m, "shm", id.0);
    let as_user_ls = |path: &PathBuf| sh_as(USER, USER_GID, &[], &format!("LC_ALL=C ls {}", q(path)));
    let pids = |text: String| -> Vec<u32> {
        let mut pids: Vec<u32> = text.split_whitespace().map(|p| p.parse().unwrap()).collect();
        pids.sort_unstable();
        pids
    };
    let mut both = vec![root.pid(), own.pid()];
    both.sort_unstable();

    // The default /proc shows every process to everyone.
    assert_eq!(pids(assert_ok(&as_user_ls(&dir), "ls as user 1000")), both);
    let attr = sh_as(USER, USER_GID, &[], &format!("getfattr --only-values -n user.ipc.users {}", q(&dir)));
    assert_eq!(assert_ok(&attr, "getfattr as user 1000"), lines(&[(root.pid(), "attached"), (own.pid(), "attached")]));

    // hidepid=2: a user sees only its own processes, here and in users/.
    let _proc = PrivateProc::mount("hidepid=2");
    assert!(fs::metadata(format!("/proc/{}", root.pid())).is_ok(), "root still sees root's process");
    let hidden = sh_as(USER, USER_GID, &[], &format!("test -e /proc/{}", root.pid()));
    assert!(!hidden.status.success(), "hidepid=2 did not hide root's process from user 1000");
    assert_eq!(pids(assert_ok(&as_user_ls(&dir), "ls as user 1000 with hidepid=2")), [own.pid()]);
    assert_eq!(pids(sh_ok(&format!("ls {}", q(&dir)))), both, "root sees both");

    own.finish("user 1000's attacher");
    wait_for("nattch 1", || nattch(id) == 1);
    wait_for("user 1000 no longer sees the segment in use", || {
        let out = as_user_ls(&m.path("users/shm"));
        out.status.success() && out.stdout.is_empty()
    });
    let stat = sh_as(USER, USER_GID, &[], &format!("LC_ALL=C stat {}", q(&dir)));
    assert_refused(&stat, "No such file or directory", "stat users/shm/ID as user 1000");
    assert_eq!(pids(sh_ok(&format!("ls {}", q(&dir)))), [root.pid()], "root still sees its own");
    root.finish("root's attacher");
    wait_unused(&m, "shm", id.0);
}
