//! `--ipc-ns PATH` and `--pid PID`: serving another IPC namespace (a
//! container's) instead of the daemon's own; and `ns/by-name/`, the
//! containers of `-A` by host name. Each test makes its namespaces with
//! `unshare --ipc`, held by a process that dies with the test.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A process alone in a new IPC namespace; killed when dropped.
struct Holder(Child);

impl Holder {
    fn new() -> Holder {
        Holder::running(&["unshare", "--ipc", "sleep", "1000"])
    }

    /// A process in new IPC and UTS namespaces, with host name `name`.
    fn named(name: &str) -> Holder {
        Holder::named_by(name, &[])
    }

    /// The same, made by `user` (`setpriv` arguments) in a user namespace
    /// of theirs if any.
    fn named_by(name: &str, user: &[&str]) -> Holder {
        let script = format!("hostname {name} && exec sleep 1000");
        let own_user_ns = if user.is_empty() { None } else { Some("-r") };
        let command: Vec<&str> = user
            .iter()
            .copied()
            .chain(["unshare"])
            .chain(own_user_ns)
            .chain(["--ipc", "--uts", "sh", "-c", &script])
            .collect();
        let holder = Holder::running(&command);
        wait_until("the host name is set", Duration::from_secs(20), || {
            holder.sh_in("--uts", "hostname") == format!("{name}\n")
        });
        holder
    }

