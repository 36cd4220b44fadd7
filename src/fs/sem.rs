//! Semaphore sets: `sem/<id>/` is a directory, `sem/<id>/<n>` one file per
//! semaphore, `by-key/sem/0x%08x` a link to the set.
//!
//! - Reading a semaphore file gives its value and a newline (GETVAL), taken
//!   fresh at offset 0 and served from that snapshot for the rest of the read.
//! - Writing `N` sets the value (SETVAL), `+N` adds (a V), `-N` takes (a P,
//!   which waits until it can), `=0` waits until the value is zero.
//! - A wait never runs on a FUSE event loop: [`write`] returns a [`Wait`]
//!   the adapter runs on a thread of its own. It waits in short slices and
//!   between them looks at the caller's pending signals, so an interrupted
//!   or killed caller gets EINTR and nothing is taken on its behalf.

use std::sync::Mutex;

use super::access::{Caller, Want, check_access, check_owner, chmod_chown_dir, dir_perm};
use super::attr::{BLOCK_SIZE, kernel_time};
use super::error::{Error, Result};
use super::family::{self, Family};
use super::inode::{Node, ObjectKind, Role, SemIdent};
use super::names::{parse_creation_key, parse_id};
use super::signals::{Signals, caller_dying};
use super::types::{Attr, FileKind, Outcome, SetAttr, Stop, Wait, Written};
use super::waiting::watched;
use crate::ipc::flags::{GetFlags, OpenFlags};
use crate::ipc::sem::{self, Query, SEMVMX, SemId, SemStat};
use crate::ipc::{Errno, IpcPerm, Key, sysvipc};

/// The System V semaphore family: sets (`sem/<id>/`).
pub struct Sets;

impl Family for Sets {
    const DIR: &'static str = "sem";
    type Stat = SemStat;
    type Ident = SemIdent;

    fn stat_any(id: i32) -> std::result::Result<SemStat, Errno> {
        sem::stat_any(SemId(id))
    }
    fn get(key: Key) -> std::result::Result<i32, Errno> {
        sem::get(key, 0, 0).map(|id| id.0)
    }
    fn remove(id: i32) -> std::result::Result<(), Errno> {
        sem::remove(SemId(id))
    }
    fn list() -> Result<Vec<SemStat>> {
        sysvipc::list_sem().map_err(Error::listing)
    }
    fn id(stat: &SemStat) -> i32 {
        stat.id.0
    }
    fn perm(stat: &SemStat) -> &IpcPerm {
        &stat.perm
    }
    fn ident(stat: &SemStat) -> SemIdent {
        SemIdent::of(stat)
    }
    fn ident_id(ident: SemIdent) -> i32 {
        ident.id.0
    }
    fn is(ident: SemIdent, stat: &SemStat) -> bool {
        SemIdent::of(stat) == ident
    }
    fn object(ident: SemIdent) -> Node {
        Node::SemSet(ident)
    }
    fn object_attr(stat: &SemStat) -> Attr {
        set_attr(stat)
    }
    fn key_link(ident: SemIdent) -> Node {
        Node::SemKeyLink(ident)
    }
}

/// The set `ident` names, as the kernel has it now.
fn current(ident: SemIdent) -> Result<SemStat> {
    family::current::<Sets>(ident)
}

/// Has another set taken `ident`'s id? The identity check and the call by
/// id are two system calls, so a set removed and replaced between them (only
/// possible when sem_next_id is set, or after the id's sequence wraps) gets
/// the call: this check after it tells.
fn replaced(ident: SemIdent) -> bool {
    matches!(sem::stat_any(ident.id), Ok(stat) if SemIdent::of(&stat) != ident)
}

/// Did a semop meant for `ident` reach a set that took its id? Only if
/// someone has operated on that set at all: a set nobody has touched (no
/// `sem_otime`) cannot have had it, which spares a replacement an undo of
/// units it never received.
fn operated_on_replacement(ident: SemIdent) -> bool {
    matches!(sem::stat_any(ident.id), Ok(stat) if SemIdent::of(&stat) != ident && stat.otime != 0)
}

