//! Cases pinned by name: where ipcfs disagrees with the documentation (so
//! that the tables stay green and each disagreement shows up once), and what
//! the random search of [`super::run`] found, shrunk and kept as regressions.

use super::calls::*;
use super::ops::*;
use super::run::*;
use super::*;

use std::fs;

use ipcfs::ipc::msg;

// ---- where ipcfs disagrees with the documentation ----

/// docs/ipcfs.md: "Bad input changes nothing: text that is not one of these
/// commands (… two commands in one write) fails with EINVAL", and a command
/// may be "followed by white space or a newline". The kernel cuts a write
/// larger than one FUSE request (1 MiB) into several requests; each must not
/// become a command of its own.
#[test]
fn one_write_is_one_semaphore_command_even_beyond_one_fuse_request() {
    let m = Mounted::new();
    let w = World::new();
    let mut b = Bench::new(&m);
    let path = under(&m, format!("sem/{}/1", w.set.0));
    let mut two = vec![b' '; 2 << 20];
    two[0] = b'3';
    two[(1 << 20) + 8..(1 << 20) + 10].copy_from_slice(b"+1");
    b.refuses("one write of `3`, 1 MiB of spaces, `+1`, 1 MiB of spaces", Want::Err(libc::EINVAL), || {
        write_once(&path, 0, &two)
    });
    let mut padded = vec![b' '; 2 << 20];
    padded[0] = b'3';
    b.refuses("one write of `3` and 2 MiB of spaces", Want::Err(libc::EINVAL), || write_once(&path, 0, &padded));
    b.finish();
}

/// docs/ipcfs.md: "One write(2) sends one message (msgsnd), its body exactly
/// the bytes written." With `kernel.msgmax` raised above the size of one
/// FUSE request, a larger write must still be one message, or fail and send
/// nothing — never arrive as several messages.
#[test]
fn one_write_is_one_message_even_beyond_one_fuse_request() {
    let m = Mounted::new();
    let w = World::new();
    let dog = Watchdog::new(&m);
    fs::write("/proc/sys/kernel/msgmax", (8 << 20).to_string()).unwrap();
    fs::write("/proc/sys/kernel/msgmnb", (64 << 20).to_string()).unwrap();
    let stat = msg::stat_any(w.queue).unwrap();
    msg::set(w.queue, stat.perm.uid, stat.perm.gid, stat.perm.mode, 64 << 20).unwrap();
    let path = m.path(format!("msg/{}/9", w.queue.0));
    let mut failures = Vec::new();
    for size in [600 << 10, 1 << 20, (1 << 20) + 1, 3 << 20] {
        let body = pseudo_random(size, size as u64);
        let before = queued_texts(w.queue);
        dog.guard("a large write to a queue");
        let got = write_once(&path, libc::O_NONBLOCK, &body);
        dog.clear();
        let after = queued_texts(w.queue);
        let mut want = before.clone();
        want.push((9, Text(body.clone())));
        let ok = match got {
            Ok(n) => n == size as u64 && after == want,
            Err(e) => e != libc::EIO && after == before,
        };
        if !ok {
            let sizes: Vec<(i64, usize)> = after[before.len()..].iter().map(|(t, b)| (*t, b.0.len())).collect();
            failures.push(format!(
                "a write of {size} bytes gave {}, and queued {} messages (type, size): {sizes:?}",
                show(&got),
                sizes.len()
            ));
        }
        while msg::receive(w.queue, 9, 8 << 20, false).is_ok() {}
    }
    if let Err(e) = serving(&m, &Kernel::now(), &dog) {
        failures.push(e);
    }
    assert!(failures.is_empty(), "one write must be one message:\n{}", failures.join("\n"));
}

/// docs/ipcfs.md: the queue files that receive and send (under `.recv/`
/// and `.wait/`, and listed files opened only to write) "are streams …:
/// there is no file position (lseek and pread fail with ESPIPE)". An offset,
/// however large, must neither be ignored nor change anything there. A
/// listed queue file open for reading and a semaphore file have positions,
/// as sysfs files do: far beyond the text is its end.
#[test]
fn huge_offsets_are_refused_where_there_are_no_positions_and_read_as_end_of_file_elsewhere() {
    let m = Mounted::new();
    let w = World::new();
    let mut b = Bench::new(&m);
    let semaphore = under(&m, format!("sem/{}/1", w.set.0));
    let queue = under(&m, format!("msg/{}/.recv/any", w.queue.0));
    let listed = under(&m, format!("msg/{}/any", w.queue.0));
    for offset in [1u64 << 40, u64::MAX / 2 - 100] {
        // Semaphore files have positions, as sysfs files do: a read past
        // the value's text is end-of-file, and a write is a command wherever
        // it lands (white space alone: one that does nothing).
        b.refuses(format!("pwrite white space at {offset} to a semaphore"), Want::Ok(2), || {
            pwrite_once(&semaphore, b" \n", offset)
        });
        b.refuses(format!("pread a semaphore at {offset}"), Want::Ok(0), || count(pread_once(&semaphore, 16, offset)));
        b.refuses(format!("pwrite a message at {offset}"), Want::Err(libc::ESPIPE), || {
            pwrite_once(&queue, b"hello", offset)
        });
        b.refuses(format!("pread a queue at {offset}"), Want::Err(libc::ESPIPE), || {
            count(pread_once(&queue, 100, offset))
        });
        b.refuses(format!("pread a listed queue file at {offset}"), Want::Ok(0), || {
            count(pread_once(&listed, 100, offset))
        });
    }
    b.finish();
}

