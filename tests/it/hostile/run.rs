//! One case of the property test: a [`Run`] makes each operation on a
//! mount and checks its outcome, the kernel and the mount's listings
//! against the model after every step; [`replay`] runs a fixed sequence
//! (the regressions of [`super::pinned`]).

use super::calls::*;
use super::model::*;
use super::ops::*;
use super::*;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ipcfs::ipc::msg::MsqId;
use ipcfs::ipc::sem::SemId;
use proptest::collection::vec;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

mod lifecycle;

/// Waits until the daemon holds no segment's file beyond those the kept
/// files hold. The kernel tells the daemon of a close after close(2) has
/// returned, and until then a stat of a removed segment's name may be the
/// open file's fstat, which shows it with no links (docs/ipcfs.md).
fn settle(m: &Mounted, held: &[Option<Held>]) {
    let kept = held.iter().flatten().filter(|h| h.family == Family::Shm).count();
    let fds = format!("/proc/{}/fd", m.daemon_pid().expect("a running daemon"));
    let segment_files = || {
        let Ok(entries) = fs::read_dir(&fds) else { return 0 };
        let targets = entries.filter_map(|e| fs::read_link(e.ok()?.path()).ok());
        targets.filter(|t| t.to_string_lossy().starts_with("/SYSV")).count()
    };
    let deadline = Instant::now() + LIMIT;
    while segment_files() > kept && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Each set's directory lists its semaphores, each queue's `any` and the
/// types that have messages queued.
fn contents_listed(m: &Mounted, k: &Kernel, dog: &Watchdog) -> Result<(), String> {
    dog.guard("listing every set and queue");
    let sets =
        k.sets.iter().map(|(id, set)| (format!("sem/{id}"), (0..set.values.len()).map(|n| n.to_string()).collect()));
    let queues = k.queues.iter().map(|(id, queue)| {
        let types = queue.messages.iter().map(|(t, _)| t.to_string());
        (format!("msg/{id}"), std::iter::once("any".to_string()).chain(types).collect::<BTreeSet<_>>())
    });
    let result = sets.chain(queues).try_for_each(|(dir, want)| {
        let names = listed(&m.path(&dir))?;
        if names == want { Ok(()) } else { Err(format!("{dir}/ lists {names:?}, the kernel has {want:?}")) }
    });
    dog.clear();
    result
}

/// A file kept open across steps.
struct Held {
    file: File,
    what: HeldFile,
    family: Family,
    id: i32,
    /// Which object of that id it was opened on (see [`Run::born`]).
    born: u64,
    /// What ipcfs tells sets and queues of one id apart by, besides the
    /// creator: the key, and a set's number of semaphores.
    key: i32,
    nsems: usize,
    /// A semaphore file's stream: the text being read and how far
    /// (usize::MAX: read to its end, so the next read is end-of-file).
    stream: (Vec<u8>, usize),
    /// A listed queue file's snapshot (the messages of its type queued when
    /// it was opened) and the file's position.
    snapshot: (Vec<Text>, u64),
}

/// One case's run: the mount, its objects and the model of the kernel.
struct Run<'a> {
    m: &'a Mounted,
    /// The family's object of the moment: the one paths name.
    o: Objects,
    model: Kernel,
    /// Leave out operations whose disagreement with the docs has a test of
    /// its own, so that the random search looks for new ones.
    skip_known: bool,
    held: [Option<Held>; SLOTS],
    /// For every object of the model, a number given at its creation, so
    /// that an object which gets a removed one's id is told from it.
    born: BTreeMap<(Family, i32), u64>,
    /// Objects made so far (the last number given).
    made: u64,
    /// The bytes of removed segments that kept files still reach (an open
    /// file is no attachment: the segment is gone from the kernel at once),
    /// by the number given at their creation.
    unlinked: BTreeMap<u64, Vec<u8>>,
}

/// What a step found wrong.
enum Failure {
    /// The outcome or the objects disagree with the model.
    Mismatch(String),
    /// The daemon is gone or hung: nothing after this means anything.
    Gone(String),
}

