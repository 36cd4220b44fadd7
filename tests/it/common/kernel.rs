//! The IPC objects as the kernel's own calls see them, behind the mount's
//! back: made, read and changed with shmget/shmat, semget/semctl and
//! msgget/msgsnd/msgrcv (MSG_COPY to look without taking), so that a file
//! which merely looks right is not enough for a test to pass.

use std::fmt::Debug;

use ipcfs::ipc::Errno;
use ipcfs::ipc::msg::{self, MsgStat, MsqId};
use ipcfs::ipc::sem::{self, Query, SemId, SemStat};
use ipcfs::ipc::shm::ShmStat;

use super::shell::{assert_ok, sh, sh_as};

pub use ipcfs::ipc::Key;
pub use ipcfs::ipc::shm::{self, ShmId};

/// Room for any message the tests send.
pub const BIG: usize = 1 << 16;

/// Messages as the tests compare them: (type, body), in queue order.
pub type Queued = Vec<(i64, Vec<u8>)>;

// ---- any object ----

/// A segment, a semaphore set or a queue, by id: what the tests ask of each
/// alike.
pub trait Object: Copy {
    type Stat;
    /// What a refused operation must leave as it was.
    type Snapshot: Debug + PartialEq;
    fn kstat(self) -> Self::Stat;
    fn is_gone(self) -> bool;
    fn snapshot(self) -> Self::Snapshot;
}

/// The object's IPC_STAT (SHM_STAT_ANY etc.; for a segment shmctl(IPC_STAT),
/// as root); fails the test if there is none.
pub fn kstat<O: Object>(id: O) -> O::Stat {
    id.kstat()
}

/// Whether the object is gone (the kernel says ENOENT).
pub fn is_gone<O: Object>(id: O) -> bool {
    id.is_gone()
}

/// What a refused operation must leave of the object as it was.
pub fn snapshot<O: Object>(id: O) -> O::Snapshot {
    id.snapshot()
}

/// What a refused operation must leave of a segment as it was.
#[derive(Debug, PartialEq, Eq)]
pub struct ShmSnapshot {
    key: Key,
    mode: u32,
    uid: u32,
    gid: u32,
    segsz: u64,
    contents: Vec<u8>,
}

impl Object for ShmId {
    type Stat = ShmStat;
    type Snapshot = ShmSnapshot;

    fn kstat(self) -> ShmStat {
        shm::stat(self).unwrap_or_else(|e| panic!("shmctl({}, IPC_STAT): {e}", self.0))
    }

    fn is_gone(self) -> bool {
        shm::stat_any(self) == Err(Errno::ENOENT)
    }

    fn snapshot(self) -> ShmSnapshot {
        let k = kstat(self);
        ShmSnapshot {
            key: k.perm.key,
            mode: k.perm.mode,
            uid: k.perm.uid,
            gid: k.perm.gid,
            segsz: k.segsz,
            contents: segment_bytes(self),
        }
    }
}

/// What a refused operation must leave of a set as it was: IPC_STAT (owner,
/// mode, times) and every value.
#[derive(Debug, PartialEq, Eq)]
pub struct SemSnapshot {
    stat: SemStat,
    values: Vec<i32>,
}

impl Object for SemId {
    type Stat = SemStat;
    type Snapshot = SemSnapshot;

    fn kstat(self) -> SemStat {
        sem::stat_any(self).unwrap_or_else(|e| panic!("semctl({}, SEM_STAT_ANY): {e}", self.0))
    }

    fn is_gone(self) -> bool {
        sem::stat_any(self) == Err(Errno::ENOENT)
    }

    fn snapshot(self) -> SemSnapshot {
        let stat = kstat(self);
        SemSnapshot { stat, values: (0..stat.nsems as u16).map(|n| sem_value(self, n)).collect() }
    }
}

/// What a refused operation must leave of a queue as it was.
#[derive(Debug, PartialEq, Eq)]
pub struct MsgSnapshot {
    key: Key,
    mode: u32,
    uid: u32,
    gid: u32,
    qbytes: u64,
    messages: Queued,
}