/// docs/ipcfs.md: creation names are keys (`0x…`) or `private`; "a bad name
/// … EINVAL" (mkdir in sem/ and msg/), ENOENT for creating a file by any
/// other name (in shm/ and where no file can be made), and EPERM for "mkdir
/// outside `sem/` and `msg/`". A name that is not UTF-8 is such a bad name.
#[test]
fn names_that_are_not_utf8_get_the_errno_of_any_other_bad_name_when_creating() {
    let m = Mounted::new();
    let w = World::new();
    let mut b = Bench::new(&m);
    let (e, q) = (w.set.0, w.queue.0);
    for name in [&b"sem/\xff"[..], b"sem/0x1\xff", b"sem/0x1:\xff", b"msg/\xff", b"msg/0x1\xff"] {
        let path = under(&m, name);
        b.refuses(format!("mkdir {:?}", text(name)), Want::Err(libc::EINVAL), || mkdir(&path));
    }
    for name in [&b"shm/\xff"[..], b"shm/0x1\xff"] {
        let path = under(&m, name);
        b.refuses(format!("create {:?}", text(name)), Want::Err(libc::ENOENT), || {
            open(&path, libc::O_WRONLY | libc::O_CREAT).map(|_| 0)
        });
    }
    for dir in ["".to_string(), "shm/".into(), "by-key/".into(), format!("sem/{e}/"), format!("msg/{q}/")] {
        let name = [dir.as_bytes(), b"\xff"].concat();
        let path = under(&m, &name);
        b.refuses(format!("mkdir {:?}", Text(name)), Want::Err(libc::EPERM), || mkdir(&path));
    }
    for dir in ["", "sem/", "msg/", "by-key/shm/"] {
        let name = [dir.as_bytes(), b"\xff"].concat();
        let path = under(&m, &name);
        b.refuses(format!("create {:?}", Text(name)), Want::Err(libc::ENOENT), || {
            open(&path, libc::O_WRONLY | libc::O_CREAT).map(|_| 0)
        });
    }
    b.finish();
}

// ---- what the random search found, kept as regressions ----

/// Found by the property test: mkdir of a name that is not UTF-8 outside
/// sem/ and msg/ gives ENOENT; the docs say EPERM ("mkdir outside `sem/` and
/// `msg/`"). The same cause as
/// names_that_are_not_utf8_get_the_errno_of_any_other_bad_name_when_creating.
#[test]
fn regression_mkdir_of_a_name_that_is_not_utf8_in_by_key() {
    replay(&[Op::Reshape { how: Reshape::Mkdir, place: Place::ByKey, name: text(b"\x80") }]);
}

/// Found by the property test, shrunk from a random sequence: a queue file
/// kept open while its queue is removed behind the mount's back, and a new
/// queue given the same id (`msg_next_id`, as checkpoint/restore does, or
/// after the id's sequence number wraps). docs/ipcfs.md (Identity of
/// objects, Errors) and the style guide: a file opened on an object whose id
/// went to another gives ENOENT, never the new object's data. ipcfs tells
/// queues apart by id, key, creator uid and gid only, so the write through
/// the old file lands in the new queue (and a read would take its messages).
/// Kept sets behave the same (by id, key, creator and size). The kernel
/// shows no field that would tell such a look-alike from the original
/// (ctime changes with IPC_SET and SETVAL, and there is no creator pid), so
/// this is a known limit, written down in docs/reliability.md.
#[test]
#[ignore = "known limit (docs/reliability.md): a look-alike object given a removed one's id cannot be told apart"]
fn regression_a_queue_file_kept_open_never_reaches_a_new_queue_with_the_same_id() {
    replay(&[
        Op::Hold { slot: 2, file: HeldFile::Queue(QFile::RecvAny) },
        Op::Behind(Behind::Remove(Family::Msg)),
        Op::Behind(Behind::Create { family: Family::Msg, same_id: true, keyed: false, shape: 0 }),
        Op::HeldWrite { slot: 2, offset: 0, data: text("0\n") },
    ]);
}

