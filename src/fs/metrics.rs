//! `metrics/ipc.prom`: every object and limit of the namespace in the
//! Prometheus text exposition format, for node_exporter's textfile
//! collector (`--collector.textfile.directory=MOUNT/metrics`).
//!
//! Generated fresh at each open, from one pass over /proc/sysvipc (what
//! everyone may read there anyway), the limits of `limits/`, and, for the
//! sets the caller may read, their waiters (GETNCNT and GETZCNT need read
//! permission, as they do for the caller's own semctl). The open file reads
//! that snapshot. Families and their labels: docs/ipcfs.md, "metrics/".

use std::fmt::Write as _;
use std::time::SystemTime;

use super::access::{Caller, Want, check_access};
use super::attr::kernel_time;
use super::error::{Error, Result};
use super::inode::Resource;
use super::types::{Attr, FileKind};
use crate::ipc::sem::{self, Query, SemStat};
use crate::ipc::{IpcPerm, Key, sysvipc};

/// The one file of `metrics/`.
pub const FILE: &str = "ipc.prom";

/// The text, as `caller` may see it. `namespace`: the IPC namespace's inode,
/// labelled on every object's sample when the mount shows several (`-A`).
pub fn text(caller: &Caller, namespace: Option<u64>) -> Result<String> {
    Ok(snapshot(caller, namespace)?.0)
}

/// The text, and the latest time the kernel recorded a change of any object
/// in it (0 if none): the file's mtime, so that `tar` and `rsync` see it
/// change exactly when the objects do.
fn snapshot(caller: &Caller, namespace: Option<u64>) -> Result<(String, i64)> {
    let shm = sysvipc::list_shm().map_err(Error::listing)?;
    let sem = sysvipc::list_sem().map_err(Error::listing)?;
    let msg = sysvipc::list_msg().map_err(Error::listing)?;
    let latest = [
        shm.iter().flat_map(|s| [s.atime, s.dtime, s.ctime]).max(),
        sem.iter().flat_map(|s| [s.otime, s.ctime]).max(),
        msg.iter().flat_map(|q| [q.stime, q.rtime, q.ctime]).max(),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0);
    let mut out = Out { text: String::new(), namespace };

    out.family("ipc_shm_size_bytes", "Size of the shared memory segment in bytes (shm_segsz).");
    shm.iter().for_each(|s| out.object("ipc_shm_size_bytes", s.id.0, &s.perm, s.segsz));
    out.family("ipc_shm_attached", "Processes attached to the shared memory segment (shm_nattch).");
    shm.iter().for_each(|s| out.object("ipc_shm_attached", s.id.0, &s.perm, s.nattch));

    out.family("ipc_sem_semaphores", "Semaphores in the set (sem_nsems).");
    sem.iter().for_each(|s| out.object("ipc_sem_semaphores", s.id.0, &s.perm, s.nsems));
    out.family(
        "ipc_sem_waiters",
        "Processes waiting on the set's semaphores, for sets the reader may read (semncnt + semzcnt).",
    );
    for set in sem.iter().filter(|s| check_access(&s.perm, caller, Want::READ).is_ok()) {
        if let Some(waiters) = waiters(set) {
            out.object("ipc_sem_waiters", set.id.0, &set.perm, waiters);
        }
    }

    out.family("ipc_msg_messages", "Messages in the queue (msg_qnum).");
    msg.iter().for_each(|q| out.object("ipc_msg_messages", q.id.0, &q.perm, q.qnum));
    out.family("ipc_msg_bytes", "Bytes of the messages in the queue (msg_cbytes).");
    msg.iter().for_each(|q| out.object("ipc_msg_bytes", q.id.0, &q.perm, q.cbytes));
    out.family("ipc_msg_max_bytes", "Most bytes the queue may hold (msg_qbytes).");
    // Not in /proc/sysvipc/msg: one MSG_STAT_ANY per queue (a queue gone
    // meanwhile has no sample).
    for q in &msg {
        if let Ok(now) = crate::ipc::msg::stat_any(q.id) {
            out.object("ipc_msg_max_bytes", q.id.0, &q.perm, now.qbytes);
        }
    }

    out.family("ipc_limit", "The IPC namespace's limit, as limits/<resource> shows it (kernel.*).");
    for resource in Resource::ALL {
        out.limit("ipc_limit", resource, resource.value()?);
    }
    out.family("ipc_limit_used", "How much of the limit is in use, where the kernel counts it (lsipc --global USED).");
    // From the same pass as the objects (Resource::used reads the tables again).
    let pages = crate::ipc::shm::usage().map_err(Error::kernel("shmctl(SHM_INFO)"))?.total_pages;
    for (resource, used) in [
        (Resource::Msgmni, msg.len() as u64),
        (Resource::Shmmni, shm.len() as u64),
        (Resource::Shmall, pages),
        (Resource::Semmni, sem.len() as u64),
        (Resource::Semmns, sem.iter().map(|s| s.nsems).sum()),
    ] {
        out.limit("ipc_limit_used", resource, used);
    }
    Ok((out.text, latest))
}

/// The waiters of a set: None if it went meanwhile.
fn waiters(set: &SemStat) -> Option<u64> {
    let mut total = 0u64;
    for num in 0..u16::try_from(set.nsems).ok()? {
        for what in [Query::WaitingToTake, Query::WaitingForZero] {
            total += u64::try_from(sem::query(set.id, num, what).ok()?).unwrap_or(0);
        }
    }
    Some(total)
}

struct Out {
    text: String,
    namespace: Option<u64>,
}

impl Out {
    fn family(&mut self, name: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} gauge");
    }

    fn object(&mut self, name: &str, id: i32, perm: &IpcPerm, value: u64) {
        let namespace = self.namespace.map(|ns| format!("namespace=\"{ns}\",")).unwrap_or_default();
        let key = Key(perm.key.0);
        let _ = writeln!(self.text, "{name}{{{namespace}id=\"{id}\",key=\"{key}\",owner=\"{}\"}} {value}", perm.uid);
    }

    fn limit(&mut self, name: &str, resource: Resource, value: u64) {
        let _ = writeln!(self.text, "{name}{{resource=\"{}\"}} {value}", resource.name());
    }
}

/// `metrics/ipc.prom`: read-only for everyone, its size that of a text made
/// now (so that cp and tar read all of it), dated by the latest change of an
/// object (`since`, the mount, when the kernel recorded none). A limit
/// changed with sysctl changes no date: the kernel keeps none for it.
pub fn attr(caller: &Caller, namespace: Option<u64>, since: SystemTime) -> Result<Attr> {
    let (text, latest) = snapshot(caller, namespace)?;
    let time = if latest > 0 { kernel_time(latest, latest) } else { since };
    Ok(Attr::made(FileKind::RegularFile, text.len() as u64, 0o444, time))
}

/// Nobody writes it.
pub fn access(want: Want) -> Result<()> {
    if want.includes_write() || want.includes_search() { Err(Error::AccessDenied) } else { Ok(()) }
}
