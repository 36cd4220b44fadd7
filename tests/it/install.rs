//! Installing ipcfs as an admin does: `mount-scripts/install.sh` into a
//! staging directory and out again; the mount(8) helper run the way mount(8)
//! runs it; and `mount -t ipcfs`, `mount -t fuse.ipcfs`, fstab lines, the
//! systemd unit's mount and `mount -N` through the real mount(8).
//!
//! mount(8) looks for helpers only in /sbin (and /sbin/fs.d, /sbin/fs). The
//! tests that go through it never touch the host's: in the test thread's own
//! mount namespace (`common::isolate`) they mount a tmpfs over /sbin's real
//! directory and put the installed helper there, and a tmpfs over /run, so
//! that the /run/mount/utab libmount keeps is the test's own too.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::common::*;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const INSTALLER_VARS: [&str; 5] = ["DESTDIR", "PREFIX", "SBINDIR", "UNITDIR", "BINARY"];

/// The directory mount(8) finds /sbin/mount.ipcfs in, links resolved: where
/// install.sh puts the helper by default.
fn system_sbindir() -> PathBuf {
    std::fs::canonicalize("/sbin").unwrap()
}

/// Runs `install.sh COMMAND` with exactly these installer variables.
fn installer<V: AsRef<std::ffi::OsStr>>(command: &str, vars: &[(&str, V)]) -> Output {
    installer_in(Path::new(REPO), command, vars)
}

/// Runs the `install.sh` of the repository at `repo`.
fn installer_in<V: AsRef<std::ffi::OsStr>>(repo: &Path, command: &str, vars: &[(&str, V)]) -> Output {
    let mut cmd = Command::new(repo.join("mount-scripts/install.sh"));
    for var in INSTALLER_VARS {
        cmd.env_remove(var);
    }
    cmd.arg(command).envs(vars.iter().map(|(k, v)| (k, v))).stdin(Stdio::null()).output().unwrap()
}

/// Installer variables for an install without DESTDIR into `tree`, as into
/// the root of a system: PREFIX `tree`/usr/local, SBINDIR `tree`/sbin.
fn into_tree(tree: &Scratch) -> [(&'static str, String); 4] {
    [
        ("PREFIX", format!("{}/usr/local", tree.root())),
        ("SBINDIR", format!("{}/sbin", tree.root())),
        ("UNITDIR", format!("{}/unit", tree.root())),
        ("BINARY", ipcfs_bin().to_string()),
    ]
}

/// A command with a clean slate: no IPCFS_BIN, and no RUST_LOG (with which the
/// ipcfs daemon would keep the stderr pipe of `output()` open until unmounted).
fn command(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args).env_remove("IPCFS_BIN").env_remove("RUST_LOG").stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

/// Every file (not directory) under `root`, by path relative to it.
fn files_under(root: &Path) -> BTreeMap<String, std::fs::Metadata> {
    fn walk(root: &Path, dir: &Path, found: &mut BTreeMap<String, std::fs::Metadata>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                assert_eq!(meta.mode() & 0o7777, 0o755, "{} is not a 0755 directory", path.display());
                walk(root, &path, found);
            } else {
                found.insert(path.strip_prefix(root).unwrap().to_str().unwrap().to_string(), meta);
            }
        }
    }
    let mut found = BTreeMap::new();
    walk(root, root, &mut found);
    found
}

/// The helper as install.sh installs it for `prefix`.
fn installed_helper_text(prefix: &str) -> String {
    let source = std::fs::read_to_string(Path::new(REPO).join("mount-scripts/mount.ipcfs")).unwrap();
    assert!(source.contains("\ninstalled_bin=\n"), "mount.ipcfs lost its installed_bin= line");
    source.replace("\ninstalled_bin=\n", &format!("\ninstalled_bin='{prefix}/bin/ipcfs'\n"))
}

/// One line of a mount table.
#[derive(Debug, PartialEq)]
struct MountEntry {
    source: String,
    fstype: String,
    /// The mount's own options (ro, nosuid, ...).
    options: Vec<String>,
    /// The filesystem's options (allow_other, ...).
    super_options: Vec<String>,
}

