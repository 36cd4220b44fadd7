//! The command line: background and foreground modes, signals, options, logs.

use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Pids of ipcfs processes in this thread's mount namespace.
fn daemons_here() -> Vec<i32> {
    let mine = std::fs::read_link("/proc/thread-self/ns/mnt").unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
            comm.trim() == "ipcfs" && ns.as_ref() == Some(&mine)
        })
        .collect()
}

#[test]
fn background_mode_returns_once_mounted_and_the_daemon_ends_at_unmount() {
    isolate();
    let dir = TempDir::new("bg");
    let out = Command::new(ipcfs_bin()).arg(&dir.0).stdin(Stdio::null()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Usable on the very next line, with no wait.
    assert!(is_mounted(&dir.0));
    let id = create_segment(0x51, 4096, 0o644);
    assert_eq!(list(&dir.0.join("shm")), vec![id.0.to_string()]);
    let daemons = daemons_here();
    assert_eq!(daemons.len(), 1, "one daemon keeps serving: {daemons:?}");
    sh_ok(&format!("umount {}", dir.0.display()));
    wait_for("the daemon exits after umount", || daemons_here().is_empty());
}

#[test]
fn background_mode_reports_a_failed_mount() {
    isolate();
    let out = Command::new(ipcfs_bin()).arg("/nonexistent/ipcfs-mnt").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ipcfs-mnt"));
    assert!(daemons_here().is_empty());
}

#[test]
fn sigterm_and_sigint_unmount_cleanly() {
    for signal in ["TERM", "INT"] {
        let m = Mounted::new();
        let pid = m.daemon_pid().unwrap();
        sh_ok(&format!("kill -{signal} {pid}"));
        wait_for("unmounted", || !is_mounted(m.root()));
        let mut m = m;
        // terminate() sends another SIGTERM only if the daemon still runs;
        // here it must already have exited with success.
        let status = wait_for_exit(&mut m);
        assert!(status.success(), "SIG{signal}: {status}");
    }
}

fn wait_for_exit(m: &mut Mounted) -> std::process::ExitStatus {
    let pid = m.daemon_pid().unwrap();
    wait_for("daemon exit", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    m.terminate()
}

#[test]
fn sigterm_with_a_file_open_detaches_and_serves_it_until_closed() {
    let m = Mounted::new();
    let id = create_segment(0x52, 4096, 0o644);
    let file = std::fs::OpenOptions::new().read(true).write(true).open(m.shm(id)).unwrap();
    let pid = m.daemon_pid().unwrap();
    sh_ok(&format!("kill -TERM {pid}"));
    wait_for("mount detached from the tree", || !is_mounted(m.root()));
    // The open file keeps working.
    assert_eq!(file.write_at(b"still here", 0).unwrap(), 10);
    let mut buf = [0u8; 10];
    file.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"still here");
    drop(file);
    let mut m = m;
    let status = wait_for_exit(&mut m);
    assert!(status.success(), "{status}");
}

#[test]
fn unknown_options_are_errors_and_nothing_is_mounted() {
    isolate();
    let dir = TempDir::new("opt");
    for (option, message) in [("bogus", "unknown mount option 'bogus'"), ("ro,uid=5", "unknown mount option 'uid'")] {
        let out = Command::new(ipcfs_bin()).args(["-o", option]).arg(&dir.0).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "-o {option}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "-o {option}: {stderr}");
        assert!(!is_mounted(&dir.0));
    }
}

/// `-o fsname=` with nothing after it is refused as the bad option it is
/// (exit status 2, as for every other), not taken for an unknown one.
#[test]
fn an_empty_fsname_is_refused_and_nothing_is_mounted() {
    isolate();
    let dir = TempDir::new("fsname");
    for (args, message) in [
        (&["-o", "fsname="][..], "ipcfs: -o fsname= needs a value: it is empty\n"),
        (&["-o", "ro", "-o", "fsname=,nosuid"], "ipcfs: -o fsname= needs a value: it is empty\n"),
        (&["-o", "fsname"], "ipcfs: -o fsname needs a value: fsname=NAME\n"),
    ] {
        for mode in [&["--foreground"][..], &[]] {
            let out =
                Command::new(ipcfs_bin()).args(mode).args(args).arg(&dir.0).stdin(Stdio::null()).output().unwrap();
            assert_eq!((out.status.code(), stderr_of(&out).as_str()), (Some(2), message), "{mode:?} {args:?}");
            assert!(!is_mounted(&dir.0));
        }
    }
    assert!(daemons_here().is_empty());
}

/// Run by a user who is not root, ipcfs says what refused it and that it
/// must run as root, with exit status 1, and mounts nothing. Both refusals
/// are met: with /dev/fuse 0600 (as on some systems) opening it is denied;
/// with it 0666 (as on most) mount(2) is. The mode is set on a device node
/// of the test's own, bound over /dev/fuse in the test's mount namespace:
/// the host's stays as it is.
#[test]
fn as_a_user_who_is_not_root_the_refusal_names_its_cause_and_says_to_run_as_root() {
    isolate();
    let dir = TempDir::new("nonroot");
    let devices = TempDir::new("nonroot-dev");
    let fuse = devices.0.join("fuse");
    let _devices = Unmount(devices.0.clone());
    nix::mount::mount(Some("devices"), &devices.0, Some("tmpfs"), nix::mount::MsFlags::empty(), Some("mode=0755"))
        .unwrap();
    let rdev = std::fs::metadata("/dev/fuse").expect("/dev/fuse").rdev();
    nix::sys::stat::mknod(&fuse, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), rdev).unwrap();
    let _fuse = Unmount("/dev/fuse".into());
    nix::mount::mount(Some(&fuse), "/dev/fuse", None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>).unwrap();

    let mount_point = dir.0.display();
    for (mode, message) in [
        (
            0o600,
            "ipcfs: cannot open /dev/fuse: Permission denied (ipcfs must run as root: it opens /dev/fuse \
             and mounts by itself; fusermount3 is not used)\n"
                .to_string(),
        ),
        (
            0o666,
            format!(
                "ipcfs: mount(2) on {mount_point} refused: Operation not permitted; ipcfs mounts by itself \
                 and needs CAP_SYS_ADMIN (run it as root); fusermount3 is not used\n"
            ),
        ),
    ] {
        std::fs::set_permissions(&fuse, std::fs::Permissions::from_mode(mode)).unwrap();
        assert_eq!(std::fs::metadata("/dev/fuse").unwrap().mode() & 0o777, mode, "the node bound over /dev/fuse");
        for args in [&["--foreground"][..], &[]] {
            let out = as_user(65534, 65534, &[]).arg(ipcfs_bin()).args(args).arg(&dir.0).output().unwrap();
            let said = stderr_of(&out);
            assert_eq!((out.status.code(), said.as_str()), (Some(1), message.as_str()), "/dev/fuse {mode:o}, {args:?}");
            assert!(said.contains("/dev/fuse") || said.contains("mount(2)"), "{said}");
            assert!(said.contains("run as root") || said.contains("run it as root"), "{said}");
            assert!(!is_mounted(&dir.0), "/dev/fuse {mode:o}, {args:?}: mounted");
            assert!(daemons_here().is_empty(), "/dev/fuse {mode:o}, {args:?}: a daemon stayed");
        }
    }
}

