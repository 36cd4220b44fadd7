//! Message queues: `msg/<id>/` is a directory; in it `any` and one file per
//! message type; `by-key/msg/0x%08x` links to the queue.
//!
//! - Reading a listed file (`any`, `<type>`) takes nothing: it shows the
//!   messages queued at open (of that type, or of any), copied with
//!   MSG_COPY. One read never crosses a message boundary, so a read with
//!   room returns one whole message; then end-of-file. So `grep -r`, `tar`,
//!   `cp -r`, `file` and backups never consume a message.
//! - The same names under the unlisted `msg/<id>/.recv/` receive: one
//!   read(2) takes one whole message (msgrcv), end-of-file when none is
//!   queued. Under `msg/<id>/.wait/` a read waits for a message instead.
//! - Writing to any of the names sends: one write(2) is one message
//!   (msgsnd); `any` sends type 1. The files use direct I/O, so the kernel
//!   neither splits, merges, caches nor reads ahead.
//! - Listing shows `any` and the types that have messages queued, found with
//!   MSG_COPY.

mod open;
pub use open::OpenQueueFile;

use std::collections::BTreeMap;

use super::access::{Caller, Want, check_access, check_owner, chmod_chown_dir, dir_perm};
use super::attr::{BLOCK_SIZE, kernel_time};
use super::budget::{Budgets, Charge};
use super::error::{Error, Result};
use super::family::{self, Family};
use super::inode::{MsgIdent, Node, ObjectKind, Reading, Role};
use super::limits::Resource;
use super::names::parse_creation_key;
use super::signals::{Signals, caller_dying};
use super::types::{Attr, FileKind, Outcome, SetAttr, Stop, Wait, Written, request_limit};
use super::waiting::watched;
use crate::ipc::flags::{GetFlags, OpenFlags};
use crate::ipc::msg::{self, Message, MsgStat, MsqId};
use crate::ipc::{Errno, IpcPerm, Key, sysvipc};

/// The name of the file that receives any type.
pub const ANY: &str = "any";
/// The hidden directory whose files receive.
pub const RECV_DIR: &str = ".recv";
/// The hidden directory whose files receive and wait for a message.
pub const WAIT_DIR: &str = ".wait";

/// Whether `name` is one of a queue's hidden directories.
pub fn is_sub_dir(name: &str) -> bool {
    name == RECV_DIR || name == WAIT_DIR
}
/// The type `any` sends.
const ANY_SEND_TYPE: i64 = 1;
/// The largest message body ipcfs moves: a FUSE request less one page. The
/// kernel cuts a long write(2) at page boundaries of the caller's buffer, so
/// the first piece of anything longer is longer than this (and refused),
/// while anything up to this travels in one request.
fn largest_message() -> usize {
    request_limit() - PAGE
}

const PAGE: usize = 4096;

/// The message queue family: queues (`msg/<id>/`).
pub struct Queues;

impl Family for Queues {
    const DIR: &'static str = "msg";
    type Stat = MsgStat;
    type Ident = MsgIdent;

    fn stat_any(id: i32) -> std::result::Result<MsgStat, Errno> {
        msg::stat_any(MsqId(id))
    }
    fn get(key: Key) -> std::result::Result<i32, Errno> {
        msg::get(key, 0).map(|id| id.0)
    }
    fn remove(id: i32) -> std::result::Result<(), Errno> {
        msg::remove(MsqId(id))
    }
    fn list() -> Result<Vec<MsgStat>> {
        sysvipc::list_msg().map_err(Error::listing)
    }
    fn id(stat: &MsgStat) -> i32 {
        stat.id.0
    }
    fn perm(stat: &MsgStat) -> &IpcPerm {
        &stat.perm
    }
    fn ident(stat: &MsgStat) -> MsgIdent {
        MsgIdent::of(stat)
    }
    fn ident_id(ident: MsgIdent) -> i32 {
        ident.id.0
    }
    fn is(ident: MsgIdent, stat: &MsgStat) -> bool {
        MsgIdent::of(stat) == ident
    }
    fn object(ident: MsgIdent) -> Node {
        Node::Queue(ident)
    }
    fn object_attr(stat: &MsgStat) -> Attr {
        queue_attr(stat)
    }
    fn key_link(ident: MsgIdent) -> Node {
        Node::MsgKeyLink(ident)
    }
}

/// The queue `ident` names, as the kernel has it now.
fn current(ident: MsgIdent) -> Result<MsgStat> {
    family::current::<Queues>(ident)
}

