//! Mounting the FUSE filesystem, and unmounting only that mount.
//!
//! ipcfs mounts by itself (open /dev/fuse, mount(2) with its descriptor) and
//! hands the descriptor to fuser, instead of letting fuser mount: fuser
//! 0.18's teardown takes a connection already gone for one still mounted and
//! unmounts the path again, which takes down whatever is mounted beneath
//! (fixed upstream, not released). Here an unmount happens only when the
//! mount on top at the path is provably this daemon's: the same mount id and
//! the same device as the mount it made, in /proc/self/mountinfo.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::mount::MntFlags;
use nix::unistd::geteuid;

use super::{Errno, io_errno};
pub use nix::mount::MsFlags;

/// A mount made by [`mount`]: what tells it from any other mount at the
/// same path.
#[derive(Debug)]
pub struct FuseMount {
    pub path: PathBuf,
    pub id: Mounted,
}

/// One line of /proc/self/mountinfo, as much as ipcfs needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mounted {
    pub mount_id: u64,
    pub parent_id: u64,
    /// `major:minor` of the filesystem.
    pub device: String,
    pub mount_point: PathBuf,
    /// `fuse.ipcfs` for ours.
    pub fs_type: String,
}

/// Mounts a FUSE filesystem of type `fuse.SUBTYPE` at `path` (which must be
/// canonical), from `source`, with `flags` and the kernel options `options`
/// (comma-separated, besides the descriptor, root mode and owner, which this
/// adds). Returns the FUSE device's descriptor to serve it through.
pub fn mount(
    path: &Path,
    source: &str,
    subtype: &str,
    flags: MsFlags,
    options: &str,
) -> Result<(OwnedFd, FuseMount), MountError> {
    let fail = |step, errno| MountError { step, errno, path: path.to_path_buf(), as_root: geteuid().is_root() };
    let io = |step| move |e: std::io::Error| fail(step, io_errno(e));
    let root_mode = std::fs::metadata(path).map_err(io(Step::MountPoint))?.permissions().mode() & libc::S_IFMT;
    let device: OwnedFd = File::options().read(true).write(true).open(FUSE_DEVICE).map_err(io(Step::Device))?.into();
    let data = format!(
        "fd={},rootmode={root_mode:o},user_id={},group_id={},subtype={subtype}{}{options}",
        std::os::fd::AsRawFd::as_raw_fd(&device),
        nix::unistd::getuid(),
        nix::unistd::getgid(),
        if options.is_empty() { "" } else { "," },
    );
    nix::mount::mount(Some(source), path, Some("fuse"), flags, Some(data.as_str()))
        .map_err(|e| fail(Step::Mount, e))?;
    let fs_type = format!("fuse.{subtype}");
    // The mount just made is the one the path leads to, of our type.
    let id = visible(path).filter(|m| m.fs_type == fs_type).ok_or_else(|| fail(Step::NotVisible, Errno::ENOENT))?;
    Ok((device, FuseMount { path: path.to_path_buf(), id }))
}

/// The FUSE device, which [`mount`] opens.
pub const FUSE_DEVICE: &str = "/dev/fuse";

/// Why [`mount`] failed: the step, the kernel's answer, and whether the
/// caller was root, which decides what the message advises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountError {
    pub step: Step,
    pub errno: Errno,
    /// The mount point.
    pub path: PathBuf,
    /// Whether the effective user was root.
    pub as_root: bool,
}

/// The steps of [`mount`] that can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Looking at the mount point.
    MountPoint,
    /// Opening /dev/fuse.
    Device,
    /// mount(2).
    Mount,
    /// After mount(2) succeeded, finding that mount at the path.
    NotVisible,
}

/// What the message says after the kernel's words: the cause, and what to do.
const NOT_ROOT_DEVICE: &str =
    "(ipcfs must run as root: it opens /dev/fuse and mounts by itself; fusermount3 is not used)";
const ROOT_DEVICE: &str = "(even as root: a device cgroup or security module forbids it, \
                           as in a container that was not given /dev/fuse)";
const NO_FUSE: &str = "(no FUSE in this kernel: load the module with modprobe fuse; \
                       a container needs /dev/fuse passed in)";