fn set_attr(stat: &SemStat) -> Attr {
    let time = kernel_time(stat.otime, stat.ctime);
    Attr {
        ino: 0,
        kind: FileKind::Directory,
        size: stat.nsems,
        perm: dir_perm(stat.perm.mode),
        nlink: 2,
        uid: stat.perm.uid,
        gid: stat.perm.gid,
        atime: time,
        mtime: time,
        ctime: kernel_time(stat.ctime, stat.ctime),
        blksize: BLOCK_SIZE,
        stored: true,
    }
}

/// A semaphore file: its size is the length of what a read returns now (the
/// value and a newline), so that tar and cp read exactly that; it holds no
/// blocks. For a caller who may not read the value, 0: even its length is
/// the value's.
fn semaphore_attr(stat: &SemStat, num: u16, caller: &Caller) -> Result<Attr> {
    let size = match check_access(&stat.perm, caller, Want::READ) {
        Ok(()) => value_text(SemIdent::of(stat), num)?.len() as u64,
        Err(_) => 0,
    };
    Ok(Attr {
        kind: FileKind::RegularFile,
        size,
        perm: (stat.perm.mode & 0o777) as u16,
        nlink: 1,
        stored: false,
        ..set_attr(stat)
    })
}

fn value_text(ident: SemIdent, num: u16) -> Result<String> {
    let value = sem::query(ident.id, num, Query::Value).map_err(Error::from_id_call)?;
    Ok(format!("{value}\n"))
}

/// The semaphore number a name stands for in a set of `nsems`.
fn parse_num(name: &str, nsems: u64) -> Result<u16> {
    parse_id(name).filter(|&n| (n as u64) < nsems).and_then(|n| u16::try_from(n).ok()).ok_or(Error::NotFound)
}

// ---- names ----

pub fn lookup_semaphore(ident: SemIdent, name: &str, caller: &Caller) -> Result<(Node, Attr)> {
    let stat = current(ident)?;
    let num = parse_num(name, stat.nsems)?;
    Ok((Node::Semaphore(ident, num), semaphore_attr(&stat, num, caller)?))
}

/// The key and size a creation name (`KEY` or `KEY:N`) asks for.
pub fn parse_creation_name(name: &str) -> Result<(Key, i32)> {
    let (key, nsems) = match name.split_once(':') {
        Some((key, n)) => (key, parse_id(n).filter(|&n| n > 0).ok_or(Error::Invalid)?),
        None => (name, 1),
    };
    Ok((parse_creation_key(key).ok_or(Error::Invalid)?, nsems))
}

/// Attributes; a semaphore file's size is its value's only for
/// [`attr_for`] a caller who may read it.
pub fn attr(node: &Node) -> Result<Attr> {
    match *node {
        Node::SemSet(ident) => family::attr::<Sets>(ident, false),
        Node::Semaphore(ident, _) => Ok(Attr { size: 0, ..set_attr(&current(ident)?) }),
        Node::SemKeyLink(ident) => family::attr::<Sets>(ident, true),
        _ => Err(Error::NotFound),
    }
}

/// Attributes as `caller` sees them.
pub fn attr_for(node: &Node, caller: &Caller) -> Result<Attr> {
    match *node {
        Node::Semaphore(ident, num) => semaphore_attr(&current(ident)?, num, caller),
        _ => attr(node),
    }
}

/// The semaphores of a set; listing needs read permission, as the
/// directory's mode shows.
pub fn list_semaphores(ident: SemIdent, caller: &Caller) -> Result<Vec<(String, Node, Attr)>> {
    let stat = current(ident)?;
    check_access(&stat.perm, caller, Want::READ)?;
    (0..stat.nsems as u16)
        .map(|num| {
            let attr = semaphore_attr(&stat, num, caller)?;
            Ok((num.to_string(), Node::Semaphore(ident, num), attr))
        })
        .collect()
}

pub fn check_list(ident: SemIdent, caller: &Caller) -> Result<()> {
    check_access(&current(ident)?.perm, caller, Want::READ)
}

