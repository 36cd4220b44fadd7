//! The reference model: what the documentation says each operation gives
//! and leaves, given the objects of the moment ([`Objects`]) and the
//! kernel's state as the model holds it ([`Kernel`]).

use super::calls::*;
use super::ops::*;
use super::*;

use std::fs;
use std::time::{Duration, Instant};

use ipcfs::ipc::msg::{self, MsqId};
use ipcfs::ipc::sem::{self, SEMVMX, SemId};
use ipcfs::ipc::{Errno, sysvipc};

/// A decimal without sign or leading zeros, up to `max`.
pub(super) fn canonical(name: &[u8], max: u128) -> Option<u128> {
    let digits = !name.is_empty() && name.len() <= 38 && name.iter().all(u8::is_ascii_digit);
    if !digits || (name.len() > 1 && name[0] == b'0') {
        return None;
    }
    std::str::from_utf8(name).ok()?.parse().ok().filter(|&n| n <= max)
}

/// A creation name as the docs define it (KEY, KEY:N in sem/, `private`),
/// leniently: anything that might create an object.
pub(super) fn might_create(place: Place, name: &[u8]) -> bool {
    let Ok(name) = std::str::from_utf8(name) else { return false };
    let key = |k: &str| {
        k == "private"
            || k.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("0x"))
                && (3..=10).contains(&k.len())
                && k[2..].bytes().all(|b| b.is_ascii_hexdigit())
    };
    match (place, name.split_once(':')) {
        (Place::Sem, Some((k, n))) => key(k) && !n.is_empty(),
        (Place::Sem | Place::Msg, _) => key(name),
        _ => false,
    }
}

/// The objects of one case of the moment, one per family: those the
/// paths of a step name. A family's object may have been removed since.
#[derive(Clone, Copy)]
pub(super) struct Objects {
    pub(super) seg: ShmId,
    pub(super) set: SemId,
    pub(super) queue: MsqId,
}

impl Objects {
    pub(super) fn place(self, place: Place) -> String {
        match place {
            Place::Root => String::new(),
            Place::Shm => "shm".into(),
            Place::Sem => "sem".into(),
            Place::Msg => "msg".into(),
            Place::ByKey => "by-key".into(),
            Place::ByKeyShm => "by-key/shm".into(),
            Place::Set => format!("sem/{}", self.set.0),
            Place::Queue => format!("msg/{}", self.queue.0),
            Place::RecvDir => format!("msg/{}/.recv", self.queue.0),
            Place::WaitDir => format!("msg/{}/.wait", self.queue.0),
        }
    }

    pub(super) fn node(self, node: Node) -> String {
        match node {
            Node::Root => String::new(),
            Node::ShmDir => "shm".into(),
            Node::Segment => format!("shm/{}", self.seg.0),
            Node::Set => format!("sem/{}", self.set.0),
            Node::Semaphore(n) => format!("sem/{}/{n}", self.set.0),
            Node::Queue => format!("msg/{}", self.queue.0),
            Node::QueueFile(f) => format!("msg/{}/{}", self.queue.0, f.name()),
            Node::RecvDir => format!("msg/{}/.recv", self.queue.0),
            Node::WaitDir => format!("msg/{}/.wait", self.queue.0),
        }
    }

    /// The family's object: the one paths and new kept files name.
    pub(super) fn id(self, family: Family) -> i32 {
        match family {
            Family::Shm => self.seg.0,
            Family::Sem => self.set.0,
            Family::Msg => self.queue.0,
        }
    }

    pub(super) fn set_id(&mut self, family: Family, id: i32) {
        match family {
            Family::Shm => self.seg = ShmId(id),
            Family::Sem => self.set = SemId(id),
            Family::Msg => self.queue = MsqId(id),
        }
    }

    /// The family, object and path of a file to keep open.
    pub(super) fn held(self, file: HeldFile) -> (Family, i32, String) {
        match file {
            HeldFile::Segment => (Family::Shm, self.seg.0, self.node(Node::Segment)),
            HeldFile::Semaphore(n) => (Family::Sem, self.set.0, self.node(Node::Semaphore(n))),
            HeldFile::Queue(f) => (Family::Msg, self.queue.0, self.node(Node::QueueFile(f))),
        }
    }