impl<'a> Run<'a> {
    fn new(m: &'a Mounted, o: Objects, skip_known: bool) -> Run<'a> {
        let born =
            BTreeMap::from([((Family::Shm, o.seg.0), 1), ((Family::Sem, o.set.0), 2), ((Family::Msg, o.queue.0), 3)]);
        Run {
            m,
            o,
            model: Kernel::now(),
            skip_known,
            held: Default::default(),
            born,
            made: 3,
            unlinked: BTreeMap::new(),
        }
    }

    fn at(&self, relative: impl AsRef<[u8]>) -> PathBuf {
        under(self.m, relative)
    }

    fn inside(&self, place: Place, name: &[u8]) -> PathBuf {
        let dir = self.o.place(place);
        if dir.is_empty() { self.at(name) } else { self.at([dir.as_bytes(), b"/", name].concat()) }
    }

    fn has(&self, family: Family, id: i32) -> bool {
        match family {
            Family::Shm => self.model.segments.contains_key(&id),
            Family::Sem => self.model.sets.contains_key(&id),
            Family::Msg => self.model.queues.contains_key(&id),
        }
    }

    fn segment_size(&self, seg: ShmId) -> Option<u64> {
        self.model.segments.get(&seg.0).map(|s| s.bytes.0.len() as u64)
    }

    /// Whether a kept file is open on the object.
    fn holds(&self, family: Family, id: i32) -> bool {
        self.held.iter().flatten().any(|h| h.family == family && h.id == id)
    }

    /// Whether a kept file's object is still there (its id may have gone to
    /// another).
    fn alive(&self, h: &Held) -> bool {
        self.born.get(&(h.family, h.id)) == Some(&h.born)
    }

    /// Whether a new set or queue with this key and shape, given the removed
    /// one's id, would meet ipcfs's known confusion of the two (nobody can
    /// tell them apart: same key, creator and number of semaphores) while a
    /// file is kept open on the old one. See
    /// regression_a_queue_file_kept_open_never_reaches_a_new_queue_with_the_same_id.
    fn kept_on_lookalike(&self, family: Family, id: i32, key: i32, shape: usize) -> bool {
        let nsems = usize::from(SET_SIZES[shape % SET_SIZES.len()]);
        let alike = |f: Family, i: i32, k: i32, n: usize| {
            f == family && i == id && k == key && (f == Family::Msg || n == nsems)
        };
        family != Family::Shm && self.held.iter().flatten().any(|h| alike(h.family, h.id, h.key, h.nsems))
    }

    /// An object came into being: the model gains it, empty, and it becomes
    /// the family's.
    fn made_object(&mut self, family: Family, id: i32, key: i32, mode: u32, shape: usize) {
        let (uid, gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
        let perm = Perm { key, uid, gid, cuid: uid, cgid: gid, mode };
        match family {
            Family::Shm => {
                let bytes = Text(vec![0; SEG_SIZES[shape % SEG_SIZES.len()] as usize]);
                self.model.segments.insert(id, Segment { perm, bytes });
            }
            Family::Sem => {
                let values = vec![0; usize::from(SET_SIZES[shape % SET_SIZES.len()])];
                self.model.sets.insert(id, Set { perm, values });
            }
            Family::Msg => {
                self.model.queues.insert(id, Queue { perm, qbytes: kernel_msgmnb(), messages: Vec::new() });
            }
        }
        self.born.insert((family, id), self.made);
        self.o.set_id(family, id);
    }

    /// For a new object: a number, and its key if it is to have one.
    fn next_object(&mut self, keyed: bool) -> i32 {
        self.made += 1;
        if keyed { KEY_MADE + self.made as i32 } else { 0 }
    }

    /// Asks the kernel to give the family's next object (with this key and
    /// shape) the id of the family's object, if that is free; whether it
    /// asked.
    fn reuse_id(&self, family: Family, key: i32, shape: usize) -> bool {
        let id = self.o.id(family);
        if self.has(family, id) || self.skip_known && self.kept_on_lookalike(family, id, key, shape) {
            return false;
        }
        fs::write(format!("/proc/sys/kernel/{}_next_id", family.dir()), id.to_string()).unwrap();
        true
    }

    /// The object was removed (IPC_RMID): gone. A segment's kept files
    /// still reach its bytes, as an unlinked file's open files do.
    fn removed(&mut self, family: Family, id: i32) {
        if family == Family::Shm && self.holds(family, id) {
            let born = self.born[&(family, id)];
            self.unlinked.insert(born, self.model.segments[&id].bytes.0.clone());
        }
        self.forget(family, id);
    }

    fn forget(&mut self, family: Family, id: i32) {
        let was = match family {
            Family::Shm => self.model.segments.remove(&id).is_some(),
            Family::Sem => self.model.sets.remove(&id).is_some(),
            Family::Msg => self.model.queues.remove(&id).is_some(),
        };
        assert!(was, "{family:?} {id} is in the model");
        self.born.remove(&(family, id));
    }

    /// Closes the kept file; a removed segment's bytes go with the last one.
    fn release(&mut self, slot: usize) {
        let Some(h) = self.held[slot].take() else { return };
        drop(h.file);
        if !self.held.iter().flatten().any(|other| other.family == h.family && other.born == h.born) {
            self.unlinked.remove(&h.born);
        }
        settle(self.m, &self.held);
    }

    /// Runs `op`; checks its outcome (and what a read returned) against the
    /// model, and updates the model. Err: the outcome is wrong.
    fn step(&mut self, op: &Op) -> Result<(), String> {
        let o = self.o;
        let k = &self.model;
        match op {
            Op::ShmWrite { offset, data } => {
                let path = self.at(o.node(Node::Segment));
                let got = pwrite_once(&path, &data.0, *offset);
                self.segment_write(o.seg, *offset, &data.0, got)
            }
            Op::ShmWriteHuge { offset } => {
                let path = self.at(o.node(Node::Segment));
                let got = pwrite_once(&path, huge_buffer(), *offset);
                self.segment_write(o.seg, *offset, huge_buffer(), got)
            }
            Op::ShmRead { offset, room } => {
                let got = pread_once(&self.at(o.node(Node::Segment)), *room, *offset);
                self.segment_read(o.seg, *offset, *room, got)
            }
            Op::ShmTruncate { len } => {
                let got = truncate(&self.at(o.node(Node::Segment)), *len as i64);
                match self.segment_size(o.seg) {
                    None => expect(Want::Err(libc::ENOENT), got),
                    Some(size) if *len > size => expect(Want::Err(libc::EFBIG), got),
                    Some(_) => {
                        self.model.bytes(o.seg)[*len as usize..].fill(0);
                        expect(Want::Ok(0), got)
                    }
                }
            }
            Op::SemWrite { num, text } => {
                let exists = o.node_exists(k, Node::Semaphore(*num));
                let got = write_once(&self.at(o.node(Node::Semaphore(*num))), libc::O_NONBLOCK, &text.0);
                if !exists {
                    return expect(Want::Err(libc::ENOENT), got);
                }
                self.semaphore_write(o.set, *num, &text.0, got)
            }
            Op::Send { to, body } => {
                let exists = k.queues.contains_key(&o.queue.0);
                let got = write_once(&self.at(o.node(Node::QueueFile(*to))), libc::O_NONBLOCK, &body.0);
                if !exists {
                    return expect(Want::Err(libc::ENOENT), got);
                }
                self.queue_send(o.queue, *to, &body.0, got)
            }
            Op::SendHuge { to, len } => {
                let want = if k.queues.contains_key(&o.queue.0) { libc::EINVAL } else { libc::ENOENT };
                let path = self.at(o.node(Node::QueueFile(*to)));
                expect(Want::Err(want), write_once(&path, libc::O_NONBLOCK, &huge_buffer()[..*len]))
            }
            Op::Read { from, room } => {
                let exists = k.queues.contains_key(&o.queue.0);
                let got = read_once(&self.at(o.node(Node::QueueFile(*from))), libc::O_NONBLOCK, *room);
                if !exists {
                    return expect_read(Err(Want::Err(libc::ENOENT)), got);
                }
                if from.browses() {
                    let snapshot = of_type(&k.queues[&o.queue.0].messages, from.mtype());
                    return expect_read(Ok(browsed(&snapshot, 0, *room)), got);
                }
                self.queue_receive(o.queue, *from, *room, got)
            }
            Op::Lookup { place, name } => expect(o.lookup(k, *place, &name.0), stat(&self.inside(*place, &name.0))),
            Op::Reshape { how, place, name } => self.reshape(*how, *place, &name.0),
            Op::OpenDirForWrite { place } => {
                let want = if o.place_exists(k, *place) { libc::EISDIR } else { libc::ENOENT };
                let path = self.at(o.place(*place));
                expect(Want::Err(want), open(&path, libc::O_WRONLY).map(|_| 0))
            }
            Op::SetXattr { node, name, value } => {
                let want = if o.node_exists(k, *node) {
                    xattr_want(*node, &name.0, Some(&value.0))
                } else {
                    Some(Want::Err(libc::ENOENT))
                };
                match want {
                    Some(want) => expect(want, set_xattr(&self.at(o.node(*node)), &name.0, &value.0)),
                    None => Ok(()),
                }
            }
            Op::RemoveXattr { node, name } => {
                let want = if o.node_exists(k, *node) {
                    xattr_want(*node, &name.0, None).expect("removal is never valid")
                } else {
                    Want::Err(libc::ENOENT)
                };
                expect(want, remove_xattr(&self.at(o.node(*node)), &name.0))
            }
            Op::TruncateStream { node, len } => {
                let want = if o.node_exists(k, *node) { Want::Ok(0) } else { Want::Err(libc::ENOENT) };
                expect(want, truncate(&self.at(o.node(*node)), *len))
            }
            Op::Behind(call) => self.behind(call),
            Op::Remove(family) => {
                let id = o.id(*family);
                let path = self.at(format!("{}/{id}", family.dir()));
                let got = if *family == Family::Shm { unlink(&path) } else { rmdir(&path) };
                if !self.has(*family, id) {
                    return expect(Want::Err(libc::ENOENT), got);
                }
                self.removed(*family, id);
                expect(Want::Ok(0), got)
            }
            Op::Create { family, same_id, shape } => self.create(*family, *same_id, *shape),
            Op::Hold { slot, file } => self.hold(*slot, *file),
            Op::HeldRead { slot, offset, room } => self.with_held(*slot, |run, h| run.held_read(h, *offset, *room)),
            Op::HeldWrite { slot, offset, data } => self.with_held(*slot, |run, h| run.held_write(h, *offset, &data.0)),
            Op::HeldStat { slot } => self.with_held(*slot, |run, h| {
                let got = or_errno(h.file.metadata()).map(|md| u64::from(md.nlink() > 0));
                let want = match run.unlinked.get(&h.born) {
                    // A removed segment's file: no links, as an unlinked
                    // file; ESTALE once another segment has its id, as for a
                    // stat by a path the kernel kept (docs/ipcfs.md).
                    Some(_) if run.has(Family::Shm, h.id) => Want::Err(libc::ESTALE),
                    Some(_) => Want::Ok(0),
                    None if run.alive(h) => Want::Ok(1),
                    None => Want::OneOf(GONE),
                };
                expect(want, got)
            }),
            Op::Release { slot } => {
                self.release(*slot);
                Ok(())
            }
        }
    }

    /// A write of `data` at `offset` to the segment, which gave `got`.
    fn segment_write(&mut self, seg: ShmId, offset: u64, data: &[u8], got: Outcome) -> Result<(), String> {
        let want = match self.model.segments.get_mut(&seg.0) {
            None => Want::Err(libc::ENOENT),
            Some(segment) => write_within(&mut segment.bytes.0, offset, data),
        };
        expect(want, got)
    }

    fn segment_read(&self, seg: ShmId, offset: u64, room: usize, got: Result<Vec<u8>, i32>) -> Result<(), String> {
        let Some(segment) = self.model.segments.get(&seg.0) else {
            return expect_read(Err(Want::Err(libc::ENOENT)), got);
        };
        expect_read(Ok(window(&segment.bytes.0, offset, room)), got)
    }

    fn semaphore_write(&mut self, set: SemId, num: u16, text: &[u8], got: Outcome) -> Result<(), String> {
        let value = &mut self.model.values(set)[usize::from(num)];
        match sem_command(text, *value) {
            Ok(new) => {
                *value = new;
                expect(Want::Ok(text.len() as u64), got)
            }
            Err(want) => expect(want, got),
        }
    }

    /// A message sent through `to`; O_NONBLOCK, so a full queue is EAGAIN.
    fn queue_send(&mut self, queue: MsqId, to: QFile, body: &[u8], got: Outcome) -> Result<(), String> {
        let mtype = if to.mtype() == 0 { 1 } else { to.mtype() };
        self.model_send(queue, mtype, body, got)
    }

    /// msgsnd without waiting: queued if it fits (the kernel's rule, with
    /// qbytes as the limit of both bytes and messages), else EAGAIN.
    fn model_send(&mut self, queue: MsqId, mtype: i64, body: &[u8], got: Outcome) -> Result<(), String> {
        let q = self.model.queues.get_mut(&queue.0).expect("queue in the model");
        let bytes: usize = q.messages.iter().map(|(_, b)| b.0.len()).sum();
        // ipc/msg.c: msgsz + q_cbytes <= q_qbytes && 1 + q_qnum <= q_qbytes.
        let fits = (bytes + body.len()) as u64 <= q.qbytes && (q.messages.len() as u64) < q.qbytes;
        if !fits {
            return expect(Want::Err(libc::EAGAIN), got);
        }
        q.messages.push((mtype, text(body)));
        expect(Want::Ok(body.len() as u64), got)
    }

    /// A read of a file under `.recv/` or `.wait/`: one message taken.
    fn queue_receive(
        &mut self,
        queue: MsqId,
        from: QFile,
        room: usize,
        got: Result<Vec<u8>, i32>,
    ) -> Result<(), String> {
        let messages = self.model.messages(queue);
        let mtype = from.mtype();
        match messages.iter().position(|(t, _)| mtype == 0 || *t == mtype) {
            None if from.waits() => expect_read(Err(Want::Err(libc::EAGAIN)), got),
            None => expect_read(Ok(b""), got),
            Some(i) if messages[i].1.0.len() > room => expect_read(Err(Want::Err(libc::E2BIG)), got),
            Some(i) => {
                let (_, body) = messages.remove(i);
                expect_read(Ok(&body.0), got)
            }
        }
    }

    fn reshape(&mut self, how: Reshape, place: Place, name: &[u8]) -> Result<(), String> {
        let o = self.o;
        let path = self.inside(place, name);
        let segment = self.at(o.node(Node::Segment));
        let resolves = o.place_exists(&self.model, place) && o.resolves(&self.model, place, name);
        let dots = name == b"." || name == b"..";
        let long = name.len() > 255;
        let dir_entry = matches!(place, Place::Root | Place::ByKey | Place::Sem | Place::Msg)
            || (place == Place::Queue && (name == b".recv" || name == b".wait"));
        let want = match how {
            // The walk stops at the missing directory.
            _ if !o.place_exists(&self.model, place) => Want::Err(libc::ENOENT),
            // From a removed segment: the VFS answers first.
            Reshape::Link | Reshape::Rename if !self.model.segments.contains_key(&o.seg.0) => Want::Refused,
            _ if long => Want::Err(libc::ENAMETOOLONG),
            Reshape::Mkdir if resolves => Want::Err(libc::EEXIST),
            // A valid creation name would create: not this model's business.
            Reshape::Mkdir if might_create(place, name) => return Ok(()),
            // Known to give ENOENT: see
            // names_that_are_not_utf8_get_the_errno_of_any_other_bad_name_when_creating.
            Reshape::Mkdir if self.skip_known && std::str::from_utf8(name).is_err() => return Ok(()),
            Reshape::Mkdir if matches!(place, Place::Sem | Place::Msg) && std::str::from_utf8(name).is_err() => {
                Want::Err(libc::EINVAL)
            }
            Reshape::Mkdir if matches!(place, Place::Sem | Place::Msg) => Want::Err(libc::EINVAL),
            Reshape::Mkdir => Want::Err(libc::EPERM),
            Reshape::Mknod | Reshape::Symlink | Reshape::Link if resolves => Want::Err(libc::EEXIST),
            Reshape::Mknod | Reshape::Symlink | Reshape::Link => Want::Err(libc::EPERM),
            // Onto an existing name the VFS has its own answers (EISDIR,
            // ENOTEMPTY, or nothing at all for the segment itself).
            Reshape::Rename if resolves => Want::Anything,
            Reshape::Rename => Want::Err(libc::EPERM),
            Reshape::Unlink | Reshape::Rmdir if dots => Want::Refused,
            // The kernel keeps a segment's own name (issue 16): rmdir of a
            // removed segment's name may meet the kept file, and the VFS
            // answers ENOTDIR before asking the filesystem.
            Reshape::Rmdir if !resolves && place == Place::Shm => Want::OneOf(&[libc::ENOENT, libc::ENOTDIR]),
            Reshape::Unlink | Reshape::Rmdir if !resolves => Want::Err(libc::ENOENT),
            Reshape::Unlink if dir_entry => Want::Err(libc::EISDIR),
            Reshape::Unlink => match place {
                Place::Set => Want::Ok(0),
                Place::Queue => {
                    let mtype = if name == b"any" { 0 } else { canonical(name, i64::MAX as u128).unwrap() as i64 };
                    self.model.messages(o.queue).retain(|(t, _)| mtype != 0 && *t != mtype);
                    Want::Ok(0)
                }
                // Removing a segment, or discarding through .recv/ or .wait/: skip.
                _ => return Ok(()),
            },
            Reshape::Rmdir => match place {
                Place::Sem | Place::Msg => return Ok(()),
                Place::Queue if name == b".recv" || name == b".wait" => Want::Anything,
                Place::Set | Place::Queue | Place::RecvDir | Place::WaitDir => Want::Err(libc::ENOTDIR),
                _ => Want::Refused,
            },
        };
        let got = match how {
            Reshape::Mkdir => mkdir(&path),
            Reshape::Mknod => make_fifo(&path),
            Reshape::Symlink => symlink(&path),
            Reshape::Link => link(&segment, &path),
            Reshape::Rename => rename(&segment, &path),
            Reshape::Unlink => unlink(&path),
            Reshape::Rmdir => rmdir(&path),
        };
        expect(want, got)
    }
}

fn run_case(m: &Mounted, dog: &Watchdog, ops: &[Op], case: u64, skip_known: bool) -> Result<(), Failure> {
    let mut run = Run::new(m, fresh_objects(case), skip_known);
    for (i, op) in ops.iter().enumerate() {
        dog.guard(&format!("step {i}: {op:?}"));
        let outcome = run.step(op);
        dog.clear();
        settle(m, &run.held);
        let now = Kernel::now();
        serving(m, &now, dog).map_err(|e| Failure::Gone(format!("step {i}, {op:?}: {e}")))?;
        outcome.map_err(|e| Failure::Mismatch(format!("step {i}, {op:?}: {e}")))?;
        if now != run.model {
            let diff = differences(&run.model, &now);
            return Err(Failure::Mismatch(format!("after step {i}, {op:?}, the kernel is not the model:\n  {diff}")));
        }
        contents_listed(m, &now, dog).map_err(|e| Failure::Mismatch(format!("after step {i}, {op:?}: {e}")))?;
    }
    Ok(())
}

/// Replays a sequence of operations on a fresh mount (for regressions).
pub(super) fn replay(ops: &[Op]) {
    let m = Mounted::new();
    let dog = Watchdog::new(&m);
    match run_case(&m, &dog, ops, 1, false) {
        Ok(()) => {}
        Err(Failure::Mismatch(e) | Failure::Gone(e)) => panic!("{e}"),
    }
}

#[test]
fn random_valid_and_hostile_operations_agree_with_a_model_of_the_kernel() {
    let m = Mounted::new();
    let dog = Watchdog::new(&m);
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64);
    let config = Config { cases, max_shrink_iters: 4096, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let counter = RefCell::new(0u64);
    let gone: RefCell<Option<String>> = RefCell::new(None);
    let result = runner.run(&vec(op(), 1..=50), |ops| {
        if gone.borrow().is_some() {
            // Nothing can be learnt without a daemon: stop shrinking.
            return Ok(());
        }
        *counter.borrow_mut() += 1;
        match run_case(&m, &dog, &ops, *counter.borrow(), true) {
            Ok(()) => Ok(()),
            Err(Failure::Mismatch(e)) => Err(TestCaseError::fail(e)),
            Err(Failure::Gone(e)) => {
                *gone.borrow_mut() = Some(format!("{e}\nafter the operations {ops:#?}"));
                Err(TestCaseError::fail(e))
            }
        }
    });
    if let Some(e) = gone.into_inner() {
        panic!("the daemon stopped serving: {e}");
    }
    if let Err(e) = result {
        panic!("{e}");
    }
}
