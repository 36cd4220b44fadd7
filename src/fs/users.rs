//! `users/`: which processes use each object now.
//!
//! ```text
//! users/shm/<shmid>/<pid> -> /proc/<pid>   attached (shmat), or the segment's file open through the mount
//! users/sem/<semid>/<pid> -> /proc/<pid>   blocked in semop on the set, or waiting on it through the mount
//! users/msg/<msqid>/<pid> -> /proc/<pid>   blocked in msgrcv or msgsnd on the queue, or waiting through the mount
//! ```
//! An object nobody uses has no directory. Everything is found at each
//! listing or lookup: the processes of the served IPC namespace from /proc
//! (their SysV attachments, the IPC call each thread is blocked in), and the
//! callers the daemon serves (open segment files, waits), listed as
//! themselves, never as the daemon. O(processes) per listing. A caller sees
//! only the processes whose /proc directory it may see (hidepid).

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use super::access::Caller;
use super::error::{Error, Result};
use super::inode::{Node, ObjectKind, Role, Use};
use super::names::parse_number;
use super::ns_tree::process_link_attr;
use super::types::{Attr, FileKind};
use crate::ipc::ns::{self, Kind};
use crate::ipc::proc::{Process, ProcessDir};
use crate::ipc::users::{self, Blocked};

/// The mount's own files a process may have mapped: the mount's device, and
/// the segment an inode number of it stands for.
pub struct Mapped<'a> {
    pub device: u64,
    pub segment: &'a dyn Fn(u64) -> Option<i32>,
}

/// Who uses what: object id → process → how.
pub type Users = BTreeMap<i32, BTreeMap<u32, BTreeSet<Role>>>;

/// The users of every object of `family`, as `caller` may see them;
/// `known`: the uses of callers through the mount.
pub fn scan(family: ObjectKind, known: &[Use], mapped: Option<&Mapped>, caller: &Caller) -> Users {
    let daemon = std::process::id();
    let mut found = Users::new();
    let mut add = |id: i32, pid: u32, role: Role| {
        if pid != daemon {
            found.entry(id).or_default().entry(pid).or_default().insert(role);
        }
    };
    for pid in served_processes() {
        match family {
            ObjectKind::Shm => {
                let Ok(maps) = users::maps(pid) else { continue };
                users::parse_maps(&maps).into_iter().for_each(|id| add(id, pid, Role::Attached));
                if let Some(mapped) = mapped {
                    for ino in users::parse_mapped_inodes(&maps, mapped.device) {
                        if let Some(id) = (mapped.segment)(ino) {
                            add(id, pid, Role::Mapped);
                        }
                    }
                }
            }
            ObjectKind::Sem | ObjectKind::Msg => {
                for blocked in users::blocked_calls(pid) {
                    match (family, blocked) {
                        (ObjectKind::Sem, Blocked::Semop(id)) => add(id, pid, Role::Waiting),
                        (ObjectKind::Msg, Blocked::Msgrcv(id)) => add(id, pid, Role::WaitingReceive),
                        (ObjectKind::Msg, Blocked::Msgsnd(id)) => add(id, pid, Role::WaitingSend),
                        _ => {}
                    }
                }
            }
        }
    }
    for known in known.iter().filter(|u| u.family == family) {
        if let Some(pid) = users::process_of(known.tid) {
            add(known.id, pid, known.role);
        }
    }
    // A caller through the mount waits in its write(2), the daemon's thread
    // in semop: the precise role replaces the bare "waiting" of /proc.
    for processes in found.values_mut() {
        for roles in processes.values_mut() {
            if roles.len() > 1 {
                roles.remove(&Role::Waiting);
            }
        }
    }
    visible(found, caller)
}

/// The processes of the IPC namespace the calling thread serves.
fn served_processes() -> Vec<u32> {
    let Ok(own) = ns::current_inode(Kind::Ipc) else { return Vec::new() };
    ns::processes_by_namespace(Kind::Ipc).and_then(|mut by_ns| by_ns.remove(&own)).unwrap_or_default()
}