/// What a mountinfo table has mounted on `dir`, bottom layer first.
fn mounts_on(table: &str, dir: &Path) -> Vec<MountEntry> {
    let split = |s: &str| s.split(',').map(str::to_string).collect();
    table
        .lines()
        .filter_map(|line| {
            let (mine, fs) = line.split_once(" - ")?;
            let mine: Vec<&str> = mine.split_whitespace().collect();
            let fs: Vec<&str> = fs.split_whitespace().collect();
            (Path::new(mine[4]) == dir).then(|| MountEntry {
                source: fs[1].to_string(),
                fstype: fs[0].to_string(),
                options: split(mine[5]),
                super_options: split(fs[2]),
            })
        })
        .collect()
}

/// What is mounted on `dir` in the test thread's mount namespace.
fn mounted_here(dir: &Path) -> Vec<MountEntry> {
    mounts_on(&std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap(), dir)
}

/// The one ipcfs mount on `dir`.
#[track_caller]
fn the_ipcfs_mount(entries: Vec<MountEntry>, dir: &Path) -> MountEntry {
    assert_eq!(entries.len(), 1, "expected one mount on {}: {entries:?}", dir.display());
    let entry = entries.into_iter().next().unwrap();
    assert_eq!(entry.fstype, "fuse.ipcfs", "{entry:?}");
    entry
}

#[track_caller]
fn assert_status(out: &Output, code: i32, stderr_says: &str, what: &str) {
    let stderr = stderr_of(out);
    assert!(
        out.status.code() == Some(code) && stderr.contains(stderr_says),
        "`{what}`: expected exit {code} and a message with {stderr_says:?}, got {} with stderr {stderr:?}",
        out.status
    );
}

/// What the installed binary must be: the built one without its debug info
/// (a quarter of the size, or less).
fn without_debug_info(binary: &str) -> Vec<u8> {
    let dir = Scratch::new("strip");
    let stripped = dir.path("ipcfs");
    assert_ok(&run(&mut command("strip", &["--strip-debug", "-o", stripped.to_str().unwrap(), binary])), "strip");
    let sections = assert_ok(&run(&mut command("readelf", &["-S", stripped.to_str().unwrap()])), "readelf");
    assert!(!sections.contains(".debug_info"), "stripped, but still with debug info");
    let (built, installed) = (std::fs::metadata(binary).unwrap().len(), std::fs::metadata(&stripped).unwrap().len());
    assert!(installed < built, "stripping took nothing off: {installed} bytes of {built}");
    std::fs::read(&stripped).unwrap()
}