/// access(2): on the set directory, search (x) means read, as its mode shows.
pub fn access(ident: SemIdent, node: &Node, want: Want, caller: &Caller) -> Result<()> {
    let stat = current(ident)?;
    let want = match node {
        Node::SemSet(_) => want.search_as_read(),
        _ => want,
    };
    if want.is_nothing() { Ok(()) } else { check_access(&stat.perm, caller, want) }
}

// ---- management ----

/// `mkdir sem/KEY` or `mkdir sem/KEY:N`: a set of 1 (or N) semaphores, made
/// by the caller. KEY is `0x` and hex digits, or `private`.
pub fn create_set(name: &str, mode: u32, caller: &Caller) -> Result<(Node, Attr)> {
    let (key, nsems) = parse_creation_name(name)?;
    // mkdir's x bits mean nothing for a set: the directory shows search
    // wherever read is granted.
    let flags = GetFlags::create_exclusive(mode & 0o666);
    let id = caller.act(|| sem::get(key, nsems, flags))?.map_err(Error::from_creation)?;
    family::created::<Sets>(id.0)
}

/// `rm sem/<id>/<n>`: a semaphore cannot leave its set, so this changes
/// nothing; it succeeds for whoever may remove the set, so that `rm -r`
/// works (its final rmdir removes the set).
pub fn unlink_semaphore(ident: SemIdent, name: &str, caller: &Caller) -> Result<()> {
    let stat = current(ident)?;
    parse_num(name, stat.nsems)?;
    check_owner(&stat.perm, caller)
}

/// chmod and chown on the set directory: IPC_SET.
pub fn setattr_set(ident: SemIdent, change: SetAttr, caller: &Caller) -> Result<Attr> {
    let stat = current(ident)?;
    let set = |uid, gid, mode| sem::set(ident.id, uid, gid, mode).map_err(Error::from_id_call);
    if chmod_chown_dir(&stat.perm, change, caller, set)? {
        return Ok(set_attr(&current(ident)?));
    }
    Ok(set_attr(&stat))
}

/// A semaphore file's own attributes cannot change (they are the set's);
/// the truncate of `echo N > file` is accepted and ignored.
pub fn setattr_semaphore(ident: SemIdent, num: u16, change: SetAttr, caller: &Caller) -> Result<Attr> {
    let stat = current(ident)?;
    if change.changes_owner_or_mode() {
        return Err(Error::NotPermitted);
    }
    semaphore_attr(&stat, num, caller)
}

// ---- extended attributes ----

const SET_XATTRS: [&str; 5] = ["user.ipc.key", "user.ipc.id", "user.ipc.cuid", "user.ipc.cgid", "user.ipc.nsems"];
const SEMAPHORE_XATTRS: [&str; 3] = ["user.ipc.pid", "user.ipc.ncnt", "user.ipc.zcnt"];

pub fn xattr_names(node: &Node) -> &'static [&'static str] {
    match node {
        Node::SemSet(_) => &SET_XATTRS,
        Node::Semaphore(..) => &SEMAPHORE_XATTRS,
        _ => &[],
    }
}

/// A semaphore's pid and waiter counts need read permission, as GETPID,
/// GETNCNT and GETZCNT do; the set's attributes are public.
pub fn xattr(node: &Node, name: &str, caller: &Caller) -> Result<String> {
    match *node {
        Node::SemSet(ident) => {
            let stat = current(ident)?;
            Ok(match name {
                "user.ipc.key" => stat.perm.key.to_string(),
                "user.ipc.id" => stat.id.0.to_string(),
                "user.ipc.cuid" => stat.perm.cuid.to_string(),
                "user.ipc.cgid" => stat.perm.cgid.to_string(),
                "user.ipc.nsems" => stat.nsems.to_string(),
                _ => return Err(Error::NoAttribute),
            })
        }
        Node::Semaphore(ident, num) => {
            let stat = current(ident)?;
            if SEMAPHORE_XATTRS.contains(&name) {
                check_access(&stat.perm, caller, Want::READ)?;
            }
            let query = match name {
                "user.ipc.pid" => Query::Pid,
                "user.ipc.ncnt" => Query::WaitingToTake,
                "user.ipc.zcnt" => Query::WaitingForZero,
                _ => return Err(Error::NoAttribute),
            };
            Ok(sem::query(ident.id, num, query).map_err(Error::from_id_call)?.to_string())
        }
        _ => Err(Error::NoAttribute),
    }
}