    /// Whether the directory exists: the family's set or queue may have
    /// been removed.
    pub(super) fn place_exists(self, k: &Kernel, place: Place) -> bool {
        match place {
            Place::Set => k.sets.contains_key(&self.set.0),
            Place::Queue | Place::RecvDir | Place::WaitDir => k.queues.contains_key(&self.queue.0),
            _ => true,
        }
    }

    pub(super) fn node_exists(self, k: &Kernel, node: Node) -> bool {
        match node {
            Node::Root | Node::ShmDir => true,
            Node::Segment => k.segments.contains_key(&self.seg.0),
            Node::Set => k.sets.contains_key(&self.set.0),
            Node::Semaphore(n) => k.sets.get(&self.set.0).is_some_and(|s| usize::from(n) < s.values.len()),
            Node::Queue | Node::QueueFile(_) | Node::RecvDir | Node::WaitDir => k.queues.contains_key(&self.queue.0),
        }
    }

    /// Whether `name` in `place` (which exists) names something now, per
    /// the docs and the objects of `k`.
    pub(super) fn resolves(self, k: &Kernel, place: Place, name: &[u8]) -> bool {
        if name == b"." || name == b".." {
            return true;
        }
        let id = || canonical(name, i32::MAX as u128).map(|n| n as i32);
        let mtype = || name == b"any" || canonical(name, i64::MAX as u128).is_some_and(|t| t >= 1);
        match place {
            Place::Root => [&b"shm"[..], b"sem", b"msg", b"by-key"].contains(&name),
            Place::ByKey => [&b"shm"[..], b"sem", b"msg"].contains(&name),
            Place::Shm => id().is_some_and(|id| k.segments.contains_key(&id)),
            Place::Sem => id().is_some_and(|id| k.sets.contains_key(&id)),
            Place::Msg => id().is_some_and(|id| k.queues.contains_key(&id)),
            // No random name spells a key a case makes (KEY_MADE + n).
            Place::ByKeyShm => false,
            Place::Set => {
                let nsems = k.sets.get(&self.set.0).map_or(0, |s| s.values.len());
                canonical(name, u128::MAX).is_some_and(|n| n < nsems as u128)
            }
            Place::Queue => name == b".recv" || name == b".wait" || mtype(),
            Place::RecvDir | Place::WaitDir => mtype(),
        }
    }

    /// What a lookup of `name` in `place` gives.
    pub(super) fn lookup(self, k: &Kernel, place: Place, name: &[u8]) -> Want {
        if !self.place_exists(k, place) {
            // The walk stops at the missing directory.
            Want::Err(libc::ENOENT)
        } else if name.len() > 255 {
            Want::Err(libc::ENAMETOOLONG)
        } else if self.resolves(k, place, name) {
            Want::Ok(0)
        } else {
            Want::Err(libc::ENOENT)
        }
    }
}