#[test]
fn help_and_version() {
    let help = Command::new(ipcfs_bin()).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for word in ["--foreground", "-o", "MOUNTPOINT", "allow_other"] {
        assert!(help.contains(word), "--help lacks {word}: {help}");
    }
    let version = Command::new(ipcfs_bin()).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("ipcfs "));
}

#[test]
fn quiet_by_default() {
    isolate();
    let dir = TempDir::new("quiet");
    let mut daemon =
        Command::new(ipcfs_bin()).arg("-f").arg(&dir.0).env_remove("RUST_LOG").stderr(Stdio::piped()).spawn().unwrap();
    wait_for("mounted", || is_mounted(&dir.0));
    let id = create_segment(0x53, 4096, 0o644);
    // Ordinary use, including failures that are the caller's business.
    sh_ok(&format!("ls -l {0}/shm {0}/by-key/shm; cat {0}/shm/{1} >/dev/null", dir.0.display(), id.0));
    assert!(!sh(&format!("cat {}/shm/424242", dir.0.display())).status.success());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = wait_timeout(&mut daemon, Duration::from_secs(20)).expect("exit");
    assert!(status.success());
    let mut stderr = String::new();
    daemon.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(stderr, "", "the daemon logged without RUST_LOG");
}

#[test]
fn statfs_reports_shared_memory_use() {
    let m = Mounted::new();
    let out = sh_ok(&format!("stat -f -c '%T %b %f %c %d' {}", m.root().display()));
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert!(fields[0].starts_with("fuse"), "{out}");
    let (blocks, free): (u64, u64) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    assert!(blocks > 0 && free <= blocks);
    let before_files: u64 = fields[4].parse().unwrap();
    create_segment(0x54, 1 << 20, 0o600);
    let out = sh_ok(&format!("stat -f -c '%d %f' {}", m.root().display()));
    let after: Vec<u64> = out.split_whitespace().map(|f| f.parse().unwrap()).collect();
    assert_eq!(after[0], before_files - 1, "free inodes = shmmni - segments");
    assert!(after[1] <= free - 256, "1 MiB = 256 pages used");
    assert!(Path::new(&m.path("shm")).is_dir());
}

