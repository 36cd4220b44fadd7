//! `-o all_namespaces` (`-A`, `--all-namespaces`): `MOUNT/ns/<inode>/` for
//! every IPC namespace a process is in, each with the usual tree of that
//! namespace; `ns/<own inode> -> ..`; `ns/by-pid/<pid> -> ../<inode>`.
//!
//! Covered: each namespace shows its own objects only (against `lsipc`
//! run there); every kind of operation through `ns/<N>` (shm bytes, mkdir,
//! send and receive, semaphore values, chmod, rm, limits) happens in N and
//! nowhere else; waits (a P, a waiting receive) wait in N; a namespace goes
//! when its last process ends or leaves it, and the daemon lets go of it;
//! who may enter another namespace's tree (its owner and root only, also for
//! a rootless namespace); no `ns/` without the option; bad names and changes
//! to `ns/` itself are refused.
//!
//! Ids start at 0 in every IPC namespace, so each test that acts on another
//! namespace makes an object with the same id in its own: an operation done
//! in the wrong namespace would show there. Outcomes are checked with the
//! kernel inside the namespace (a thread that joined it, or `nsenter`).
//! Other tests make namespaces of their own at the same time, so no test
//! counts the entries of `ns/`: each looks for the namespaces it made.

use crate::common::*;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use ipcfs::ipc::msg::{self, MsqId};
use ipcfs::ipc::sem::{self, Query, SemId};
use nix::sched::{CloneFlags, setns};

/// Inode numbers of another namespace's tree start at its slot times this.
const SLOT: u64 = 1 << 40;
/// Another user, without a passwd entry.
const OTHER_USER: u32 = 1001;

// ---- namespaces and the processes that hold them ----

/// The test thread's own IPC namespace: the one the mount's root shows.
fn own_ns() -> u64 {
    ns_at("/proc/thread-self/ns/ipc").unwrap()
}

fn process_ns(pid: u32) -> Option<u64> {
    ns_at(format!("/proc/{pid}/ns/ipc"))
}

fn comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim_end().to_string()
}

/// A process holding an IPC namespace; killed and reaped when dropped.
struct Holder {
    child: Child,
    /// The namespace it was in once ready.
    ns: u64,
}

impl Holder {
    /// As root, alone in a new IPC namespace, after running `setup` there.
    fn new(setup: &str) -> Holder {
        let mut command = Command::new("setpriv");
        command
            .args(["--pdeathsig", "KILL", "--", "unshare", "--ipc", "sh", "-ec", &then_sleep(setup)])
            .stdin(Stdio::null());
        Holder::start(command, "unshare --ipc", |pid| comm(pid) == "sleep" && process_ns(pid) != Some(own_ns()))
    }

    /// As `uid`, root of a new user namespace of its own (`unshare -r`, a
    /// rootless container), alone in a new IPC namespace, after running
    /// `setup` there.
    fn rootless(uid: u32, setup: &str) -> Holder {
        let mut command = as_user(uid, uid, &[]);
        command.args([
            "setpriv",
            "--pdeathsig",
            "KILL",
            "--",
            "unshare",
            "-r",
            "--ipc",
            "sh",
            "-ec",
            &then_sleep(setup),
        ]);
        Holder::start(command, "unshare -r --ipc", |pid| comm(pid) == "sleep" && process_ns(pid) != Some(own_ns()))
    }

    /// A second process in `other`'s namespace.
    fn joining(other: &Holder) -> Holder {
        let mut command = Command::new("setpriv");
        command
            .args(["--pdeathsig", "KILL", "--", "nsenter", &format!("--ipc={}", other.ns_path()), "sleep", "1000"])
            .stdin(Stdio::null());
        let ns = other.ns;
        Holder::start(command, "nsenter", move |pid| comm(pid) == "sleep" && process_ns(pid) == Some(ns))
    }

