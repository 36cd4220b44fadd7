//! Rights and identity: rights checked at each read and write (item 8), old
//! descriptors and forced id reuse (item 9), information that needs read
//! permission (item 10).

use super::*;

use std::fs;
use std::os::unix::fs::MetadataExt;

use ipcfs::ipc::msg;
use ipcfs::ipc::sem;

// ---- 8. rights checked at each read and write ----

/// What uid 1002's descriptors, opened on 0666 objects of uid 1001, can do
/// after the owner's chmod to `mode_after` through the mount.
struct AfterChmod {
    results: Vec<(&'static str, String)>,
    queue: Vec<(i64, Vec<u8>)>,
    value: i32,
    segment_read: String,
}

fn descriptors_after_chmod(mode_after: u32) -> AfterChmod {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let queue = queue_of(OWNER, 0o666);
    for (t, body) in [(1, "one"), (7, "seven"), (1, "two")] {
        msg::send(queue, t, body.as_bytes(), false).unwrap();
    }
    let set = set_of(OWNER, 1, 0o666);
    sem::set_value(set, 0, 2).unwrap();
    let segment = segment_of(OWNER, 4096, 0o666);
    let attachment = shm::Attachment::attach(segment, 4096, true).unwrap();
    attachment.write_at(0, b"segment bytes").unwrap();

    let (qdir, sdir, seg) = (m.path(format!("msg/{}", queue.0)), m.path(format!("sem/{}", set.0)), m.shm(segment));
    let (any, recv_any, recv_seven, wait_any, sem0) =
        (qdir.join("any"), qdir.join(".recv/any"), qdir.join(".recv/7"), qdir.join(".wait/any"), sdir.join("0"));
    let mut other = Probe::start(
        OTHER,
        &[],
        &[
            ("any_r", "r", &recv_any),
            ("any_w", "w", &any),
            ("seven_r", "r", &recv_seven),
            ("wait_r", "r", &wait_any),
            ("sem_r", "r", &sem0),
            ("sem_w", "w", &sem0),
            ("shm_r", "r", &seg),
        ],
    );
    assert_ok(
        &sh_as(OWNER, OWNER, &[], &format!("chmod {mode_after:o} {} {} {}", q(&qdir), q(&sdir), q(&seg))),
        "the owner's chmod",
    );
    for (path, what) in [(&qdir, "queue"), (&sdir, "set")] {
        assert_eq!(fs::metadata(path).unwrap().mode() & 0o666, mode_after, "the {what}'s mode after the chmod");
    }
    assert_eq!(shm_mode(segment), (OWNER, mode_after));
    let results = [
        ("read .recv/any", "read any_r"),
        ("read .recv/7", "read seven_r"),
        ("read .wait/any", "read wait_r"),
        ("write any", "write any_w hi"),
        ("read sem", "read sem_r"),
        ("write sem +1", "write sem_w +1"),
    ]
    .into_iter()
    .map(|(what, command)| (what, other.ask(command)))
    .collect();
    let segment_read = other.ask("pread shm_r 13");
    let after = AfterChmod { results, queue: queued(queue), value: sem_value(set, 0), segment_read };
    drop(other);
    drop(attachment);
    shm::remove(segment).unwrap();
    after
}

/// Item 8. After the owner's `chmod 600`, another user's descriptors opened
/// before it can neither receive, send, read nor change the semaphore, and
/// nothing changes in the kernel; an open segment file still reads.
#[test]
fn open_queue_and_semaphore_files_are_checked_again_at_each_read_and_write() {
    let after = descriptors_after_chmod(0o600);
    let want: Vec<(&str, String)> =
        ["read .recv/any", "read .recv/7", "read .wait/any", "write any", "read sem", "write sem +1"]
            .into_iter()
            .map(|what| (what, "EACCES".to_string()))
            .collect();
    assert_eq!(after.results, want, "uid {OTHER}'s descriptors after the owner's chmod 600");
    assert_eq!(after.queue, messages(&[(1, "one"), (7, "seven"), (1, "two")]), "nothing received or sent");
    assert_eq!(after.value, 2, "the semaphore's value is unchanged");
    assert_eq!(
        after.segment_read,
        read_ok(b"segment bytes"),
        "a segment file opened before the chmod reads, as shmat would"
    );
}

/// Control for the test above: the same descriptors after a chmod that
/// still grants them (0666) do everything.
#[test]
fn open_files_keep_working_after_a_chmod_that_still_grants_them() {
    let after = descriptors_after_chmod(0o666);
    let want: Vec<(&str, String)> = vec![
        ("read .recv/any", read_ok(b"one")),
        ("read .recv/7", read_ok(b"seven")),
        ("read .wait/any", read_ok(b"two")),
        ("write any", "ok".into()),
        ("read sem", read_ok(b"2\n")),
        ("write sem +1", "ok".into()),
    ];
    assert_eq!(after.results, want);
    assert_eq!(after.queue, messages(&[(1, "hi")]));
    assert_eq!(after.value, 3);
    assert_eq!(after.segment_read, read_ok(b"segment bytes"));
}

// ---- 9. forced id reuse ----

/// Makes the next object of a kind (`msg` or `sem`) in the test thread's
/// IPC namespace get `id`: root writes it to kernel.<kind>_next_id.
fn force_next_id(kind: &str, id: i32) {
    fs::write(format!("/proc/sys/kernel/{kind}_next_id"), id.to_string())
        .unwrap_or_else(|e| panic!("write {kind}_next_id: {e}"));
}

/// Item 9, queues. Uid 1002 holds `msg/<id>/.recv/any` (to receive) and
/// `msg/<id>/any` (to send) of uid 1001's 0666 queue; 1001 removes it and
/// makes a 0600 queue with the same id (forced): the old descriptors get
/// EACCES for receiving and sending; a queue with the id made
/// by another user gives ENOENT. The message stays queued either way.
#[test]
fn an_old_queue_descriptor_does_not_reach_a_new_queue_with_its_id() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    for (creator, mode, refusal) in [(OWNER, 0o600, "EACCES"), (THIRD, 0o666, "ENOENT")] {
        let old = queue_of(OWNER, 0o666);
        let (any, recv_any) = (m.path(format!("msg/{}/any", old.0)), m.path(format!("msg/{}/.recv/any", old.0)));
        let mut other = Probe::start(OTHER, &[], &[("r", "r", &recv_any), ("w", "w", &any)]);
        as_uid(OWNER, || msg::remove(old)).unwrap();
        force_next_id("msg", old.0);
        let new = queue_of(creator, mode);
        assert_eq!(new, old, "precondition: the new queue took the old id");
        msg::send(new, 1, b"for the owner only", false).unwrap();
        let case = format!("new queue by uid {creator}, mode {mode:o}");
        assert_eq!(other.ask("read r"), refusal, "{case}: receive through the old descriptor");
        assert_eq!(other.ask("write w intruder"), refusal, "{case}: write through the old descriptor");
        assert_eq!(queued(new), messages(&[(1, "for the owner only")]), "{case}: the message stays, alone");
        drop(other);
        msg::remove(new).unwrap();
    }
}

