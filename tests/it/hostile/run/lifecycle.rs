//! The steps of a [`Run`] that make and remove objects (behind the mount's
//! back and through it) and that use the files it keeps open across steps.

use super::*;

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;

use ipcfs::ipc::msg::{self, MsqId};
use ipcfs::ipc::sem::{self, SEMVMX, SemId};

impl Run<'_> {
    pub(super) fn behind(&mut self, call: &Behind) -> Result<(), String> {
        let o = self.o;
        let has = |run: &Run, family| run.has(family, o.id(family));
        // A call on a removed object fails, and changes nothing.
        let gone = |got| expect(Want::OneOf(GONE_BY_ID), got);
        match call {
            Behind::ShmWrite { offset, data } => {
                let Some(size) = self.segment_size(o.seg) else {
                    return gone(sys(shm::Attachment::attach(o.seg, 1, false)));
                };
                let offset = offset % size;
                let written = shm::Attachment::attach(o.seg, size, true).and_then(|a| a.write_at(offset, &data.0));
                self.segment_write(o.seg, offset, &data.0, written.map(|n| n as u64).map_err(|e| e as i32))
            }
            Behind::ShmSet { owner, mode } => {
                let got = sys(shm::set(o.seg, *owner, *owner, *mode));
                if !has(self, Family::Shm) {
                    return gone(got);
                }
                let perm = &mut self.model.segments.get_mut(&o.seg.0).unwrap().perm;
                (perm.uid, perm.gid, perm.mode) = (*owner, *owner, perm.mode & !0o777 | mode);
                expect(Want::Ok(0), got)
            }
            Behind::SemSetVal { num, value } => {
                let got = sys(sem::set_value(o.set, *num, *value));
                // semctl checks the value before it looks for the set.
                if !(0..=SEMVMX).contains(value) {
                    return expect(Want::Err(libc::ERANGE), got);
                }
                let Some(set) = self.model.sets.get_mut(&o.set.0) else { return gone(got) };
                let want = match set.values.get_mut(usize::from(*num)) {
                    None => Want::Err(libc::EINVAL),
                    Some(v) => {
                        *v = *value;
                        Want::Ok(0)
                    }
                };
                expect(want, got)
            }
            Behind::SemOp { num, delta } => {
                let got = sys(sem::operate(o.set, *num, *delta, None));
                let Some(set) = self.model.sets.get_mut(&o.set.0) else { return gone(got) };
                let want = match set.values.get_mut(usize::from(*num)) {
                    None => Want::Err(libc::EFBIG),
                    Some(v) if *delta == 0 && *v != 0 => Want::Err(libc::EAGAIN),
                    Some(v) if *v + i32::from(*delta) < 0 => Want::Err(libc::EAGAIN),
                    Some(v) if *v + i32::from(*delta) > SEMVMX => Want::Err(libc::ERANGE),
                    Some(v) => {
                        *v += i32::from(*delta);
                        Want::Ok(0)
                    }
                };
                expect(want, got)
            }
            Behind::SemSet { owner, mode } => {
                let got = sys(sem::set(o.set, *owner, *owner, *mode));
                let Some(set) = self.model.sets.get_mut(&o.set.0) else { return gone(got) };
                (set.perm.uid, set.perm.gid, set.perm.mode) = (*owner, *owner, set.perm.mode & !0o777 | mode);
                expect(Want::Ok(0), got)
            }
            Behind::Send { mtype, body } => {
                let got = sys(msg::send(o.queue, *mtype, &body.0, false)).map(|_| body.0.len() as u64);
                if !has(self, Family::Msg) {
                    return gone(got);
                }
                self.model_send(o.queue, *mtype, &body.0, got)
            }
            Behind::Receive { mtype, room } => {
                let got = msg::receive(o.queue, *mtype, *room, false);
                if !has(self, Family::Msg) {
                    return gone(sys(got));
                }
                let messages = self.model.messages(o.queue);
                match messages.iter().position(|(t, _)| *mtype == 0 || t == mtype) {
                    None => expect(Want::Err(libc::ENOMSG), sys(got)),
                    Some(i) if messages[i].1.0.len() > *room => expect(Want::Err(libc::E2BIG), sys(got)),
                    Some(i) => {
                        let (t, body) = messages.remove(i);
                        match got {
                            Ok(m) if m.mtype == t && m.body == body.0 => Ok(()),
                            got => Err(format!("msgrcv gave {got:?}, want type {t} {body:?}")),
                        }
                    }
                }
            }
            Behind::QueueSet { owner, mode, qbytes } => {
                let got = sys(msg::set(o.queue, *owner, *owner, *mode, *qbytes));
                let Some(q) = self.model.queues.get_mut(&o.queue.0) else { return gone(got) };
                (q.perm.uid, q.perm.gid, q.perm.mode, q.qbytes) =
                    (*owner, *owner, q.perm.mode & !0o777 | mode, *qbytes);
                expect(Want::Ok(0), got)
            }
            Behind::Remove(family) => {
                let id = o.id(*family);
                let got = sys(match family {
                    Family::Shm => shm::remove(ShmId(id)),
                    Family::Sem => sem::remove(SemId(id)),
                    Family::Msg => msg::remove(MsqId(id)),
                });
                if !self.has(*family, id) {
                    return gone(got);
                }
                self.removed(*family, id);
                expect(Want::Ok(0), got)
            }
            Behind::Create { family, same_id, keyed, shape } => {
                let key = self.next_object(*keyed);
                let reuse = *same_id && self.reuse_id(*family, key, *shape);
                let flags = libc::IPC_CREAT | libc::IPC_EXCL | 0o600;
                let id = match family {
                    Family::Shm => shm::get(Key(key), SEG_SIZES[shape % SEG_SIZES.len()], flags).map(|id| id.0),
                    Family::Sem => sem::get(Key(key), SET_SIZES[shape % SET_SIZES.len()].into(), flags).map(|id| id.0),
                    Family::Msg => msg::get(Key(key), flags).map(|id| id.0),
                };
                let id = id.map_err(|e| format!("creating: {e}"))?;
                self.made(*family, id, reuse, key, *shape)
            }
        }
    }

    /// A new object has id `id`: it had to be the family's old id when that
    /// was asked for.
    pub(super) fn made(&mut self, family: Family, id: i32, reused: bool, key: i32, shape: usize) -> Result<(), String> {
        if reused && id != self.o.id(family) {
            return Err(format!("the kernel gave id {id}, not {} as asked through *_next_id", self.o.id(family)));
        }
        self.made_object(family, id, key, 0o600, shape);
        Ok(())
    }

    /// Makes an object through the mount, by a new key, with mode 0600.
    pub(super) fn create(&mut self, family: Family, same_id: bool, shape: usize) -> Result<(), String> {
        use std::os::unix::fs::DirBuilderExt;
        let key = self.next_object(true);
        let reuse = same_id && self.reuse_id(family, key, shape);
        let mkdir_700 = |path: PathBuf| or_errno(fs::DirBuilder::new().mode(0o700).create(path)).map(|()| 0);
        let got = match family {
            Family::Shm => {
                let path = self.at(format!("shm/0x{key:x}"));
                let size = SEG_SIZES[shape % SEG_SIZES.len()];
                or_errno(OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path))
                    .and_then(|file| or_errno(file.set_len(size)))
                    .map(|()| 0)
            }
            Family::Sem => mkdir_700(self.at(format!("sem/0x{key:x}:{}", SET_SIZES[shape % SET_SIZES.len()]))),
            Family::Msg => mkdir_700(self.at(format!("msg/0x{key:x}"))),
        };
        expect(Want::Ok(0), got)?;
        let id = match family {
            Family::Shm => shm::get(Key(key), 0, 0).map(|id| id.0),
            Family::Sem => sem::get(Key(key), 0, 0).map(|id| id.0),
            Family::Msg => msg::get(Key(key), 0).map(|id| id.0),
        };
        let id = id.map_err(|e| format!("no object has the key it was made with: {e}"))?;
        self.made(family, id, reuse, key, shape)
    }

    pub(super) fn hold(&mut self, slot: usize, file: HeldFile) -> Result<(), String> {
        self.release(slot);
        let (family, id, path) = self.o.held(file);
        let (flags, node) = match file {
            HeldFile::Segment => (libc::O_RDWR, Node::Segment),
            HeldFile::Semaphore(n) => (libc::O_RDWR | libc::O_NONBLOCK, Node::Semaphore(n)),
            HeldFile::Queue(f) => (libc::O_RDWR | libc::O_NONBLOCK, Node::QueueFile(f)),
        };
        let got = open(&self.at(path), flags);
        if !self.o.node_exists(&self.model, node) {
            return expect(Want::Err(libc::ENOENT), got.map(|_| 0));
        }
        let opened = match got {
            Ok(f) => f,
            Err(e) => return expect(Want::Ok(0), Err(e)),
        };
        let (key, nsems) = match family {
            Family::Shm => (self.model.segments[&id].perm.key, 0),
            Family::Sem => (self.model.sets[&id].perm.key, self.model.sets[&id].values.len()),
            Family::Msg => (self.model.queues[&id].perm.key, 0),
        };
        let born = self.born[&(family, id)];
        let snapshot = match file {
            HeldFile::Queue(f) if f.browses() => of_type(&self.model.queues[&id].messages, f.mtype()),
            _ => Vec::new(),
        };
        let (stream, snapshot) = ((Vec::new(), 0), (snapshot, 0));
        self.held[slot] = Some(Held { file: opened, what: file, family, id, born, key, nsems, stream, snapshot });
        Ok(())
    }

    /// Runs `f` on the file kept in `slot`, if any (nothing kept: nothing to
    /// do).
    pub(super) fn with_held(
        &mut self,
        slot: usize,
        f: impl FnOnce(&mut Self, &mut Held) -> Result<(), String>,
    ) -> Result<(), String> {
        let Some(mut h) = self.held[slot].take() else { return Ok(()) };
        let result = f(self, &mut h);
        self.held[slot] = Some(h);
        result
    }

    pub(super) fn held_read(&mut self, h: &mut Held, offset: u64, room: usize) -> Result<(), String> {
        let alive = self.alive(h);
        let mut buf = vec![0u8; room];
        match h.what {
            HeldFile::Segment => {
                let got = or_errno(h.file.read_at(&mut buf, offset)).map(|n| buf[..n].to_vec());
                match self.unlinked.get(&h.born) {
                    Some(bytes) => expect_read(Ok(window(bytes, offset, room)), got),
                    None if !alive => expect_read(Err(Want::OneOf(GONE)), got),
                    None => self.segment_read(ShmId(h.id), offset, room, got),
                }
            }
            HeldFile::Semaphore(num) => {
                let got = or_errno(h.file.read_at(&mut buf, offset)).map(|n| buf[..n].to_vec());
                // Positions, as sysfs: at offset 0 the value's text fresh,
                // further on the rest of the text the last read at 0 took.
                if !alive {
                    return expect_read(Err(Want::OneOf(GONE)), got);
                }
                let (text, _) = &mut h.stream;
                if offset == 0 || text.is_empty() {
                    *text = format!("{}\n", self.model.sets[&h.id].values[usize::from(num)]).into_bytes();
                }
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(text.len());
                let want = text[start..start.saturating_add(room).min(text.len())].to_vec();
                expect_read(Ok(&want), got)
            }
            HeldFile::Queue(from) if from.browses() => {
                let got = or_errno(h.file.read(&mut buf)).map(|n| buf[..n].to_vec());
                // The snapshot is the daemon's: once the queue is gone, the
                // docs leave open whether it still shows it.
                if !alive && got.is_err() {
                    return expect_read(Err(Want::OneOf(GONE)), got);
                }
                let (snapshot, position) = &mut h.snapshot;
                let want = browsed(snapshot, *position, room);
                *position += want.len() as u64;
                expect_read(Ok(want), got)
            }
            HeldFile::Queue(from) => {
                let got = or_errno(h.file.read(&mut buf)).map(|n| buf[..n].to_vec());
                if !alive {
                    return expect_read(Err(Want::OneOf(GONE)), got);
                }
                self.queue_receive(MsqId(h.id), from, room, got)
            }
        }
    }

    pub(super) fn held_write(&mut self, h: &mut Held, offset: u64, data: &[u8]) -> Result<(), String> {
        let alive = self.alive(h);
        match h.what {
            HeldFile::Segment => {
                let got = or_errno(h.file.write_at(data, offset)).map(|n| n as u64);
                match self.unlinked.get_mut(&h.born) {
                    Some(bytes) => expect(write_within(bytes, offset, data), got),
                    None if !alive => expect(Want::OneOf(GONE), got),
                    None => self.segment_write(ShmId(h.id), offset, data, got),
                }
            }
            HeldFile::Semaphore(num) => {
                let got = or_errno(h.file.write(data)).map(|n| n as u64);
                if !alive {
                    // The command is read before the set is looked for.
                    return expect(sem_syntax(data).unwrap_or(Want::OneOf(GONE)), got);
                }
                self.semaphore_write(SemId(h.id), num, data, got)
            }
            HeldFile::Queue(to) => {
                let got = or_errno(h.file.write(data)).map(|n| n as u64);
                if !alive {
                    return expect(Want::OneOf(GONE), got);
                }
                // A listed file has a position, which a write moves on.
                if let (true, Ok(n)) = (to.browses(), got) {
                    h.snapshot.1 += n;
                }
                self.queue_send(MsqId(h.id), to, data, got)
            }
        }
    }
}
