//! `limits/`: what `lsipc --global` shows, one file per resource, and a
//! `usage` table. A limit backed by a sysctl can be set by writing the file,
//! which writes /proc/sys/kernel as the caller, so the kernel decides who may.
//!
//! It is also the one place the rest of ipcfs reads the kernel's IPC limits from.

use std::time::SystemTime;

use super::access::{Caller, Want};
use super::error::{Error, Result};
use super::inode::Node;
pub use super::inode::{Limit, Resource};
use super::types::{Attr, FileKind, SetAttr};
use crate::ipc::sysctl::{self, Sysctl};
use crate::ipc::{Errno, shm, sysvipc};

/// Where a limit's value lives.
enum Source {
    /// kernel.<name>
    Sysctl(&'static str),
    /// A field of kernel.sem: SEMMSL SEMMNS SEMOPM SEMMNI.
    SemField(usize),
    /// Built into the kernel.
    Fixed(u64),
}

impl Resource {
    pub const ALL: [Resource; 12] = [
        Resource::Msgmni,
        Resource::Msgmax,
        Resource::Msgmnb,
        Resource::Shmmni,
        Resource::Shmall,
        Resource::Shmmax,
        Resource::Shmmin,
        Resource::Semmni,
        Resource::Semmns,
        Resource::Semmsl,
        Resource::Semopm,
        Resource::Semvmx,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Resource::Msgmni => "msgmni",
            Resource::Msgmax => "msgmax",
            Resource::Msgmnb => "msgmnb",
            Resource::Shmmni => "shmmni",
            Resource::Shmall => "shmall",
            Resource::Shmmax => "shmmax",
            Resource::Shmmin => "shmmin",
            Resource::Semmni => "semmni",
            Resource::Semmns => "semmns",
            Resource::Semmsl => "semmsl",
            Resource::Semopm => "semopm",
            Resource::Semvmx => "semvmx",
        }
    }

    /// lsipc's description, word for word.
    pub fn description(self) -> &'static str {
        match self {
            Resource::Msgmni => "Number of message queues",
            Resource::Msgmax => "Max size of message (bytes)",
            Resource::Msgmnb => "Default max size of queue (bytes)",
            Resource::Shmmni => "Shared memory segments",
            Resource::Shmall => "Shared memory pages",
            Resource::Shmmax => "Max size of shared memory segment (bytes)",
            Resource::Shmmin => "Min size of shared memory segment (bytes)",
            Resource::Semmni => "Number of semaphore identifiers",
            Resource::Semmns => "Total number of semaphores",
            Resource::Semmsl => "Max semaphores per semaphore set.",
            Resource::Semopm => "Max number of operations per semop(2)",
            Resource::Semvmx => "Semaphore max value",
        }
    }

    fn source(self) -> Source {
        match self {
            Resource::Msgmni => Source::Sysctl("msgmni"),
            Resource::Msgmax => Source::Sysctl("msgmax"),
            Resource::Msgmnb => Source::Sysctl("msgmnb"),
            Resource::Shmmni => Source::Sysctl("shmmni"),
            Resource::Shmall => Source::Sysctl("shmall"),
            Resource::Shmmax => Source::Sysctl("shmmax"),
            Resource::Shmmin => Source::Fixed(1),
            Resource::Semmsl => Source::SemField(0),
            Resource::Semmns => Source::SemField(1),
            Resource::Semopm => Source::SemField(2),
            Resource::Semmni => Source::SemField(3),
            Resource::Semvmx => Source::Fixed(32767),
        }
    }

    fn settable(self) -> bool {
        !matches!(self.source(), Source::Fixed(_))
    }

    /// The limit now.
    pub fn value(self) -> Result<u64> {
        match self.source() {
            Source::Sysctl(name) => parse_number(&read_sysctl(name)?),
            Source::SemField(field) => {
                let fields = sem_fields()?;
                Ok(fields[field])
            }
            Source::Fixed(value) => Ok(value),
        }
    }

    /// How much of it is in use, for the limits lsipc shows a USED for.
    pub fn used(self) -> Result<Option<u64>> {
        let count = |n: usize| Ok(Some(n as u64));
        match self {
            Resource::Msgmni => count(sysvipc::list_msg().map_err(Error::listing)?.len()),
            Resource::Shmmni => count(sysvipc::list_shm().map_err(Error::listing)?.len()),
            Resource::Shmall => Ok(Some(shm::usage().map_err(Error::kernel("shmctl(SHM_INFO)"))?.total_pages)),
            Resource::Semmni => count(sysvipc::list_sem().map_err(Error::listing)?.len()),
            Resource::Semmns => Ok(Some(sysvipc::list_sem().map_err(Error::listing)?.iter().map(|s| s.nsems).sum())),
            _ => Ok(None),
        }
    }
}

