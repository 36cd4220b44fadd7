//! Segment files: `shm/<id>` and `by-key/shm/0x%08x`.
//!
//! - read/write go straight to the live segment through its shmem file, which
//!   the daemon holds only while a file is open on it (an attachment where it
//!   may not open that file). Holding the file is not an attachment: `rm`
//!   removes the segment at once, and open files keep its bytes until closed.
//! - A segment's size is fixed: writes stop at its end, truncate zero-fills.
//! - Creating: open `shm/0xKEY` (or `shm/private`) with O_CREAT, then give it a
//!   size with ftruncate or fallocate; only then does `shmget` run, as the
//!   caller. Until then the file is a [`PendingSegment`] that only the
//!   creator's open file reaches.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::access::{Caller, Want, check_access, check_owner};
use super::attr::{BLOCK_SIZE, kernel_time};
use super::budget::{Budgets, Charge, Spend};
use super::error::{Error, Result};
use super::family::{self, Family};
use super::inode::{Node, ShmIdent};
use super::names::parse_creation_key;
use super::types::{Attr, Data, FileKind, SetAttr};
use crate::ipc::creds::{Identity, run_as};
use crate::ipc::flags::GetFlags;
use crate::ipc::shm::{self, SegmentMemory, ShmId, ShmStat};
use crate::ipc::{Errno, IpcPerm, Key, sysvipc};

/// The shared memory family: segments (`shm/<id>`).
pub struct Segments;

impl Family for Segments {
    const DIR: &'static str = "shm";
    type Stat = ShmStat;
    type Ident = ShmIdent;

    fn stat_any(id: i32) -> std::result::Result<ShmStat, Errno> {
        shm::stat_any(ShmId(id))
    }
    fn get(key: Key) -> std::result::Result<i32, Errno> {
        shm::get(key, 0, 0).map(|id| id.0)
    }
    fn remove(id: i32) -> std::result::Result<(), Errno> {
        shm::remove(ShmId(id))
    }
    fn list() -> Result<Vec<ShmStat>> {
        sysvipc::list_shm().map_err(Error::listing)
    }
    fn id(stat: &ShmStat) -> i32 {
        stat.id.0
    }
    fn perm(stat: &ShmStat) -> &IpcPerm {
        &stat.perm
    }
    fn ident(stat: &ShmStat) -> ShmIdent {
        ShmIdent::of(stat)
    }
    fn ident_id(ident: ShmIdent) -> i32 {
        ident.id.0
    }
    fn is(ident: ShmIdent, stat: &ShmStat) -> bool {
        ident.is(stat)
    }
    fn object(ident: ShmIdent) -> Node {
        Node::Segment(ident)
    }
    fn object_attr(stat: &ShmStat) -> Attr {
        file_attr(stat)
    }
    fn key_link(ident: ShmIdent) -> Node {
        Node::ShmKeyLink(ident)
    }
}

/// The segment `ident` names, as the kernel has it now.
fn current(ident: ShmIdent) -> Result<ShmStat> {
    family::current::<Segments>(ident)
}

fn file_attr(stat: &ShmStat) -> Attr {
    Attr {
        ino: 0,
        kind: FileKind::RegularFile,
        size: stat.segsz,
        perm: (stat.perm.mode & 0o777) as u16,
        nlink: 1,
        uid: stat.perm.uid,
        gid: stat.perm.gid,
        atime: kernel_time(stat.atime, stat.ctime),
        mtime: kernel_time(stat.dtime, stat.ctime),
        ctime: kernel_time(stat.ctime, stat.ctime),
        blksize: BLOCK_SIZE,
        stored: true,
    }
}

/// What attaching needs: shmat for writing maps the segment read-write, so
/// the kernel asks for read and write permission both.
fn attach_want(want: Want) -> Want {
    if want.includes_write() { Want::READ_WRITE } else { want }
}

pub fn access(ident: ShmIdent, want: Want, caller: &Caller) -> Result<()> {
    let stat = current(ident)?;
    check_access(&stat.perm, caller, attach_want(want))
}