/// The kernel holds the state: kill -9 the daemon with files open and a
/// waiter blocked, and after `umount -l` a new mount shows every byte, value
/// and message as before, with no attachment left behind.
#[test]
fn a_killed_daemon_loses_nothing_and_a_new_mount_shows_everything() {
    let mut m = Mounted::new();
    let seg = create_segment(0x61, 4096, 0o644);
    std::fs::write(m.shm(seg), b"kept").unwrap();
    std::fs::create_dir(m.path("sem/0x62")).unwrap();
    std::fs::create_dir(m.path("msg/0x63")).unwrap();
    std::fs::write(m.path("by-key/sem/0x00000062/0"), "5").unwrap();
    std::fs::write(m.path("by-key/msg/0x00000063/any"), "one").unwrap();
    let held = std::fs::File::open(m.shm(seg)).unwrap();
    assert_eq!(shm::stat(seg).unwrap().nattch, 0, "an open file is no attachment");

    let pid = m.daemon_pid().unwrap();
    sh_ok(&format!("kill -9 {pid}"));
    let status = wait_for_exit(&mut m);
    assert_eq!(exit_signal(&status), Some(9));
    assert_eq!(shm::stat(seg).unwrap().nattch, 0, "nothing attached after the daemon died either");
    drop(held);
    // The recovery users are told about: lazy unmount, then mount again.
    sh_ok(&format!("umount -l {}", m.root().display()));
    let again = Mounted::new();
    assert_eq!(std::fs::read(again.shm(seg)).unwrap()[..4], *b"kept");
    assert_eq!(std::fs::read_to_string(again.path("by-key/sem/0x00000062/0")).unwrap(), "5\n");
    assert_eq!(std::fs::read_to_string(again.path("by-key/msg/0x00000063/any")).unwrap(), "one");
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o7777
}

/// By default nothing is cached: right after a listing (which hands the
/// kernel every entry's attributes), a change made behind the daemon's back
/// shows at once through a path, through an open file, and as a removal.
#[test]
fn by_default_a_listing_caches_nothing() {
    let m = Mounted::new();
    let id = create_segment(0x0000ca01, 4096, 0o600);
    let path = m.shm(id);
    let file = std::fs::File::open(&path).unwrap();
    sh_ok(&format!("ls -l {} >/dev/null", q(&m.path("shm"))));
    shm::set(id, 0, 0, 0o640).unwrap();
    assert_eq!(mode_of(&path), 0o640, "stat of the path");
    assert_eq!(file.metadata().unwrap().mode() & 0o7777, 0o640, "fstat of a file opened before");
    shm::remove(id).unwrap();
    drop(file);
    assert!(shm::stat(id).is_err(), "removed at once: an open file is no attachment");
    // The kernel tells the daemon of the close after close(2) returns; until
    // then a stat may be the open file's fstat (docs/ipcfs.md).
    let daemon_fds = format!("/proc/{}/fd", m.daemon_pid().unwrap());
    let holds_a_segment = || {
        std::fs::read_dir(&daemon_fds)
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
            .any(|target| target.to_string_lossy().starts_with("/SYSV"))
    };
    wait_until("the daemon to let go of the removed segment", Duration::from_secs(10), || !holds_a_segment());
    assert_eq!(errno(std::fs::metadata(&path)), libc::ENOENT, "stat after ipcrm behind the daemon's back");
}