#[test]
fn install_puts_every_file_in_place_with_its_mode_and_uninstall_removes_exactly_them() {
    let system_sbindir = system_sbindir();
    let default_sbindir = system_sbindir.to_str().unwrap();
    let custom = [("PREFIX", "/opt/ipcfs"), ("SBINDIR", "/sbin/fs.d"), ("UNITDIR", "/etc/systemd/system")];
    for (vars, prefix, sbindir, unitdir) in [
        (&[][..], "/usr/local", default_sbindir, "/usr/local/lib/systemd/system"),
        (&custom[..], "/opt/ipcfs", "/sbin/fs.d", "/etc/systemd/system"),
    ] {
        let destdir = Scratch::new("destdir");
        let mut vars = vars.to_vec();
        vars.extend([("DESTDIR", destdir.root()), ("BINARY", ipcfs_bin())]);

        let mut expected: BTreeMap<String, (u32, Vec<u8>)> = BTreeMap::new();
        let mut expect =
            |path: String, mode, contents| expected.insert(path.trim_start_matches('/').into(), (mode, contents));
        expect(format!("{prefix}/bin/ipcfs"), 0o755, without_debug_info(ipcfs_bin()));
        expect(format!("{sbindir}/mount.ipcfs"), 0o755, installed_helper_text(prefix).into_bytes());
        let unit = std::fs::read(Path::new(REPO).join("mount-scripts/mnt-ipc.mount")).unwrap();
        expect(format!("{unitdir}/mnt-ipc.mount"), 0o644, unit);
        // The man pages are installed when docs/ has them.
        for section in ["8", "5"] {
            if let Ok(page) = std::fs::read(Path::new(REPO).join(format!("docs/ipcfs.{section}"))) {
                expect(format!("{prefix}/share/man/man{section}/ipcfs.{section}"), 0o644, page);
            }
        }

        // mount(8) runs mount.fuse.ipcfs for `mount -t fuse.ipcfs`: a link to
        // mount.ipcfs, relative, so that it holds under DESTDIR too.
        let links = BTreeMap::from([(format!("{sbindir}/mount.fuse.ipcfs"), "mount.ipcfs")]);
        let links: BTreeMap<String, &str> =
            links.into_iter().map(|(path, to)| (path.trim_start_matches('/').to_string(), to)).collect();

        let out = installer("install", &vars);
        assert_ok(&out, &format!("install.sh install with {vars:?}"));
        let found = files_under(destdir.dir());
        let mut names: Vec<&String> = expected.keys().chain(links.keys()).collect();
        names.sort();
        assert_eq!(found.keys().collect::<Vec<_>>(), names, "{vars:?}");
        for (path, to) in &links {
            assert!(found[path].is_symlink(), "{path} is not a symbolic link");
            assert_eq!(std::fs::read_link(destdir.path(path)).unwrap(), Path::new(to), "{path}");
        }
        for (path, (mode, contents)) in &expected {
            let meta = &found[path];
            assert!(meta.is_file(), "{path} is not a plain file");
            assert_eq!(meta.permissions().mode() & 0o7777, *mode, "mode of {path}");
            assert!(std::fs::read(destdir.path(path)).unwrap() == *contents, "{path} has the wrong contents");
        }

        let out = installer("uninstall", &vars);
        let said = assert_ok(&out, &format!("install.sh uninstall with {vars:?}"));
        let removed = said.lines().filter(|l| l.starts_with("removed ")).count();
        assert_eq!(removed, expected.len() + links.len(), "{said}");
        assert!(files_under(destdir.dir()).is_empty(), "uninstall left files behind");
        // Nothing left to remove is no error.
        assert_eq!(assert_ok(&installer("uninstall", &vars), "a second uninstall"), "");
    }
}

#[test]
fn the_installer_explains_itself_and_refuses_what_it_cannot_do() {
    let out = installer::<&str>("--help", &[]);
    let help = assert_ok(&out, "install.sh --help");
    for word in ["install", "uninstall", "build", "DESTDIR", "PREFIX", "SBINDIR", "UNITDIR", "BINARY"] {
        assert!(help.contains(word), "--help does not mention {word}: {help}");
    }
    assert_status(&installer::<&str>("frobnicate", &[]), 2, "usage:", "install.sh frobnicate");

    let destdir = Scratch::new("refused");
    let with = |var, value| [("DESTDIR", destdir.root()), ("BINARY", ipcfs_bin()), (var, value)];
    let out = installer("install", &with("PREFIX", "usr/local"));
    assert_status(&out, 1, "must be absolute paths", "install.sh install with a relative PREFIX");
    let out = installer("install", &with("BINARY", "/nonexistent/ipcfs"));
    assert_status(&out, 1, "BINARY=/nonexistent/ipcfs is not an executable file", "install.sh install without binary");
    assert!(files_under(destdir.dir()).is_empty(), "a refused install installed something");

    // Without BINARY: target/release/ipcfs, if no source is newer. In a copy
    // of the repository's layout, with the times set.
    let repo = Scratch::new("repo");
    for dir in ["mount-scripts", "src", "target/release"] {
        std::fs::create_dir_all(repo.path(dir)).unwrap();
    }
    for script in ["install.sh", "mount.ipcfs", "mnt-ipc.mount"] {
        let script = format!("mount-scripts/{script}");
        std::fs::copy(Path::new(REPO).join(&script), repo.path(&script)).unwrap();
    }
    let now = std::time::SystemTime::now();
    let set_time = |path: &str, time| std::fs::File::open(repo.path(path)).unwrap().set_modified(time).unwrap();
    for source in ["Cargo.toml", "Cargo.lock", "src/main.rs"] {
        std::fs::write(repo.path(source), "").unwrap();
        set_time(source, now - std::time::Duration::from_secs(60));
    }
    std::fs::copy(ipcfs_bin(), repo.path("target/release/ipcfs")).unwrap();
    set_time("target/release/ipcfs", now);
    let install = |destdir: &Scratch| installer_in(repo.dir(), "install", &[("DESTDIR", destdir.root())]);
    let fresh = Scratch::new("fresh");
    assert_ok(&install(&fresh), "install.sh install of a fresh release build");
    assert!(fresh.path("usr/local/bin/ipcfs").is_file());
    set_time("src/main.rs", now + std::time::Duration::from_secs(1));
    let stale = Scratch::new("stale");
    assert_status(&install(&stale), 1, "is older than", "install.sh install of a stale release build");
    assert!(files_under(stale.dir()).is_empty(), "a stale build was installed");
}

