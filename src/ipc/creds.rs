//! Acting as the caller: switch the calling thread's effective uid, gid and
//! supplementary groups for the length of one operation.
//!
//! The raw system calls change only the calling thread (glibc's wrappers would
//! change every thread of the daemon). The real and saved ids stay root, so the
//! switch back always succeeds; if it ever did not, the thread would go on with
//! the wrong identity, so the process aborts instead.

use super::Errno;

/// Who an operation runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// Runs `f` with the thread's effective ids set to `who`. When the daemon is
/// not root it cannot switch, and `f` runs as the daemon's own user.
pub fn run_as<T>(who: &Identity, f: impl FnOnce() -> T) -> Result<T, Errno> {
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
    Ok(f())
}

struct SwitchBack(Vec<u32>);

impl Drop for SwitchBack {
    fn drop(&mut self) {
        if let Err(e) = set_effective_ids(0, 0).and_then(|()| set_groups(&self.0)) {
            log::error!("cannot switch a thread back to root ({e}); aborting");
            std::process::abort();
        }
    }
}

/// Sets effective gid then uid (or uid then gid when going back to root, so
/// that the privilege to change the gid is there).
fn set_effective_ids(uid: u32, gid: u32) -> Result<(), Errno> {
    let keep = u32::MAX; // -1: leave unchanged
    let set_uid = || {
        // SAFETY: setresuid takes plain integers.
        Errno::result(unsafe { libc::syscall(libc::SYS_setresuid, keep, uid, keep) })
    };
    let set_gid = || {
        // SAFETY: setresgid takes plain integers.
        Errno::result(unsafe { libc::syscall(libc::SYS_setresgid, keep, gid, keep) })
    };
    if uid == 0 {
        set_uid()?;
        set_gid()?;
    } else {
        set_gid()?;
        set_uid()?;
    }
    Ok(())
}

fn set_groups(groups: &[u32]) -> Result<(), Errno> {
    // SAFETY: the pointer and length describe a live slice of gid_t (u32).
    Errno::result(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) })?;
    Ok(())
}
