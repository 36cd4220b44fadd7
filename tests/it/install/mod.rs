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
//!
//! Here: the helpers the tests share; the tests, by subject, in [`installer`]
//! (install.sh in and out, the systemd unit), [`helper`] (the mount(8) helper
//! run as mount(8) runs it) and [`mount8`] (through the real mount(8): `-t
//! ipcfs`, `-t fuse.ipcfs`, fstab, `-N`).

mod helper;
mod installer;
mod mount8;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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

/// The [Mount] settings of mnt-ipc.mount: What, Where, Type, Options.
fn unit_mount_settings() -> [String; 4] {
    let text = std::fs::read_to_string(Path::new(REPO).join("mount-scripts/mnt-ipc.mount")).unwrap();
    ["What", "Where", "Type", "Options"].map(|key| {
        let value = text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('='));
        value.unwrap_or_else(|| panic!("mnt-ipc.mount has no {key}=")).to_string()
    })
}