/// Found by the property test, shrunk from a random sequence: a semaphore
/// file kept open, its set removed through the mount (rmdir), and a new set
/// of the same size given the same id behind the mount's back. The new set
/// is listed in sem/, but `sem/ID/` lists nothing and `sem/ID/N` is ENOENT:
/// ipcfs cannot tell the two sets apart, so it gives the new one the old
/// directory's inode number, which the kernel still holds as a removed
/// directory. docs/ipcfs.md: an object made by any program "appears … at
/// once". Fixed: rmdir retires the removed object's inodes.
#[test]
fn regression_a_set_given_a_removed_sets_id_can_be_used_while_a_file_of_the_old_one_is_open() {
    replay(&[
        Op::Hold { slot: 0, file: HeldFile::Semaphore(0) },
        Op::Remove(Family::Sem),
        Op::Behind(Behind::Create { family: Family::Sem, same_id: true, keyed: false, shape: 2 }),
    ]);
}

/// Found by the property test, shrunk from a random sequence: the same as
/// regression_a_set_given_a_removed_sets_id_can_be_used_while_a_file_of_the_old_one_is_open,
/// for a queue, and with the old file closed (its slot reused) before the
/// new queue is made: the kernel keeps the removed directory's inode even
/// then, so `msg/ID/` stays empty and `msg/ID/any` ENOENT (seconds later
/// too). Fixed with the one before.
#[test]
fn regression_a_queue_given_a_removed_queues_id_can_be_used_after_a_file_open_during_the_rmdir_is_closed() {
    replay(&[
        Op::Hold { slot: 2, file: HeldFile::Queue(QFile::Type(1)) },
        Op::Remove(Family::Msg),
        Op::Hold { slot: 2, file: HeldFile::Segment },
        Op::Behind(Behind::Create { family: Family::Msg, same_id: true, keyed: false, shape: 0 }),
    ]);
}

/// Constructed, not shrunk: the property test's hardest case, pinned. The
/// random search found no failure here; this is the path it must keep
/// passing. Files kept open on a set, a queue and a segment while all three
/// are removed — through the mount and behind its back — and new objects
/// take the set's and the queue's ids (told apart by their keys): the kept
/// set and queue files give ENOENT and never touch the new objects; the kept
/// segment file still reaches its own segment's bytes, while the segment is
/// gone from the kernel and the listing at once (an open file is no
/// attachment), as an unlinked file's open files do.
#[test]
fn regression_files_kept_open_on_removed_objects_never_reach_the_objects_that_take_their_ids() {
    replay(&[
        // A segment with a key, so that its by-key link can be seen to go.
        Op::Behind(Behind::Create { family: Family::Shm, same_id: false, keyed: true, shape: 0 }),
        Op::Hold { slot: 0, file: HeldFile::Semaphore(1) },
        Op::Hold { slot: 1, file: HeldFile::Queue(QFile::RecvType(3)) },
        Op::Hold { slot: 2, file: HeldFile::Segment },
        Op::HeldWrite { slot: 2, offset: 10, data: text("old bytes") },
        Op::Send { to: QFile::Type(3), body: text("old") },
        Op::Remove(Family::Sem),
        Op::Behind(Behind::Remove(Family::Msg)),
        Op::Behind(Behind::Remove(Family::Shm)),
        Op::Behind(Behind::Create { family: Family::Sem, same_id: true, keyed: true, shape: 0 }),
        Op::Create { family: Family::Msg, same_id: true, shape: 0 },
        Op::Behind(Behind::SemSetVal { num: 1, value: 7 }),
        Op::Behind(Behind::Send { mtype: 3, body: text("new") }),
        Op::HeldRead { slot: 0, offset: 0, room: 64 },
        Op::HeldWrite { slot: 0, offset: 0, data: text("5") },
        Op::HeldStat { slot: 0 },
        Op::HeldRead { slot: 1, offset: 0, room: 64 },
        Op::HeldWrite { slot: 1, offset: 0, data: text("x") },
        Op::HeldStat { slot: 1 },
        Op::SemWrite { num: 1, text: text("+1") },
        Op::Read { from: QFile::RecvType(3), room: 64 },
        Op::HeldRead { slot: 2, offset: 0, room: 64 },
        Op::HeldStat { slot: 2 },
        Op::ShmRead { offset: 8, room: 16 },
        Op::HeldWrite { slot: 2, offset: 0, data: text("still mine") },
        Op::Release { slot: 2 },
        Op::Behind(Behind::Create { family: Family::Shm, same_id: true, keyed: false, shape: 1 }),
        Op::ShmRead { offset: 0, room: 128 },
        Op::ShmWrite { offset: 90, data: text("new segment, 100 bytes") },
        Op::HeldRead { slot: 0, offset: 0, room: 64 },
    ]);
}