    /// Starts `command` (with its stdin set) from the test's namespaces and
    /// waits until `ready` holds for its process.
    fn start(mut command: Command, what: &str, ready: impl Fn(u32) -> bool) -> Holder {
        isolate();
        command.stdout(Stdio::null());
        let child = command.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut holder = Holder { child, ns: 0 };
        let pid = holder.pid();
        wait_until(&format!("{what} is ready"), LIMIT, || {
            if let Some(status) = holder.child.try_wait().unwrap() {
                panic!("{what} ended early: {status}");
            }
            ready(pid)
        });
        holder.ns = process_ns(pid).unwrap();
        holder
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn ns_path(&self) -> String {
        format!("/proc/{}/ns/ipc", self.pid())
    }

    /// Opens the holder's namespace, which keeps it from being freed while
    /// the file is open, without being a process in it (to ipcfs it goes
    /// with its last process all the same). Tests that look for a namespace
    /// to be gone hold it: the kernel reuses a freed namespace's inode
    /// number at once, and another test's new namespace could take it.
    fn pin(&self) -> File {
        File::open(self.ns_path()).unwrap()
    }

    /// Runs a shell command line in the holder's IPC namespace; its stdout.
    fn sh(&self, script: &str) -> String {
        let out = Command::new("nsenter")
            .arg(format!("--ipc={}", self.ns_path()))
            .args(["sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_ok(&out, script)
    }

    /// Runs `f` on a thread that has joined the holder's IPC namespace: the
    /// kernel's own view of it.
    fn inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let ns = File::open(self.ns_path()).unwrap();
        std::thread::scope(|s| {
            let thread = s.spawn(|| {
                setns(&ns, CloneFlags::CLONE_NEWIPC).expect("setns");
                f()
            });
            thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A script that runs `setup`, then stays (as `sleep`) to hold the namespace.
fn then_sleep(setup: &str) -> String {
    if setup.is_empty() { "exec sleep 1000".into() } else { format!("{setup}\nexec sleep 1000") }
}

/// How many threads of process `pid` are in IPC namespace `ns`.
fn threads_in(pid: i32, ns: u64) -> usize {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks.flatten().filter(|task| ns_at(task.path().join("ns/ipc")) == Some(ns)).count()
}

/// Whether process `pid` has a pidfd open on process `watched` (its
/// `fdinfo` names the pid): how the daemon waits for a namespace's process
/// to end.
fn watches(pid: i32, watched: u32) -> bool {
    watchers(pid, watched) > 0
}

/// How many pidfds process `pid` has open on process `watched`.
fn watchers(pid: i32, watched: u32) -> usize {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else { return 0 };
    let line = format!("Pid:\t{watched}");
    fds.flatten().filter(|fd| fs::read_to_string(fd.path()).is_ok_and(|info| info.lines().any(|l| l == line))).count()
}

// ---- the mount ----

fn mount_all() -> Mounted {
    Mounted::with_options(&["-o", "all_namespaces"])
}

/// `ns/<ns>` in the mount.
fn ns_dir(m: &Mounted, ns: u64) -> PathBuf {
    m.path(format!("ns/{ns}"))
}

fn ino(path: &Path) -> u64 {
    fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display())).ino()
}

/// Whether `path` is gone: ENOENT, and no other error.
fn path_is_gone(path: &Path) -> bool {
    match fs::symlink_metadata(path) {
        Ok(_) => false,
        Err(e) => {
            assert_eq!(errno_of(&e), libc::ENOENT, "stat {}: {e}", path.display());
            true
        }
    }
}

fn link(path: &Path) -> String {
    fs::read_link(path).unwrap_or_else(|e| panic!("readlink {}: {e}", path.display())).to_str().unwrap().to_string()
}

/// A shell command that starts in the test's namespaces and may wait; its
/// stdout is piped.
fn spawn_sh(script: &str) -> Child {
    Command::new("sh").args(["-c", script]).stdin(Stdio::null()).stdout(Stdio::piped()).spawn().unwrap()
}

/// Waits for `child` (bounded) and requires success; its stdout.
fn finish(mut child: Child, what: &str) -> Vec<u8> {
    let status = wait_timeout(&mut child, LIMIT).unwrap_or_else(|| panic!("{what} did not end"));
    assert!(status.success(), "{what}: {status}");
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    out
}

// ---- what a namespace holds ----

/// The objects of one namespace: segments (id, size), sets (id, nsems), queues (id).
#[derive(Debug, PartialEq, Eq)]
struct Objects {
    shm: Vec<(String, u64)>,
    sem: Vec<(String, u64)>,
    msg: Vec<String>,
}

/// What the tree at `root` (the mount's root, or `ns/<N>`) shows.
fn shown(root: &Path) -> Objects {
    let size = |p: PathBuf| fs::metadata(p).unwrap().len();
    let mut objects = Objects {
        shm: list(&root.join("shm")).into_iter().map(|id| (id.clone(), size(root.join("shm").join(id)))).collect(),
        sem: list(&root.join("sem"))
            .into_iter()
            .map(|id| (id.clone(), list(&root.join("sem").join(id)).len() as u64))
            .collect(),
        msg: list(&root.join("msg")),
    };
    objects.shm.sort();
    objects.sem.sort();
    objects
}

/// What `lsipc --json` says, run by `run` (in the namespace to look at).
fn lsipc_says(run: impl Fn(&str) -> String) -> Objects {
    let rows = |args: &str| parse_lsipc_json(&run(&format!("lsipc --json {args}")));
    let field = |row: &HashMap<String, String>, name: &str| row[name].clone();
    let number = |row: &HashMap<String, String>, name: &str| row[name].parse::<u64>().unwrap();
    let mut objects = Objects {
        shm: rows("-m -b -o ID,SIZE").iter().map(|r| (field(r, "id"), number(r, "size"))).collect(),
        sem: rows("-s -o ID,NSEMS").iter().map(|r| (field(r, "id"), number(r, "nsems"))).collect(),
        msg: rows("-q -o ID").iter().map(|r| field(r, "id")).collect(),
    };
    objects.shm.sort();
    objects.sem.sort();
    objects.msg.sort();
    objects
}

fn objects(shm: &[(i32, u64)], sem: &[(i32, u64)], msg: &[i32]) -> Objects {
    Objects {
        shm: shm.iter().map(|(id, size)| (id.to_string(), *size)).collect(),
        sem: sem.iter().map(|(id, n)| (id.to_string(), *n)).collect(),
        msg: msg.iter().map(i32::to_string).collect(),
    }
}

/// The value of semaphore 0 in what `ipcs -s -i ID` prints.
fn ipcs_sem_value(text: &str) -> i32 {
    let row = text.lines().find(|l| l.split_whitespace().next() == Some("0") && l.split_whitespace().count() == 5);
    row.unwrap_or_else(|| panic!("no semnum 0 in {text:?}")).split_whitespace().nth(1).unwrap().parse().unwrap()
}

// ---- the tests ----

/// Each `ns/<N>` shows N's objects and nothing else, as `lsipc` in N does;
/// the root shows the mount's own namespace; the links name the right
/// namespaces; inode numbers of different trees never collide.
#[test]
fn each_namespace_shows_only_its_own_objects() {
    let a = Holder::new("ipcmk -M 1111\nipcmk -Q");
    let b = Holder::new("ipcmk -M 2222\nipcmk -S 3");
    let ours = create_segment(0x0000_0333, 333, 0o600);
    assert_eq!(ours.0, 0, "ids start at 0 in every namespace");
    let m = mount_all();
    let own = own_ns();

    let names = list(&m.path("ns"));
    for ns in [a.ns, b.ns, own] {
        assert!(names.contains(&ns.to_string()), "ns/{ns} in {names:?}");
    }
    assert!(names.contains(&"by-pid".to_string()), "{names:?}");

    let expected_a = objects(&[(0, 1111)], &[], &[0]);
    let expected_b = objects(&[(0, 2222)], &[(0, 3)], &[]);
    let expected_own = objects(&[(0, 333)], &[], &[]);
    assert_eq!(lsipc_says(|cmd| a.sh(cmd)), expected_a, "lsipc in A");
    assert_eq!(lsipc_says(|cmd| b.sh(cmd)), expected_b, "lsipc in B");
    assert_eq!(lsipc_says(sh_ok), expected_own, "lsipc in ours");
    assert_eq!(shown(&ns_dir(&m, a.ns)), expected_a, "ns/A");
    assert_eq!(shown(&ns_dir(&m, b.ns)), expected_b, "ns/B");
    assert_eq!(shown(m.root()), expected_own, "the root");
    assert_eq!(list(&ns_dir(&m, b.ns).join("sem/0")), ["0", "1", "2"]);
    // by-key/ is N's too (ipcmk picks a random key).
    let keys = list(&ns_dir(&m, a.ns).join("by-key/shm"));
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(a.sh("ipcs -m").contains(&keys[0]), "{keys:?} is A's key");
    assert_eq!(link(&ns_dir(&m, a.ns).join("by-key/shm").join(&keys[0])), "../../shm/0");

    // The links.
    assert_eq!(link(&ns_dir(&m, own)), "..");
    assert_eq!(link(&m.path(format!("ns/by-pid/{}", a.pid()))), format!("../{}", a.ns));
    assert_eq!(list(&m.path(format!("ns/by-pid/{}/shm", a.pid()))), ["0"]);
    assert_eq!(fs::metadata(m.path(format!("ns/by-pid/{}/shm/0", b.pid()))).unwrap().len(), 2222);
    let daemon = m.daemon_pid().unwrap();
    assert_eq!(link(&m.path(format!("ns/by-pid/{daemon}"))), format!("../{own}"));
    // A process of the test's namespace: its link leads back to the root.
    let mnt = q(m.root());
    let resolved = sh_ok(&format!("readlink {mnt}/ns/by-pid/$$ && realpath {mnt}/ns/by-pid/$$"));
    assert_eq!(resolved, format!("../{own}\n{}\n", m.root().display()));

    // Ids are per namespace, inode numbers per mount.
    let inos = [ino(&m.path("shm/0")), ino(&ns_dir(&m, a.ns).join("shm/0")), ino(&ns_dir(&m, b.ns).join("shm/0"))];
    assert!(inos[0] != inos[1] && inos[1] != inos[2] && inos[0] != inos[2], "{inos:?}");
    assert_eq!(inos[0] / SLOT, 0, "the root's tree is slot 0: {inos:?}");
    for (ns, shm0) in [(a.ns, inos[1]), (b.ns, inos[2])] {
        let root = ino(&ns_dir(&m, ns));
        assert!(root >= SLOT, "ns/{ns}: {root}");
        assert_eq!(shm0 / SLOT, root / SLOT, "ns/{ns}/shm/0 is in the slot of ns/{ns}");
    }
    assert_ne!(inos[1] / SLOT, inos[2] / SLOT);

    // A goes with its process; B and the root still show theirs only.
    let a_dir = ns_dir(&m, a.ns);
    let _a_number = a.pin(); // its number must not pass to a namespace made meanwhile
    drop(a);
    wait_until("ns/A is gone", LIMIT, || path_is_gone(&a_dir));
    assert!(!list(&m.path("ns")).contains(&a_dir.file_name().unwrap().to_str().unwrap().to_string()));
    assert_eq!(shown(&ns_dir(&m, b.ns)), expected_b, "ns/B after A went");
    assert_eq!(shown(m.root()), expected_own, "the root after A went");
}

/// Every kind of operation through `ns/<N>` happens in N, and not in the
/// mount's own namespace, where objects with the same ids wait to show a
/// mistake.
#[test]
fn operations_through_ns_happen_in_that_namespace_only() {
    let n = Holder::new("ipcmk -M 4096\nipcmk -S 1\nipcmk -Q");
    let our_shm = create_segment(0x0000_0a0a, 4096, 0o640);
    let our_sem = sem::get(Key(0x0b0b), 1, libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
    let our_msg = msg::get(Key(0x0c0c), libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
    assert_eq!((our_shm.0, our_sem.0, our_msg.0), (0, 0, 0), "the same ids as in N");
    sem::set_value(our_sem, 0, 7).unwrap();
    msg::send(our_msg, 1, b"ours", false).unwrap();
    let m = mount_all();
    let there = ns_dir(&m, n.ns);
    let path = |p: &str| q(&there.join(p));
    let daemon = m.daemon_pid().unwrap();

    // Bytes written to a segment land in N's.
    sh_ok(&format!("printf 'written through ns/' | dd of={} conv=notrunc status=none", path("shm/0")));
    let read = sh_bytes(&format!("cat {}", path("shm/0")));
    assert_eq!(read.len(), 4096);
    assert_eq!(&read[..19], b"written through ns/");
    assert!(read[19..].iter().all(|&b| b == 0));
    assert_eq!(n.inside(|| shm::stat_any(ShmId(0)).unwrap().lpid), daemon, "the daemon attached it in N");
    assert_eq!(n.inside(|| segment_bytes(ShmId(0))), read, "N's segment, read in N");
    assert_eq!(shm::stat_any(our_shm).unwrap().lpid, 0, "ours was never attached");
    assert!(segment_bytes(our_shm).iter().all(|&b| b == 0), "and is untouched");

    // mkdir makes a queue in N.
    fs::create_dir(there.join("msg/0x0000beef")).unwrap();
    assert!(n.sh("ipcs -q").contains("0x0000beef"), "the queue is in N");
    assert!(!sh_ok("ipcs -q").contains("0x0000beef"), "and not in ours");

    // Send and receive.
    sh_ok(&format!("echo 'sent through ns/' > {}", path("msg/0/any")));
    assert_eq!(n.inside(|| queued(MsqId(0))), [(1, b"sent through ns/\n".to_vec())]);
    assert_eq!(sh_bytes(&format!("cat {}", path("msg/0/.recv/any"))), b"sent through ns/\n");
    assert_eq!(n.inside(|| queued(MsqId(0))), []);
    assert_eq!(queued(our_msg), [(1, b"ours".to_vec())], "our queue is untouched");

    // A V, and setting a value.
    sh_ok(&format!("echo +1 > {}", path("sem/0/0")));
    assert_eq!(sh_ok(&format!("cat {}", path("sem/0/0"))), "1\n");
    assert_eq!(ipcs_sem_value(&n.sh("ipcs -s -i 0")), 1, "N's semaphore");
    sh_ok(&format!("echo 5 > {}", path("sem/0/0")));
    assert_eq!(n.inside(|| sem_value(SemId(0), 0)), 5);
    assert_eq!(sem_value(our_sem, 0), 7, "ours is untouched");

    // chmod sets the mode in N.
    fs::set_permissions(there.join("shm/0"), fs::Permissions::from_mode(0o604)).unwrap();
    assert!(n.sh("ipcs -m -i 0").contains("access_perms=0604"), "{}", n.sh("ipcs -m -i 0"));
    assert_eq!(fs::metadata(there.join("shm/0")).unwrap().mode() & 0o777, 0o604);
    assert_eq!(shm::stat_any(our_shm).unwrap().perm.mode & 0o777, 0o640, "ours keeps its mode");

    // rm removes the segment in N only.
    fs::remove_file(there.join("shm/0")).unwrap();
    assert!(n.inside(|| shm::stat_any(ShmId(0)).is_err()), "gone from N");
    assert_eq!(list(&there.join("shm")), [] as [&str; 0]);
    assert!(shm::stat_any(our_shm).is_ok(), "ours is still there");
    assert_eq!(list(&m.path("shm")), ["0"]);

    // Limits are N's.
    let our_msgmni = fs::read_to_string("/proc/sys/kernel/msgmni").unwrap();
    assert_ne!(our_msgmni, "1234\n");
    fs::write(there.join("limits/msgmni"), "1234").unwrap();
    assert_eq!(n.sh("cat /proc/sys/kernel/msgmni"), "1234\n");
    assert_eq!(fs::read_to_string(there.join("limits/msgmni")).unwrap(), "1234\n");
    assert_eq!(fs::read_to_string("/proc/sys/kernel/msgmni").unwrap(), our_msgmni, "ours is unchanged");
    assert_eq!(fs::read_to_string(m.path("limits/msgmni")).unwrap(), our_msgmni);
}

/// A P through `ns/<N>` on a semaphore at 0 waits in N (N's kernel counts
/// the waiter), and a V through `ns/<N>` from another process releases it;
/// the same-id set of the mount's own namespace sees neither.
#[test]
fn a_p_through_ns_waits_in_that_namespace_until_a_v_there() {
    let n = Holder::new("ipcmk -S 1");
    let ours = sem::get(Key(0x0b0b), 1, libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
    assert_eq!(ours.0, 0, "the same id as in N");
    // A P done here by mistake would not wait, and would show.
    sem::set_value(ours, 0, 1).unwrap();
    let m = mount_all();
    let semaphore = q(&ns_dir(&m, n.ns).join("sem/0/0"));

    let mut waiter = spawn_sh(&format!("echo -1 > {semaphore}"));
    wait_until("the P waits on N's semaphore", LIMIT, || {
        n.inside(|| sem::query(SemId(0), 0, Query::WaitingToTake).unwrap()) == 1
    });
    assert!(waiter.try_wait().unwrap().is_none(), "the P is still waiting");
    assert_eq!(sem::query(ours, 0, Query::WaitingToTake).unwrap(), 0);

    sh_ok(&format!("echo +1 > {semaphore}"));
    finish(waiter, "the P after the V");
    assert_eq!(n.inside(|| sem_value(SemId(0), 0)), 0, "the P took the V's unit");
    assert_eq!(sem_value(ours, 0), 1, "ours is untouched");
}

/// A waiting receive through `ns/<N>/msg/ID/.wait/any` waits in N and gets
/// the message sent there later, not the one waiting in the own namespace's
/// queue with the same id.
#[test]
fn a_waiting_receive_through_ns_gets_the_message_sent_there_later() {
    let n = Holder::new("ipcmk -Q");
    let ours = msg::get(Key(0x0c0c), libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
    assert_eq!(ours.0, 0, "the same id as in N");
    msg::send(ours, 1, b"ours", false).unwrap();
    let m = mount_all();
    let queue = ns_dir(&m, n.ns).join("msg/0");

    let reader = spawn_sh(&format!("exec dd if={} bs=65536 count=1 status=none", q(&queue.join(".wait/any"))));
    let pid = reader.id() as i32;
    wait_until("the receive waits", LIMIT, || waiting_on_fuse(pid));
    sh_ok(&format!("printf 'sent later' > {}", q(&queue.join("any"))));
    assert_eq!(finish(reader, "the waiting receive"), b"sent later");
    assert_eq!(n.inside(|| queued(MsqId(0))), [], "taken from N's queue");
    assert_eq!(queued(ours), [(1, b"ours".to_vec())], "ours is untouched");
}

/// ipcfs uses no SEM_UNDO: a P through `ns/<N>` stays done after the daemon
/// is gone.
#[test]
fn a_p_through_ns_stays_done_after_the_daemon_is_gone() {
    let n = Holder::new("ipcmk -S 1");
    n.inside(|| sem::set_value(SemId(0), 0, 2).unwrap());
    let mut m = mount_all();
    sh_ok(&format!("echo -1 > {}", q(&ns_dir(&m, n.ns).join("sem/0/0"))));
    assert_eq!(n.inside(|| sem_value(SemId(0), 0)), 1);
    assert!(m.terminate().success(), "the daemon ends cleanly");
    drop(m);
    assert_eq!(ipcs_sem_value(&n.sh("ipcs -s -i 0")), 1, "the P stays done");
}

/// `ns/<N>` stays while any process is in N: when the process the daemon
/// found it through ends, the daemon waits for the next one, and the
/// directory stays the same. When the last one ends, the daemon notices by
/// itself (no listing of `ns/` here), the name is gone and no thread of the
/// daemon is left in N.
#[test]
fn a_namespace_goes_when_its_last_process_ends() {
    let a = Holder::new("ipcmk -M 4096");
    let (ns, _pinned) = (a.ns, a.pin());
    let m = mount_all();
    let root = ns_dir(&m, ns);
    let daemon = m.daemon_pid().unwrap();
    let first = ino(&root);
    assert!(threads_in(daemon, ns) >= 1, "a thread of the daemon serves N");
    assert!(watches(daemon, a.pid()), "the daemon waits for A to end");
    let b = Holder::joining(&a);

    let b_pid = b.pid();
    drop(a);
    wait_until("the daemon waits for B instead", LIMIT, || watches(daemon, b_pid));
    assert_eq!(ino(&root), first, "still there, the same directory");
    assert_eq!(list(&root.join("shm")), ["0"]);
    assert_eq!(fs::metadata(root.join("shm/0")).unwrap().len(), 4096);
    assert_eq!(ino(&root), first);

    drop(b);
    wait_until("ns/N is gone", LIMIT, || path_is_gone(&root));
    assert!(path_is_gone(&root.join("shm")) && path_is_gone(&root.join("shm/0")));
    wait_until("no thread of the daemon is in N", LIMIT, || threads_in(daemon, ns) == 0);
    assert!(path_is_gone(&root), "and it does not come back");
}

/// A namespace whose only process moved to another one is gone from a
/// listing of `ns/`, and then from lookups too; the daemon lets go of it.
#[test]
fn a_namespace_its_only_process_left_is_dropped_from_the_listing() {
    let mut command = Command::new("setpriv");
    command.args([
        "--pdeathsig",
        "KILL",
        "--",
        "unshare",
        "--ipc",
        "sh",
        "-c",
        "read x; exec unshare --ipc sleep 1000",
    ]);
    command.stdin(Stdio::piped());
    let mut mover =
        Holder::start(command, "unshare --ipc sh", |pid| comm(pid) == "sh" && process_ns(pid) != Some(own_ns()));
    let (pid, left, _pinned) = (mover.pid(), mover.ns, mover.pin());
    let m = mount_all();
    let daemon = m.daemon_pid().unwrap();
    assert_eq!(list(&ns_dir(&m, left).join("shm")), [] as [&str; 0]);
    assert!(threads_in(daemon, left) >= 1, "a thread of the daemon serves the namespace");

    mover.child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    wait_until("the process is in a namespace of its own again", LIMIT, || {
        comm(pid) == "sleep" && process_ns(pid).is_some_and(|ns| ns != left)
    });
    let now = process_ns(pid).unwrap();

    let names = list(&m.path("ns"));
    assert!(!names.contains(&left.to_string()), "ns/{left} is not listed: {names:?}");
    assert!(names.contains(&now.to_string()), "ns/{now} is: {names:?}");
    assert!(path_is_gone(&ns_dir(&m, left)));
    assert_eq!(link(&m.path(format!("ns/by-pid/{pid}"))), format!("../{now}"));
    wait_until("no thread of the daemon is in the namespace left", LIMIT, || threads_in(daemon, left) == 0);
    // The process is watched once, for the namespace it is in now: the
    // watcher for the one it left stopped with it.
    wait_until("one watcher of the process", LIMIT, || watchers(daemon, pid) == 1);
}

/// With `allow_other`, anyone may list `ns/`, but only root and the owner of
/// a namespace's user namespace may use its tree: root's for an ordinary
/// namespace, the user's for a rootless one. The own namespace's tree keeps
/// the kernel's rule.
#[test]
fn only_root_and_the_namespaces_owner_may_enter_it() {
    let a = Holder::new("ipcmk -M 64");
    let r = Holder::rootless(USER, "ipcmk -M 100 -p 0600");
    let readable = create_segment(0x0000_1234, 32, 0o644);
    let private = create_segment(0x0000_5678, 32, 0o600);
    let m = Mounted::with_options(&["-o", "all_namespaces,allow_other"]);
    let ns = m.path("ns");
    let (root_ns, rootless) = (q(&ns_dir(&m, a.ns)), q(&ns_dir(&m, r.ns)));
    let as_user = |uid: u32, script: &str| sh_as(uid, uid, &[], script);

    // Anyone may list ns/ and see who owns what. (Only the entries of this
    // test are looked at: those of other tests may go while `ls -l` runs.)
    let names = assert_ok(&as_user(USER, &format!("ls {}", q(&ns))), "ls ns");
    for name in [a.ns, r.ns] {
        assert!(names.lines().any(|l| l == name.to_string()), "ns/{name} in {names}");
    }
    let mode_and_owner = |dir: &str| assert_ok(&as_user(USER, &format!("stat -c '%A %u' {dir}")), "stat");
    assert_eq!(mode_and_owner(&root_ns), "dr-x------ 0\n");
    assert_eq!(mode_and_owner(&rootless), format!("dr-x------ {USER}\n"));

    // Root's namespace: root only.
    for script in [
        format!("ls {root_ns}"),
        format!("ls {root_ns}/shm"),
        format!("cat {root_ns}/shm/0"),
        format!("ls {}/ns/by-pid/{}/shm", q(m.root()), a.pid()),
    ] {
        assert_refused(&as_user(USER, &script), "Permission denied", &script);
    }
    // Every capability in a user namespace of one's own is none of the host's.
    for script in [format!("unshare -Ur ls {root_ns}/shm"), format!("unshare -Ur cat {root_ns}/shm/0")] {
        assert_refused(&as_user(USER, &script), "Permission denied", &script);
    }
    assert_eq!(list(&ns_dir(&m, a.ns).join("shm")), ["0"]);
    assert_eq!(fs::read(ns_dir(&m, a.ns).join("shm/0")).unwrap(), [0; 64]);

    // The rootless namespace: its user (and root), not another.
    assert_eq!(assert_ok(&as_user(USER, &format!("ls {rootless}/shm")), "ls as its owner"), "0\n");
    let ls = assert_ok(&as_user(USER, &format!("ls -ln {rootless}/shm")), "ls -ln as its owner");
    assert!(ls.lines().any(|l| l.starts_with("-rw------- 1 1000 ")), "{ls}");
    assert_eq!(assert_ok(&as_user(USER, &format!("cat {rootless}/shm/0 | wc -c")), "cat as its owner").trim(), "100");
    assert_eq!(list(&ns_dir(&m, r.ns).join("shm")), ["0"], "root may");
    for script in [format!("ls {rootless}"), format!("cat {rootless}/shm/0")] {
        assert_refused(&as_user(OTHER_USER, &script), "Permission denied", &script);
    }
    // Inside, the kernel's IPC rule: root's segments there, 0600 and 0644,
    // are for its owner only and for everyone's reading.
    sh_ok(&format!("truncate -s 10 {rootless}/shm/0x00000a01 {rootless}/shm/0x00000a02"));
    sh_ok(&format!("chmod 600 {rootless}/by-key/shm/0x00000a01 && chmod 644 {rootless}/by-key/shm/0x00000a02"));
    let script = format!("cat {rootless}/by-key/shm/0x00000a01");
    assert_refused(&as_user(USER, &script), "Permission denied", &script);
    let script = format!("cat {rootless}/by-key/shm/0x00000a02 | wc -c");
    assert_eq!(assert_ok(&as_user(USER, &script), &script).trim(), "10");
    let script = format!("printf x > {rootless}/by-key/shm/0x00000a02");
    assert_refused(&as_user(USER, &script), "Permission denied", &script);

    // The own namespace's tree: the kernel's rule, as without the option.
    let own_shm = q(&m.path("shm"));
    let mine = assert_ok(&as_user(USER, &format!("ls {own_shm}")), "ls shm");
    assert_eq!(mine, format!("{}\n{}\n", readable.0.min(private.0), readable.0.max(private.0)));
    let script = format!("cat {own_shm}/{} | wc -c", readable.0);
    assert_eq!(assert_ok(&as_user(USER, &script), &script).trim(), "32");
    let script = format!("cat {own_shm}/{}", private.0);
    assert_refused(&as_user(USER, &script), "Permission denied", &script);
}

/// Without the option there is no `ns/`; each of its spellings makes one.
#[test]
fn ns_is_there_only_with_the_option() {
    let m = Mounted::new();
    assert_eq!(errno(fs::metadata(m.path("ns"))), libc::ENOENT);
    assert_eq!(errno(fs::metadata(m.path("ns/by-pid"))), libc::ENOENT);
    let names = list(m.root());
    assert!(names.contains(&"shm".to_string()) && !names.contains(&"ns".to_string()), "{names:?}");
    drop(m);
    for option in [&["-o", "all_namespaces"][..], &["-A"], &["--all-namespaces"]] {
        let m = Mounted::with_options(option);
        assert!(list(m.root()).contains(&"ns".to_string()), "{option:?}");
        assert_eq!(link(&ns_dir(&m, own_ns())), "..", "{option:?}");
    }
}

/// Names that are not a namespace's or a process's canonical number name
/// nothing; `ns/` and `ns/by-pid/` cannot be changed.
#[test]
fn bad_names_name_nothing_and_ns_cannot_be_changed() {
    let a = Holder::new("");
    let m = mount_all();
    let own = own_ns();
    let pid = a.pid();
    for name in [
        "ns/123".to_string(),
        "ns/0123".into(),
        format!("ns/0{}", a.ns),
        format!("ns/+{}", a.ns),
        format!("ns/{}0", a.ns),
        "ns/by-pid/999999999".into(),
        "ns/by-pid/abc".into(),
        format!("ns/by-pid/0{pid}"),
        "ns/by-pid/-1".into(),
    ] {
        assert!(path_is_gone(&m.path(&name)), "{name}");
    }

    let before = ns_snapshot(&m, &[a.ns, own], pid);
    let mnt = q(m.root());
    let ns = format!("{mnt}/ns");
    let member = format!("{ns}/{}", a.ns);
    for script in [
        format!("mkdir {ns}/new"),
        format!("mkdir {ns}/123"),
        format!("mkdir {ns}/by-pid/123"),
        format!("rmdir {member}"),
        format!("rm -f {ns}/{own}"),
        format!("rm -f {ns}/by-pid/{pid}"),
        format!("rmdir {ns}/by-pid"),
        format!("chmod 777 {member}"),
        format!("chmod 700 {ns}"),
        format!("chmod 700 {ns}/by-pid"),
        format!("chown 1000 {member}"),
        format!("mv {member} {ns}/moved"),
        format!("ln -s .. {ns}/new"),
        format!("touch {ns}/new"),
    ] {
        let out = sh(&script);
        let stderr = stderr_of(&out);
        assert!(
            !out.status.success()
                && (stderr.contains("Operation not permitted")
                    || stderr.contains("Permission denied")
                    // Creating a file where no object has that name.
                    || (script.starts_with("touch") && stderr.contains("No such file or directory"))),
            "`{script}` must be refused: {} {stderr:?}",
            out.status
        );
    }
    assert_eq!(ns_snapshot(&m, &[a.ns, own], pid), before);
    let names = list(&m.path("ns"));
    assert!(!names.iter().any(|n| n == "new" || n == "moved"), "{names:?}");
}

/// What the changes tried on `ns/` must leave as it was: the mode, owner and
/// inode number of `ns/`, `ns/by-pid/` and the namespaces' entries, and the links.
fn ns_snapshot(m: &Mounted, namespaces: &[u64], pid: u32) -> Vec<String> {
    let mut paths = vec![m.path("ns"), m.path("ns/by-pid"), m.path(format!("ns/by-pid/{pid}"))];
    paths.extend(namespaces.iter().map(|ns| ns_dir(m, *ns)));
    paths
        .iter()
        .map(|p| {
            let meta = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
            let target = fs::read_link(p).map(|t| t.display().to_string()).unwrap_or_default();
            format!("{} {:o} {} {} -> {target}", p.display(), meta.mode(), meta.uid(), meta.ino())
        })
        .collect()
}