const NOT_ROOT_MOUNT: &str = "ipcfs mounts by itself and needs CAP_SYS_ADMIN (run it as root); fusermount3 is not used";
const ROOT_MOUNT: &str = "ipcfs mounts by itself and needs CAP_SYS_ADMIN, which this root lacks \
                          (as in a container or a user namespace that does not own this mount namespace)";

impl std::fmt::Display for MountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (path, desc) = (self.path.display(), self.errno.desc());
        match (self.step, self.errno) {
            (Step::MountPoint, _) => write!(f, "cannot mount on {path}: {desc}"),
            (Step::Device, Errno::EACCES | Errno::EPERM) => {
                let why = if self.as_root { ROOT_DEVICE } else { NOT_ROOT_DEVICE };
                write!(f, "cannot open {FUSE_DEVICE}: {desc} {why}")
            }
            (Step::Device, Errno::ENOENT | Errno::ENODEV | Errno::ENXIO) => {
                write!(f, "cannot open {FUSE_DEVICE}: {desc} {NO_FUSE}")
            }
            (Step::Device, _) => write!(f, "cannot open {FUSE_DEVICE}: {desc}"),
            (Step::Mount, Errno::EPERM) => {
                let why = if self.as_root { ROOT_MOUNT } else { NOT_ROOT_MOUNT };
                write!(f, "mount(2) on {path} refused: {desc}; {why}")
            }
            (Step::Mount, Errno::ENODEV) => write!(f, "mount(2) on {path} failed: {desc} {NO_FUSE}"),
            (Step::Mount, _) => write!(f, "mount(2) on {path} failed: {desc}"),
            (Step::NotVisible, _) => {
                write!(f, "mount(2) on {path} succeeded, but /proc/thread-self/mountinfo shows no such mount there")
            }
        }
    }
}

impl std::error::Error for MountError {}

impl FuseMount {
    /// Unmounts this mount if it is still the one a path lookup of its path
    /// finds (with MNT_DETACH when `lazily`). Returns whether it did; an
    /// error only when the kernel refused.
    pub fn unmount(&self, lazily: bool) -> Result<bool, Errno> {
        if visible(&self.path).as_ref() != Some(&self.id) {
            return Ok(false);
        }
        let flags = if lazily { MntFlags::MNT_DETACH } else { MntFlags::empty() };
        nix::mount::umount2(&self.path, flags)?;
        Ok(true)
    }
}

/// The mount that a lookup of `path` (canonical) leads to in this thread's
/// mount namespace, if one is mounted right there. (A mount at `path` may
/// also be hidden under one mounted later on a directory above it; the
/// device of what the path leads to tells which is seen.)
pub fn visible(path: &Path) -> Option<Mounted> {
    let table = std::fs::read_to_string("/proc/thread-self/mountinfo").ok()?;
    let mounts = parse_mountinfo(&table);
    match device_of(path) {
        Ok(device) => mounts.into_iter().rev().find(|m| m.mount_point == path && m.device == device),
        // A FUSE mount whose daemon is gone, on top.
        Err(Errno::ENOTCONN) => top_of(&mounts, path),
        Err(_) => None,
    }
}

/// The device number (st_dev) of the filesystem `path` is on, without
/// asking it: the daemon may call it on its own mount before it serves.
pub fn device_number(path: &Path) -> Result<u64, Errno> {
    let (major, minor) = statx_device(path)?;
    Ok(libc::makedev(major, minor))
}

/// `major:minor` of the filesystem `path` is on, without asking it
/// (AT_STATX_DONT_SYNC: a FUSE daemon is not asked, so this never waits on one).
fn device_of(path: &Path) -> Result<String, Errno> {
    let (major, minor) = statx_device(path)?;
    Ok(format!("{major}:{minor}"))
}

