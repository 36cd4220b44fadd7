//! Semaphore sets: `semget`, `semctl`, `semtimedop`.

use std::time::Duration;

use super::family::{self, IdDs};
use super::flags::GetFlags;
use super::{Errno, IpcPerm, Key};

/// Not exported by the libc crate for Linux; value from <linux/sem.h>.
const SEM_STAT_ANY: libc::c_int = 20;
/// The largest value a semaphore can hold (SEMVMX in <linux/sem.h>).
pub const SEMVMX: i32 = 32767;

/// A semaphore set id as `ipcs -s` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SemId(pub i32);

/// What `semctl(IPC_STAT)` tells about a set (`struct semid_ds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemStat {
    pub id: SemId,
    pub perm: IpcPerm,
    pub nsems: u64,
    pub otime: i64,
    pub ctime: i64,
}

impl SemStat {
    fn from_raw(id: libc::c_int, perm: IpcPerm, ds: &libc::semid_ds) -> SemStat {
        SemStat { id: SemId(id), perm, nsems: ds.sem_nsems, otime: ds.sem_otime, ctime: ds.sem_ctime }
    }
}

// SAFETY: semid_ds is plain old data with its ipc_perm first, and semctl takes it
// as its buffer.
unsafe impl IdDs for libc::semid_ds {
    const STAT_ANY: libc::c_int = SEM_STAT_ANY;

    unsafe fn ctl(id: libc::c_int, cmd: libc::c_int, buf: *mut Self) -> libc::c_int {
        // SAFETY: the caller passes a buffer fit for cmd (IdDs::ctl).
        unsafe { libc::semctl(id, 0, cmd, buf) }
    }
}

/// `semget(key, nsems, flags)`: find or create a set.
pub fn get(key: Key, nsems: i32, flags: impl Into<GetFlags>) -> Result<SemId, Errno> {
    // SAFETY: semget takes no pointers.
    let id = Errno::result(unsafe { libc::semget(key.0, nsems, flags.into().bits()) })?;
    Ok(SemId(id))
}

/// The set with this id, whoever may read it (`SEM_STAT_ANY`). `ENOENT`
/// when no set has the id.
pub fn stat_any(id: SemId) -> Result<SemStat, Errno> {
    family::stat_any(id.0, SemStat::from_raw)
}

/// `semctl(IPC_SET)`: set owner, group and permission bits.
pub fn set(id: SemId, uid: u32, gid: u32, mode: u32) -> Result<(), Errno> {
    family::set::<libc::semid_ds>(id.0, uid, gid, mode, |_| {})
}

/// `semctl(IPC_RMID)`: remove the set; waiters wake with EIDRM.
pub fn remove(id: SemId) -> Result<(), Errno> {
    family::remove::<libc::semid_ds>(id.0)
}

/// One of the per-semaphore queries of `semctl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Query {
    /// GETVAL: the value.
    Value,
    /// GETPID: the pid of the last operation.
    Pid,
    /// GETNCNT: processes waiting for the value to grow.
    WaitingToTake,
    /// GETZCNT: processes waiting for the value to be zero.
    WaitingForZero,
}

/// `semctl(GETVAL | GETPID | GETNCNT | GETZCNT)` on semaphore `num`.
pub fn query(id: SemId, num: u16, what: Query) -> Result<i32, Errno> {
    let cmd = match what {
        Query::Value => libc::GETVAL,
        Query::Pid => libc::GETPID,
        Query::WaitingToTake => libc::GETNCNT,
        Query::WaitingForZero => libc::GETZCNT,
    };
    // SAFETY: these commands take no argument.
    Errno::result(unsafe { libc::semctl(id.0, libc::c_int::from(num), cmd) })
}

/// `semctl(SETVAL)`: set semaphore `num` to `value`.
pub fn set_value(id: SemId, num: u16, value: i32) -> Result<(), Errno> {
    // SAFETY: SETVAL takes an int (the `val` member of union semun).
    Errno::result(unsafe { libc::semctl(id.0, libc::c_int::from(num), libc::SETVAL, value) })?;
    Ok(())
}

/// `semop` with one operation on semaphore `num`, waiting as long as it
/// takes: it ends when it succeeds, the set is removed (`EIDRM`) or a signal
/// interrupts it (`EINTR`: see [`super::wake`]).
pub fn operate_waiting(id: SemId, num: u16, delta: i16) -> Result<(), Errno> {
    let mut op = libc::sembuf { sem_num: num, sem_op: delta, sem_flg: 0 };
    // SAFETY: op is one valid sembuf; a null timeout waits without limit.
    let r = unsafe {
        libc::syscall(
            libc::SYS_semtimedop,
            id.0,
            &mut op as *mut libc::sembuf,
            1usize,
            std::ptr::null::<libc::timespec>(),
        )
    };
    Errno::result(r)?;
    Ok(())
}

/// `semtimedop` with one operation on semaphore `num`: add `delta` (a V when
/// positive, a P when negative) or, when `delta` is 0, wait for zero.
/// `IPC_NOWAIT` unless `wait` is given; with `wait`, gives up after that long
/// with `EAGAIN`.
pub fn operate(id: SemId, num: u16, delta: i16, wait: Option<Duration>) -> Result<(), Errno> {
    let mut op =
        libc::sembuf { sem_num: num, sem_op: delta, sem_flg: if wait.is_some() { 0 } else { libc::IPC_NOWAIT as i16 } };
    let timeout = wait.map(|w| libc::timespec {
        tv_sec: w.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(w.subsec_nanos() as i32),
    });
    let timeout_ptr = timeout.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: op is one valid sembuf, and timeout_ptr is null or points to a
    // timespec that lives until the call returns.
    let r = unsafe { libc::syscall(libc::SYS_semtimedop, id.0, &mut op as *mut libc::sembuf, 1usize, timeout_ptr) };
    Errno::result(r)?;
    Ok(())
}