fn queue_attr(stat: &MsgStat) -> Attr {
    Attr {
        ino: 0,
        kind: FileKind::Directory,
        size: stat.cbytes,
        perm: dir_perm(stat.perm.mode),
        nlink: 2,
        uid: stat.perm.uid,
        gid: stat.perm.gid,
        atime: kernel_time(stat.rtime, stat.ctime),
        mtime: kernel_time(stat.stime, stat.ctime),
        ctime: kernel_time(stat.ctime, stat.ctime),
        blksize: BLOCK_SIZE,
        stored: true,
    }
}

fn file_attr(stat: &MsgStat, bytes: u64) -> Attr {
    Attr {
        kind: FileKind::RegularFile,
        size: bytes,
        perm: (stat.perm.mode & 0o777) as u16,
        nlink: 1,
        ..queue_attr(stat)
    }
}

fn parse_type(name: &str) -> Result<i64> {
    if name == ANY {
        return Ok(0);
    }
    let canonical = !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) && !name.starts_with('0');
    if !canonical {
        return Err(Error::NotFound);
    }
    name.parse().map_err(|_| Error::NotFound)
}

fn type_name(mtype: i64) -> String {
    if mtype == 0 { ANY.to_string() } else { mtype.to_string() }
}

/// Bytes queued per type, by looking at every message without taking it.
///
/// Bounded: at most the messages queued when it starts (MSG_COPY finds a
/// message by position, so each look costs the kernel a walk to it, and the
/// whole O(n²) for n messages: about 0.6 s for 16,384 on a 2 GHz machine),
/// through one buffer sized from the queue's own byte count: no message is
/// longer than all of them together. Never from kernel.msgmax, which whoever
/// owns the namespace may set to anything, and never more than ipcfs ever
/// moves in one message.
fn bytes_by_type(ident: MsgIdent, stat: &MsgStat) -> Result<BTreeMap<i64, u64>> {
    let mut sizes = BTreeMap::new();
    let room = |cbytes: u64| usize::try_from(cbytes).unwrap_or(usize::MAX).min(largest_message());
    let mut peeker = msg::Peeker::new(room(stat.cbytes));
    let mut grown = false;
    let mut index = 0;
    while index < stat.qnum {
        match peeker.header(ident.id, index) {
            Ok((mtype, len)) => *sizes.entry(mtype).or_insert(0) += len as u64,
            // The queue shrank while we looked: what is left has been seen.
            Err(Errno::ENOMSG) => break,
            // A longer message came since the count: once, room for what is
            // queued now.
            Err(Errno::E2BIG) if !grown => {
                grown = true;
                peeker = msg::Peeker::new(room(current(ident)?.cbytes));
                continue;
            }
            Err(Errno::E2BIG) => return Err(Error::MessageTooLong),
            Err(e) => return Err(map_error(e, ident)),
        }
        index += 1;
    }
    Ok(sizes)
}

/// The bytes queued of type `mtype` (0: of every type) as `caller` may see
/// them. The total is public (/proc/sysvipc/msg shows it); the bytes of one
/// type take a look at every message, which needs read permission: checked
/// first, and for those who may not read, the size is 0 and nothing is walked.
fn type_bytes(ident: MsgIdent, stat: &MsgStat, mtype: i64, caller: &Caller) -> Result<u64> {
    if mtype == 0 {
        return Ok(stat.cbytes);
    }
    if check_access(&stat.perm, caller, Want::READ).is_err() {
        return Ok(0);
    }
    Ok(bytes_by_type(ident, stat)?.get(&mtype).copied().unwrap_or(0))
}

// ---- names ----

/// A name in `msg/<id>/` (or its `.recv/` or `.wait/`): `any`, any type of
/// at least 1 (listed or not, so that any type can be written), or (in the
/// queue's own directory) `.recv` and `.wait`.
pub fn lookup_in_queue(ident: MsgIdent, reading: Reading, name: &str, caller: &Caller) -> Result<(Node, Attr)> {
    let stat = current(ident)?;
    if reading == Reading::Browse {
        match name {
            RECV_DIR => return Ok((Node::QueueSubDir(ident, Reading::Receive), queue_attr(&stat))),
            WAIT_DIR => return Ok((Node::QueueSubDir(ident, Reading::Wait), queue_attr(&stat))),
            _ => {}
        }
    }
    let mtype = parse_type(name)?;
    let bytes = type_bytes(ident, &stat, mtype, caller)?;
    Ok((Node::QueueFile { ident, mtype, reading }, file_attr(&stat, bytes)))
}