fn read_sysctl(name: &'static str) -> Result<String> {
    Sysctl::Kernel(name).read().map_err(Error::kernel("reading /proc/sys/kernel"))
}

fn parse_number(text: &str) -> Result<u64> {
    text.trim().parse().map_err(|_| Error::Invalid)
}

/// kernel.sem: SEMMSL SEMMNS SEMOPM SEMMNI.
fn sem_fields() -> Result<[u64; 4]> {
    sysctl::parse_sem(&read_sysctl("sem")?).ok_or(Error::Invalid)
}

// ---- names and attributes ----

pub fn list() -> Vec<(String, Node)> {
    let mut files: Vec<(String, Node)> =
        Resource::ALL.iter().map(|r| (r.name().to_string(), Node::Limit(Limit::Resource(*r)))).collect();
    files.push(("usage".into(), Node::Limit(Limit::Usage)));
    files
}

pub fn lookup(name: &str) -> Result<Node> {
    list().into_iter().find(|(n, _)| n == name).map(|(_, node)| node).ok_or(Error::NotFound)
}

static STARTED: std::sync::LazyLock<SystemTime> = std::sync::LazyLock::new(SystemTime::now);

pub fn attr(limit: Limit) -> Result<Attr> {
    let perm = match limit {
        Limit::Resource(r) if r.settable() => 0o644,
        _ => 0o444,
    };
    // Not "now": tar would see every limit change while it reads it. The
    // kernel keeps no time for a sysctl; the daemon's start stands for it.
    let now = *STARTED;
    Ok(Attr::made(FileKind::RegularFile, text(limit)?.len() as u64, perm, now))
}

/// Anyone reads; who may write is the kernel's to say: opening the sysctl
/// for writing as the caller asks it (root of the user namespace that owns
/// the IPC namespace, as /proc/sys decides). Nothing here is executable.
pub fn access(limit: Limit, want: Want, caller: &Caller) -> Result<()> {
    if want.includes_search() {
        return Err(Error::AccessDenied);
    }
    if !want.includes_write() {
        return Ok(());
    }
    let Limit::Resource(resource) = limit else { return Err(Error::AccessDenied) };
    let file = match resource.source() {
        Source::Sysctl(name) => Sysctl::Kernel(name),
        Source::SemField(_) => Sysctl::Kernel("sem"),
        Source::Fixed(_) => return Err(Error::AccessDenied),
    };
    caller.act(|| file.open_for_writing())?.map_err(refusal)?;
    Ok(())
}

/// Only the truncation of `echo N > file` (O_TRUNC) is accepted, from whoever
/// may write the file.
pub fn setattr(limit: Limit, change: SetAttr, caller: &Caller) -> Result<Attr> {
    if change == SetAttr::default() {
        return attr(limit);
    }
    if change != (SetAttr { size: Some(0), ..SetAttr::default() }) {
        return Err(Error::NotPermitted);
    }
    access(limit, Want::WRITE, caller)?;
    attr(limit)
}

pub fn xattr_names(limit: Limit) -> Result<Vec<&'static str>> {
    match limit {
        Limit::Resource(r) if r.used()?.is_some() => Ok(vec!["user.ipc.description", "user.ipc.used"]),
        Limit::Resource(_) => Ok(vec!["user.ipc.description"]),
        Limit::Usage => Ok(Vec::new()),
    }
}