impl Object for MsqId {
    type Stat = MsgStat;
    type Snapshot = MsgSnapshot;

    fn kstat(self) -> MsgStat {
        msg::stat_any(self).unwrap_or_else(|e| panic!("msgctl({}, MSG_STAT_ANY): {e}", self.0))
    }

    fn is_gone(self) -> bool {
        msg::stat_any(self) == Err(Errno::ENOENT)
    }

    fn snapshot(self) -> MsgSnapshot {
        let k = kstat(self);
        MsgSnapshot {
            key: k.perm.key,
            mode: k.perm.mode,
            uid: k.perm.uid,
            gid: k.perm.gid,
            qbytes: k.qbytes,
            messages: queued(self),
        }
    }
}

/// How many objects of a family (`shm`, `sem` or `msg`) the test's IPC
/// namespace has, counted from the kernel's table (/proc/sysvipc).
pub fn kernel_object_count(family: &str) -> usize {
    let table = std::fs::read_to_string(format!("/proc/sysvipc/{family}")).unwrap();
    table.lines().count().saturating_sub(1)
}

/// A key as ipcfs names it (`0x0000abcd`).
pub fn key_name(key: i32) -> String {
    Key(key).to_string()
}

/// `ipcmk ARGS` as `as_user` (root when `None`), in the C locale: the id
/// after what ipcmk says it made (`says`, such as "Semaphore id: ").
fn ipcmk(as_user: Option<(u32, u32)>, args: &str, says: &str) -> i32 {
    let script = format!("LC_ALL=C ipcmk {args}");
    let out = match as_user {
        Some((uid, gid)) => sh_as(uid, gid, &[], &script),
        None => sh(&script),
    };
    let text = assert_ok(&out, &script);
    let id = text.trim().strip_prefix(says).unwrap_or_else(|| panic!("ipcmk said {text:?}"));
    id.parse().unwrap()
}

// ---- segments ----

/// Creates a segment with the kernel directly (as ipcmk would).
pub fn create_segment(key: i32, size: u64, mode: i32) -> ShmId {
    shm::get(Key(key), size, libc::IPC_CREAT | libc::IPC_EXCL | mode).expect("shmget")
}

/// `ipcmk -M size -p mode`, as `as_user` (root when `None`); returns the new id.
pub fn ipcmk_segment(as_user: Option<(u32, u32)>, size: u64, mode: u32) -> ShmId {
    ShmId(ipcmk(as_user, &format!("-M {size} -p {mode:04o}"), "Shared memory id: "))
}

/// Makes the kernel give the next segment of this IPC namespace the id `id`.
pub fn request_next_id(id: ShmId) {
    std::fs::write("/proc/sys/kernel/shm_next_id", id.0.to_string()).expect("write kernel.shm_next_id");
}

/// How many attachments the segment has (shm_nattch).
pub fn nattch(id: ShmId) -> u64 {
    shm::stat_any(id).unwrap_or_else(|e| panic!("shmctl({}, SHM_STAT_ANY): {e}", id.0)).nattch
}

/// A writable attachment of the test's own: "another process" using shmat.
pub fn attach(id: ShmId) -> shm::Attachment {
    let size = shm::stat_any(id).expect("SHM_STAT_ANY").segsz;
    shm::Attachment::attach(id, size, true).expect("shmat")
}

/// The segment's bytes now, read through a fresh attachment (not ipcfs).
pub fn segment_bytes(id: ShmId) -> Vec<u8> {
    let a = attach(id);
    a.read_at(0, a.len() as usize)
}

/// Fills the whole segment through an attachment of the test's own.
pub fn fill_segment_with(id: ShmId, data: &[u8]) {
    let a = attach(id);
    assert_eq!(data.len() as u64, a.len(), "fill needs exactly the segment's size");
    assert_eq!(a.write_at(0, data).unwrap(), data.len());
}

/// Writes `data` at `offset` of the segment, through an attachment of the
/// test's own; all of it must fit.
pub fn write_segment(id: ShmId, offset: u64, data: &[u8]) {
    assert_eq!(attach(id).write_at(offset, data).unwrap(), data.len());
}

// ---- semaphore sets ----