#[test]
fn the_helper_mounts_as_mount8_runs_it_dropping_the_options_meant_for_mount8() {
    isolate();
    let destdir = Scratch::new("helper");
    assert_ok(&installer("install", &[("DESTDIR", destdir.root()), ("BINARY", ipcfs_bin())]), "install.sh install");
    let helper = destdir.path(system_sbindir().join("mount.ipcfs").to_str().unwrap().trim_start_matches('/'));
    let dir = TempDir::new("helper-mnt");
    let _unmount = Unmount(dir.0.clone());
    let target = dir.0.to_str().unwrap();

    let options = "ro,nofail,_netdev,noauto,users,x-systemd.automount,comment=x";
    let out = run(command(&helper, &["ipcfs", target, "-o", options]).env("IPCFS_BIN", ipcfs_bin()));
    assert_ok(&out, &format!("mount.ipcfs ipcfs {target} -o {options}"));
    // Background mode: mounted by the time the helper returns.
    let entry = the_ipcfs_mount(mounted_here(&dir.0), &dir.0);
    assert_eq!(entry.source, "ipcfs");
    assert!(entry.options.contains(&"ro".to_string()), "{entry:?}");
    let id = create_segment(0x1057, 4096, 0o600);
    assert_eq!(list(&dir.0.join("shm")), vec![id.0.to_string()]);
    assert_eq!(errno(std::fs::create_dir(dir.0.join("msg/0x9"))), libc::EROFS);
    sh_ok(&format!("umount {}", q(&dir.0)));
    assert!(mounted_here(&dir.0).is_empty());
}

#[test]
fn the_helper_fails_clearly_and_passes_on_the_exit_status_of_ipcfs() {
    isolate();
    let helper = Path::new(REPO).join("mount-scripts/mount.ipcfs");
    let dir = TempDir::new("helper-fail");
    let _unmount = Unmount(dir.0.clone());
    let target = dir.0.to_str().unwrap();
    let helper_run = |args: &[&str]| run(command(&helper, args).env("IPCFS_BIN", ipcfs_bin()));

    let out = helper_run(&["ipcfs", target, "-o", "ro,nofail,bogus"]);
    assert_status(&out, 2, "ipcfs: unknown mount option 'bogus'", "mount.ipcfs -o bogus");
    let out = helper_run(&["ipcfs", "/nonexistent/ipcfs-mnt"]);
    assert_status(&out, 1, "/nonexistent/ipcfs-mnt", "mount.ipcfs on a missing mount point");
    let out = run(command(&helper, &["ipcfs", target]).env("IPCFS_BIN", "/nonexistent/ipcfs"));
    assert_status(&out, 1, "IPCFS_BIN=/nonexistent/ipcfs is not an executable file", "mount.ipcfs, IPCFS_BIN wrong");
    assert_status(&helper_run(&[target]), 2, "usage: mount.ipcfs SOURCE MOUNTPOINT", "mount.ipcfs MOUNTPOINT");
    assert_status(&helper_run(&["ipcfs", target, "-x"]), 2, "unknown option -x", "mount.ipcfs -x");
    assert_status(&helper_run(&["a,b", target]), 2, "has a comma", "mount.ipcfs with a comma in the source");

    // -f (fake) -v (verbose): says what it would run, and runs nothing. mount's
    // -f must never reach ipcfs, for which it means --foreground.
    let out = helper_run(&["ipcfs", target, "-s", "-fnv", "-o", "ro,_netdev", "-t", "ipcfs.x"]);
    let said = format!("mount.ipcfs: {} -o fsname=ipcfs,ro -- {target}\n", ipcfs_bin());
    assert_eq!((out.status.code(), stderr_of(&out)), (Some(0), said));
    assert!(mounted_here(&dir.0).is_empty(), "fake mode mounted");
    assert!(
        stderr_of(&helper_run(&["ipcfs", target, "-fv", "-o", "nofail,fsname=mine"]))
            .contains("fsname=ipcfs,fsname=mine -- ")
    );
}