/// Removes every object of the namespace and makes the case's: a segment
/// with a pattern, a set of NSEMS semaphores at 0, 3 and 32760, an empty
/// queue. All IPC_PRIVATE, so that no key name resolves.
pub(super) fn fresh_objects(case: u64) -> Objects {
    // An id asked for through *_next_id by a case that failed before making
    // the object goes to a throwaway one (the sysctl cannot be set back to -1).
    for family in [Family::Shm, Family::Sem, Family::Msg] {
        let asked = fs::read_to_string(format!("/proc/sys/kernel/{}_next_id", family.dir())).unwrap();
        if asked.trim() != "-1" {
            let flags = libc::IPC_CREAT | 0o600;
            let made = match family {
                Family::Shm => shm::get(Key::PRIVATE, 1, flags).map(|id| id.0),
                Family::Sem => sem::get(Key::PRIVATE, 1, flags).map(|id| id.0),
                Family::Msg => msg::get(Key::PRIVATE, flags).map(|id| id.0),
            };
            made.expect("a throwaway object for the id asked for");
        }
    }
    for s in sysvipc::list_shm().unwrap() {
        let _ = shm::remove(s.id);
    }
    for s in sysvipc::list_sem().unwrap() {
        let _ = sem::remove(s.id);
    }
    for q in sysvipc::list_msg().unwrap() {
        let _ = msg::remove(q.id);
    }
    // A segment the daemon still had attached goes with its last detach,
    // which follows the release of its last file.
    let deadline = Instant::now() + LIMIT;
    while !sysvipc::list_shm().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "a removed segment stays attached");
        std::thread::sleep(Duration::from_millis(1));
    }
    let flags = libc::IPC_CREAT | libc::IPC_EXCL | 0o600;
    let seg = shm::get(Key::PRIVATE, SEG_SIZE, flags).unwrap();
    shm::Attachment::attach(seg, SEG_SIZE, true).unwrap().write_at(0, &pseudo_random(SEG_SIZE as usize, case)).unwrap();
    let set = sem::get(Key::PRIVATE, i32::from(NSEMS), flags).unwrap();
    for (num, value) in [0, 3, 32760].into_iter().enumerate() {
        sem::set_value(set, num as u16, value).unwrap();
    }
    let queue = msg::get(Key::PRIVATE, flags).unwrap();
    Objects { seg, set, queue }
}

pub(super) const EINVAL_OR_ERANGE: &[i32] = &[libc::EINVAL, libc::ERANGE];

/// What a write of `text` to a semaphore at `value` does, per the docs: the
/// new value, or the errno. The file is non-blocking, so what would wait is
/// EAGAIN.
pub(super) fn sem_command(text: &[u8], value: i32) -> Result<i32, Want> {
    // White space alone does nothing ("A write of white space alone …").
    if text.len() <= 4096 && text.iter().all(|&b| is_white(b)) {
        return Ok(value);
    }
    // White space around the command is no part of it ("surrounding white
    // space is fine"), before as after.
    let end = text.iter().rposition(|&b| !is_white(b)).map_or(0, |i| i + 1);
    let start = text[..end].iter().position(|&b| !is_white(b)).unwrap_or(end);
    let command = &text[start..end];
    let (sign, digits) = match command.first() {
        Some(&sign @ (b'+' | b'-' | b'=')) => (Some(sign), &command[1..]),
        _ => (None, command),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Want::Err(libc::EINVAL));
    }
    let n = std::str::from_utf8(digits).unwrap().parse::<i32>().ok().filter(|&n| n <= SEMVMX);
    match (sign, n) {
        (Some(b'='), Some(0)) if value == 0 => Ok(0),
        (Some(b'='), Some(0)) => Err(Want::Err(libc::EAGAIN)),
        // `=N` is no command, and N out of range: either answer is fair.
        (Some(b'='), None) => Err(Want::OneOf(EINVAL_OR_ERANGE)),
        (Some(b'='), Some(_)) => Err(Want::Err(libc::EINVAL)),
        (_, None) => Err(Want::Err(libc::ERANGE)),
        (None, Some(n)) => Ok(n),
        (Some(_), Some(0)) => Err(Want::Err(libc::EINVAL)),
        (Some(b'+'), Some(n)) if value + n > SEMVMX => Err(Want::Err(libc::ERANGE)),
        (Some(b'+'), Some(n)) => Ok(value + n),
        (Some(_), Some(n)) if value >= n => Ok(value - n),
        (Some(_), Some(_)) => Err(Want::Err(libc::EAGAIN)),
    }
}

/// The attributes ipcfs shows on a node (all read-only but a queue's qbytes).
pub(super) fn node_attrs(node: Node) -> &'static [&'static str] {
    match node {
        Node::Segment => &SHM_ATTRS,
        Node::Set => &SET_ATTRS,
        Node::Semaphore(_) => &SEMAPHORE_ATTRS,
        Node::Queue => &QUEUE_ATTRS,
        _ => &[],
    }
}