/// chmod, chown and truncate on an existing segment. Everything is checked
/// before anything changes.
pub fn setattr(
    ident: ShmIdent,
    open: Option<&OpenSegment>,
    change: SetAttr,
    caller: &Caller,
    budgets: &Arc<Budgets>,
) -> Result<Attr> {
    let stat = current(ident)?;
    let mode = change.permission_bits()?;
    if change.size.is_some_and(|size| size > stat.segsz) {
        return Err(Error::FileTooLarge);
    }
    let changes_perm = change.changes_owner_or_mode();
    if changes_perm {
        check_owner(&stat.perm, caller)?;
    }
    if let Some(size) = change.size.filter(|&size| size < stat.segsz) {
        // ftruncate on a file opened for writing needs no further check;
        // truncate by path needs write permission, as for open.
        match open.map(OpenSegment::writable_memory).transpose()?.flatten() {
            Some(memory) => memory.zero_from(size).map_err(Error::kernel("writing a segment"))?,
            None => {
                check_access(&stat.perm, caller, Want::READ_WRITE)?;
                let held = Held::new(ident, true, budgets, caller.uid)?;
                held.memory.zero_from(size).map_err(Error::kernel("writing a segment"))?;
            }
        }
    } else if change.size.is_some() && open.is_none() {
        check_access(&stat.perm, caller, Want::READ_WRITE)?;
    }
    if changes_perm {
        let uid = change.uid.unwrap_or(stat.perm.uid);
        let gid = change.gid.unwrap_or(stat.perm.gid);
        shm::set(ident.id, uid, gid, mode.unwrap_or(stat.perm.mode)).map_err(Error::from_id_call)?;
    }
    Ok(file_attr(&current(ident)?))
}

/// A segment's bytes held for `uid`, with what they cost the daemon: a
/// descriptor for its shmem file, or, where there is none to spare (or the
/// daemon may not open the file), an attachment. A mapping is charged either
/// way: a hugetlbfs file is written through one.
struct Held {
    memory: Arc<SegmentMemory>,
    /// The segment as it was when it was held.
    stat: ShmStat,
    _mapping: Charge,
    _descriptor: Option<Charge>,
}

impl Held {
    /// Holds `ident` and makes sure the id was not recycled on the way.
    fn new(ident: ShmIdent, writable: bool, budgets: &Arc<Budgets>, uid: u32) -> Result<Held> {
        let mapping = budgets.charge(uid, Spend::Mapping)?;
        let descriptor = budgets.charge(uid, Spend::Descriptor).ok();
        let memory =
            SegmentMemory::open(ident.id, ident.segsz, writable, descriptor.is_some()).map_err(Error::from_id_call)?;
        let stat = current(ident)?;
        Ok(Held { memory: Arc::new(memory), stat, _mapping: mapping, _descriptor: descriptor })
    }
}

// ---- extended attributes ----

const XATTRS: [&str; 9] = [
    "user.ipc.key",
    "user.ipc.id",
    "user.ipc.cuid",
    "user.ipc.cgid",
    "user.ipc.cpid",
    "user.ipc.lpid",
    "user.ipc.nattch",
    "user.ipc.dest",
    "user.ipc.locked",
];

pub fn is_xattr_name(name: &str) -> bool {
    XATTRS.contains(&name)
}

pub fn xattr_names(ident: ShmIdent) -> Result<Vec<&'static str>> {
    current(ident)?;
    Ok(XATTRS.to_vec())
}

pub fn xattr(ident: ShmIdent, name: &str) -> Result<String> {
    let stat = current(ident)?;
    Ok(match name {
        "user.ipc.key" => stat.perm.key.to_string(),
        "user.ipc.id" => stat.id.0.to_string(),
        "user.ipc.cuid" => stat.perm.cuid.to_string(),
        "user.ipc.cgid" => stat.perm.cgid.to_string(),
        "user.ipc.cpid" => stat.cpid.to_string(),
        "user.ipc.lpid" => stat.lpid.to_string(),
        "user.ipc.nattch" => stat.nattch.to_string(),
        "user.ipc.dest" => u8::from(stat.is_dest()).to_string(),
        "user.ipc.locked" => u8::from(stat.is_locked()).to_string(),
        _ => return Err(Error::NoAttribute),
    })
}