#[test]
fn the_helper_finds_ipcfs_where_installed_then_next_to_itself_then_in_path() {
    // Fake mode mounts nothing; should it, the mount stays in this thread.
    isolate();
    let tree = Scratch::new("lookup");
    let vars = into_tree(&tree);
    assert_ok(&installer("install", &vars), "install.sh install without DESTDIR");
    let dir = TempDir::new("lookup-mnt");
    let _unmount = Unmount(dir.0.clone());
    let target = dir.0.to_str().unwrap();
    // -fv prints the ipcfs command line and runs nothing.
    let chosen = |helper: &Path, env: &[(&str, &str)]| {
        let out =
            run(command(helper, &["ipcfs", target, "-fv"]).env("PATH", "/usr/bin:/bin").envs(env.iter().copied()));
        let stderr = stderr_of(&out);
        assert!(out.status.success(), "{}: {stderr}", helper.display());
        assert!(mounted_here(&dir.0).is_empty(), "fake mode mounted");
        stderr.strip_prefix("mount.ipcfs: ").and_then(|s| s.split(" -o ").next()).unwrap().to_string()
    };
    let installed = tree.path("sbin/mount.ipcfs");
    let installed_bin = format!("{}/usr/local/bin/ipcfs", tree.root());
    assert_eq!(chosen(&installed, &[]), installed_bin);
    assert_eq!(chosen(&installed, &[("IPCFS_BIN", ipcfs_bin())]), ipcfs_bin());
    std::os::unix::fs::symlink(ipcfs_bin(), tree.path("sbin/ipcfs")).unwrap();
    assert_eq!(chosen(&installed, &[]), installed_bin, "the installed ipcfs goes before one next to the helper");

    let alone = tree.path("alone");
    std::fs::create_dir(&alone).unwrap();
    std::fs::copy(Path::new(REPO).join("mount-scripts/mount.ipcfs"), alone.join("mount.ipcfs")).unwrap();
    std::os::unix::fs::symlink(ipcfs_bin(), alone.join("ipcfs")).unwrap();
    assert_eq!(chosen(&alone.join("mount.ipcfs"), &[]), alone.join("ipcfs").to_str().unwrap());

    let source = Path::new(REPO).join("mount-scripts/mount.ipcfs");
    let bin_dir = Path::new(ipcfs_bin()).parent().unwrap().to_str().unwrap();
    assert_eq!(chosen(&source, &[("PATH", &format!("{bin_dir}:/usr/bin:/bin"))]), ipcfs_bin());
    if !Path::new("/usr/bin/ipcfs").exists() && !Path::new("/bin/ipcfs").exists() {
        let out = run(command(&source, &["ipcfs", target]).env("PATH", "/usr/bin:/bin"));
        assert_status(&out, 1, "cannot find the ipcfs binary", "mount.ipcfs with no ipcfs anywhere");
    }
    assert_ok(&installer("uninstall", &vars), "install.sh uninstall");
}

/// The [Mount] settings of mnt-ipc.mount: What, Where, Type, Options.
fn unit_mount_settings() -> [String; 4] {
    let text = std::fs::read_to_string(Path::new(REPO).join("mount-scripts/mnt-ipc.mount")).unwrap();
    ["What", "Where", "Type", "Options"].map(|key| {
        let value = text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('='));
        value.unwrap_or_else(|| panic!("mnt-ipc.mount has no {key}=")).to_string()
    })
}