fn statx_device(path: &Path) -> Result<(u32, u32), Errno> {
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let mut stx = std::mem::MaybeUninit::<libc::statx>::uninit();
    let flags = libc::AT_STATX_DONT_SYNC | libc::AT_SYMLINK_NOFOLLOW;
    // SAFETY: path is a NUL-terminated string and stx has room for a statx.
    Errno::result(unsafe { libc::statx(libc::AT_FDCWD, path.as_ptr(), flags, 0, stx.as_mut_ptr()) })?;
    // SAFETY: statx succeeded, so the kernel filled in stx.
    let stx = unsafe { stx.assume_init_ref() };
    Ok((stx.stx_dev_major, stx.stx_dev_minor))
}

/// Of the mounts at `path`, the one no other mount at `path` sits on.
fn top_of(mounts: &[Mounted], path: &Path) -> Option<Mounted> {
    let here: Vec<&Mounted> = mounts.iter().filter(|m| m.mount_point == path).collect();
    here.iter().find(|m| !here.iter().any(|other| other.parent_id == m.mount_id)).map(|m| (*m).clone())
}

/// Parses /proc/PID/mountinfo (proc(5)); lines that do not parse are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mounted> {
    text.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mut fields = before.split(' ');
            let mount_id = fields.next()?.parse().ok()?;
            let parent_id = fields.next()?.parse().ok()?;
            let device = fields.next()?.to_string();
            let _root = fields.next()?;
            let mount_point = PathBuf::from(std::ffi::OsStr::from_bytes(&unescape(fields.next()?)));
            let fs_type = after.split(' ').next()?.to_string();
            Some(Mounted { mount_id, parent_id, device, mount_point, fs_type })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal =
            bytes.get(i + 1..i + 4).filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |n, c| n.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
40 22 0:35 / /tmp/m rw - tmpfs tmpfs rw
41 40 0:52 / /tmp/m rw,nosuid,nodev - fuse.ipcfs ipcfs rw,user_id=0,group_id=0
42 1 0:53 / /tmp/with\\040space rw - fuse.ipcfs ipcfs rw
";

    #[test]
    fn the_mount_on_top_is_the_one_nothing_else_sits_on() {
        let mounts = parse_mountinfo(TABLE);
        assert_eq!(mounts.len(), 4);
        let top = top_of(&mounts, Path::new("/tmp/m")).unwrap();
        assert_eq!((top.mount_id, top.device.as_str(), top.fs_type.as_str()), (41, "0:52", "fuse.ipcfs"));
        let without_ours: Vec<Mounted> = mounts.iter().filter(|m| m.mount_id != 41).cloned().collect();
        assert_eq!(top_of(&without_ours, Path::new("/tmp/m")).unwrap().fs_type, "tmpfs");
        assert_eq!(top_of(&mounts, Path::new("/nowhere")), None);
    }

    #[test]
    fn errors_name_the_step_and_what_to_do() {
        let error = |step, errno, as_root| MountError { step, errno, path: "/mnt/ipc".into(), as_root }.to_string();
        let device = error(Step::Device, Errno::EACCES, false);
        assert!(device.starts_with("cannot open /dev/fuse: Permission denied (ipcfs must run as root"), "{device}");
        assert!(error(Step::Device, Errno::EPERM, true).contains("even as root"));
        assert!(error(Step::Device, Errno::ENOENT, true).contains("modprobe fuse"));
        let refused = error(Step::Mount, Errno::EPERM, false);
        assert_eq!(
            refused,
            "mount(2) on /mnt/ipc refused: Operation not permitted; ipcfs mounts by itself and needs \
             CAP_SYS_ADMIN (run it as root); fusermount3 is not used"
        );
        assert!(error(Step::Mount, Errno::EPERM, true).contains("which this root lacks"));
        assert_eq!(error(Step::MountPoint, Errno::ENOTDIR, true), "cannot mount on /mnt/ipc: Not a directory");
        assert_eq!(error(Step::Mount, Errno::EINVAL, true), "mount(2) on /mnt/ipc failed: Invalid argument");
    }

    #[test]
    fn escaped_mount_points_are_read_back() {
        let mounts = parse_mountinfo(TABLE);
        assert_eq!(top_of(&mounts, Path::new("/tmp/with space")).unwrap().mount_id, 42);
        assert!(parse_mountinfo("garbage\n1 2\n").is_empty());
    }
}
