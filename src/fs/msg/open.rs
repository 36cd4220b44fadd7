//! An open queue file: a listed file browses a snapshot of its messages,
//! one under `.recv/` receives without waiting, one under `.wait/` waits;
//! a write sends one message.

use super::*;

/// An open queue file.
pub struct OpenQueueFile {
    ident: MsgIdent,
    /// 0: any type.
    mtype: i64,
    reading: Reading,
    nonblocking: bool,
    /// A listed file open for reading: the messages it shows.
    snapshot: Option<Snapshot>,
}

/// The messages of one type (or of all) queued when a listed file was
/// opened, as its reads show them: one after the other, each read within one
/// message. The daemon holds them, charged to the opener's memory budget.
struct Snapshot {
    bodies: Vec<Vec<u8>>,
    /// Where each body starts in the file.
    starts: Vec<u64>,
    _charge: Charge,
}

impl Snapshot {
    /// Copies the messages of type `mtype` (0: all) queued now, in queue
    /// order, without taking them: at most the messages queued when it
    /// starts, and at most their bytes then, charged to `caller` (up front,
    /// then shrunk to what it keeps).
    fn take(ident: MsgIdent, mtype: i64, caller: &Caller, budgets: &std::sync::Arc<Budgets>) -> Result<Snapshot> {
        let stat = current(ident)?;
        let room = usize::try_from(stat.cbytes).unwrap_or(usize::MAX);
        let mut charge = budgets.charge_bytes(caller.uid, room)?;
        let (mut bodies, mut starts, mut end) = (Vec::new(), Vec::new(), 0u64);
        // No message is longer than all of them together, and their bytes
        // are what is charged.
        let mut peeker = msg::Peeker::new(room);
        for index in 0..stat.qnum {
            match peeker.message(ident.id, index) {
                Ok(m) if mtype == 0 || m.mtype == mtype => {
                    if end + m.body.len() as u64 > stat.cbytes {
                        break;
                    }
                    starts.push(end);
                    end += m.body.len() as u64;
                    bodies.push(m.body);
                }
                Ok(_) => {}
                // The queue shrank, or a longer message came since the
                // count: what was queued at the start has been seen.
                Err(Errno::ENOMSG | Errno::E2BIG) => break,
                Err(e) => return Err(map_error(e, ident)),
            }
        }
        // Charged for the whole queue up front; kept: this type's bytes.
        charge.shrink_to(usize::try_from(end).unwrap_or(usize::MAX));
        Ok(Snapshot { bodies, starts, _charge: charge })
    }

    /// The bytes at `offset`, at most `size`, and never past the end of the
    /// message they belong to.
    fn read(&self, offset: u64, size: usize) -> Vec<u8> {
        let index = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(0) => return Vec::new(),
            Err(i) => i - 1,
        };
        let Some(body) = self.bodies.get(index) else { return Vec::new() };
        let from = usize::try_from(offset - self.starts[index]).unwrap_or(usize::MAX).min(body.len());
        body[from..from.saturating_add(size).min(body.len())].to_vec()
    }
}

impl OpenQueueFile {
    /// Opening a listed file for reading takes its snapshot; the files of
    /// `.recv/` and `.wait/` receive, which a read-only mount refuses.
    pub fn open(
        node: &Node,
        flags: i32,
        read_only: bool,
        caller: &Caller,
        budgets: &std::sync::Arc<Budgets>,
    ) -> Result<OpenQueueFile> {
        let Node::QueueFile { ident, mtype, reading } = *node else { return Err(Error::Invalid) };
        let stat = current(ident)?;
        let want = Want::from_open_flags(flags);
        check_access(&stat.perm, caller, want)?;
        let reads = want.includes_read();
        if reads && read_only && reading != Reading::Browse {
            return Err(Error::ReadOnly);
        }
        let snapshot = match reading {
            Reading::Browse if reads => Some(Snapshot::take(ident, mtype, caller, budgets)?),
            _ => None,
        };
        Ok(OpenQueueFile { ident, mtype, reading, nonblocking: OpenFlags::from_raw(flags).is_nonblocking(), snapshot })
    }

    /// Whether reads show a snapshot (a listed file open for reading): the
    /// file then has positions, like any file. Sending and receiving have none.
    pub fn has_positions(&self) -> bool {
        self.snapshot.is_some()
    }

    /// A listed file: the snapshot's bytes at `offset`. Otherwise receives
    /// one message whose body fits in `size` bytes. Nothing queued:
    /// end-of-file, or (under `.wait/`) a [`Wait`] for the next message. A
    /// message larger than `size` stays queued and the read fails with E2BIG.
    pub fn read(&self, offset: u64, size: usize, nonblocking: bool, caller: &Caller) -> Result<Outcome<Vec<u8>>> {
        // Checked at every read, as msgrcv checks at every call: a chmod
        // after the open counts.
        check_access(&current(self.ident)?.perm, caller, Want::READ)?;
        if self.reading == Reading::Browse {
            let snapshot = self.snapshot.as_ref().ok_or(Error::BadHandle)?;
            return Ok(Outcome::Ready(snapshot.read(offset, size)));
        }
        let (id, mtype, room) = (self.ident.id, self.mtype, size.min(largest_message()));
        let ident = self.ident;
        match msg::receive(id, mtype, room, false) {
            // A caller killed while its read was on the way would never see
            // the message: it goes back.
            Ok(message) => match hand_over(ident, message, || caller_dying(caller.tid)) {
                Given::Body(body) => Ok(Outcome::Ready(body)),
                Given::Back(refusal) => Err(refusal),
                // Off the event loop: waiting for room may take long.
                Given::Held(message, refusal) => Ok(Outcome::Wait(Wait::keeping(move |stop| {
                    keep(ident, message, stop);
                    Err(refusal)
                }))),
            },
            Err(Errno::ENOMSG) if self.reading != Reading::Wait => Ok(Outcome::Ready(Vec::new())),
            Err(Errno::ENOMSG) if nonblocking || self.nonblocking => Err(Error::WouldBlock),
            Err(Errno::ENOMSG) => {
                let tid = caller.tid;
                Ok(Outcome::Wait(
                    Wait::new(move |stop| {
                        let (got, signals) = watched(tid, stop, || msg::receive(id, mtype, room, true));
                        match got.map(|message| hand_over(ident, message, || signals == Signals::Fatal)) {
                            Ok(Given::Body(body)) => Ok(body),
                            Ok(Given::Back(refusal)) => Err(refusal),
                            // The caller is dying: its reply can wait for the room.
                            Ok(Given::Held(message, refusal)) => {
                                keep(ident, message, stop);
                                Err(refusal)
                            }
                            Err(e) => Err(map_error(e, ident)),
                        }
                    })
                    .using(ObjectKind::Msg, ident.id.0, Role::WaitingReceive),
                ))
            }
            Err(e) => Err(map_error(e, ident)),
        }
    }