#[test]
fn the_systemd_unit_is_valid_and_named_after_its_mount_point() {
    assert_eq!(unit_mount_settings(), ["ipcfs", "/mnt/ipc", "ipcfs", "allow_other"]);
    // systemd-analyze checks among other things that the name is Where=, escaped.
    if Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success()) {
        let unit = Path::new(REPO).join("mount-scripts/mnt-ipc.mount");
        assert_ok(
            &run(Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(unit)),
            "systemd-analyze verify",
        );
    }
}

/// The helper installed as on a real system, in the test thread's mount
/// namespace: ipcfs under a temporary PREFIX, whatever install.sh put in
/// SBINDIR (mount.ipcfs, and its link mount.fuse.ipcfs) in (a tmpfs over)
/// /sbin, and a /run of its own for libmount.
struct Installed {
    _sbin: Unmount,
    _run: Unmount,
    tree: Scratch,
}

impl Installed {
    fn new() -> Installed {
        isolate();
        let tree = Scratch::new("system");
        assert_ok(&installer("install", &into_tree(&tree)), "install.sh install");
        let run = Unmount::tmpfs(Path::new("/run"));
        let sbin = Unmount::tmpfs(&system_sbindir());
        for entry in std::fs::read_dir(tree.path("sbin")).unwrap() {
            let entry = entry.unwrap();
            let into = system_sbindir().join(entry.file_name());
            if entry.file_type().unwrap().is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), into).unwrap();
            } else {
                std::fs::copy(entry.path(), into).unwrap();
            }
        }
        Installed { _sbin: sbin, _run: run, tree }
    }

    /// A new empty directory to mount on.
    fn dir(&self, name: &str) -> PathBuf {
        let dir = self.tree.path(name);
        std::fs::create_dir(&dir).unwrap();
        dir
    }
}

fn mount8(args: &[&str]) -> Output {
    run(&mut command("mount", args))
}

#[test]
fn mount_t_ipcfs_runs_the_installed_helper_which_runs_the_installed_ipcfs() {
    let installed = Installed::new();
    let dir = installed.dir("mnt");
    let _unmount = Unmount(dir.clone());
    let target = dir.to_str().unwrap();

    let out = mount8(&["-t", "ipcfs", "ipcfs", target, "-o", "allow_other,nofail,x-mine=1"]);
    assert_ok(&out, "mount -t ipcfs");
    let entry = the_ipcfs_mount(mounted_here(&dir), &dir);
    assert_eq!(entry.source, "ipcfs");
    assert!(entry.options.contains(&"rw".to_string()), "{entry:?}");
    assert!(entry.super_options.contains(&"allow_other".to_string()), "{entry:?}");
    assert!(list(&dir).contains(&"shm".to_string()));
    sh_ok(&format!("umount {}", q(&dir)));
    assert!(mounted_here(&dir).is_empty());

    // What systemd runs to start mnt-ipc.mount, on a /mnt of the test's own.
    let [what, place, fstype, options] = unit_mount_settings();
    let place = Path::new(&place);
    // The host may have an ipcfs on /mnt/ipc itself (the README's first
    // command mounts one): the test's tmpfs on /mnt hides it, and only the
    // mount made here counts.
    let hidden = mounted_here(place);
    let _parent = Unmount::tmpfs(place.parent().unwrap());
    std::fs::create_dir(place).unwrap();
    let _unmount_unit = Unmount(place.to_path_buf());
    let out = mount8(&[&what, place.to_str().unwrap(), "-t", &fstype, "-o", &options]);
    assert_ok(&out, "the mount of mnt-ipc.mount");
    let mut made = mounted_here(place);
    for old in &hidden {
        if let Some(i) = made.iter().position(|e| e == old) {
            made.remove(i);
        }
    }
    let entry = the_ipcfs_mount(made, place);
    assert!(entry.super_options.contains(&"allow_other".to_string()), "{entry:?}");

    // mount(8) passes the status of the helper, which passes that of ipcfs.
    let out = mount8(&["-t", "ipcfs", "ipcfs", target, "-o", "bogus"]);
    assert_status(&out, 2, "unknown mount option 'bogus'", "mount -t ipcfs -o bogus");
    let out = run(command("mount", &["-t", "ipcfs", "ipcfs", target]).env("IPCFS_BIN", "/nonexistent/ipcfs"));
    assert_status(&out, 1, "IPCFS_BIN=/nonexistent/ipcfs", "IPCFS_BIN through mount(8)");
    assert!(mounted_here(&dir).is_empty());
}

