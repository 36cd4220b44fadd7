//! What the three families share, written once: finding an object by id
//! or by key, its `by-key/` link, listing, removal, and telling an object
//! from a later one that got the same id. The kernel does the same with
//! `struct ipc_ops` (ipc/util.h) behind one `ipcget()`.
//!
//! Each family module (`shm`, `sem`, `msg`) implements [`Family`] with only
//! what differs: its kernel calls, its identity and how its object looks.

use super::access::{Caller, check_owner};
use super::error::{Error, Result};
use super::inode::Node;
use super::names::{parse_canonical_key, parse_id};
use super::types::{Attr, FileKind};
use crate::ipc::{Errno, IpcPerm, Key};

/// One family of System V IPC objects, as the model sees it.
pub trait Family {
    /// Its directory, under the root and under `by-key/`: `shm`, `sem`, `msg`.
    const DIR: &'static str;
    /// What `*ctl(IPC_STAT)` tells about one object.
    type Stat;
    /// What tells one object from a later one with the same id (see
    /// [`Family::is`]): the fields the kernel fixes at creation.
    type Ident: Copy;

    /// `*ctl(*_STAT_ANY)` of id `id`.
    fn stat_any(id: i32) -> std::result::Result<Self::Stat, Errno>;
    /// `*get(key, 0)`: the id of the object with `key`.
    fn get(key: Key) -> std::result::Result<i32, Errno>;
    /// `*ctl(IPC_RMID)`.
    fn remove(id: i32) -> std::result::Result<(), Errno>;
    /// Every object, from one pass over /proc/sysvipc.
    fn list() -> Result<Vec<Self::Stat>>;

    fn id(stat: &Self::Stat) -> i32;
    fn perm(stat: &Self::Stat) -> &IpcPerm;
    fn ident(stat: &Self::Stat) -> Self::Ident;
    fn ident_id(ident: Self::Ident) -> i32;
    /// Whether `stat` describes the object `ident` was taken from.
    fn is(ident: Self::Ident, stat: &Self::Stat) -> bool;

    /// The node of the object itself (`shm/<id>`, `sem/<id>/`, `msg/<id>/`)
    /// and its attributes.
    fn object(ident: Self::Ident) -> Node;
    fn object_attr(stat: &Self::Stat) -> Attr;
    /// The node of its link `by-key/<dir>/0x%08x`.
    fn key_link(ident: Self::Ident) -> Node;
}

/// The object `ident` names, as the kernel has it now; `NotFound` if the id
/// is gone or now names another object.
pub fn current<F: Family>(ident: F::Ident) -> Result<F::Stat> {
    let stat = F::stat_any(F::ident_id(ident)).map_err(Error::from_id_call)?;
    if F::is(ident, &stat) { Ok(stat) } else { Err(Error::NotFound) }
}

/// `<dir>/<id>`: the object with that id.
pub fn lookup<F: Family>(name: &str) -> Result<(Node, Attr)> {
    let id = parse_id(name).ok_or(Error::NotFound)?;
    let stat = F::stat_any(id).map_err(Error::from_id_call)?;
    Ok((F::object(F::ident(&stat)), F::object_attr(&stat)))
}

/// The object with `key` (never IPC_PRIVATE here). `*get` without
/// IPC_CREAT and with no mode bits finds the id by key; no permission is
/// needed for that.
pub fn lookup_by_key<F: Family>(key: Key) -> Result<(Node, Attr)> {
    let stat = by_key::<F>(key)?;
    Ok((F::object(F::ident(&stat)), F::object_attr(&stat)))
}

/// `by-key/<dir>/0x%08x`: the link to the object with that key.
pub fn lookup_key_link<F: Family>(name: &str) -> Result<(Node, Attr)> {
    let key = parse_canonical_key(name).ok_or(Error::NotFound)?;
    let stat = by_key::<F>(key)?;
    Ok((F::key_link(F::ident(&stat)), link_attr::<F>(&stat)))
}

fn by_key<F: Family>(key: Key) -> Result<F::Stat> {
    let id = F::get(key).map_err(Error::from_id_call)?;
    F::stat_any(id).map_err(Error::from_id_call)
}

/// Where the link of `ident` points: `../../<dir>/<id>`.
pub fn link_target<F: Family>(ident: F::Ident) -> Result<Vec<u8>> {
    current::<F>(ident)?;
    Ok(link_text::<F>(F::ident_id(ident)).into_bytes())
}

fn link_text<F: Family>(id: i32) -> String {
    format!("../../{}/{id}", F::DIR)
}

/// A link's attributes: the object's owner and times.
pub fn link_attr<F: Family>(stat: &F::Stat) -> Attr {
    let size = link_text::<F>(F::id(stat)).len() as u64;
    Attr { kind: FileKind::Symlink, size, perm: 0o777, nlink: 1, ..F::object_attr(stat) }
}

/// Attributes of the object or of its link.
pub fn attr<F: Family>(ident: F::Ident, link: bool) -> Result<Attr> {
    let stat = current::<F>(ident)?;
    Ok(if link { link_attr::<F>(&stat) } else { F::object_attr(&stat) })
}

/// `<dir>/`: every object, named by its id.
pub fn list<F: Family>() -> Result<Vec<(String, Node, Attr)>> {
    Ok(F::list()?.iter().map(|s| (F::id(s).to_string(), F::object(F::ident(s)), F::object_attr(s))).collect())
}

/// `by-key/<dir>/`: a link for every object with a key.
pub fn list_key_links<F: Family>() -> Result<Vec<(String, Node, Attr)>> {
    Ok(F::list()?
        .iter()
        .filter(|s| !F::perm(s).key.is_private())
        .map(|s| (F::perm(s).key.to_string(), F::key_link(F::ident(s)), link_attr::<F>(s)))
        .collect())
}

/// `rm <dir>/<id>` or `rmdir`: IPC_RMID, for the owner, the creator or a
/// privileged caller. Returns what the object was.
pub fn remove<F: Family>(name: &str, caller: &Caller) -> Result<F::Ident> {
    let id = parse_id(name).ok_or(Error::NotFound)?;
    let stat = F::stat_any(id).map_err(Error::from_id_call)?;
    check_owner(F::perm(&stat), caller)?;
    F::remove(id).map_err(Error::from_id_call)?;
    Ok(F::ident(&stat))
}

/// The node and attributes of the object just made with id `id`.
pub fn created<F: Family>(id: i32) -> Result<(Node, Attr)> {
    let stat = F::stat_any(id).map_err(Error::from_id_call)?;
    Ok((F::object(F::ident(&stat)), F::object_attr(&stat)))
}
