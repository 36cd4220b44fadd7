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
//!
//! Here: the namespaces, the mount and the helpers the tests share; the tests,
//! by subject, in [`objects`] (what each namespace shows, operations through
//! `ns/<N>`), [`waits`] (waits in N), [`lifetime`] (a namespace goes) and
//! [`entry`] (who may enter, the option, bad names and changes to `ns/`).

mod entry;
mod lifetime;
mod objects;
mod waits;

use crate::common::*;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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