// ---- reading and writing ----

/// The longest write a semaphore file takes, white space included.
const LONGEST_COMMAND: usize = 4096;

/// What a write to a semaphore file asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `N`: SETVAL.
    Set(i32),
    /// `+N` (a V) or `-N` (a P): semop with this delta.
    Add(i16),
    /// `=0`: semop 0, wait until the value is zero.
    WaitZero,
}

/// Parses one command; surrounding white space (a trailing newline) is fine.
/// Malformed text is EINVAL, a number out of range ERANGE.
pub fn parse_command(data: &[u8]) -> Result<Command> {
    // A longer write may reach us in pieces, which must not each count as
    // a command.
    if data.len() > LONGEST_COMMAND {
        return Err(Error::Invalid);
    }
    let text = std::str::from_utf8(data).map_err(|_| Error::Invalid)?.trim_ascii();
    let (sign, digits) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        Some(b'=') => (0, &text[1..]),
        _ => (2, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Invalid);
    }
    // All digits: the only way to fail is to be too large.
    let n: i32 = digits.parse().map_err(|_| Error::OutOfRange)?;
    match sign {
        0 if n == 0 => Ok(Command::WaitZero),
        0 => Err(Error::Invalid),
        _ if n > SEMVMX => Err(Error::OutOfRange),
        2 => Ok(Command::Set(n)),
        _ if n == 0 => Err(Error::Invalid),
        _ => Ok(Command::Add((sign * n) as i16)),
    }
}

/// An open semaphore file.
pub struct OpenSemaphore {
    ident: SemIdent,
    num: u16,
    nonblocking: bool,
    /// The value's text as the last read at offset 0 took it.
    snapshot: Mutex<Vec<u8>>,
}

impl OpenSemaphore {
    /// Opening checks read permission for reading. What a write needs
    /// depends on the command (`=0` only read, the others write), so it is
    /// checked at each write; opening for writing needs one of the two, so
    /// that a caller who may do nothing with the set is refused at open
    /// (`echo 1 > file` then says "Permission denied").
    pub fn open(ident: SemIdent, num: u16, flags: i32, caller: &Caller) -> Result<OpenSemaphore> {
        let stat = current(ident)?;
        let want = Want::from_open_flags(flags);
        if want.includes_read() {
            check_access(&stat.perm, caller, Want::READ)?;
        }
        if want.includes_write() && check_access(&stat.perm, caller, Want::WRITE).is_err() {
            check_access(&stat.perm, caller, Want::READ)?;
        }
        Ok(OpenSemaphore {
            ident,
            num,
            nonblocking: OpenFlags::from_raw(flags).is_nonblocking(),
            snapshot: Mutex::new(Vec::new()),
        })
    }

    /// Reads as a sysfs attribute reads: a read at offset 0 takes the value
    /// fresh, and reads further on serve the rest of that text, then
    /// end-of-file. So `cat` prints the value once, `head -n 1` can seek back,
    /// and `pread(fd, buf, 0)` (or lseek to 0) gives the value now.
    pub fn read(&self, offset: u64, size: usize, caller: &Caller) -> Result<Vec<u8>> {
        let mut text = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        // Checked at every read, as GETVAL checks at every call: a set gone
        // or a chmod since counts.
        check_access(&current(self.ident)?.perm, caller, Want::READ)?;
        if offset == 0 || text.is_empty() {
            let value = value_text(self.ident, self.num)?;
            if replaced(self.ident) {
                return Err(Error::NotFound);
            }
            *text = value.into_bytes();
        }
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(text.len());
        Ok(text[start..start.saturating_add(size).min(text.len())].to_vec())
    }