    fn running(command: &[&str]) -> Holder {
        isolate();
        let mine = std::fs::read_link("/proc/thread-self/ns/ipc").unwrap();
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--"])
            .args(command)
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

    /// The holder's IPC namespace's inode number, its name under `ns/`.
    fn ns_inode(&self) -> String {
        ns_at(self.ns()).unwrap().to_string()
    }

    /// Runs a shell command line in the holder's IPC namespace.
    fn sh(&self, script: &str) -> String {
        self.sh_in("--ipc", script)
    }

    /// Runs a shell command line in one of the holder's namespaces (`--ipc`, `--uts`).
    fn sh_in(&self, which: &str, script: &str) -> String {
        let out = Command::new("nsenter")
            .arg(format!("{which}=/proc/{}/ns/{}", self.pid(), which.trim_start_matches('-')))
            .args(["sh", "-c", script])
            .output()
            .unwrap();
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

/// The names in `ns/by-name/` and where each points.
fn names(m: &Mounted) -> std::collections::BTreeMap<String, String> {
    list(&m.path("ns/by-name"))
        .into_iter()
        .map(|name| {
            let target = std::fs::read_link(m.path(format!("ns/by-name/{name}"))).unwrap();
            (name, target.to_str().unwrap().to_string())
        })
        .collect()
}

/// A container's host name names its namespace, as it is now; a name two
/// namespaces share names neither, and a namespace whose processes share
/// the host's name has none. Namespaces a user made (who may give them any
/// name) name nothing, nor stand in the way of root's.
#[test]
fn containers_are_found_by_host_name() {
    let tag = unique_tag();
    let (web, dup) = (format!("web-{tag}"), format!("dup-{tag}"));
    let a = Holder::named(&web);
    let user = ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "--"];
    let (_impostor, _squatter) = (Holder::named_by(&web, &user), Holder::named_by(&format!("free-{tag}"), &user));
    let (b, c) = (Holder::named(&dup), Holder::named(&dup));
    let plain = Holder::new();
    let theirs = ids(&a.sh("ipcmk -M 4321"));
    let m = Mounted::with_options(&["-A"]);

    let named = names(&m);
    assert_eq!(named.get(&web), Some(&format!("../{}", a.ns_inode())), "{named:?}");
    assert!(!named.contains_key(&dup), "two namespaces share {dup}: {named:?}");
    assert!(!named.values().any(|t| *t == format!("../{}", plain.ns_inode())), "{named:?}");
    assert!(!named.contains_key(&format!("free-{tag}")), "a user's namespace: {named:?}");
    assert_eq!(list(&m.path(format!("ns/by-name/{web}/shm"))), std::slice::from_ref(&theirs));
    assert_eq!(std::fs::metadata(m.path(format!("ns/by-name/{web}/shm/{theirs}"))).unwrap().len(), 4321);
    assert_eq!(errno(std::fs::read_link(m.path(format!("ns/by-name/{dup}")))), libc::ENOENT);

    // Names are read when asked: a new host name shows at once.
    let renamed = format!("renamed-{tag}");
    a.sh_in("--uts", &format!("hostname {renamed}"));
    let named = names(&m);
    assert_eq!(named.get(&renamed), Some(&format!("../{}", a.ns_inode())), "{named:?}");
    assert!(!named.contains_key(&web), "{named:?}");

    // With one of the two gone, the name is no longer shared.
    let b_ns = b.ns_inode();
    drop(c);
    wait_until("the name is unique again", Duration::from_secs(20), || {
        std::fs::read_link(m.path(format!("ns/by-name/{dup}"))).is_ok_and(|t| t.to_str() == Some(&format!("../{b_ns}")))
    });
}

/// A namespace kept by a bind mount (`unshare --ipc=FILE`), with no process
/// in it, can be served by naming that file.
#[test]
fn a_namespace_kept_by_a_bind_mount_can_be_served() {
    isolate();
    let dir = TempDir::new("nsfile");
    let file = dir.0.join("ipc");
    std::fs::write(&file, "").unwrap();
    let keep = format!("unshare --ipc={} true && nsenter --ipc={} ipcmk -M 2345", q(&file), q(&file));
    let theirs = ids(&sh_ok(&keep));
    let m = Mounted::with_options(&["--ipc-ns", file.to_str().unwrap()]);
    assert_eq!(list(&m.path("shm")), std::slice::from_ref(&theirs));
    assert_eq!(std::fs::metadata(m.path(format!("shm/{theirs}"))).unwrap().len(), 2345);
    drop(m);
    sh_ok(&format!("umount {}", q(&file)));
    std::fs::remove_file(&file).unwrap();
}

/// `ns/by-pid/` and `ns/by-name/` show a user only what /proc shows it: the
/// namespace of a process whose /proc/PID/ns/ipc it may read (its own, not
/// root's), and `ns/by-pid/<pid>` of another's process is refused as
/// reading that link is. Root sees everything. (A user could otherwise
/// learn which container every process of the host is in.)
#[test]
fn by_pid_and_by_name_show_a_user_only_the_processes_it_may_see() {
    let tag = unique_tag();
    let web = format!("seen-{tag}");
    let container = Holder::named(&web);
    let user = ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "--"];
    let own = Holder::running(&[&user[..], &["unshare", "-r", "--ipc", "sleep", "1000"]].concat());
    let m = Mounted::with_options(&["-A", "-o", "allow_other"]);
    let by_pid = m.path("ns/by-pid");
    let (theirs, mine) = (container.0.id().to_string(), own.0.id().to_string());

    let listed = |uid: u32| {
        let out = sh_as(uid, uid, &[], &format!("ls {}", q(&by_pid)));
        assert_ok(&out, "ls ns/by-pid").lines().map(str::to_string).collect::<Vec<_>>()
    };
    let as_user = listed(1000);
    assert!(as_user.contains(&mine), "the user's own process: {as_user:?}");
    assert!(!as_user.contains(&theirs), "root's container process shown to a user: {as_user:?}");
    let as_root = listed(0);
    assert!(as_root.contains(&mine) && as_root.contains(&theirs), "{as_root:?}");

    let link = |uid: u32, pid: &str| sh_as(uid, uid, &[], &format!("readlink -v {}/{pid}", q(&by_pid)));
    assert_eq!(assert_ok(&link(1000, &mine), "readlink own"), format!("../{}\n", own.ns_inode()));
    assert_refused(&link(1000, &theirs), "Permission denied", "readlink of root's process as a user");
    assert_refused(
        &sh_as(1000, 1000, &[], &format!("readlink -v /proc/{theirs}/ns/ipc")),
        "Permission denied",
        "the same through /proc",
    );
    assert_eq!(assert_ok(&link(0, &theirs), "readlink as root"), format!("../{}\n", container.ns_inode()));

    let by_name = |uid: u32| assert_ok(&sh_as(uid, uid, &[], &format!("ls {}", q(&m.path("ns/by-name")))), "ls");
    assert!(by_name(0).lines().any(|n| n == web), "root sees the container by name");
    assert!(!by_name(1000).lines().any(|n| n == web), "a user does not see root's container's name");
}
