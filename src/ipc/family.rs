//! What the three families share, written once, as the kernel does with
//! `struct ipc_ops` (ipc/util.h): each family ([`super::shm`], [`super::sem`],
//! [`super::msg`]) states only what differs, by implementing [`IdDs`] for its
//! `struct *id_ds` (its `*ctl` call and its `*_STAT_ANY` command) and by
//! handing its typed stat's constructor to the calls; `IPC_STAT`,
//! `*_STAT_ANY`, `IPC_SET` and `IPC_RMID` are written here once. The
//! families' `pub fn`s are one-line wrappers over these.

use std::mem::MaybeUninit;

use super::{Errno, IpcPerm, id_to_indexes};

/// A family's `struct shmid_ds`, `semid_ds` or `msqid_ds`.
///
/// # Safety
///
/// The type must be plain old data, for which all-zero bytes are a valid
/// value, and `#[repr(C)]` with its `struct ipc_perm` first (as the kernel
/// lays out all three). `ctl` must be the family's `*ctl` call, passing
/// `buf` as its buffer argument.
pub(crate) unsafe trait IdDs: Sized {
    /// `SHM_STAT_ANY`, `SEM_STAT_ANY` or `MSG_STAT_ANY`.
    const STAT_ANY: libc::c_int;

    /// `shmctl`, `semctl` (on semaphore 0) or `msgctl`.
    ///
    /// # Safety
    ///
    /// `buf` is null for a command that takes no buffer, else it points to
    /// a `Self` the command may read and write.
    unsafe fn ctl(id: libc::c_int, cmd: libc::c_int, buf: *mut Self) -> libc::c_int;

    /// The permission block, which every `*id_ds` begins with.
    fn perm(&mut self) -> &mut libc::ipc_perm {
        // SAFETY: Self is repr(C) with its ipc_perm first (the trait's
        // contract), so a pointer to it is a pointer to that ipc_perm, valid
        // and borrowed for as long as self is.
        unsafe { &mut *(self as *mut Self).cast::<libc::ipc_perm>() }
    }
}

/// Makes a family's typed stat of object `id` from what the kernel filled in.
pub(crate) type StatOf<Ds, Stat> = fn(id: libc::c_int, perm: IpcPerm, ds: &Ds) -> Stat;

/// `*ctl(IPC_STAT)`: needs read permission on the object.
pub(crate) fn stat<Ds: IdDs, Stat>(id: libc::c_int, stat_of: StatOf<Ds, Stat>) -> Result<Stat, Errno> {
    let mut ds = MaybeUninit::<Ds>::uninit();
    // SAFETY: ds points to writable memory of the family's *id_ds, which
    // IPC_STAT fills in.
    Errno::result(unsafe { Ds::ctl(id, libc::IPC_STAT, ds.as_mut_ptr()) })?;
    // SAFETY: IPC_STAT succeeded, so the kernel filled in ds.
    Ok(typed(id, unsafe { ds.assume_init_mut() }, stat_of))
}

/// The object with this id, whoever may read it (`*_STAT_ANY`, as
/// /proc/sysvipc shows every object). `ENOENT` when no object has the id.
///
/// `*_STAT_ANY` takes a slot index, not an id: each index the id may live
/// at is tried, and an answer counts only if the object there has the id.
pub(crate) fn stat_any<Ds: IdDs, Stat>(id: libc::c_int, stat_of: StatOf<Ds, Stat>) -> Result<Stat, Errno> {
    if id < 0 {
        return Err(Errno::ENOENT);
    }
    for index in id_to_indexes(id) {
        let mut ds = MaybeUninit::<Ds>::uninit();
        // SAFETY: ds points to writable memory of the family's *id_ds, which
        // *_STAT_ANY fills in.
        let found = unsafe { Ds::ctl(index, Ds::STAT_ANY, ds.as_mut_ptr()) };
        match Errno::result(found) {
            Ok(found) if found == id => {
                // SAFETY: *_STAT_ANY succeeded, so the kernel filled in ds.
                return Ok(typed(id, unsafe { ds.assume_init_mut() }, stat_of));
            }
            Ok(_) | Err(Errno::EINVAL) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Errno::ENOENT)
}

fn typed<Ds: IdDs, Stat>(id: libc::c_int, ds: &mut Ds, stat_of: StatOf<Ds, Stat>) -> Stat {
    let perm = IpcPerm::from_raw(ds.perm());
    stat_of(id, perm, ds)
}

/// `*ctl(IPC_SET)`: owner, group and permission bits, and whatever else
/// `more` sets (a queue's byte limit).
pub(crate) fn set<Ds: IdDs>(
    id: libc::c_int,
    uid: u32,
    gid: u32,
    mode: u32,
    more: impl FnOnce(&mut Ds),
) -> Result<(), Errno> {
    let mut ds = MaybeUninit::<Ds>::zeroed();
    // SAFETY: an IdDs is plain old data, for which all-zero bytes are valid.
    let ds = unsafe { ds.assume_init_mut() };
    let perm = ds.perm();
    perm.uid = uid;
    perm.gid = gid;
    perm.mode = (mode & 0o777) as u16;
    more(ds);
    // SAFETY: ds is a valid *id_ds, which IPC_SET only reads.
    Errno::result(unsafe { Ds::ctl(id, libc::IPC_SET, ds) })?;
    Ok(())
}

/// `*ctl(IPC_RMID)`.
pub(crate) fn remove<Ds: IdDs>(id: libc::c_int) -> Result<(), Errno> {
    // SAFETY: IPC_RMID takes no buffer.
    Errno::result(unsafe { Ds::ctl(id, libc::IPC_RMID, std::ptr::null_mut()) })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    #[test]
    fn every_id_ds_begins_with_its_ipc_perm() {
        assert_eq!(offset_of!(libc::shmid_ds, shm_perm), 0);
        assert_eq!(offset_of!(libc::semid_ds, sem_perm), 0);
        assert_eq!(offset_of!(libc::msqid_ds, msg_perm), 0);
    }
}
