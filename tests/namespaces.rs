//! `--ipc-ns PATH` and `--pid PID`: serving another IPC namespace (a
//! container's) instead of the daemon's own. Each test makes its namespaces
//! with `unshare --ipc`, held by a process that dies with the test.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A process alone in a new IPC namespace; killed when dropped.
struct Holder(Child);

impl Holder {
    fn new() -> Holder {
        isolate();
        let mine = std::fs::read_link("/proc/thread-self/ns/ipc").unwrap();
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--", "unshare", "--ipc", "sleep", "1000"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let holder = Holder(child);
        // setpriv execs unshare, which execs sleep in the new namespace.
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::read_link(holder.ns()).ok().is_none_or(|ns| ns == mine) {
            assert!(Instant::now() < deadline, "unshare --ipc did not start");
            std::thread::yield_now();
        }
        holder
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn ns(&self) -> String {
        format!("/proc/{}/ns/ipc", self.pid())
    }

    /// Runs a shell command line in the holder's IPC namespace.
    fn sh(&self, script: &str) -> String {
        let out =
            Command::new("nsenter").arg(format!("--ipc={}", self.ns())).args(["sh", "-c", script]).output().unwrap();
        assert_ok(&out, script)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ids(text: &str) -> String {
    text.split_whitespace().last().unwrap().to_string()
}

#[test]
fn a_mount_of_another_namespace_shows_only_its_objects() {
    let holder = Holder::new();
    let theirs = ids(&holder.sh("ipcmk -M 777"));
    holder.sh("ipcmk -S 3 >/dev/null && ipcmk -Q >/dev/null");
    create_segment(0x0000a5a5, 555, 0o600); // ours: must not show
    for how in [["--ipc-ns".to_string(), holder.ns()], ["--pid".to_string(), holder.pid().to_string()]] {
        let m = Mounted::with_options(&[how[0].as_str(), how[1].as_str()]);
        assert_eq!(list(&m.path("shm")), std::slice::from_ref(&theirs), "{how:?}");
        assert_eq!(std::fs::metadata(m.path(format!("shm/{theirs}"))).unwrap().len(), 777);
        assert_eq!(list(&m.path("sem")).len(), 1, "{how:?}");
        assert_eq!(list(&m.path("msg")).len(), 1, "{how:?}");
        // What is made through the mount is made in that namespace.
        std::fs::create_dir(m.path("msg/0x00000b0b")).unwrap();
        assert!(holder.sh("ipcs -q").contains("0x00000b0b"), "{how:?}");
        assert!(!sh_ok("ipcs -q").contains("0x00000b0b"), "not in ours");
        sh_ok(&format!("rmdir \"$(realpath {})\"", q(&m.path("by-key/msg/0x00000b0b"))));
        assert!(!holder.sh("ipcs -q").contains("0x00000b0b"), "{how:?}: removed there");
        // Its limits are its own.
        std::fs::write(m.path("limits/msgmni"), "123").unwrap();
        assert_eq!(holder.sh("cat /proc/sys/kernel/msgmni"), "123\n");
        assert_ne!(std::fs::read_to_string("/proc/sys/kernel/msgmni").unwrap(), "123\n");
    }
}

/// The daemon is a process of that namespace too: when the container's last
/// process exits, the namespace and its objects live on while it is mounted.
#[test]
fn the_namespace_outlives_its_last_process_while_mounted() {
    let holder = Holder::new();
    let theirs = ids(&holder.sh("ipcmk -M 4096"));
    let m = Mounted::with_options(&["--pid", &holder.pid().to_string()]);
    drop(holder);
    assert_eq!(list(&m.path("shm")), [theirs]);
}

#[test]
fn a_path_that_is_not_an_ipc_namespace_is_refused_and_nothing_is_mounted() {
    isolate();
    let dir = TempDir::new("ns");
    let bin = env!("CARGO_BIN_EXE_ipcfs");
    for (args, says) in [
        (vec!["--ipc-ns", "/etc/passwd"], "not an IPC namespace"),
        (vec!["--ipc-ns", "/proc/self/ns/net"], "not an IPC namespace"),
        (vec!["--pid", "999999999"], "No such file"),
    ] {
        let out = Command::new(bin).args(&args).arg(&dir.0).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(says), "{args:?}: {}", stderr_of(&out));
        assert!(!is_mounted(&dir.0), "{args:?}");
    }
    let out = Command::new(bin).args(["--pid", "1", "--ipc-ns", "/proc/1/ns/ipc"]).arg(&dir.0).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "--pid with --ipc-ns is a usage error");
}