/// The type the mount table shows, `fuse.ipcfs`, works with mount(8) as
/// `ipcfs` does: mount(8) runs /sbin/mount.fuse.ipcfs, the link install.sh
/// made to mount.ipcfs. (The tmpfs over /sbin holds only what install.sh
/// installed: no mount.fuse of the host's stands in.)
#[test]
fn mount_t_fuse_ipcfs_works_like_mount_t_ipcfs() {
    let installed = Installed::new();
    let dir = installed.dir("mnt");
    let _unmount = Unmount(dir.clone());
    let target = dir.to_str().unwrap();
    let helper = system_sbindir().join("mount.fuse.ipcfs");
    assert_eq!(std::fs::read_link(&helper).unwrap(), Path::new("mount.ipcfs"));

    let out = mount8(&["-t", "fuse.ipcfs", "ipcfs", target]);
    assert_ok(&out, "mount -t fuse.ipcfs ipcfs DIR");
    let entry = the_ipcfs_mount(mounted_here(&dir), &dir);
    assert_eq!(entry.source, "ipcfs");
    assert!(entry.options.contains(&"rw".to_string()), "{entry:?}");
    let id = create_segment(0x1058, 4096, 0o600);
    let listing = sh_ok(&format!("ls {}", q(&dir.join("shm"))));
    assert_eq!(listing, format!("{}\n", id.0), "ls DIR/shm");
    sh_ok(&format!("umount {}", q(&dir)));
    assert!(mounted_here(&dir).is_empty());

    // Options pass as with -t ipcfs, and so does the status of ipcfs.
    let out = mount8(&["-t", "fuse.ipcfs", "-o", "ro,nofail,x-mine=1", "mine", target]);
    assert_ok(&out, "mount -t fuse.ipcfs -o ro,nofail,x-mine=1 mine DIR");
    let entry = the_ipcfs_mount(mounted_here(&dir), &dir);
    assert_eq!(entry.source, "mine");
    assert!(entry.options.contains(&"ro".to_string()), "{entry:?}");
    sh_ok(&format!("umount {}", q(&dir)));
    let out = mount8(&["-t", "fuse.ipcfs", "-o", "bogus", "ipcfs", target]);
    assert_status(&out, 2, "unknown mount option 'bogus'", "mount -t fuse.ipcfs -o bogus");
    assert!(mounted_here(&dir).is_empty());

    // An fstab line of type fuse.ipcfs: mounted once, however often mount -a runs.
    let fstab = installed.tree.path("fstab");
    std::fs::write(&fstab, format!("ipcfs {target} fuse.ipcfs defaults,nofail 0 0\n")).unwrap();
    let fstab = fstab.to_str().unwrap();
    assert_ok(&mount8(&["-a", "--fstab", fstab]), "mount -a with a fuse.ipcfs line");
    assert_ok(&mount8(&["-a", "--fstab", fstab]), "mount -a again");
    the_ipcfs_mount(mounted_here(&dir), &dir);
    sh_ok(&format!("umount {}", q(&dir)));
    assert!(mounted_here(&dir).is_empty());

    // Under that name the helper speaks as mount.fuse.ipcfs.
    let out = run(&mut command(&helper, &["ipcfs", target, "-fv", "-t", "fuse.ipcfs"]));
    let said = stderr_of(&out);
    assert!(out.status.success() && said.starts_with("mount.fuse.ipcfs: "), "{said}");
    assert!(said.ends_with(&format!(" -o fsname=ipcfs -- {target}\n")), "{said}");
    assert!(mounted_here(&dir).is_empty(), "fake mode mounted");
    let out = run(&mut command(&helper, &[target]));
    assert_status(&out, 2, "usage: mount.fuse.ipcfs SOURCE MOUNTPOINT", "mount.fuse.ipcfs MOUNTPOINT");
}

