//! Acting as the caller: switch the calling thread's effective uid, gid and
//! supplementary groups for the length of one operation.
//!
//! The raw system calls change only the calling thread (glibc's wrappers would
//! change every thread of the daemon). The real and saved ids stay root, so the
//! switch back always succeeds; if it ever did not, the thread would go on with
//! the wrong identity, so the process aborts instead.

use super::Errno;
use super::ns::{self, Kind};

/// Who an operation runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// The daemon's effective user and group.
pub fn effective_ids() -> (u32, u32) {
    (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw())
}

/// Runs `f` with the thread's effective ids set to `who`. When the daemon is
/// not root it cannot switch, and `f` runs as the daemon's own user. The
/// kernel clears the effective capabilities of a thread whose effective uid
/// leaves 0, so only a `who` of uid 0 keeps the daemon's.
pub fn run_as<T>(who: &Identity, f: impl FnOnce() -> T) -> Result<T, Errno> {
    run_as_with(who, None, f)
}

/// [`run_as`] with the thread's effective capabilities set to `caps` (as
/// far as the daemon holds them), whatever the uid: the kernel then decides
/// as it would for the caller itself, capabilities included.
pub fn run_as_with_caps<T>(who: &Identity, caps: u64, f: impl FnOnce() -> T) -> Result<T, Errno> {
    run_as_with(who, Some(caps), f)
}

fn run_as_with<T>(who: &Identity, caps: Option<u64>, f: impl FnOnce() -> T) -> Result<T, Errno> {
    // SAFETY: geteuid takes no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(f());
    }
    let saved_groups: Vec<u32> = nix::unistd::getgroups()?.iter().map(|g| g.as_raw()).collect();
    set_groups(&who.groups)?;
    // Switches back when dropped: after `f`, and also if `f` panics, so that
    // the thread never goes on as the caller.
    let _back = SwitchBack(saved_groups);
    set_effective_ids(who.uid, who.gid)?;
    if let Some(caps) = caps {
        set_effective_caps(Some(caps))?;
    }
    Ok(f())
}

struct SwitchBack(Vec<u32>);

impl Drop for SwitchBack {
    fn drop(&mut self) {
        // The uid first (allowed: the real uid is 0), then every permitted
        // capability, which changing the gid and groups needs.
        let back = set_uid(0).and_then(|()| set_effective_caps(None)).and_then(|()| set_effective_ids(0, 0));
        if let Err(e) = back.and_then(|()| set_groups(&self.0)) {
            log::error!("cannot switch a thread back to root ({e}); aborting");
            std::process::abort();
        }
    }
}

/// `struct __user_cap_header_struct` and `__user_cap_data_struct` of
/// <linux/capability.h>, version 3: two data structs of 32 bits each.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// The calling thread's capabilities (capget).
fn capabilities() -> Result<[CapData; 2], Errno> {
    let mut header = CapHeader { version: CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and data are the version 3 structures capget fills.
    Errno::result(unsafe { libc::syscall(libc::SYS_capget, &mut header as *mut CapHeader, data.as_mut_ptr()) })?;
    Ok(data)
}

/// Whether this process has CAP_SYS_ADMIN in the initial user namespace,
/// which FUSE passthrough's backing files and /proc/self/map_files ask for
/// (a daemon started rootless, or in a container's user namespace, has it
/// only in its own). False when it cannot tell.
pub fn is_host_admin() -> bool {
    /// The initial user namespace's inode number (PROC_USER_INIT_INO).
    const INITIAL_USER_NS: u64 = 0xEFFF_FFFD;
    const CAP_SYS_ADMIN: u32 = 21;
    let initial = ns::daemon_inode(Kind::User) == Ok(INITIAL_USER_NS);
    initial && capabilities().is_ok_and(|data| data[0].effective & (1 << CAP_SYS_ADMIN) != 0)
}

/// Sets the calling thread's effective capabilities to `caps` (None: every
/// permitted one), within its permitted set.
fn set_effective_caps(caps: Option<u64>) -> Result<(), Errno> {
    let mut header = CapHeader { version: CAPABILITY_VERSION_3, pid: 0 };
    let mut data = capabilities()?;
    let permitted = u64::from(data[0].permitted) | u64::from(data[1].permitted) << 32;
    let effective = caps.map_or(permitted, |caps| caps & permitted);
    data[0].effective = effective as u32;
    data[1].effective = (effective >> 32) as u32;
    // SAFETY: as above; capset (pid 0) changes only the calling thread.
    Errno::result(unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) })?;
    Ok(())
}

/// The effective uid (the real and saved ones, -1, stay).
fn set_uid(uid: u32) -> Result<(), Errno> {
    // SAFETY: setresuid takes plain integers.
    Errno::result(unsafe { libc::syscall(libc::SYS_setresuid, u32::MAX, uid, u32::MAX) })?;
    Ok(())
}

/// The effective gid (the real and saved ones, -1, stay).
fn set_gid(gid: u32) -> Result<(), Errno> {
    // SAFETY: setresgid takes plain integers.
    Errno::result(unsafe { libc::syscall(libc::SYS_setresgid, u32::MAX, gid, u32::MAX) })?;
    Ok(())
}

/// Sets effective gid then uid (or uid then gid when going back to root, so
/// that the privilege to change the gid is there).
fn set_effective_ids(uid: u32, gid: u32) -> Result<(), Errno> {
    if uid == 0 {
        set_uid(uid)?;
        set_gid(gid)?;
    } else {
        set_gid(gid)?;
        set_uid(uid)?;
    }
    Ok(())
}

fn set_groups(groups: &[u32]) -> Result<(), Errno> {
    // SAFETY: the pointer and length describe a live slice of gid_t (u32).
    Errno::result(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) })?;
    Ok(())
}