pub fn xattr(limit: Limit, name: &str) -> Result<String> {
    match (limit, name) {
        (Limit::Resource(r), "user.ipc.description") => Ok(r.description().into()),
        (Limit::Resource(r), "user.ipc.used") => r.used()?.map(|u| u.to_string()).ok_or(Error::NoAttribute),
        _ => Err(Error::NoAttribute),
    }
}

// ---- reading and writing ----

/// What the file reads as: the value, or the usage table.
pub fn text(limit: Limit) -> Result<String> {
    match limit {
        Limit::Resource(r) => Ok(format!("{}\n", r.value()?)),
        Limit::Usage => usage_table(),
    }
}

fn usage_table() -> Result<String> {
    let mut out = format!("{:<8} {:<42} {:>20} {:>6} {:>7}\n", "RESOURCE", "DESCRIPTION", "LIMIT", "USED", "USE%");
    for r in Resource::ALL {
        let (limit, used) = (r.value()?, r.used()?);
        let (used, percent) = match used {
            Some(u) => (u.to_string(), format!("{:.2}%", u as f64 * 100.0 / limit.max(1) as f64)),
            None => ("-".into(), "-".into()),
        };
        let name = r.name().to_ascii_uppercase();
        out += &format!("{name:<8} {:<42} {limit:>20} {used:>6} {percent:>7}\n", r.description());
    }
    Ok(out)
}

/// Sets a limit from a decimal number, writing /proc/sys/kernel as the caller.
pub fn write(limit: Limit, data: &[u8], caller: &Caller) -> Result<usize> {
    let Limit::Resource(resource) = limit else { return Err(Error::AccessDenied) };
    let text = std::str::from_utf8(data).map_err(|_| Error::Invalid)?;
    let value: u64 = text.trim().parse().map_err(|_| Error::Invalid)?;
    // A kernel.sem field is set by writing all four back: one writer at a
    // time here (the kernel has no way to set one field alone, so a writer
    // outside ipcfs can still race this one).
    static SEM_WRITES: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = SEM_WRITES.lock().unwrap_or_else(|p| p.into_inner());
    let (name, new) = match resource.source() {
        Source::Sysctl(name) => (name, value.to_string()),
        Source::SemField(field) => {
            let mut fields = sem_fields()?;
            fields[field] = value;
            ("sem", sysctl::format_sem(fields))
        }
        Source::Fixed(_) => return Err(Error::AccessDenied),
    };
    caller.act(|| Sysctl::Kernel(name).write(&new))?.map_err(refusal)?;
    Ok(data.len())
}

/// What the kernel's answer to a sysctl write means: who may not, or a
/// value it does not take, are part of normal use.
fn refusal(e: Errno) -> Error {
    match e {
        Errno::EACCES => Error::AccessDenied,
        Errno::EPERM => Error::NotPermitted,
        Errno::EINVAL => Error::Invalid,
        other => Error::kernel("writing /proc/sys/kernel")(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_has_a_file_and_usage_comes_last() {
        let names: Vec<String> = list().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 13);
        assert_eq!(names.last().map(String::as_str), Some("usage"));
        for r in Resource::ALL {
            assert_eq!(lookup(r.name()).unwrap(), Node::Limit(Limit::Resource(r)));
        }
        assert_eq!(lookup("nope"), Err(Error::NotFound));
    }

    #[test]
    fn built_in_limits_are_read_only_for_everyone_and_nothing_executes() {
        let root = Caller::new(0, 0, 0);
        assert_eq!(access(Limit::Resource(Resource::Semvmx), Want::WRITE, &root), Err(Error::AccessDenied));
        assert_eq!(access(Limit::Usage, Want::WRITE, &root), Err(Error::AccessDenied));
        assert_eq!(access(Limit::Resource(Resource::Shmmni), Want::READ, &Caller::new(1000, 1000, 0)), Ok(()));
        assert_eq!(access(Limit::Resource(Resource::Shmmni), Want::SEARCH, &root), Err(Error::AccessDenied));
    }
}