#[test]
fn fstab_lines_mount_once_each_and_noauto_ones_on_request() {
    let installed = Installed::new();
    let [named, none, noauto] = ["named", "none", "noauto"].map(|name| installed.dir(name));
    let _unmount = [&named, &none, &noauto].map(|dir| Unmount(dir.clone()));
    let fstab = installed.tree.path("fstab");
    std::fs::write(
        &fstab,
        format!(
            "# a comment\n\
             ipcfs {} ipcfs defaults,allow_other,_netdev,x-systemd.requires=foo.service 0 0\n\
             none  {} ipcfs ro,nofail 0 0\n\
             ipcfs {} ipcfs noauto,noexec 0 0\n",
            named.display(),
            none.display(),
            noauto.display()
        ),
    )
    .unwrap();
    let fstab = fstab.to_str().unwrap();

    assert_ok(&mount8(&["-a", "--fstab", fstab]), "mount -a");
    let entry = the_ipcfs_mount(mounted_here(&named), &named);
    assert!(entry.super_options.contains(&"allow_other".to_string()), "{entry:?}");
    let entry = the_ipcfs_mount(mounted_here(&none), &none);
    assert_eq!(entry.source, "none");
    assert!(entry.options.contains(&"ro".to_string()), "{entry:?}");
    assert!(mounted_here(&noauto).is_empty(), "noauto was mounted");

    // Again: mount(8) sees both mounted (the source is the fsname), mounts nothing on top.
    assert_ok(&mount8(&["-a", "--fstab", fstab]), "mount -a again");
    the_ipcfs_mount(mounted_here(&named), &named);
    the_ipcfs_mount(mounted_here(&none), &none);

    assert_ok(&mount8(&["--fstab", fstab, noauto.to_str().unwrap()]), "mount --fstab FILE DIR");
    let entry = the_ipcfs_mount(mounted_here(&noauto), &noauto);
    assert!(entry.options.contains(&"noexec".to_string()), "{entry:?}");
    for dir in [&named, &none, &noauto] {
        sh_ok(&format!("umount {}", q(dir)));
        assert!(mounted_here(dir).is_empty());
    }
}

/// A process in a mount namespace of its own (a copy of the test thread's),
/// which lives until dropped; before it goes, `dir` is unmounted in there.
struct OtherNamespace {
    holder: Child,
    dir: PathBuf,
}

impl OtherNamespace {
    fn new(dir: &Path) -> OtherNamespace {
        let holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", "echo ready && exec cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut other = OtherNamespace { holder, dir: dir.to_path_buf() };
        let mut line = String::new();
        BufReader::new(other.holder.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n", "unshare did not start");
        other
    }

    /// The namespace's file, for `mount -N` and `nsenter --mount=`.
    fn file(&self) -> String {
        format!("/proc/{}/ns/mnt", self.holder.id())
    }

    fn mountinfo(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/mountinfo", self.holder.id())).unwrap()
    }
}

impl Drop for OtherNamespace {
    fn drop(&mut self) {
        let _ = Command::new("nsenter")
            .arg(format!("--mount={}", self.file()))
            .arg("umount")
            .arg("-l")
            .arg(&self.dir)
            .output();
        drop(self.holder.stdin.take());
        let _ = self.holder.wait();
    }
}

#[test]
fn mount_n_mounts_in_the_other_namespace() {
    let installed = Installed::new();
    let dir = installed.dir("mnt");
    let _unmount_here = Unmount(dir.clone());
    let other = OtherNamespace::new(&dir);

    assert_ok(&mount8(&["-N", &other.file(), "-t", "ipcfs", "ipcfs", dir.to_str().unwrap()]), "mount -N");
    the_ipcfs_mount(mounts_on(&other.mountinfo(), &dir), &dir);
    assert!(mounted_here(&dir).is_empty(), "mount -N mounted here");
    sh_ok(&format!("nsenter --mount={} umount {}", other.file(), q(&dir)));
    assert!(mounts_on(&other.mountinfo(), &dir).is_empty());
}
