//! Message queues: `msgget`, `msgsnd`, `msgrcv` (with `MSG_COPY` to look
//! without taking), `msgctl`.

use super::family::{self, IdDs};
use super::flags::GetFlags;
use super::{Errno, IpcPerm, Key};

/// Not exported by the libc crate for Linux; value from <linux/msg.h>.
const MSG_STAT_ANY: libc::c_int = 13;

/// A queue id as `ipcs -q` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsqId(pub i32);

/// What `msgctl(IPC_STAT)` tells about a queue (`struct msqid_ds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgStat {
    pub id: MsqId,
    pub perm: IpcPerm,
    pub stime: i64,
    pub rtime: i64,
    pub ctime: i64,
    pub cbytes: u64,
    pub qnum: u64,
    pub qbytes: u64,
    pub lspid: i32,
    pub lrpid: i32,
}

impl MsgStat {
    fn from_raw(id: libc::c_int, perm: IpcPerm, ds: &libc::msqid_ds) -> MsgStat {
        MsgStat {
            id: MsqId(id),
            perm,
            stime: ds.msg_stime,
            rtime: ds.msg_rtime,
            ctime: ds.msg_ctime,
            cbytes: ds.__msg_cbytes,
            qnum: ds.msg_qnum,
            qbytes: ds.msg_qbytes,
            lspid: ds.msg_lspid,
            lrpid: ds.msg_lrpid,
        }
    }
}

// SAFETY: msqid_ds is plain old data with its ipc_perm first, and msgctl takes it
// as its buffer.
unsafe impl IdDs for libc::msqid_ds {
    const STAT_ANY: libc::c_int = MSG_STAT_ANY;

    unsafe fn ctl(id: libc::c_int, cmd: libc::c_int, buf: *mut Self) -> libc::c_int {
        // SAFETY: the caller passes a buffer fit for cmd (IdDs::ctl).
        unsafe { libc::msgctl(id, cmd, buf) }
    }
}

/// One message: its type and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub mtype: i64,
    pub body: Vec<u8>,
}

/// `msgget(key, flags)`: find or create a queue.
pub fn get(key: Key, flags: impl Into<GetFlags>) -> Result<MsqId, Errno> {
    // SAFETY: msgget takes no pointers.
    let id = Errno::result(unsafe { libc::msgget(key.0, flags.into().bits()) })?;
    Ok(MsqId(id))
}

/// The queue with this id, whoever may read it (`MSG_STAT_ANY`). `ENOENT`
/// when no queue has the id.
pub fn stat_any(id: MsqId) -> Result<MsgStat, Errno> {
    family::stat_any(id.0, MsgStat::from_raw)
}

/// `msgctl(IPC_SET)`: owner, group, permission bits and the byte limit.
pub fn set(id: MsqId, uid: u32, gid: u32, mode: u32, qbytes: u64) -> Result<(), Errno> {
    family::set(id.0, uid, gid, mode, |ds: &mut libc::msqid_ds| ds.msg_qbytes = qbytes)
}

/// `msgctl(IPC_RMID)`: remove the queue and its messages; waiters wake with EIDRM.
pub fn remove(id: MsqId) -> Result<(), Errno> {
    family::remove::<libc::msqid_ds>(id.0)
}

/// A `struct msgbuf` of room for `len` body bytes: the type (a long) then
/// the body, 8-byte aligned.
struct MsgBuf(Vec<u64>);

const TYPE_SIZE: usize = std::mem::size_of::<libc::c_long>();

impl MsgBuf {
    fn new(len: usize) -> MsgBuf {
        MsgBuf(vec![0u64; (TYPE_SIZE + len).div_ceil(8)])
    }

    fn with(mtype: i64, body: &[u8]) -> MsgBuf {
        let mut buf = MsgBuf::new(body.len());
        let bytes = buf.bytes_mut();
        bytes[..TYPE_SIZE].copy_from_slice(&mtype.to_ne_bytes());
        bytes[TYPE_SIZE..TYPE_SIZE + body.len()].copy_from_slice(body);
        buf
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: any u64 buffer can be seen as bytes; the length matches.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<u8>(), self.0.len() * 8) }
    }

    fn message(mut self, len: usize) -> Message {
        let bytes = self.bytes_mut();
        let mut mtype = [0u8; TYPE_SIZE];
        mtype.copy_from_slice(&bytes[..TYPE_SIZE]);
        Message { mtype: i64::from_ne_bytes(mtype), body: bytes[TYPE_SIZE..TYPE_SIZE + len].to_vec() }
    }
}

