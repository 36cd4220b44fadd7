//! What can go wrong in the filesystem model, and the errno each becomes.
//!
//! The match in [`Error::errno`] has no catch-all arm on purpose: a new variant
//! must decide its errno.

use crate::ipc::{Errno, io_errno};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("no such file or IPC object")]
    NotFound,
    #[error("an object with that key already exists")]
    Exists,
    #[error("the object's mode does not grant this access")]
    AccessDenied,
    #[error("only the owner, the creator or a privileged user may do this")]
    NotPermitted,
    #[error("write at or past the end of a fixed-size segment")]
    NoSpace,
    #[error("invalid argument")]
    Invalid,
    #[error("a segment's size is fixed")]
    FileTooLarge,
    #[error("no such extended attribute")]
    NoAttribute,
    #[error("a number or size out of range")]
    OutOfRange,
    #[error("the message is larger than the read buffer; it stays queued")]
    MessageTooLong,
    #[error("interrupted: the caller has a signal to handle")]
    Interrupted,
    #[error("would have to wait, and the file is non-blocking")]
    WouldBlock,
    #[error("operation not supported here")]
    NotSupported,
    #[error("is a directory")]
    IsDirectory,
    #[error("not a directory")]
    NotDirectory,
    #[error("unknown or unsuitable file handle")]
    BadHandle,
    #[error("name too long")]
    NameTooLong,
    #[error("the object was removed while the operation waited")]
    Removed,
    #[error("the filesystem is mounted read-only")]
    ReadOnly,
    #[error("the file's inode is in use by a write that may wait: look the name up again")]
    Stale,
    #[error("could not learn enough of the caller or the kernel to decide: {0}")]
    Unverifiable(Errno),
    #[error("the caller's share of the daemon is used up: {0}")]
    Budget(Errno),
    #[error("the kernel's IPC limits leave no room for it: {0}")]
    NoRoom(Errno),
    #[error("{call} failed: {errno}")]
    Kernel { call: &'static str, errno: Errno },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The errno the caller sees, as fuser takes it.
    pub fn errno(self) -> i32 {
        self.to_errno() as i32
    }

    /// The errno the caller sees.
    pub fn to_errno(self) -> Errno {
        match self {
            Error::NotFound => Errno::ENOENT,
            Error::Exists => Errno::EEXIST,
            Error::AccessDenied => Errno::EACCES,
            Error::NotPermitted => Errno::EPERM,
            Error::NoSpace => Errno::ENOSPC,
            Error::Invalid => Errno::EINVAL,
            Error::FileTooLarge => Errno::EFBIG,
            Error::NoAttribute => Errno::ENODATA,
            Error::OutOfRange => Errno::ERANGE,
            Error::MessageTooLong => Errno::E2BIG,
            Error::Interrupted => Errno::EINTR,
            Error::WouldBlock => Errno::EAGAIN,
            Error::NotSupported => Errno::EOPNOTSUPP,
            Error::IsDirectory => Errno::EISDIR,
            Error::NotDirectory => Errno::ENOTDIR,
            Error::BadHandle => Errno::EBADF,
            Error::NameTooLong => Errno::ENAMETOOLONG,
            Error::Removed => Errno::EIDRM,
            Error::ReadOnly => Errno::EROFS,
            Error::Stale => Errno::ESTALE,
            // A check that could not be made refuses: with the errno of a
            // resource the daemon ran short of, else as a permission refusal.
            Error::Unverifiable(e @ (Errno::EMFILE | Errno::ENFILE | Errno::ENOMEM | Errno::EAGAIN)) => e,
            Error::Unverifiable(_) => Errno::EACCES,
            Error::Budget(e) | Error::NoRoom(e) => e,
            Error::Kernel { errno, .. } => errno,
        }
    }

    /// A kernel call that failed in a way no named mapping covers: for
    /// `map_err(Error::kernel("shmctl(IPC_STAT)"))`.
    pub fn kernel(call: &'static str) -> impl Fn(Errno) -> Error {
        move |errno| Error::Kernel { call, errno }
    }

    /// Reading a /proc/sysvipc table failed.
    pub fn listing(e: std::io::Error) -> Error {
        Error::Kernel { call: "reading /proc/sysvipc", errno: io_errno(e) }
    }

    /// For a call on an object by id: the kernel says EINVAL or EIDRM when the
    /// id no longer names an object, which for a file is "no such file".
    pub fn from_id_call(e: Errno) -> Error {
        match e {
            Errno::EINVAL | Errno::EIDRM | Errno::ENOENT => Error::NotFound,
            Errno::EACCES => Error::AccessDenied,
            Errno::EPERM => Error::NotPermitted,
            errno => Error::Kernel { call: "a call on an IPC object by id", errno },
        }
    }

    /// For a `*get(IPC_CREAT | IPC_EXCL)`: the key exists, or the kernel
    /// refuses the size or count asked for.
    pub fn from_creation(e: Errno) -> Error {
        match e {
            Errno::EEXIST => Error::Exists,
            Errno::EINVAL => Error::Invalid,
            // shmmni, shmall, semmni, semmns, msgmni, or the memory for it:
            // the kernel's limits at work, not trouble in the daemon.
            Errno::ENOSPC | Errno::ENOMEM => Error::NoRoom(e),
            errno => Error::Kernel { call: "creating an IPC object", errno },
        }
    }

    /// Whether a failure is part of normal use (logged at debug) rather than a
    /// sign of trouble in the daemon (logged at warn).
    pub fn is_expected(self) -> bool {
        !matches!(self, Error::Kernel { .. } | Error::Unverifiable(Errno::EMFILE | Errno::ENFILE | Errno::ENOMEM))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_are_the_ones_users_expect() {
        assert_eq!(Error::NotFound.errno(), Errno::ENOENT as i32);
        assert_eq!(Error::AccessDenied.errno(), Errno::EACCES as i32);
        assert_eq!(Error::NotPermitted.errno(), Errno::EPERM as i32);
        assert_eq!(Error::NoSpace.errno(), Errno::ENOSPC as i32);
        assert_eq!(Error::Exists.errno(), Errno::EEXIST as i32);
        assert_eq!(Error::kernel("msgrcv")(Errno::ENOMEM).errno(), Errno::ENOMEM as i32);
    }

    #[test]
    fn vanished_ids_read_as_not_found() {
        assert_eq!(Error::from_id_call(Errno::EINVAL), Error::NotFound);
        assert_eq!(Error::from_id_call(Errno::EIDRM), Error::NotFound);
        assert_eq!(Error::from_id_call(Errno::EPERM), Error::NotPermitted);
        assert_eq!(Error::from_id_call(Errno::ENOSPC).errno(), Errno::ENOSPC as i32);
    }
}