/// Attributes; a queue file's size is its type's bytes only for
/// [`attr_for`] a caller who may read them.
pub fn attr(node: &Node) -> Result<Attr> {
    match *node {
        Node::Queue(ident) | Node::QueueSubDir(ident, _) => Ok(queue_attr(&current(ident)?)),
        Node::QueueFile { ident, mtype, .. } => {
            let stat = current(ident)?;
            Ok(file_attr(&stat, if mtype == 0 { stat.cbytes } else { 0 }))
        }
        Node::MsgKeyLink(ident) => family::attr::<Queues>(ident, true),
        _ => Err(Error::NotFound),
    }
}

/// Attributes as `caller` sees them: a queue file's size needs read permission.
pub fn attr_for(node: &Node, caller: &Caller) -> Result<Attr> {
    match *node {
        Node::QueueFile { ident, mtype, .. } => {
            let stat = current(ident)?;
            Ok(file_attr(&stat, type_bytes(ident, &stat, mtype, caller)?))
        }
        _ => attr(node),
    }
}

/// `any` and the types with messages queued. Listing needs read permission,
/// as the directory's mode shows.
pub fn list_files(ident: MsgIdent, reading: Reading, caller: &Caller) -> Result<Vec<(String, Node, Attr)>> {
    let stat = current(ident)?;
    check_access(&stat.perm, caller, Want::READ)?;
    let any = (ANY.to_string(), Node::QueueFile { ident, mtype: 0, reading }, file_attr(&stat, stat.cbytes));
    let types = bytes_by_type(ident, &stat)?
        .into_iter()
        .map(|(mtype, bytes)| (type_name(mtype), Node::QueueFile { ident, mtype, reading }, file_attr(&stat, bytes)));
    Ok(std::iter::once(any).chain(types).collect())
}

/// Queues longer than this are walked off the event loops: a walk of n
/// messages costs the kernel O(n²) (about 2 ms for this many).
const LONG_QUEUE: u64 = 1024;

/// Whether `caller` would walk `ident`'s queue (it may read it) and the walk
/// may be long.
pub fn is_long(ident: MsgIdent, caller: &Caller) -> bool {
    current(ident).is_ok_and(|stat| stat.qnum > LONG_QUEUE && check_access(&stat.perm, caller, Want::READ).is_ok())
}

pub fn check_list(ident: MsgIdent, caller: &Caller) -> Result<()> {
    check_access(&current(ident)?.perm, caller, Want::READ)
}

/// access(2): on the queue directories, search (x) means read.
pub fn access(ident: MsgIdent, node: &Node, want: Want, caller: &Caller) -> Result<()> {
    let stat = current(ident)?;
    let want = match node {
        Node::Queue(_) | Node::QueueSubDir(..) => want.search_as_read(),
        _ => want,
    };
    if want.is_nothing() { Ok(()) } else { check_access(&stat.perm, caller, want) }
}

// ---- management ----

/// `mkdir msg/KEY`: a queue made by the caller; KEY is `0x` and hex digits,
/// or `private`.
pub fn create_queue(name: &str, mode: u32, caller: &Caller) -> Result<(Node, Attr)> {
    let key = parse_creation_key(name).ok_or(Error::Invalid)?;
    let flags = GetFlags::create_exclusive(mode & 0o666);
    let id = caller.act(|| msg::get(key, flags))?.map_err(Error::from_creation)?;
    family::created::<Queues>(id.0)
}

/// `rm msg/<id>/<type>` discards the messages of that type, `rm .../any`
/// every message: receiving them, which needs read permission.
pub fn discard(ident: MsgIdent, name: &str, caller: &Caller) -> Result<()> {
    let stat = current(ident)?;
    let mtype = parse_type(name)?;
    check_access(&stat.perm, caller, Want::READ)?;
    // At most the messages queued now: senders refilling the queue cannot
    // keep this going.
    for _ in 0..stat.qnum {
        match msg::discard_one(ident.id, mtype) {
            Ok(()) => continue,
            Err(Errno::ENOMSG) => return Ok(()),
            Err(e) => return Err(Error::from_id_call(e)),
        }
    }
    Ok(())
}