    /// Sends `data` as one message; a full queue makes the write wait, or
    /// fail with EAGAIN on a non-blocking file.
    pub fn write(&self, data: &[u8], nonblocking: bool, caller: &Caller) -> Result<Written> {
        check_access(&current(self.ident)?.perm, caller, Want::WRITE)?;
        // Possibly one piece of a longer write(2): refuse it whole.
        if data.len() > largest_message() {
            return Err(Error::Invalid);
        }
        let (id, len) = (self.ident.id, data.len());
        let mtype = if self.mtype == 0 { ANY_SEND_TYPE } else { self.mtype };
        match msg::send(id, mtype, data, false) {
            Ok(()) => Ok(Outcome::Ready(len)),
            Err(Errno::EAGAIN) if nonblocking || self.nonblocking => Err(Error::WouldBlock),
            Err(Errno::EAGAIN) => {
                let (tid, body) = (caller.tid, data.to_vec());
                let ident = self.ident;
                Ok(Outcome::Wait(
                    Wait::new(move |stop| {
                        let (sent, _) = watched(tid, stop, || msg::send(id, mtype, &body, true));
                        sent.map(|()| len).map_err(|e| map_error(e, ident))
                    })
                    .using(ObjectKind::Msg, ident.id.0, Role::WaitingSend),
                ))
            }
            Err(e) => Err(map_error(e, self.ident)),
        }
    }
}

/// A message taken for a caller that died before it could be handed over
/// goes back on the queue (at its end: the kernel has no other place).
/// Returns it when the queue is full: it must then be [`keep`]t.
fn put_back(id: MsqId, message: Message) -> Option<Message> {
    match msg::send(id, message.mtype, &message.body, false) {
        Ok(()) => None,
        Err(Errno::EAGAIN) => Some(message),
        // The queue went, and every message in it with it.
        Err(e) => {
            log::debug!("queue {} went before a message of type {} could be put back: {e}", id.0, message.mtype);
            None
        }
    }
}

/// Waits for room on `ident`'s queue and puts `message` back: a message is
/// never dropped while its queue exists and the filesystem serves. Only an
/// unmount (or its namespace's end) stops this; the message is then lost,
/// and said so in the log.
fn keep(ident: MsgIdent, message: Message, stop: &Stop) {
    loop {
        if current(ident).is_err() {
            return;
        }
        let (sent, _) = watched(0, stop, || msg::send(ident.id, message.mtype, &message.body, true));
        match sent {
            Ok(()) => return,
            Err(Errno::EINTR) if stop.is_set() => {
                log::error!(
                    "stopping while a message of type {} waited for room on queue {}: it is lost",
                    message.mtype,
                    ident.id.0
                );
                return;
            }
            Err(Errno::EINTR) => continue,
            Err(e) => {
                log::debug!("queue {} went while a message waited for room on it: {e}", ident.id.0);
                return;
            }
        }
    }
}

/// Did a queue that took `ident`'s id give this daemon a message? The
/// identity check and the call by id are two system calls, so an object
/// removed and replaced between them (only possible when msg_next_id is set,
/// or after the id's sequence wraps) gets the call. A replacement that this
/// daemon has never received from cannot have given the message: then it
/// came from the file's own queue before that was removed.
fn received_from_replacement(ident: MsgIdent) -> bool {
    let daemon = i32::try_from(std::process::id()).unwrap_or(-1);
    matches!(msg::stat_any(ident.id), Ok(stat) if MsgIdent::of(&stat) != ident && stat.rtime != 0 && stat.lrpid == daemon)
}

/// What becomes of a received message.
enum Given {
    /// Handed to the caller.
    Body(Vec<u8>),
    /// Put back (or gone with its queue); the caller gets this error.
    Back(Error),
    /// Taken for nobody while the queue was full: it must be kept until
    /// there is room ([`keep`]); the caller gets this error.
    Held(Message, Error),
}

/// Hands a received message over, or puts it back where it came from: when
/// a queue that replaced this file's own gave it (the file then says its
/// queue is gone), or when the caller is being killed.
fn hand_over(ident: MsgIdent, message: Message, dying: impl FnOnce() -> bool) -> Given {
    let refusal = if received_from_replacement(ident) {
        Error::NotFound
    } else if dying() {
        Error::Interrupted
    } else {
        return Given::Body(message.body);
    };
    match put_back(ident.id, message) {
        None => Given::Back(refusal),
        Some(message) => Given::Held(message, refusal),
    }
}