// ---- creating ----

/// A segment named by key whose size is not known yet. It lives only in the
/// creator's open file; the kernel object is made by the first ftruncate or
/// fallocate with a size.
#[derive(Debug)]
pub struct PendingSegment {
    key: Key,
    mode: Mutex<u32>,
    creator: Identity,
    since: SystemTime,
    created: Mutex<Option<ShmIdent>>,
}

impl PendingSegment {
    pub fn new(name: &str, mode: u32, caller: &Caller) -> Result<PendingSegment> {
        let key = parse_creation_key(name).ok_or(Error::NotFound)?;
        if !key.is_private() {
            match shm::get(key, 0, 0) {
                Ok(_) => return Err(Error::Exists),
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(Error::kernel("reading a segment")(e)),
            }
        }
        Ok(PendingSegment {
            key,
            mode: Mutex::new(mode & 0o777),
            creator: caller.identity()?,
            since: SystemTime::now(),
            created: Mutex::new(None),
        })
    }

    pub fn created(&self) -> Option<ShmIdent> {
        *self.created.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mode(&self) -> u32 {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn attr(&self) -> Result<Attr> {
        if let Some(ident) = self.created() {
            return Ok(file_attr(&current(ident)?));
        }
        Ok(Attr {
            ino: 0,
            kind: FileKind::RegularFile,
            size: 0,
            perm: self.mode() as u16,
            nlink: 1,
            uid: self.creator.uid,
            gid: self.creator.gid,
            atime: self.since,
            mtime: self.since,
            ctime: self.since,
            blksize: BLOCK_SIZE,
            stored: true,
        })
    }

    fn is_creator(&self, caller: &Caller) -> bool {
        caller.uid == self.creator.uid || caller.uid == 0
    }

    pub fn access(&self, want: Want, caller: &Caller) -> Result<()> {
        match self.created() {
            Some(ident) => access(ident, want, caller),
            None if self.is_creator(caller) => Ok(()),
            None => Err(Error::AccessDenied),
        }
    }

    pub fn setattr(
        &self,
        open: Option<&OpenSegment>,
        change: SetAttr,
        caller: &Caller,
        budgets: &Arc<Budgets>,
    ) -> Result<Attr> {
        if let Some(ident) = self.created() {
            return setattr(ident, open, change, caller, budgets);
        }
        if !self.is_creator(caller) {
            return Err(Error::NotPermitted);
        }
        let mode = change.permission_bits()?;
        if change.uid.is_some_and(|u| u != self.creator.uid) || change.gid.is_some_and(|g| g != self.creator.gid) {
            return Err(Error::NotPermitted);
        }
        if let Some(mode) = mode {
            *self.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
        }
        match change.size {
            Some(size) if size > 0 => self.create(size),
            // No segment has no bytes (`truncate -s 0 shm/0x77`).
            Some(_) => Err(Error::Invalid),
            None => self.attr(),
        }
    }

    /// Runs `shmget(key, size, IPC_CREAT | IPC_EXCL | mode)` as the creator.
    fn create(&self, size: u64) -> Result<Attr> {
        let mut created = self.created.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ident) = *created {
            return Ok(file_attr(&current(ident)?));
        }
        let flags = GetFlags::create_exclusive(self.mode());
        let made = run_as(&self.creator, || shm::get(self.key, size, flags));
        let id = made.map_err(Error::kernel("taking on the creator's ids"))?.map_err(Error::from_creation)?;
        let stat = shm::stat_any(id).map_err(Error::from_id_call)?;
        *created = Some(ShmIdent::of(&stat));
        log::debug!("created segment {} with key {} and size {size}", id.0, self.key);
        Ok(file_attr(&stat))
    }
}

// ---- open files ----

/// An open segment file. An existing segment is held when opened; a pending
/// one once it has been created.
pub struct OpenSegment {
    target: OpenTarget,
    want: Want,
    held: Mutex<Option<Held>>,
    /// Whose budgets a segment held later is charged to.
    budgets: Arc<Budgets>,
    uid: u32,
    /// The opener's thread (for `users/`).
    tid: u32,
}

enum OpenTarget {
    Existing,
    Pending(Arc<PendingSegment>),
}

impl OpenSegment {
    pub fn open(ident: ShmIdent, want: Want, caller: &Caller, budgets: &Arc<Budgets>) -> Result<OpenSegment> {
        let stat = current(ident)?;
        check_access(&stat.perm, caller, attach_want(want))?;
        let held = Held::new(ident, want.includes_write(), budgets, caller.uid)?;
        Ok(OpenSegment {
            target: OpenTarget::Existing,
            want,
            held: Mutex::new(Some(held)),
            budgets: budgets.clone(),
            uid: caller.uid,
            tid: caller.tid,
        })
    }