/// -o attr_timeout=SECONDS lets the kernel keep what a listing or lookup
/// gave: a change behind the daemon's back stays unseen for that long (the
/// documented price), while a change made through the mount shows at once.
#[test]
fn attr_timeout_lets_the_kernel_keep_attributes_for_that_long() {
    let m = Mounted::with_options(&["-o", "attr_timeout=600"]);
    let id = create_segment(0x0000ca02, 4096, 0o600);
    let path = m.shm(id);
    let listing = sh_ok(&format!("ls -l {}", q(&m.path("shm"))));
    assert!(listing.contains("-rw-------"), "{listing}");
    shm::set(id, 0, 0, 0o640).unwrap();
    assert_eq!(mode_of(&path), 0o600, "kept by the kernel for the timeout");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o604)).unwrap();
    assert_eq!(mode_of(&path), 0o604, "a chmod through the mount shows at once");
    assert_eq!(shm::stat(id).unwrap().perm.mode & 0o777, 0o604);
}

/// findmnt, /proc/mounts and `umount -t` see the type `fuse.ipcfs`, and the
/// source is the fsname (`ipcfs` unless `-o fsname=` says otherwise).
#[test]
fn the_mount_table_shows_type_fuse_ipcfs_and_the_fsname() {
    let m = Mounted::with_options(&["-o", "fsname=myipc"]);
    let out = sh_ok(&format!("findmnt -n -o SOURCE,FSTYPE --mountpoint {}", q(m.root())));
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["myipc", "fuse.ipcfs"], "{out}");
}

/// The daemon unmounts only its own mount: with a tmpfs holding a file at
/// the mount point, ipcfs mounted over it and unmounted by each route
/// (umount, umount -l, SIGTERM, SIGINT) leaves the tmpfs and its file as
/// they were. (fuser 0.18's own teardown unmounted the path a second time,
/// taking the tmpfs beneath with it.)
#[test]
fn unmounting_by_any_route_leaves_what_is_mounted_beneath() {
    isolate();
    let dir = TempDir::new("beneath");
    let path = dir.0.clone();
    nix::mount::mount(Some("beneath"), &path, Some("tmpfs"), nix::mount::MsFlags::empty(), Some("size=1m")).unwrap();
    std::fs::write(path.join("file"), "keep").unwrap();
    let fs_types = || sh_ok(&format!("findmnt -n -o FSTYPE {}", q(&path)));
    for route in ["umount", "umount -l", "SIGTERM", "SIGINT"] {
        let mut daemon = Command::new(ipcfs_bin()).arg("--foreground").arg(&path).stdin(Stdio::null()).spawn().unwrap();
        wait_for("ipcfs is mounted over the tmpfs", || fs_types() == "tmpfs\nfuse.ipcfs\n");
        match route {
            "SIGTERM" | "SIGINT" => {
                let signal = if route == "SIGTERM" { Signal::SIGTERM } else { Signal::SIGINT };
                kill(Pid::from_raw(daemon.id() as i32), signal).unwrap();
            }
            command => {
                sh_ok(&format!("{command} {}", q(&path)));
            }
        }
        let status = wait_timeout(&mut daemon, Duration::from_secs(20)).expect("the daemon ends");
        assert!(status.success(), "{route}: {status}");
        assert_eq!(fs_types(), "tmpfs\n", "after {route}, the tmpfs is still mounted, alone");
        assert_eq!(std::fs::read_to_string(path.join("file")).unwrap(), "keep", "after {route}");
    }
    nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH).unwrap();
    let _ = std::fs::remove_file(path.join("file"));
}

/// A second ipcfs on a mount point that has one is refused, with a message
/// that says so, and nothing is stacked.
#[test]
fn a_second_mount_on_the_same_mount_point_is_refused() {
    let m = Mounted::new();
    for args in [vec!["--foreground"], vec![]] {
        let out = Command::new(ipcfs_bin()).args(&args).arg(m.root()).stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr_of(&out));
        assert!(stderr_of(&out).contains("an ipcfs is already mounted there"), "{}", stderr_of(&out));
    }
    let types = sh_ok(&format!("findmnt -n -o FSTYPE {}", q(m.root())));
    assert_eq!(types, "fuse.ipcfs\n", "one mount, not two");
}

/// Mounting over a mount whose daemon is gone says what to do.
#[test]
fn mounting_over_a_dead_mount_says_to_unmount_it_first() {
    let mut m = Mounted::new();
    kill(Pid::from_raw(m.daemon_pid().unwrap()), Signal::SIGKILL).unwrap();
    wait_for_exit(&mut m);
    let out = Command::new(ipcfs_bin()).arg("--foreground").arg(m.root()).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let said = stderr_of(&out);
    assert!(said.contains("not connected") && said.contains("umount -l"), "{said}");
}