/// What setxattr (`value` Some) or removexattr gives; None: the operation
/// would make a valid change the model does not follow (a new byte limit).
pub(super) fn xattr_want(node: Node, name: &[u8], value: Option<&[u8]>) -> Option<Want> {
    if !name.starts_with(b"user.") || name == b"user." || name.len() > 255 {
        return Some(Want::Refused);
    }
    let known = std::str::from_utf8(name).is_ok_and(|n| node_attrs(node).contains(&n));
    if matches!(node, Node::Queue) && name == b"user.ipc.qbytes" {
        if let Some(value) = value {
            let trimmed = value.trim_ascii();
            let digits = !trimmed.is_empty() && trimmed.iter().all(u8::is_ascii_digit);
            let fits = std::str::from_utf8(trimmed).ok().and_then(|t| t.parse::<u64>().ok()).is_some();
            return if digits && fits { None } else { Some(Want::OneOf(EINVAL_OR_ERANGE)) };
        }
    }
    Some(Want::Err(if known { libc::EPERM } else { libc::EOPNOTSUPP }))
}

/// What a step found, checked against what it had to give.
pub(super) fn expect(want: Want, got: Outcome) -> Result<(), String> {
    if want.accepts(&got) { Ok(()) } else { Err(format!("gave {}, want {want}", show(&got))) }
}

/// What a read gave, checked against the bytes it had to give (or `Err`:
/// what it had to give instead).
pub(super) fn expect_read(want: Result<&[u8], Want>, got: Result<Vec<u8>, i32>) -> Result<(), String> {
    match (want, got) {
        (Ok(want), Ok(got)) if want == got.as_slice() => Ok(()),
        (Ok(want), Ok(got)) => Err(format!("read {:?}, want {:?}", Text(got), Text(want.to_vec()))),
        (Ok(want), Err(e)) => Err(format!("gave {}, want to read {:?}", show(&Err(e)), Text(want.to_vec()))),
        (Err(want), got) => expect(want, count(got)),
    }
}

/// The bodies of the messages of type `mtype` (0: all), in queue order.
pub(super) fn of_type(messages: &[(i64, Text)], mtype: i64) -> Vec<Text> {
    messages.iter().filter(|(t, _)| mtype == 0 || *t == mtype).map(|(_, body)| body.clone()).collect()
}

/// What one read at `position` of a listed queue file gives, per the docs:
/// the snapshot's bytes there, at most `room`, never beyond the end of the
/// message they are in; nothing past the last message.
pub(super) fn browsed(snapshot: &[Text], position: u64, room: usize) -> &[u8] {
    let mut start = 0;
    for body in snapshot {
        let end = start + body.0.len() as u64;
        if position < end {
            let from = (position - start) as usize;
            return &body.0[from..body.0.len().min(from + room)];
        }
        start = end;
    }
    &[]
}

/// A call the test makes itself, as an outcome.
pub(super) fn sys<T>(r: Result<T, Errno>) -> Outcome {
    r.map(|_| 0).map_err(|e| e as i32)
}

/// The errno of semaphore text that is no command whatever the value; None
/// for a command.
pub(super) fn sem_syntax(text: &[u8]) -> Option<Want> {
    let valid = |r: &Result<i32, Want>| matches!(r, Ok(_) | Err(Want::Err(libc::EAGAIN)));
    let at_zero = sem_command(text, 0);
    if valid(&at_zero) || valid(&sem_command(text, SEMVMX)) { None } else { at_zero.err() }
}

/// The bytes a read of `room` at `offset` gets: fewer at the end, none past it.
pub(super) fn window(bytes: &[u8], offset: u64, room: usize) -> &[u8] {
    let start = offset.min(bytes.len() as u64) as usize;
    let end = offset.saturating_add(room as u64).min(bytes.len() as u64) as usize;
    &bytes[start..end]
}

/// A write of `data` at `offset` to a segment's `bytes`: what fits, and
/// ENOSPC at or past the end.
pub(super) fn write_within(bytes: &mut [u8], offset: u64, data: &[u8]) -> Want {
    let size = bytes.len() as u64;
    if offset >= size {
        return Want::Err(libc::ENOSPC);
    }
    let n = data.len().min((size - offset) as usize);
    bytes[offset as usize..offset as usize + n].copy_from_slice(&data[..n]);
    Want::Ok(n as u64)
}