    /// Whether the file is of a segment that exists (not one being created).
    pub fn is_existing(&self) -> bool {
        matches!(self.target, OpenTarget::Existing)
    }

    pub fn pending(pending: Arc<PendingSegment>, want: Want, caller: &Caller, budgets: &Arc<Budgets>) -> OpenSegment {
        OpenSegment {
            target: OpenTarget::Pending(pending),
            want,
            held: Mutex::new(None),
            budgets: budgets.clone(),
            uid: caller.uid,
            tid: caller.tid,
        }
    }

    pub fn reopen_pending(
        pending: Arc<PendingSegment>,
        want: Want,
        caller: &Caller,
        budgets: &Arc<Budgets>,
    ) -> Result<OpenSegment> {
        pending.access(want, caller)?;
        Ok(OpenSegment::pending(pending, want, caller, budgets))
    }

    /// The segment's bytes, held now if it was created since the open;
    /// `None` while a pending segment has no size yet.
    pub fn memory(&self) -> Result<Option<Arc<SegmentMemory>>> {
        let mut slot = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            if let OpenTarget::Pending(pending) = &self.target {
                if let Some(ident) = pending.created() {
                    *slot = Some(Held::new(ident, self.want.includes_write(), &self.budgets, self.uid)?);
                }
            }
        }
        Ok(slot.as_ref().map(|held| held.memory.clone()))
    }

    /// The segment this file holds and the opener's thread: a use for
    /// `users/shm/`.
    pub fn user(&self) -> Option<(i32, u32)> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.as_ref().map(|held| (held.stat.id.0, self.tid))
    }

    /// The segment's attributes as the file saw them when it was opened,
    /// with no links: for an fstat once the segment is gone.
    pub fn removed_attr(&self) -> Option<Attr> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.as_ref().map(|held| Attr { nlink: 0, ..file_attr(&held.stat) })
    }

    fn writable_memory(&self) -> Result<Option<Arc<SegmentMemory>>> {
        if self.want.includes_write() { self.memory() } else { Ok(None) }
    }

    pub fn read(&self, offset: u64, size: usize) -> Result<Data> {
        if !self.want.includes_read() {
            return Err(Error::BadHandle);
        }
        Ok(match self.memory()? {
            Some(memory) => Data::Segment(memory.window(offset, size)),
            None => Data::Bytes(Vec::new()),
        })
    }

    /// Writes what fits; a write that starts at or past the end is ENOSPC.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<usize> {
        let Some(memory) = self.writable_memory()? else {
            return Err(if self.want.includes_write() { Error::NoSpace } else { Error::BadHandle });
        };
        if data.is_empty() {
            return Ok(0);
        }
        if offset >= memory.len() {
            return Err(Error::NoSpace);
        }
        memory.write_at(offset, data).map_err(Error::kernel("writing a segment"))
    }

    /// fallocate: creates a pending segment with size `end`; on an existing
    /// segment, succeeds if `end` is within it.
    pub fn allocate(&self, end: u64, caller: &Caller) -> Result<()> {
        if let OpenTarget::Pending(pending) = &self.target {
            if pending.created().is_none() {
                return pending
                    .setattr(Some(self), SetAttr { size: Some(end), ..SetAttr::default() }, caller, &self.budgets)
                    .map(drop);
            }
        }
        match self.memory()? {
            Some(m) if end <= m.len() => Ok(()),
            _ => Err(Error::FileTooLarge),
        }
    }
}
