//! Segment files: `shm/<id>` and `by-key/shm/0x%08x`.
//!
//! - read/write go straight to the live segment through an attachment the
//!   daemon holds only while a file is open on it.
//! - A segment's size is fixed: writes stop at its end, truncate zero-fills.
//! - Creating: open `shm/0xKEY` (or `shm/private`) with O_CREAT, then give it a
//!   size with ftruncate or fallocate; only then does `shmget` run, as the
//!   caller. Until then the file is a [`PendingSegment`] that only the
//!   creator's open file reaches.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::access::{Caller, Want, check_access, check_owner};
use super::error::{Error, Result};
use super::inode::{Node, ShmIdent};
use super::names::{parse_canonical_key, parse_creation_key, parse_id};
use super::{Attr, BLOCK_SIZE, Budgets, Charge, Data, FileKind, SetAttr, Spend, kernel_time};
use crate::ipc::creds::{Identity, run_as};
use crate::ipc::shm::{self, Attachment, ShmId, ShmStat};
use crate::ipc::{Errno, Key, sysvipc};

/// The segment `ident` names, as the kernel has it now; `NotFound` if the id
/// is gone or now names another segment.
fn current(ident: ShmIdent) -> Result<ShmStat> {
    let stat = shm::stat_any(ident.id).map_err(Error::from_id_call)?;
    if ident.is(&stat) { Ok(stat) } else { Err(Error::NotFound) }
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

fn link_attr(stat: &ShmStat) -> Attr {
    Attr { kind: FileKind::Symlink, size: link_text(stat.id).len() as u64, perm: 0o777, ..file_attr(stat) }
}

fn link_text(id: ShmId) -> String {
    format!("../../shm/{}", id.0)
}

pub fn lookup_segment(name: &str) -> Result<(Node, Attr)> {
    let id = parse_id(name).ok_or(Error::NotFound)?;
    let stat = shm::stat_any(ShmId(id)).map_err(Error::from_id_call)?;
    Ok((Node::Segment(ShmIdent::of(&stat)), file_attr(&stat)))
}

pub fn lookup_key_link(name: &str) -> Result<(Node, Attr)> {
    let key = parse_canonical_key(name).ok_or(Error::NotFound)?;
    // shmget without IPC_CREAT and with no mode bits finds the id by key
    // (no permission is needed for that); the key is never IPC_PRIVATE here.
    let id = shm::get(key, 0, 0).map_err(Error::from_id_call)?;
    let stat = shm::stat_any(id).map_err(Error::from_id_call)?;
    Ok((Node::ShmKeyLink(ShmIdent::of(&stat)), link_attr(&stat)))
}

pub fn link_target(ident: ShmIdent) -> Result<Vec<u8>> {
    current(ident)?;
    Ok(link_text(ident.id).into_bytes())
}

pub fn node_attr(node: &Node) -> Result<Attr> {
    match node {
        Node::Segment(ident) => Ok(file_attr(&current(*ident)?)),
        Node::ShmKeyLink(ident) => Ok(link_attr(&current(*ident)?)),
        _ => Err(Error::NotFound),
    }
}

pub fn list_segments() -> Result<Vec<(String, Node, Attr)>> {
    Ok(list()?.iter().map(|stat| (stat.id.0.to_string(), Node::Segment(ShmIdent::of(stat)), file_attr(stat))).collect())
}

pub fn list_key_links() -> Result<Vec<(String, Node, Attr)>> {
    Ok(list()?
        .iter()
        .filter(|stat| !stat.perm.key.is_private())
        .map(|stat| (stat.perm.key.to_string(), Node::ShmKeyLink(ShmIdent::of(stat)), link_attr(stat)))
        .collect())
}

fn list() -> Result<Vec<ShmStat>> {
    Ok(sysvipc::list_shm()?)
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

/// `rm shm/<id>`: IPC_RMID. A segment still attached is only marked for
/// destruction by the kernel and stays listed until its last detach.
pub fn remove(name: &str, caller: &Caller) -> Result<()> {
    let id = ShmId(parse_id(name).ok_or(Error::NotFound)?);
    let stat = shm::stat_any(id).map_err(Error::from_id_call)?;
    check_owner(&stat.perm, caller)?;
    shm::remove(id).map_err(Error::from_id_call)
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
        return Err(Error::TooBig);
    }
    let changes_perm = change.changes_owner_or_mode();
    if changes_perm {
        check_owner(&stat.perm, caller)?;
    }
    if let Some(size) = change.size.filter(|&size| size < stat.segsz) {
        // ftruncate on a file opened for writing needs no further check;
        // truncate by path needs write permission, as for open.
        match open.map(OpenSegment::writable_attachment).transpose()?.flatten() {
            Some(attachment) => attachment.zero_from(size)?,
            None => {
                check_access(&stat.perm, caller, Want::READ_WRITE)?;
                Attached::new(ident, true, budgets, caller.uid)?.attachment.zero_from(size)?;
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

/// A segment attached for `uid`, with what it costs the daemon: a mapping,
/// and a descriptor for large copies when the budget has one to spare.
struct Attached {
    attachment: Arc<Attachment>,
    _mapping: Charge,
    _descriptor: Option<Charge>,
}

impl Attached {
    /// Attaches `ident` and makes sure the id was not recycled on the way.
    fn new(ident: ShmIdent, writable: bool, budgets: &Arc<Budgets>, uid: u32) -> Result<Attached> {
        let mapping = budgets.charge(uid, Spend::Mapping)?;
        let descriptor = budgets.charge(uid, Spend::Descriptor).ok();
        let attachment = Attachment::attach(ident.id, ident.segsz, writable).map_err(Error::from_id_call)?;
        let attachment = if descriptor.is_some() { attachment } else { attachment.without_file() };
        current(ident)?;
        Ok(Attached { attachment: Arc::new(attachment), _mapping: mapping, _descriptor: descriptor })
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
                Err(e) => return Err(Error::Kernel(e)),
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
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | self.mode() as i32;
        let id = run_as(&self.creator, || shm::get(self.key, size, flags))?.map_err(Error::from_creation)?;
        let stat = shm::stat_any(id).map_err(Error::from_id_call)?;
        *created = Some(ShmIdent::of(&stat));
        log::debug!("created segment {} with key {} and size {size}", id.0, self.key);
        Ok(file_attr(&stat))
    }
}

// ---- open files ----

/// The shmem file of the segment `ident` names, as the kernel has it now:
/// what FUSE passthrough serves its file from.
pub fn backing_file(ident: ShmIdent) -> Result<std::fs::File> {
    let stat = current(ident)?;
    shm::Attachment::shmem_file(ident.id, stat.segsz).map_err(Error::from_id_call)
}

/// An open segment file. An existing segment is attached when opened; a
/// pending one once it has been created.
pub struct OpenSegment {
    target: OpenTarget,
    want: Want,
    attached: Mutex<Option<Attached>>,
    /// Whose budgets an attachment made later is charged to.
    budgets: Arc<Budgets>,
    uid: u32,
}

enum OpenTarget {
    Existing,
    Pending(Arc<PendingSegment>),
}

impl OpenSegment {
    pub fn open(ident: ShmIdent, want: Want, caller: &Caller, budgets: &Arc<Budgets>) -> Result<OpenSegment> {
        let stat = current(ident)?;
        check_access(&stat.perm, caller, attach_want(want))?;
        let attached = Attached::new(ident, want.includes_write(), budgets, caller.uid)?;
        Ok(OpenSegment {
            target: OpenTarget::Existing,
            want,
            attached: Mutex::new(Some(attached)),
            budgets: budgets.clone(),
            uid: caller.uid,
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
            attached: Mutex::new(None),
            budgets: budgets.clone(),
            uid: caller.uid,
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

    /// The attachment, attaching a segment created since the open; `None`
    /// while a pending segment has no size yet.
    fn attachment(&self) -> Result<Option<Arc<Attachment>>> {
        let mut slot = self.attached.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            if let OpenTarget::Pending(pending) = &self.target {
                if let Some(ident) = pending.created() {
                    *slot = Some(Attached::new(ident, self.want.includes_write(), &self.budgets, self.uid)?);
                }
            }
        }
        Ok(slot.as_ref().map(|held| held.attachment.clone()))
    }

    fn writable_attachment(&self) -> Result<Option<Arc<Attachment>>> {
        if self.want.includes_write() { self.attachment() } else { Ok(None) }
    }

    pub fn read(&self, offset: u64, size: usize) -> Result<Data> {
        if self.want.0 & Want::READ.0 == 0 {
            return Err(Error::BadHandle);
        }
        Ok(match self.attachment()? {
            Some(attachment) => Data::Segment(attachment.window(offset, size)),
            None => Data::Bytes(Vec::new()),
        })
    }

    /// Writes what fits; a write that starts at or past the end is ENOSPC.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<usize> {
        let attachment = self.writable_attachment()?;
        let Some(attachment) = attachment else {
            return Err(if self.want.includes_write() { Error::NoSpace } else { Error::BadHandle });
        };
        if data.is_empty() {
            return Ok(0);
        }
        if offset >= attachment.len() {
            return Err(Error::NoSpace);
        }
        Ok(attachment.write_at(offset, data)?)
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
        match self.attachment()? {
            Some(a) if end <= a.len() => Ok(()),
            _ => Err(Error::TooBig),
        }
    }
}
