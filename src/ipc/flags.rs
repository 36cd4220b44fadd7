//! Typed flags: what the model reads from open(2)'s flags, and what it asks
//! of `shmget`, `semget` and `msgget`. The raw bits stay in here.

/// The flags of an open(2), as FUSE hands them over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFlags(i32);

/// The access mode of an open: `O_RDONLY`, `O_WRONLY` or `O_RDWR`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
}

impl OpenFlags {
    pub fn from_raw(flags: i32) -> OpenFlags {
        OpenFlags(flags)
    }

    /// The access mode. The fourth value (3, no access at all, which only
    /// some ioctls use) counts as read, as it always has here.
    pub fn access(self) -> Access {
        match self.0 & libc::O_ACCMODE {
            libc::O_WRONLY => Access::Write,
            libc::O_RDWR => Access::ReadWrite,
            _ => Access::Read,
        }
    }

    /// `O_NONBLOCK`: an operation that would wait fails with EAGAIN instead.
    pub fn is_nonblocking(self) -> bool {
        self.0 & libc::O_NONBLOCK != 0
    }
}

/// The flags of `shmget`, `semget` and `msgget`: whether to create, and the
/// new object's permission bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GetFlags(i32);

impl GetFlags {
    /// Only find the object a key has.
    pub const FIND: GetFlags = GetFlags(0);

    /// `IPC_CREAT | IPC_EXCL | mode`: a new object with permission bits
    /// `mode` (its low 9 bits), or `EEXIST` when the key has one already.
    pub fn create_exclusive(mode: u32) -> GetFlags {
        GetFlags(libc::IPC_CREAT | libc::IPC_EXCL | (mode & 0o777) as i32)
    }

    pub fn bits(self) -> i32 {
        self.0
    }
}

/// Raw bits, as tests and tools write them (`0o600 | IPC_CREAT`).
impl From<i32> for GetFlags {
    fn from(bits: i32) -> GetFlags {
        GetFlags(bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_modes_and_nonblocking() {
        assert_eq!(OpenFlags::from_raw(libc::O_RDONLY).access(), Access::Read);
        assert_eq!(OpenFlags::from_raw(libc::O_WRONLY | libc::O_TRUNC).access(), Access::Write);
        assert_eq!(OpenFlags::from_raw(libc::O_RDWR | libc::O_NONBLOCK).access(), Access::ReadWrite);
        assert_eq!(OpenFlags::from_raw(libc::O_ACCMODE).access(), Access::Read);
        assert!(OpenFlags::from_raw(libc::O_RDWR | libc::O_NONBLOCK).is_nonblocking());
        assert!(!OpenFlags::from_raw(libc::O_RDWR).is_nonblocking());
    }

    #[test]
    fn exclusive_creation_keeps_only_permission_bits() {
        let flags = GetFlags::create_exclusive(0o640).bits();
        assert_eq!(flags, libc::IPC_CREAT | libc::IPC_EXCL | 0o640);
        assert_eq!(GetFlags::create_exclusive(0o7777), GetFlags::create_exclusive(0o777));
        assert_eq!(GetFlags::from(0).bits(), GetFlags::FIND.bits());
    }
}
