//! Namespaces: telling one from another, finding them through the
//! processes in /proc (as `lsns` does), joining one, who may join it, and
//! noticing when a process (the one a namespace was found through) ends.
//! ipcfs joins IPC namespaces, and UTS namespaces to read their host names;
//! it tells user namespaces apart to know whose capabilities count.
//!
//! Joining (setns) moves only the calling thread. Since Linux 5.8 it also
//! drops that thread's System V semaphore undo list; ipcfs never uses
//! SEM_UNDO, so there is nothing to drop.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, setns};

use super::{Errno, io_errno};

/// `NS_GET_USERNS`, `NS_GET_NSTYPE` and `NS_GET_OWNER_UID` from
/// <linux/nsfs.h>: `_IO(0xb7, 1)`, `_IO(0xb7, 3)` and `_IO(0xb7, 4)`.
const NS_GET_USERNS: libc::c_ulong = 0xb701;
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
const NS_GET_OWNER_UID: libc::c_ulong = 0xb704;

/// The kinds of namespace ipcfs joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ipc,
    /// Host name and domain name.
    Uts,
    /// Users and capabilities.
    User,
}

impl Kind {
    /// The name in /proc/PID/ns/ and in the link's text (`ipc:[4026531839]`).
    fn name(self) -> &'static str {
        match self {
            Kind::Ipc => "ipc",
            Kind::Uts => "uts",
            Kind::User => "user",
        }
    }

    fn flag(self) -> CloneFlags {
        match self {
            Kind::Ipc => CloneFlags::CLONE_NEWIPC,
            Kind::Uts => CloneFlags::CLONE_NEWUTS,
            Kind::User => CloneFlags::CLONE_NEWUSER,
        }
    }
}

/// An open namespace (a `/proc/PID/ns/KIND` file). Holding it keeps the
/// namespace, and for IPC its objects, alive.
#[derive(Debug)]
pub struct Namespace {
    file: File,
    inode: u64,
    kind: Kind,
}

impl Namespace {
    /// Opens the namespace `path` names (a /proc/PID/ns file, or a bind
    /// mount of one such as `unshare --ipc=FILE` makes); EINVAL if it names
    /// no namespace of that kind.
    pub fn open(path: &Path, kind: Kind) -> Result<Namespace, Errno> {
        let file = File::open(path).map_err(io_errno)?;
        // SAFETY: NS_GET_NSTYPE takes no argument; it returns the namespace's
        // CLONE_NEW* flag, or -1 (ENOTTY) for a file that is no namespace.
        let nstype = Errno::result(unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) }).map_err(|e| match e {
            Errno::ENOTTY => Errno::EINVAL,
            other => other,
        })?;
        if nstype != kind.flag().bits() {
            return Err(Errno::EINVAL);
        }
        let inode = file.metadata().map_err(io_errno)?.ino();
        Ok(Namespace { file, inode, kind })
    }

    /// The namespace of that kind process `pid` is in.
    pub fn of_process(pid: u32, kind: Kind) -> Result<Namespace, Errno> {
        Namespace::open(&process_path(pid, kind), kind)
    }

    /// The namespace's inode number: what `ls -l /proc/PID/ns/ipc` shows
    /// between the brackets, and what names it in `ns/`.
    pub fn inode(&self) -> u64 {
        self.inode
    }

    /// Moves the calling thread (only it) into the namespace.
    pub fn enter(&self) -> Result<(), Errno> {
        setns(&self.file, self.kind.flag())
    }

    /// The user owning the user namespace this namespace belongs to: 0 for
    /// the host's, the user who made it for a rootless container's.
    /// Besides root, only that user may join the namespace.
    pub fn owner_uid(&self) -> Result<u32, Errno> {
        // SAFETY: NS_GET_USERNS takes no argument and returns a new file
        // descriptor or -1.
        let fd = Errno::result(unsafe { libc::ioctl(self.file.as_raw_fd(), NS_GET_USERNS) })?;
        // SAFETY: the descriptor was just made for us and is owned by no one else.
        let user_ns = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut uid: libc::uid_t = 0;
        // SAFETY: NS_GET_OWNER_UID writes one uid_t through the pointer, which
        // points at a live uid_t.
        Errno::result(unsafe { libc::ioctl(user_ns.as_raw_fd(), NS_GET_OWNER_UID, &mut uid as *mut libc::uid_t) })?;
        Ok(uid)
    }
}

/// `/proc/<pid>/ns/<kind>`: the file that names process `pid`'s namespace
/// of that kind.
pub fn process_path(pid: u32, kind: Kind) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/{}", kind.name()))
}

/// The inode of the calling thread's own namespace of that kind.
pub fn current_inode(kind: Kind) -> Result<u64, Errno> {
    inode_of(&format!("/proc/thread-self/ns/{}", kind.name()))
}

