//! `ns/` (with `-o all_namespaces`): every IPC namespace on the host, as
//! the router (`crate::router`) gives them.
//!
//! ```text
//! ns/<inode>/            shm/ sem/ msg/ by-key/ limits/ of that namespace
//! ns/<own inode> -> ..   the namespace the mount's root shows
//! ns/by-pid/<pid> -> ../<inode>
//! ns/by-name/<host name> -> ../<inode>   for namespaces whose processes have a host name of their own
//! ```
//! The model renders the directories and links from what the router says
//! (which namespaces there are, their roots' attributes, their host names)
//! and from /proc (which process is in which namespace, as the caller may
//! see it). Which thread serves another namespace, and who may enter it,
//! is the router's.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::access::Caller;
use super::attr::BLOCK_SIZE;
use super::error::{Error, Result};
use super::inode::Node;
use super::names::parse_number;
use super::types::{Attr, FileKind};
use crate::ipc::ns::{self, Kind};
use crate::ipc::proc::{Process, ProcessDir};

/// An entry of `ns/`: the link to the mount's own namespace, or the root of
/// another namespace's tree (whose inode number belongs to that tree).
pub enum NsEntry {
    Own(Node),
    Root,
}

/// The other IPC namespaces, as the router serves them.
pub trait NamespaceMembers: Send + Sync {
    /// The namespace the mount's root shows.
    fn own(&self) -> u64;
    /// Every other namespace a process is in now, with its root's attributes.
    fn members(&self) -> Vec<(u64, Attr)>;
    /// The root's attributes of namespace `ns` (served from now on if new);
    /// None if no process is in it.
    fn member(&self, ns: u64) -> Option<Attr>;
    /// The host names that name exactly one namespace, among those whose
    /// processes have a host name of their own.
    fn host_names(&self) -> Vec<(String, u64)>;
    /// Unmount: every namespace's model goes.
    fn retire_all(&self);
    /// Ends every namespace's waits (the mount is going away).
    fn stop_waits(&self);
}

/// `ns/`: the mount's own namespace as a link, every other one as the root
/// of its tree (which only those who may enter it can use).
pub fn list(members: &dyn NamespaceMembers) -> Vec<(String, NsEntry, Attr)> {
    let own =
        link_attr(&Node::OwnNamespace).map(|attr| (members.own().to_string(), NsEntry::Own(Node::OwnNamespace), attr));
    let others = members.members().into_iter().map(|(ns, attr)| (ns.to_string(), NsEntry::Root, attr));
    own.into_iter().chain(others).collect()
}

/// `ns/<inode>`.
pub fn lookup(members: &dyn NamespaceMembers, name: &str) -> Result<(NsEntry, Attr)> {
    let ns = parse_number(name).ok_or(Error::NotFound)?;
    if ns == members.own() {
        return Ok((NsEntry::Own(Node::OwnNamespace), link_attr(&Node::OwnNamespace)?));
    }
    Ok((NsEntry::Root, members.member(ns).ok_or(Error::NotFound)?))
}

/// `ns/by-name/`: only the namespaces `caller` may see.
pub fn list_names(members: &dyn NamespaceMembers, caller: &Caller) -> Vec<(String, Node, Attr)> {
    let seen = seen_by(caller);
    members
        .host_names()
        .into_iter()
        .filter(|(_, ns)| seen.contains_key(ns))
        .filter_map(|(name, ns)| {
            let node = Node::NameLink { name: name.clone(), ns };
            let attr = link_attr(&node).ok()?;
            Some((name, node, attr))
        })
        .collect()
}

/// `ns/by-name/<host name>`.
pub fn lookup_name(members: &dyn NamespaceMembers, name: &str, caller: &Caller) -> Result<(Node, Attr)> {
    let (_, node, attr) = list_names(members, caller).into_iter().find(|(n, _, _)| n == name).ok_or(Error::NotFound)?;
    Ok((node, attr))
}

/// `ns/by-pid/`: every process whose namespace `caller` may see, linked to it.
pub fn list_processes(caller: &Caller) -> Vec<(String, Node, Attr)> {
    let mut pids: Vec<u32> = seen_by(caller).into_values().flatten().collect();
    pids.sort_unstable();
    pids.into_iter().filter_map(|pid| Some((pid.to_string(), Node::PidLink(pid), pid_link_attr(pid).ok()?))).collect()
}

/// `ns/by-pid/<pid>`, for a caller who may see the process's namespace
/// (EACCES for a process it may not, as /proc/PID/ns/ipc would answer).
pub fn lookup_process(name: &str, caller: &Caller) -> Result<(Node, Attr)> {
    let pid = parse_number(name).and_then(|n| u32::try_from(n).ok()).ok_or(Error::NotFound)?;
    if caller.act(|| namespace_of(pid))?.is_none() {
        return Err(if namespace_of(pid).is_some() { Error::AccessDenied } else { Error::NotFound });
    }
    Ok((Node::PidLink(pid), pid_link_attr(pid)?))
}

pub fn link_target(node: &Node, caller: &Caller) -> Result<Vec<u8>> {
    match node {
        Node::OwnNamespace => Ok(b"..".to_vec()),
        Node::PidLink(pid) => Ok(caller.act(|| pid_link_target(*pid))??.into_bytes()),
        Node::NameLink { ns, .. } => Ok(format!("../{ns}").into_bytes()),
        _ => Err(Error::Invalid),
    }
}

pub fn link_attr(node: &Node) -> Result<Attr> {
    match node {
        Node::OwnNamespace => process_link_attr(Process::Daemon, 2),
        Node::PidLink(pid) => pid_link_attr(*pid),
        Node::NameLink { ns, .. } => process_link_attr(Process::Daemon, format!("../{ns}").len()),
        _ => Err(Error::Invalid),
    }
}

fn pid_link_target(pid: u32) -> Result<String> {
    namespace_of(pid).map(|ns| format!("../{ns}")).ok_or(Error::NotFound)
}

/// A process's link: owned by the process's user, dated when it started.
fn pid_link_attr(pid: u32) -> Result<Attr> {
    process_link_attr(Process::Pid(pid), pid_link_target(pid)?.len())
}

/// A link `len` bytes long owned by `process`'s user and dated when it
/// started (the daemon's for the links it makes up).
pub fn process_link_attr(process: Process, len: usize) -> Result<Attr> {
    let process = ProcessDir::read(process).map_err(|_| Error::NotFound)?;
    let time = process.modified.unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(Attr {
        ino: 0,
        kind: FileKind::Symlink,
        size: len as u64,
        perm: 0o777,
        nlink: 1,
        uid: process.uid,
        gid: process.gid,
        atime: time,
        mtime: time,
        ctime: time,
        blksize: BLOCK_SIZE,
        stored: true,
    })
}

/// The namespaces and processes `caller` may see: those whose
/// /proc/PID/ns/ipc it may read (the kernel's ptrace read rule, decided by
/// reading as the caller). Nothing when that cannot be done.
fn seen_by(caller: &Caller) -> BTreeMap<u64, Vec<u32>> {
    caller.act(|| ns::processes_by_namespace(Kind::Ipc)).ok().flatten().unwrap_or_default()
}

/// The IPC namespace process `pid` is in now.
fn namespace_of(pid: u32) -> Option<u64> {
    ns::namespace_of(pid, Kind::Ipc)
}