/// `semget(key, nsems, IPC_CREAT|IPC_EXCL|mode)`, as root (as ipcmk would);
/// values start at 0.
pub fn create_set(key: i32, nsems: i32, mode: i32) -> SemId {
    sem::get(Key(key), nsems, libc::IPC_CREAT | libc::IPC_EXCL | mode).expect("semget")
}

/// `ipcmk -S nsems -p mode`, as `as_user` (root when `None`); returns the new id.
pub fn ipcmk_set(as_user: Option<(u32, u32)>, nsems: u32, mode: u32) -> SemId {
    SemId(ipcmk(as_user, &format!("-S {nsems} -p {mode:04o}"), "Semaphore id: "))
}

/// semctl(GETVAL, GETNCNT, GETZCNT or GETPID) of semaphore `num`.
pub fn query(id: SemId, num: u16, what: Query) -> i32 {
    sem::query(id, num, what).unwrap_or_else(|e| panic!("semctl({}, {num}, {what:?}): {e}", id.0))
}

/// GETVAL.
pub fn sem_value(id: SemId, num: u16) -> i32 {
    query(id, num, Query::Value)
}

/// GETNCNT: processes waiting to take.
pub fn ncnt(id: SemId, num: u16) -> i32 {
    query(id, num, Query::WaitingToTake)
}

/// GETZCNT: processes waiting for zero.
pub fn zcnt(id: SemId, num: u16) -> i32 {
    query(id, num, Query::WaitingForZero)
}

// ---- message queues ----

/// `msgget(key, IPC_CREAT|IPC_EXCL|mode)`, as root (as ipcmk would).
pub fn create_queue(key: i32, mode: i32) -> MsqId {
    msg::get(Key(key), libc::IPC_CREAT | libc::IPC_EXCL | mode).expect("msgget")
}

/// msgsnd without waiting, from the test's own process.
pub fn send(id: MsqId, mtype: i64, body: impl AsRef<[u8]>) {
    msg::send(id, mtype, body.as_ref(), false).unwrap_or_else(|e| panic!("msgsnd(type {mtype}) on {}: {e}", id.0));
}

/// The number of messages queued.
pub fn qnum(id: MsqId) -> u64 {
    kstat(id).qnum
}

/// kernel.msgmax of the test's IPC namespace: the largest message.
pub fn kernel_msgmax() -> usize {
    std::fs::read_to_string("/proc/sys/kernel/msgmax").unwrap().trim().parse().unwrap()
}

/// kernel.msgmnb of the test's IPC namespace: a new queue's byte limit.
pub fn kernel_msgmnb() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/msgmnb").unwrap().trim().parse().unwrap()
}

/// Room for any message the queue can hold: [`BIG`], or more where a test
/// raised kernel.msgmax.
fn room() -> usize {
    BIG.max(kernel_msgmax())
}

/// Every message queued, in order, copied without taking (MSG_COPY).
pub fn queued(id: MsqId) -> Queued {
    let room = room();
    let mut out = Vec::new();
    for index in 0.. {
        match msg::peek(id, index, room) {
            Ok(m) => out.push((m.mtype, m.body)),
            Err(Errno::ENOMSG) => break,
            Err(e) => panic!("msgrcv(MSG_COPY) on {}: {e}", id.0),
        }
    }
    out
}

/// Takes every message queued, in order.
pub fn drain(id: MsqId) -> Queued {
    let room = room();
    let mut out = Vec::new();
    loop {
        match msg::receive(id, 0, room, false) {
            Ok(m) => out.push((m.mtype, m.body)),
            Err(Errno::ENOMSG) => return out,
            Err(e) => panic!("msgrcv on {}: {e}", id.0),
        }
    }
}

/// Messages as [`queued`] gives them, from text.
pub fn messages(list: &[(i64, &str)]) -> Queued {
    list.iter().map(|(t, b)| (*t, b.as_bytes().to_vec())).collect()
}

/// Messages as [`queued`] gives them, from bytes.
pub fn byte_messages(list: &[(i64, &[u8])]) -> Queued {
    list.iter().map(|(t, b)| (*t, b.to_vec())).collect()
}