/// The inode of the daemon's (its main thread's) namespace of that kind.
pub fn daemon_inode(kind: Kind) -> Result<u64, Errno> {
    inode_of(&format!("/proc/self/ns/{}", kind.name()))
}

/// The inode of process `pid`'s namespace of that kind.
pub fn process_inode(pid: u32, kind: Kind) -> Result<u64, Errno> {
    inode_of(&format!("/proc/{pid}/ns/{}", kind.name()))
}

fn inode_of(path: &str) -> Result<u64, Errno> {
    std::fs::metadata(path).map(|m| m.ino()).map_err(io_errno)
}

/// The namespace of that kind process `pid` is in now, by the text of its
/// link (`ipc:[4026531839]`), which only who may ptrace-read the process
/// may read: the kernel decides who sees what. None if it cannot be read.
pub fn namespace_of(pid: u32, kind: Kind) -> Option<u64> {
    let link = std::fs::read_link(process_path(pid, kind)).ok()?;
    parse_link(link.to_str()?, kind)
}

/// `ipc:[4026531839]` → 4026531839, for a link of that kind.
pub fn parse_link(link: &str, kind: Kind) -> Option<u64> {
    link.strip_prefix(kind.name())?.strip_prefix(":[")?.strip_suffix(']')?.parse().ok()
}

/// Every namespace of that kind a process is in, with its processes
/// (ascending); None if /proc cannot be read. Only thread-group leaders
/// count, as in `lsns`.
pub fn processes_by_namespace(kind: Kind) -> Option<BTreeMap<u64, Vec<u32>>> {
    let mut found: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if let Some(ns) = namespace_of(pid, kind) {
            found.entry(ns).or_default().push(pid);
        }
    }
    for pids in found.values_mut() {
        pids.sort_unstable();
    }
    Some(found)
}

/// A process being watched for its end (a pidfd).
#[derive(Debug)]
pub struct ProcessWatch(OwnedFd);

impl ProcessWatch {
    /// Starts watching process `pid`; ESRCH if it is gone already.
    pub fn new(pid: u32) -> Result<ProcessWatch, Errno> {
        let pid = libc::pid_t::try_from(pid).map_err(|_| Errno::ESRCH)?;
        // SAFETY: pidfd_open takes a pid and flags, and returns a new file
        // descriptor or -1.
        let fd = Errno::result(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
        let fd = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
        // SAFETY: the descriptor was just made for us and is owned by no one else.
        Ok(ProcessWatch(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Blocks until the process has ended (true), or until `or` can be read
    /// or has no writer left (false), such as the [`Stopped`] end of a
    /// [`stopper`] whose [`Stopper`] is dropped.
    pub fn wait(&self, or: BorrowedFd<'_>) -> bool {
        loop {
            let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN), PollFd::new(or, PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(Errno::EINTR) => continue,
                Err(_) => return true,
                Ok(_) => return fds[1].revents().is_none_or(|r| r.is_empty()),
            }
        }
    }
}

/// The end of a [`stopper`] that stops waits when dropped.
#[derive(Debug)]
pub struct Stopper {
    /// The writing end of the pipe: held only to be closed.
    _end: OwnedFd,
}

/// The end of a [`stopper`] that a [`ProcessWatch::wait`] also wakes for.
#[derive(Debug)]
pub struct Stopped(OwnedFd);

impl AsFd for Stopped {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// A pipe to stop waits by: dropping the [`Stopper`] ends every
/// [`ProcessWatch::wait`] given the [`Stopped`] end.
pub fn stopper() -> Result<(Stopper, Stopped), Errno> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((Stopper { _end: write }, Stopped(read)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_links_parse() {
        assert_eq!(parse_link("ipc:[4026531839]", Kind::Ipc), Some(4026531839));
        assert_eq!(parse_link("net:[4026531839]", Kind::Ipc), None);
        assert_eq!(parse_link("ipc:[x]", Kind::Ipc), None);
        assert_eq!(parse_link("user:[4026531837]", Kind::User), Some(4026531837));
    }

    #[test]
    fn this_process_is_found_in_its_namespace() {
        let found = processes_by_namespace(Kind::Ipc).unwrap();
        let own = current_inode(Kind::Ipc).unwrap();
        assert!(found.get(&own).is_some_and(|pids| pids.contains(&std::process::id())));
        assert_eq!(namespace_of(std::process::id(), Kind::Ipc), Some(own));
        assert_eq!(process_inode(std::process::id(), Kind::User), daemon_inode(Kind::User));
    }

    #[test]
    fn a_dropped_stopper_ends_the_wait() {
        let (stop, stopped) = stopper().unwrap();
        let watch = ProcessWatch::new(std::process::id()).unwrap();
        drop(stop);
        assert!(!watch.wait(stopped.as_fd()), "stopped, not ended");
    }
}
