//! Namespaces: telling one from another, joining one, who may join it, and
//! noticing when a process (the one a namespace was found through) ends.
//! ipcfs joins IPC namespaces, and UTS namespaces to read their host names.
//!
//! Joining (setns) moves only the calling thread. Since Linux 5.8 it also
//! drops that thread's System V semaphore undo list; ipcfs never uses
//! SEM_UNDO, so there is nothing to drop.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CloneFlags, setns};

use super::Errno;

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
}

impl Kind {
    /// The name in /proc/PID/ns/ and in the link's text (`ipc:[4026531839]`).
    fn name(self) -> &'static str {
        match self {
            Kind::Ipc => "ipc",
            Kind::Uts => "uts",
        }
    }

    fn flag(self) -> CloneFlags {
        match self {
            Kind::Ipc => CloneFlags::CLONE_NEWIPC,
            Kind::Uts => CloneFlags::CLONE_NEWUTS,
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
        Namespace::open(Path::new(&format!("/proc/{pid}/ns/{}", kind.name())), kind)
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

/// The inode of the calling thread's own namespace of that kind.
pub fn current_inode(kind: Kind) -> Result<u64, Errno> {
    std::fs::metadata(format!("/proc/thread-self/ns/{}", kind.name())).map(|m| m.ino()).map_err(io_errno)
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
    /// or has no writer left (false).
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

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}