/// Item 9, semaphore sets, the same with sem_next_id: the value stays.
#[test]
fn an_old_semaphore_descriptor_does_not_reach_a_new_set_with_its_id() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    for (creator, mode, refusal) in [(OWNER, 0o600, "EACCES"), (THIRD, 0o666, "ENOENT")] {
        let old = set_of(OWNER, 1, 0o666);
        let sem0 = m.path(format!("sem/{}/0", old.0));
        let mut other = Probe::start(OTHER, &[], &[("r", "r", &sem0), ("w", "w", &sem0)]);
        as_uid(OWNER, || sem::remove(old)).unwrap();
        force_next_id("sem", old.0);
        let new = set_of(creator, 1, mode);
        assert_eq!(new, old, "precondition: the new set took the old id");
        sem::set_value(new, 0, 5).unwrap();
        let case = format!("new set by uid {creator}, mode {mode:o}");
        assert_eq!(other.ask("read r"), refusal, "{case}: read through the old descriptor");
        assert_eq!(other.ask("write w +1"), refusal, "{case}: V through the old descriptor");
        assert_eq!(sem_value(new, 0), 5, "{case}: the value is unchanged");
        drop(other);
        sem::remove(new).unwrap();
    }
}

// ---- 10. information needs read permission ----

/// Item 10. On uid 1001's 0600 set, uid 1002 gets none of a semaphore's
/// pid and waiter counts (semctl GETPID/GETNCNT/GETZCNT need read); on its
/// 0600 queue, the bytes queued of one type show as 0 to 1002, while the
/// total (public in /proc/sysvipc/msg) shows to both.
#[test]
fn a_semaphores_pid_and_counts_and_a_types_bytes_need_read_permission() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let set = set_of(OWNER, 1, 0o600);
    as_uid(OWNER, || sem::operate(set, 0, 1, None)).unwrap();
    let sem0 = m.path(format!("sem/{}/0", set.0));
    for name in ["user.ipc.pid", "user.ipc.ncnt", "user.ipc.zcnt"] {
        let script = format!("LC_ALL=C getfattr --only-values --absolute-names -n {name} {}", q(&sem0));
        let owners = assert_ok(&sh_as(OWNER, OWNER, &[], &script), &format!("{name} as the owner"));
        assert!(owners.trim().parse::<i32>().is_ok(), "{name} as the owner: {owners:?}");
        assert_refused(&sh_as(OTHER, OTHER, &[], &script), "Permission denied", &format!("{name} as uid {OTHER}"));
    }
    assert_eq!(xattr(&sem0, "user.ipc.pid").unwrap().trim(), std::process::id().to_string(), "root sees the last pid");

    let queue = queue_of(OWNER, 0o600);
    for _ in 0..5 {
        msg::send(queue, 7, b"ten bytes!", false).unwrap();
    }
    let size = |uid: u32, name: &str| {
        let path = m.path(format!("msg/{}/{name}", queue.0));
        assert_ok(&sh_as(uid, uid, &[], &format!("stat -c %s {}", q(&path))), &format!("stat {name} as {uid}"))
            .trim()
            .to_string()
    };
    assert_eq!(size(OWNER, "7"), "50", "the owner sees the bytes of type 7");
    assert_eq!(size(OTHER, "7"), "0", "uid {OTHER} may not read the queue: no bytes per type");
    assert_eq!(size(OTHER, "any"), "50", "the total is public");
    assert_eq!(size(OWNER, "any"), "50");
    assert_eq!(msg::stat_any(queue).unwrap().qnum, 5, "nothing taken");
}