    /// Runs the command written; one that must wait comes back as a [`Wait`].
    /// `nonblocking` is the file's O_NONBLOCK at the time of the write.
    ///
    /// A write of white space alone (the blank lines of `printf '\n5\n\n'`,
    /// which the shell writes one by one) does nothing and succeeds.
    pub fn write(&self, data: &[u8], nonblocking: bool, caller: &Caller) -> Result<Written> {
        if data.len() <= LONGEST_COMMAND && data.iter().all(u8::is_ascii_whitespace) {
            current(self.ident)?;
            return Ok(Outcome::Ready(data.len()));
        }
        let command = parse_command(data)?;
        let stat = current(self.ident)?;
        let want = if command == Command::WaitZero { Want::READ } else { Want::WRITE };
        check_access(&stat.perm, caller, want)?;
        let (id, num, len) = (self.ident.id, self.num, data.len());
        let delta = match command {
            Command::Set(value) => {
                sem::set_value(id, num, value).map_err(map_op_error)?;
                return Ok(Outcome::Ready(len));
            }
            Command::Add(delta) => delta,
            Command::WaitZero => 0,
        };
        match sem::operate(id, num, delta, None) {
            // Units taken from or given to a set that replaced this file's
            // own at that very moment go back; the file's set is gone.
            Ok(()) if operated_on_replacement(self.ident) => {
                undo(id, num, delta);
                Err(Error::NotFound)
            }
            // A caller killed while its P was on the way would never know it
            // took the units: give them back.
            Ok(()) if delta < 0 && caller_dying(caller.tid) => {
                undo(id, num, delta);
                Err(Error::Interrupted)
            }
            Ok(()) => Ok(Outcome::Ready(len)),
            Err(Errno::EAGAIN) if nonblocking || self.nonblocking => Err(Error::WouldBlock),
            Err(Errno::EAGAIN) => {
                let (ident, caller) = (self.ident, Caller::new(caller.uid, caller.gid, caller.tid));
                let role = if delta == 0 { Role::WaitingZero } else { Role::WaitingTake };
                let wait = Wait::new(move |stop| wait(ident, num, delta, &caller, want, stop).map(|()| len));
                Ok(Written::Wait(wait.using(ObjectKind::Sem, ident.id.0, role)))
            }
            Err(e) => Err(map_op_error(e)),
        }
    }
}

/// Gives back what `delta` took, for a caller that will never see it.
fn undo(id: SemId, num: u16, delta: i16) {
    if delta != 0 {
        if let Err(e) = sem::operate(id, num, -delta, None) {
            log::warn!("could not undo semop {delta} on {}/{num} for a killed caller: {e}", id.0);
        }
    }
}

fn map_op_error(e: Errno) -> Error {
    match e {
        Errno::ERANGE => Error::OutOfRange,
        Errno::EIDRM => Error::Removed,
        other => Error::from_id_call(other),
    }
}

/// Waits until `delta` can be applied to semaphore `num`, watched (see
/// `waiting`): gives up with EINTR if the caller has a signal due or the
/// filesystem is stopping. If a fatal signal arrived just as the operation
/// succeeded, the operation is undone: the caller will never see its result.
fn wait(ident: SemIdent, num: u16, delta: i16, caller: &Caller, want: Want, stop: &Stop) -> Result<()> {
    loop {
        check_access(&current(ident)?.perm, caller, want)?;
        let (done, signals) = watched(caller.tid, stop, || sem::operate_waiting(ident.id, num, delta));
        match done {
            Ok(()) => {
                if operated_on_replacement(ident) {
                    undo(ident.id, num, delta);
                    return Err(Error::NotFound);
                }
                if signals == Signals::Fatal {
                    undo(ident.id, num, delta);
                    return Err(Error::Interrupted);
                }
                return Ok(());
            }
            Err(Errno::EINTR) if stop.is_set() || signals != Signals::None => return Err(Error::Interrupted),
            // Woken for nothing (a wake meant for an earlier call): again.
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(map_op_error(e)),
        }
    }
}
