//! Objects removed and replaced (with the same id) behind the daemon's back
//! while clients use open files: ENOENT or EIDRM, never the new object; and
//! the disagreements with docs/ipcfs.md found that way, each a test of
//! its own.

use super::*;

use std::collections::HashMap;
use std::fs;

use ipcfs::ipc::msg::{self, MsqId};
use ipcfs::ipc::sem;

// ---- 4. objects removed or replaced behind the daemon's back ----

/// While clients read and write open files of a queue, a semaphore set and
/// a segment, `ipcrm` removes all three and new ones are made, with other
/// keys, at the same ids where the kernel allows it (the queue and the set;
/// a segment still attached keeps its id). The clients go on using their
/// open files throughout. Every operation on an open queue or semaphore file
/// then fails with ENOENT (EIDRM for a wait in progress) and none reaches
/// the new objects; an open segment file keeps reaching its own, removed,
/// segment, as documented, and never the new one. The daemon keeps running
/// and lists exactly the kernel's objects.
///
/// The new objects differ from the old in their key, which ipcfs compares
/// along with the id. A queue or set equal in every field the kernel keeps
/// (same key, creator and id) cannot be told from the old one by any
/// filesystem, nor by a program holding the old id; no test asks for that.
#[test]
fn objects_removed_or_replaced_under_load_are_never_confused() {
    let m = Mounted::new();
    for round in 0..3 * soak() {
        let control = TempDir::new("control");
        let key = 0x7e1a0200 + round as i32 * 8;
        let queue = msg::get(Key(key), libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
        let set = sem::get(Key(key + 1), 2, libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
        set_sem_values(set, &[5, 0]);
        let seg = create_segment(key + 2, 4096, 0o600);
        for i in 0..20 {
            send(queue, 1, format!("old-first-{i:06}").as_bytes());
        }
        let dir = arg(&control.0).to_string();
        let qfile = |name: &str| m.path(format!("msg/{}/{name}", queue.0));
        let semaphore = |n: u16| m.path(format!("sem/{}/{n}", set.0));

        let mut queue_clients = vec![
            Client::start("reader of .recv/any", &["q-read", arg(&qfile(".recv/any")), &dir]),
            Client::start("reader of .wait/any", &["q-read", arg(&qfile(".wait/any")), &dir]),
            Client::start("reader of .recv/1", &["q-read", arg(&qfile(".recv/1")), &dir]),
            Client::start("writer to any", &["q-write", arg(&qfile("any")), "old", &dir]),
        ];
        let mut churn = Client::start("churn on sem 0", &["sem-churn", arg(&semaphore(0)), &dir]);
        let mut taker = Client::start("P's on sem 1", &["sem-take", arg(&semaphore(1)), &dir]);
        let mut checker = Client::start("segment checker", &["shm-check", arg(&m.shm(seg)), "64", &dir]);
        for client in queue_clients.iter_mut().chain([&mut churn, &mut checker]) {
            client.wait_said("ready", PROMPTLY);
        }
        taker.wait_blocked();

        sh_ok(&format!("ipcrm -q {} -s {} -m {}", queue.0, set.0, seg.0));
        // Every queue and semaphore client has met the removal before the new
        // objects come: none has an operation still on its way that checked
        // the old object's identity before the removal. (An operation caught
        // in that gap is `an_open_file_never_reaches_an_object_that_replaced_its_own_at_once`.)
        for client in queue_clients.iter_mut().chain([&mut churn, &mut taker]) {
            client.wait_said("failing", PROMPTLY);
        }
        fs::write("/proc/sys/kernel/msg_next_id", queue.0.to_string()).unwrap();
        let new_queue = msg::get(Key(key + 4), libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
        fs::write("/proc/sys/kernel/sem_next_id", set.0.to_string()).unwrap();
        let new_set = sem::get(Key(key + 5), 2, libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
        fs::write("/proc/sys/kernel/shm_next_id", seg.0.to_string()).unwrap();
        let new_seg = create_segment(key + 6, 4096, 0o600);
        assert_eq!((new_queue, new_set), (queue, set), "precondition: the kernel gave the ids again");
        assert_eq!(
            new_seg, seg,
            "precondition: the id again (open files are no attachments: rm destroyed the segment)"
        );
        let new_messages: Vec<(i64, String)> = (0..50).map(|i| (1, format!("new-{i:06}"))).collect();
        for (t, body) in &new_messages {
            send(new_queue, *t, body.as_bytes());
        }
        set_sem_values(new_set, &[1000, 7]);
        fill_segment(new_seg, b"NEW!");

        // The replacement is complete: every client makes 50 more operations.
        fs::write(control.0.join("mark"), "").unwrap();
        let mut clients: Vec<&mut Client> = queue_clients.iter_mut().collect();
        clients.extend([&mut churn, &mut taker, &mut checker]);
        for client in &mut clients {
            client.wait_said("after-mark", PROMPTLY);
        }
        fs::write(control.0.join("stop"), "").unwrap();
        let mut ends = HashMap::new();
        for client in &mut clients {
            assert!(client.finish(PROMPTLY).success(), "{}", client.report());
            let end = client.output().lines().find(|l| l.starts_with("stopped ")).unwrap_or_default().to_string();
            ends.insert(client.what.clone(), end);
        }
        drop(clients);

        // After the replacement, every operation on an old queue or set file
        // failed with ENOENT: no object has the id it was opened on. Around
        // the removal, ENOENT or EIDRM (and EINVAL, which
        // `an_operation_on_a_queue_removed_under_it_fails_with_enoent_not_einval`
        // is about).
        let tally = |end: &str, name: &str| -> Vec<String> {
            let after = end.split(&format!(" {name} ")).nth(1).unwrap_or_default();
            let field = after.split(' ').next().unwrap_or_default();
            field.split(',').filter(|e| *e != "none").map(|e| e.split(':').next().unwrap().to_string()).collect()
        };
        for client in queue_clients.iter().chain([&churn, &taker]) {
            let end = &ends[&client.what];
            assert!(end.starts_with("stopped ok-after-mark 0 "), "an operation succeeded: {}", client.report());
            assert_eq!(tally(end, "errors-after-mark"), ["ENOENT"], "{}", client.report());
            let before = tally(end, "errors-before-mark");
            assert!(before.iter().all(|e| ["ENOENT", "EIDRM", "EINVAL"].contains(&e.as_str())), "{}", client.report());
        }
        // The open segment file went on working, on the old segment.
        let end = &ends[&checker.what];
        assert!(end.ends_with(" errors-after-mark none errors-before-mark none bad 0"), "{}", checker.report());
        assert!(!end.starts_with("stopped ok-after-mark 0 "), "{}", checker.report());

        // Nothing reached the new objects, and nothing of theirs came out.
        for client in &queue_clients {
            let got = client.got();
            assert!(got.iter().all(|b| b.starts_with("old-")), "{}: {:?}", client.what, got);
        }
        let values: Vec<String> =
            churn.output().lines().filter_map(|l| l.strip_prefix("value ")).map(str::to_string).collect();
        assert_eq!(values, ["5"], "values seen through the old semaphore file: {}", churn.report());
        assert!(!taker.said("took"), "a P through the old file took a unit: {}", taker.report());
        assert_eq!(queued_text(new_queue), new_messages, "the new queue holds exactly its own messages");
        assert_eq!(sem_values(new_set, 2), [1000, 7], "the new set's values");
        assert_eq!(segment_bytes(new_seg), b"NEW!".repeat(1024), "the new segment's bytes");

        // The mount shows exactly the kernel's objects, the new ones under
        // the old names (the old segment went at its removal).
        assert_serving_the_kernels_objects(&m);
        assert_eq!(kernel_objects(), [vec![new_seg.0.to_string()], vec![set.0.to_string()], vec![queue.0.to_string()]]);
        assert_eq!(fs::read_to_string(semaphore(0)).unwrap(), "1000\n", "the name leads to the new set");
        sem::remove(new_set).unwrap();
        msg::remove(new_queue).unwrap();
        shm::remove(new_seg).unwrap();
        for name in ["mark", "stop"] {
            fs::remove_file(control.0.join(name)).unwrap();
        }
    }
}

// ---- bugs found by this file, each pinned by a test of its own ----

/// Replaces a queue `generations` times at once (IPC_RMID, then a new queue
/// with another key at the same id, filled with 200 messages `gen-K-I`)
/// while 4 processes follow it with `q-follow` through `msg/<id>/.recv/any`;
/// each generation waits until the followers have read from the new queue.
/// Returns the followers, finished.
fn follow_queue_reads(m: &Mounted, generations: i32) -> Vec<Client> {
    let control = TempDir::new("control");
    let key = 0x7e1a0400;
    let first = msg::get(Key(key), libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
    let fill = |queue: MsqId, generation: i32| {
        for i in 0..200 {
            send(queue, 1, format!("gen-{generation}-{i}").as_bytes());
        }
    };
    fill(first, 0);
    let path = m.path(format!("msg/{}/.recv/any", first.0));
    let mut followers: Vec<Client> =
        (0..4).map(|c| Client::start(format!("follower {c}"), &["q-follow", arg(&path), arg(&control.0)])).collect();
    for follower in &mut followers {
        follower.wait_said("ready", PROMPTLY);
    }
    let mut queue = first;
    for generation in 1..=generations {
        msg::remove(queue).unwrap();
        fs::write("/proc/sys/kernel/msg_next_id", first.0.to_string()).unwrap();
        queue = msg::get(Key(key + generation), libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
        assert_eq!(queue, first, "precondition: the kernel gave the id again");
        fill(queue, generation);
        wait_until("the followers read from the new queue", PROMPTLY, || qnum(queue) < 150);
    }
    fs::write(control.0.join("stop"), "").unwrap();
    for follower in &mut followers {
        assert!(follower.finish(PROMPTLY).success(), "{}", follower.report());
    }
    msg::remove(queue).unwrap();
    fs::remove_file(control.0.join("stop")).unwrap();
    followers
}

/// What docs/ipcfs.md and the style guide promise: an open file reaches the
/// object it was opened on or fails, "never the new object's bytes". Here
/// the object is removed and another made at once at the same id (with
/// another key, so that ipcfs can tell them apart), again and again, while
/// processes use files opened on the old ones: queue reads, queue writes,
/// and semaphore reads. Each generation is marked in what it holds, so a
/// file that reaches the next generation shows.
///
/// ipcfs checks the object's identity (msgctl/semctl STAT) and then makes
/// the call by id (msgrcv, msgsnd, semctl GETVAL); an object replaced
/// between the two is reached. The window is short, but a daemon thread
/// preempted in it keeps it open: in a few hundred replacements, reads met
/// it a few times each, writes about once. ipcfs now checks again after the
/// call and undoes what it can (a message received goes back, units go
/// back, a value read is dropped: ENOENT), which leaves the sends, and a
/// message received from the old queue just before its removal, which the
/// check after cannot tell from one of the new queue's. A known limit,
/// written down in docs/reliability.md; run with `--ignored` to see it.
#[test]
#[ignore = "known limit (docs/reliability.md): an id reused between the identity check and the call by id"]
fn an_open_file_never_reaches_an_object_that_replaced_its_own_at_once() {
    let m = Mounted::new();
    let generations = 300 * soak() as i32;
    let mut confusions = Vec::new();

    // Queue reads: one file must not give messages of two generations.
    for follower in follow_queue_reads(&m, generations) {
        confusions
            .extend(follower.output().lines().filter(|l| l.starts_with("confused")).map(|l| format!("queue read {l}")));
    }

    // Queue writes: a queue must hold only messages sent through files
    // opened on it (each says the key of its file's queue).
    let control = TempDir::new("control");
    let key = 0x7e1a0600;
    let first = msg::get(Key(key), libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
    let dir = m.path(format!("msg/{}", first.0));
    let mut writers: Vec<Client> =
        (0..4).map(|c| Client::start(format!("writer {c}"), &["q-follow-write", arg(&dir), arg(&control.0)])).collect();
    let opened = |c: &Client| c.output().lines().filter(|l| *l == "opened").count();
    let mut queue = first;
    for generation in 1..=generations {
        wait_until("every writer has a file on this queue", PROMPTLY, || {
            writers.iter().all(|w| opened(w) >= generation as usize)
        });
        let own = Key(key + generation - 1).to_string();
        for (_, body) in queued_text(queue) {
            if !body.starts_with(&own) {
                confusions.push(format!("queue write: the queue with key {own} holds {body}"));
            }
        }
        msg::remove(queue).unwrap();
        fs::write("/proc/sys/kernel/msg_next_id", first.0.to_string()).unwrap();
        queue = msg::get(Key(key + generation), libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
        assert_eq!(queue, first, "precondition: the kernel gave the id again");
    }
    fs::write(control.0.join("stop"), "").unwrap();
    for writer in &mut writers {
        assert!(writer.finish(PROMPTLY).success(), "{}", writer.report());
    }
    msg::remove(queue).unwrap();
    fs::remove_file(control.0.join("stop")).unwrap();

    // Semaphore reads: each generation's value is its number.
    let key = 0x7e1a0500;
    let first = sem::get(Key(key), 1, libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
    sem::set_value(first, 0, 1).unwrap();
    let path = m.path(format!("sem/{}/0", first.0));
    let mut followers: Vec<Client> =
        (0..4).map(|c| Client::start(format!("follower {c}"), &["sem-follow", arg(&path), arg(&control.0)])).collect();
    let mut set = first;
    for generation in 1..=generations {
        wait_until("every follower has a file on this set", PROMPTLY, || {
            followers.iter().all(|f| opened(f) >= generation as usize)
        });
        sem::remove(set).unwrap();
        fs::write("/proc/sys/kernel/sem_next_id", first.0.to_string()).unwrap();
        set = sem::get(Key(key + generation), 1, libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
        assert_eq!(set, first, "precondition: the kernel gave the id again");
        sem::set_value(set, 0, generation + 1).unwrap();
    }
    fs::write(control.0.join("stop"), "").unwrap();
    for follower in &mut followers {
        assert!(follower.finish(PROMPTLY).success(), "{}", follower.report());
        confusions.extend(
            follower.output().lines().filter(|l| l.starts_with("confused")).map(|l| format!("semaphore read {l}")),
        );
    }
    sem::remove(set).unwrap();
    fs::remove_file(control.0.join("stop")).unwrap();

    assert!(confusions.is_empty(), "files reached the objects that replaced theirs: {confusions:#?}");
}

/// docs/ipcfs.md: ENOENT when "no object has that id"; EIDRM when the queue
/// was removed while an operation waited on it. EINVAL is for bad input. A
/// read or write on an open queue file whose queue is removed between
/// ipcfs's identity check and its msgrcv/msgsnd gets the kernel's EINVAL for
/// a vanished id, passed on as it is (`map_error` in src/fs/msg.rs maps
/// EINVAL to `Error::Invalid` rather than to "not found").
#[test]
fn an_operation_on_a_queue_removed_under_it_fails_with_enoent_not_einval() {
    let m = Mounted::new();
    let mut unexpected = Vec::new();
    for follower in follow_queue_reads(&m, 600 * soak() as i32) {
        let end = follower.output().lines().find(|l| l.starts_with("stopped ")).unwrap_or_default().to_string();
        let errors = end.split(" errors-before-mark ").nth(1).unwrap_or_default();
        let ok = errors.split(',').all(|e| e.starts_with("ENOENT:") || e.starts_with("EIDRM:"));
        if !ok {
            unexpected.push(format!("{}: {errors}", follower.what));
        }
    }
    assert!(unexpected.is_empty(), "errors of reads on removed queues: {unexpected:#?}");
}