/// chmod and chown on the queue directory: IPC_SET.
pub fn setattr_queue(ident: MsgIdent, change: SetAttr, caller: &Caller) -> Result<Attr> {
    let stat = current(ident)?;
    let set = |uid, gid, mode| msg::set(ident.id, uid, gid, mode, stat.qbytes).map_err(Error::from_id_call);
    if chmod_chown_dir(&stat.perm, change, caller, set)? {
        return Ok(queue_attr(&current(ident)?));
    }
    Ok(queue_attr(&stat))
}

/// A queue file's attributes are the queue's; truncating (`echo > file`) is
/// accepted and changes nothing.
pub fn setattr_file(node: &Node, change: SetAttr) -> Result<Attr> {
    if change.changes_owner_or_mode() {
        return Err(Error::NotPermitted);
    }
    attr(node)
}

// ---- extended attributes ----

const QUEUE_XATTRS: [&str; 9] = [
    "user.ipc.key",
    "user.ipc.id",
    "user.ipc.cuid",
    "user.ipc.cgid",
    "user.ipc.qnum",
    "user.ipc.qbytes",
    "user.ipc.cbytes",
    "user.ipc.lspid",
    "user.ipc.lrpid",
];

pub fn xattr_names(node: &Node) -> &'static [&'static str] {
    match node {
        Node::Queue(_) => &QUEUE_XATTRS,
        _ => &[],
    }
}

pub fn xattr(node: &Node, name: &str) -> Result<String> {
    let Node::Queue(ident) = *node else { return Err(Error::NoAttribute) };
    let stat = current(ident)?;
    Ok(match name {
        "user.ipc.key" => stat.perm.key.to_string(),
        "user.ipc.id" => stat.id.0.to_string(),
        "user.ipc.cuid" => stat.perm.cuid.to_string(),
        "user.ipc.cgid" => stat.perm.cgid.to_string(),
        "user.ipc.qnum" => stat.qnum.to_string(),
        "user.ipc.qbytes" => stat.qbytes.to_string(),
        "user.ipc.cbytes" => stat.cbytes.to_string(),
        "user.ipc.lspid" => stat.lspid.to_string(),
        "user.ipc.lrpid" => stat.lrpid.to_string(),
        _ => return Err(Error::NoAttribute),
    })
}

/// `setfattr -n user.ipc.qbytes -v N msg/<id>`: IPC_SET of msg_qbytes. As
/// the kernel requires, raising it above kernel.msgmnb needs
/// CAP_SYS_RESOURCE. Every other attribute is read-only.
pub fn set_xattr(node: &Node, name: &str, value: &[u8], caller: &Caller) -> Result<()> {
    let Node::Queue(ident) = *node else { return Err(Error::NotSupported) };
    if name != "user.ipc.qbytes" {
        return Err(if QUEUE_XATTRS.contains(&name) { Error::NotPermitted } else { Error::NotSupported });
    }
    let text = std::str::from_utf8(value).map_err(|_| Error::Invalid)?.trim_ascii();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Invalid);
    }
    let qbytes: u64 = text.parse().map_err(|_| Error::OutOfRange)?;
    let stat = current(ident)?;
    check_owner(&stat.perm, caller)?;
    // Unknown limit, unknown capability: refused, never assumed.
    let msgmnb = Resource::Msgmnb.value().map_err(|e| match e {
        Error::Kernel { errno, .. } => Error::Unverifiable(errno),
        _ => Error::Unverifiable(Errno::EINVAL),
    })?;
    if qbytes > msgmnb && !caller.has_cap(CAP_SYS_RESOURCE) {
        return Err(Error::NotPermitted);
    }
    msg::set(ident.id, stat.perm.uid, stat.perm.gid, stat.perm.mode, qbytes).map_err(|e| match e {
        Errno::EINVAL => Error::Invalid,
        other => Error::from_id_call(other),
    })
}

const CAP_SYS_RESOURCE: u32 = 24;

/// The errno of msgrcv or msgsnd on `ident`'s queue. EINVAL means a bad
/// message, or a queue gone since the identity check: which, the kernel says.
fn map_error(e: Errno, ident: MsgIdent) -> Error {
    match e {
        Errno::EINTR => Error::Interrupted,
        Errno::E2BIG => Error::MessageTooLong,
        Errno::EIDRM => Error::Removed,
        Errno::EINVAL if current(ident).is_err() => Error::NotFound,
        Errno::EINVAL => Error::Invalid,
        other => Error::from_id_call(other),
    }
}