/// Only the processes whose /proc directory `caller` may see.
fn visible(found: Users, caller: &Caller) -> Users {
    let pids: BTreeSet<u32> = found.values().flat_map(|p| p.keys().copied()).collect();
    let seen: BTreeSet<u32> = caller
        .act(|| pids.into_iter().filter(|&pid| ProcessDir::read(Process::Pid(pid)).is_ok()).collect())
        .unwrap_or_default();
    found
        .into_iter()
        .filter_map(|(id, processes)| {
            let processes: BTreeMap<_, _> = processes.into_iter().filter(|(pid, _)| seen.contains(pid)).collect();
            (!processes.is_empty()).then_some((id, processes))
        })
        .collect()
}

/// `users/<family>/`: an entry per object in use.
pub fn list(family: ObjectKind, users: &Users) -> Result<Vec<(String, Node, Attr)>> {
    Ok(users.keys().map(|&id| (id.to_string(), Node::UsedObject(family, id), dir_attr())).collect())
}

/// `users/<family>/<id>/`: a link per process.
pub fn list_object(family: ObjectKind, id: i32, users: &Users) -> Result<Vec<(String, Node, Attr)>> {
    let processes = users.get(&id).ok_or(Error::NotFound)?;
    // A process gone since the scan is left out.
    let link = |pid: u32| link_attr(pid).ok().map(|attr| (pid.to_string(), Node::User { family, id, pid }, attr));
    Ok(processes.keys().filter_map(|&pid| link(pid)).collect())
}

/// `users/<family>/<id>`.
pub fn lookup(family: ObjectKind, name: &str, users: &Users) -> Result<(Node, Attr)> {
    let id: i32 = number(name)?;
    users.get(&id).ok_or(Error::NotFound)?;
    Ok((Node::UsedObject(family, id), dir_attr()))
}

/// `users/<family>/<id>/<pid>`.
pub fn lookup_user(family: ObjectKind, id: i32, name: &str, users: &Users) -> Result<(Node, Attr)> {
    let pid: u32 = number(name)?;
    users.get(&id).and_then(|p| p.get(&pid)).ok_or(Error::NotFound)?;
    Ok((Node::User { family, id, pid }, link_attr(pid)?))
}

/// A name of `users/` as a number of type `T` (an id, a pid).
fn number<T: TryFrom<u64>>(name: &str) -> Result<T> {
    parse_number(name).and_then(|n| T::try_from(n).ok()).ok_or(Error::NotFound)
}

/// An object's directory: anyone may list it; dated now (who uses an
/// object is a fact of this moment).
pub fn dir_attr() -> Attr {
    Attr::made(FileKind::Directory, 0, 0o555, SystemTime::now())
}

fn link_text(pid: u32) -> String {
    users::process_path(pid)
}

/// A process's link: owned by the process's user, dated when it started.
pub fn link_attr(pid: u32) -> Result<Attr> {
    process_link_attr(Process::Pid(pid), link_text(pid).len())
}

pub fn link_target(pid: u32) -> Vec<u8> {
    link_text(pid).into_bytes()
}

/// The extended attribute of an object's directory. (The kernel allows no
/// `user.` attributes on symbolic links, so the links carry none.)
pub const XATTRS: [&str; 1] = ["user.ipc.users"];

/// `user.ipc.users` of `users/<family>/<id>/`: a line per process, `PID
/// ROLE[,ROLE] COMMAND`, for scripts (`getfattr --only-values`).
pub fn xattr(id: i32, name: &str, users: &Users) -> Result<String> {
    if name != XATTRS[0] {
        return Err(Error::NoAttribute);
    }
    let processes = users.get(&id).ok_or(Error::NotFound)?;
    Ok(processes
        .iter()
        .map(|(pid, roles)| {
            let roles: Vec<&str> = roles.iter().map(|r| r.name()).collect();
            let command = users::command(*pid).unwrap_or_default();
            format!("{pid} {} {command}\n", roles.join(","))
        })
        .collect())
}