/// `msgsnd`: queue one message. Without `wait`, `EAGAIN` when the queue is full.
pub fn send(id: MsqId, mtype: i64, body: &[u8], wait: bool) -> Result<(), Errno> {
    let mut buf = MsgBuf::with(mtype, body);
    let flags = if wait { 0 } else { libc::IPC_NOWAIT };
    // SAFETY: buf holds a long type followed by body.len() bytes.
    let r = unsafe { libc::msgsnd(id.0, buf.bytes_mut().as_ptr().cast(), body.len(), flags) };
    Errno::result(r)?;
    Ok(())
}

/// `msgrcv`: take the first message of type `mtype` (0: any type) whose body
/// fits in `max` bytes; a larger one stays queued and the call fails with
/// `E2BIG`. Without `wait`, `ENOMSG` when there is none.
pub fn receive(id: MsqId, mtype: i64, max: usize, wait: bool) -> Result<Message, Errno> {
    receive_flags(id, mtype, max, if wait { 0 } else { libc::IPC_NOWAIT })
}

/// Takes the first message of type `mtype` (0: any) and throws it away,
/// whatever its size. `ENOMSG` when there is none.
pub fn discard_one(id: MsqId, mtype: i64) -> Result<(), Errno> {
    receive_flags(id, mtype, 0, libc::IPC_NOWAIT | libc::MSG_NOERROR).map(drop)
}

/// The message at position `index` of the queue, copied and left in place
/// (`MSG_COPY`). `ENOMSG` past the end, `E2BIG` if its body exceeds `max`.
pub fn peek(id: MsqId, index: u64, max: usize) -> Result<Message, Errno> {
    let index = i64::try_from(index).map_err(|_| Errno::ENOMSG)?;
    receive_flags(id, index, max, libc::IPC_NOWAIT | libc::MSG_COPY)
}

/// Looks at the messages of a queue one after another (`MSG_COPY`) through
/// one buffer of `max` body bytes, reused from one message to the next.
pub struct Peeker {
    buf: MsgBuf,
    max: usize,
}

impl Peeker {
    pub fn new(max: usize) -> Peeker {
        Peeker { buf: MsgBuf::new(max), max }
    }

    /// The type and body length of the message at position `index`, left in
    /// place. `ENOMSG` past the end, `E2BIG` if its body exceeds the buffer.
    pub fn header(&mut self, id: MsqId, index: u64) -> Result<(i64, usize), Errno> {
        let index = i64::try_from(index).map_err(|_| Errno::ENOMSG)?;
        let flags = libc::IPC_NOWAIT | libc::MSG_COPY;
        let bytes = self.buf.bytes_mut();
        // SAFETY: buf has room for a long and max bytes of body.
        let len = unsafe { libc::msgrcv(id.0, bytes.as_mut_ptr().cast(), self.max, index, flags) };
        let len = Errno::result(len)? as usize;
        let mut mtype = [0u8; TYPE_SIZE];
        mtype.copy_from_slice(&bytes[..TYPE_SIZE]);
        Ok((i64::from_ne_bytes(mtype), len))
    }

    /// The message at position `index`, copied out and left in place.
    pub fn message(&mut self, id: MsqId, index: u64) -> Result<Message, Errno> {
        let (mtype, len) = self.header(id, index)?;
        let body = self.buf.bytes_mut()[TYPE_SIZE..TYPE_SIZE + len].to_vec();
        Ok(Message { mtype, body })
    }
}

fn receive_flags(id: MsqId, mtype: i64, max: usize, flags: i32) -> Result<Message, Errno> {
    let mut buf = MsgBuf::new(max);
    // SAFETY: buf has room for a long and max bytes of body.
    let len = unsafe { libc::msgrcv(id.0, buf.bytes_mut().as_mut_ptr().cast(), max, mtype, flags) };
    let len = Errno::result(len)? as usize;
    Ok(buf.message(len))
}
