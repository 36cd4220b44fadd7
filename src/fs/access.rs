//! Who is asking, and the kernel's own permission rule for IPC objects.
//!
//! The rule is ipc/util.c: `ipcperms` for reading and writing, and
//! `ipcctl_obtain_check` for IPC_SET and IPC_RMID. FUSE's default_permissions
//! is not this rule (it knows nothing of the creator's uid and gid or of
//! CAP_IPC_OWNER), so ipcfs applies it itself.

use std::sync::OnceLock;

use super::error::{Error, Result};
use crate::ipc::creds::{Identity, run_as_with_caps};
use crate::ipc::flags::{Access, OpenFlags};
use crate::ipc::ns::{self, Kind};
use crate::ipc::proc::Status;
use crate::ipc::{Errno, IpcPerm};

const CAP_IPC_OWNER: u32 = 15;
const CAP_SYS_ADMIN: u32 = 21;

/// The process behind a request, as FUSE names it (fsuid, fsgid, thread id).
#[derive(Debug)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    /// The calling thread (FUSE's "pid" is the thread's id).
    pub tid: u32,
    status: OnceLock<Result<ProcStatus>>,
}

/// What /proc/<pid>/status adds to a request: supplementary groups and
/// effective capabilities. Read only when a decision needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcStatus {
    pub groups: Vec<u32>,
    pub cap_eff: u64,
}

/// The access a caller asks for, as the `rwx` bits of one class (4, 2, 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want(u32);

impl Want {
    pub const READ: Want = Want(4);
    pub const WRITE: Want = Want(2);
    pub const READ_WRITE: Want = Want(6);
    pub const SEARCH: Want = Want(1);

    /// Nothing at all (access(2) with F_OK).
    pub fn is_nothing(self) -> bool {
        self.0 == 0
    }

    pub fn includes_search(self) -> bool {
        self.0 & 1 != 0
    }

    /// Whether every bit asked for is among `granted` (`rwx` bits).
    pub fn within(self, granted: u32) -> bool {
        self.0 & !granted == 0
    }

    /// From open(2) flags.
    pub fn from_open_flags(flags: i32) -> Want {
        Want::from(OpenFlags::from_raw(flags).access())
    }

    /// From access(2)'s mask (R_OK, W_OK, X_OK have the same values).
    pub fn from_access_mask(mask: i32) -> Want {
        Want((mask & 0o7) as u32)
    }

    pub fn includes_write(self) -> bool {
        self.0 & 2 != 0
    }

    pub fn includes_read(self) -> bool {
        self.0 & 4 != 0
    }

    /// On a set or queue directory, search (x) means read, as its mode shows.
    pub fn search_as_read(self) -> Want {
        if self.0 & 1 != 0 { Want((self.0 & !1) | Want::READ.0) } else { self }
    }
}

impl From<Access> for Want {
    fn from(access: Access) -> Want {
        match access {
            Access::Read => Want::READ,
            Access::Write => Want::WRITE,
            Access::ReadWrite => Want::READ_WRITE,
        }
    }
}

/// Directory permissions of a set or queue: its bits, with search wherever
/// read is granted, so that it can be entered.
pub fn dir_perm(mode: u32) -> u16 {
    let bits = mode & 0o777;
    (bits | ((bits & 0o444) >> 2)) as u16
}

/// chmod and chown on a set or queue directory: checks everything, then
/// calls `set(uid, gid, mode)` (IPC_SET). Execute bits are dropped: the
/// directory's search bits are derived from read. Returns whether anything
/// was asked for.
pub fn chmod_chown_dir(
    perm: &IpcPerm,
    change: super::SetAttr,
    caller: &Caller,
    set: impl FnOnce(u32, u32, u32) -> Result<()>,
) -> Result<bool> {
    if change.size.is_some() {
        return Err(Error::IsDirectory);
    }
    let mode = change.permission_bits()?;
    if !change.changes_owner_or_mode() {
        return Ok(false);
    }
    check_owner(perm, caller)?;
    set(change.uid.unwrap_or(perm.uid), change.gid.unwrap_or(perm.gid), mode.map_or(perm.mode, |m| m & 0o666))?;
    Ok(true)
}

impl Caller {
    pub fn new(uid: u32, gid: u32, tid: u32) -> Caller {
        Caller { uid, gid, tid, status: OnceLock::new() }
    }

    /// A caller whose /proc entry is already known (tests, and the daemon itself).
    pub fn with_status(uid: u32, gid: u32, status: ProcStatus) -> Caller {
        let caller = Caller::new(uid, gid, 0);
        let _ = caller.status.set(Ok(status));
        caller
    }

    /// The caller's groups and capabilities, read once per request. A
    /// caller whose status cannot be read (gone, outside the daemon's pid
    /// namespace, or the daemon short of descriptors) has no known groups or
    /// capabilities, and every decision that needs them is refused: never
    /// guessed, not even for uid 0.
    fn status(&self) -> Result<&ProcStatus> {
        self.status.get_or_init(|| read_status(self.tid)).as_ref().map_err(|e| *e)
    }

    /// Whether the caller is in group `gid`; an error when that needs its
    /// supplementary groups and they cannot be read.
    pub fn in_group(&self, gid: u32) -> Result<bool> {
        Ok(gid == self.gid || self.status()?.groups.contains(&gid))
    }

    /// Whether the caller holds capability `cap` (in the daemon's user
    /// namespace). One that cannot be learnt is not held: capabilities only
    /// ever grant, so counting none refuses what they would have allowed.
    pub fn has_cap(&self, cap: u32) -> bool {
        self.status().is_ok_and(|status| status.cap_eff & (1 << cap) != 0)
    }

    /// The ids to act as when creating an object on the caller's behalf.
    pub fn identity(&self) -> Result<Identity> {
        Ok(Identity { uid: self.uid, gid: self.gid, groups: self.status()?.groups.clone() })
    }

    /// Runs `f` on this thread as the caller: its ids, groups and
    /// capabilities (in the daemon's user namespace), so that what `f` asks
    /// of the kernel is decided as for the caller itself.
    pub fn act<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let caps = self.status()?.cap_eff;
        run_as_with_caps(&self.identity()?, caps, f).map_err(Error::kernel("taking on the caller's ids"))
    }
}

fn read_status(pid: u32) -> Result<ProcStatus> {
    // pid 0: the caller is outside the daemon's pid namespace.
    if pid == 0 {
        return Err(Error::Unverifiable(Errno::ESRCH));
    }
    let status = Status::read(pid).map_err(Error::Unverifiable)?;
    let mut status = ProcStatus { groups: status.groups, cap_eff: status.cap_eff };
    // CapEff counts in the caller's own user namespace, and anyone may make
    // one (`unshare -U`) and hold every capability there. Only the daemon's
    // counts. (Read after the status: no process can move back up to it.)
    if !in_daemons_user_namespace(pid)? {
        status.cap_eff = 0;
    }
    Ok(status)
}

/// `ipcperms`: may the caller read and/or write the object? A decision that
/// needs what cannot be learnt of the caller is a refusal.
pub fn check_access(perm: &IpcPerm, caller: &Caller, want: Want) -> Result<()> {
    let granted = if caller.uid == perm.uid || caller.uid == perm.cuid {
        perm.mode >> 6
    } else if caller.in_group(perm.cgid)? || caller.in_group(perm.gid)? {
        perm.mode >> 3
    } else {
        perm.mode
    };
    if want.within(granted & 0o7) || caller.has_cap(CAP_IPC_OWNER) { Ok(()) } else { Err(Error::AccessDenied) }
}

/// `ipcctl_obtain_check`: may the caller change or remove the object?
pub fn check_owner(perm: &IpcPerm, caller: &Caller) -> Result<()> {
    if caller.uid == perm.uid || caller.uid == perm.cuid || caller.has_cap(CAP_SYS_ADMIN) {
        Ok(())
    } else {
        Err(Error::NotPermitted)
    }
}

/// Whether process `pid` is in the daemon's user namespace; an error when
/// either cannot be read.
fn in_daemons_user_namespace(pid: u32) -> Result<bool> {
    static DAEMONS: OnceLock<u64> = OnceLock::new();
    let daemons = match DAEMONS.get() {
        Some(&ino) => ino,
        None => {
            let ino = ns::daemon_inode(Kind::User).map_err(Error::Unverifiable)?;
            *DAEMONS.get_or_init(|| ino)
        }
    };
    Ok(ns::process_inode(pid, Kind::User).map_err(Error::Unverifiable)? == daemons)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::Key;

    fn perm(uid: u32, gid: u32, cuid: u32, cgid: u32, mode: u32) -> IpcPerm {
        IpcPerm { key: Key(1), uid, gid, cuid, cgid, mode }
    }

    fn user(uid: u32, gid: u32, groups: &[u32]) -> Caller {
        Caller::with_status(uid, gid, ProcStatus { groups: groups.to_vec(), cap_eff: 0 })
    }

    #[test]
    fn owner_group_and_other_bits() {
        let p = perm(1000, 100, 2000, 200, 0o640);
        assert!(check_access(&p, &user(1000, 5, &[]), Want::READ_WRITE).is_ok());
        assert!(check_access(&p, &user(2000, 5, &[]), Want::WRITE).is_ok(), "creator counts as owner");
        assert!(check_access(&p, &user(3000, 100, &[]), Want::READ).is_ok());
        assert_eq!(check_access(&p, &user(3000, 100, &[]), Want::WRITE), Err(Error::AccessDenied));
        assert!(check_access(&p, &user(3000, 7, &[200]), Want::READ).is_ok(), "creator's group, supplementary");
        assert_eq!(check_access(&p, &user(3000, 7, &[8]), Want::READ), Err(Error::AccessDenied));
    }

    #[test]
    fn owner_class_is_not_widened_by_other_bits() {
        // Like files: an owner with no owner bits is refused even if others may.
        let p = perm(1000, 100, 1000, 100, 0o066);
        assert_eq!(check_access(&p, &user(1000, 100, &[]), Want::READ), Err(Error::AccessDenied));
        assert!(check_access(&p, &user(5, 5, &[]), Want::READ).is_ok());
    }

    #[test]
    fn cap_ipc_owner_bypasses_the_mode_and_cap_sys_admin_the_owner_check() {
        let p = perm(1000, 100, 1000, 100, 0o000);
        let owner_cap = Caller::with_status(0, 0, ProcStatus { groups: vec![], cap_eff: 1 << CAP_IPC_OWNER });
        assert!(check_access(&p, &owner_cap, Want::READ_WRITE).is_ok());
        assert_eq!(check_owner(&p, &owner_cap), Err(Error::NotPermitted));
        let admin = Caller::with_status(0, 0, ProcStatus { groups: vec![], cap_eff: 1 << CAP_SYS_ADMIN });
        assert!(check_owner(&p, &admin).is_ok());
        assert_eq!(check_access(&p, &admin, Want::READ), Err(Error::AccessDenied));
    }

    #[test]
    fn owner_check_takes_uid_or_cuid() {
        let p = perm(1000, 100, 2000, 200, 0o000);
        assert!(check_owner(&p, &user(1000, 1, &[])).is_ok());
        assert!(check_owner(&p, &user(2000, 1, &[])).is_ok());
        assert_eq!(check_owner(&p, &user(3000, 100, &[100, 200])), Err(Error::NotPermitted));
    }
}
