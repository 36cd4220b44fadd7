//! Everyday tools against a real mount: browsing (`grep -r`, `tar`, `find |
//! cat`, `file`, `cp -r`, `du`, `less`, `head`, `tail`, `ls -lR`, `stat`)
//! changes nothing, which the kernel's own calls confirm (the segment's
//! bytes, every semaphore's value and pid, the queue's counters and every
//! queued message read with MSG_COPY); `cp` copies semaphore values and
//! queue contents; stat tells the truth about sizes, blocks, inodes and
//! times, so that `tar` has nothing to warn about; the shell's usual ways of
//! writing run one semaphore command per write and send one message per
//! write; `tail -f` of a listed queue file takes nothing, `head` of a
//! receiving file takes one message.
//!
//! Every command runs under `timeout 20`, so a daemon that wrongly waits
//! fails a test instead of hanging it; nothing sleeps to synchronise.

use crate::common::*;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output, Stdio};

use ipcfs::ipc::msg::{MsgStat, MsqId};
use ipcfs::ipc::sem::{self, Query, SemId, SemStat};

// ---- helpers: commands ----

/// `sh -c script` under `timeout 20`, in the C locale, with no input.
fn run(script: &str) -> Output {
    Command::new("timeout").args(["20", "sh", "-c", script]).env("LC_ALL", "C").stdin(Stdio::null()).output().unwrap()
}

/// Runs `script` and requires its exit code to be one of `accepted`.
#[track_caller]
fn run_expecting(script: &str, accepted: &[i32]) -> Output {
    let out = run(script);
    let code = out.status.code();
    assert!(
        code.is_some_and(|c| accepted.contains(&c)),
        "`{script}` ended with {} (accepted: exit {accepted:?}); stderr {:?}",
        out.status,
        stderr_of(&out)
    );
    out
}

/// Runs `script`, requires success and returns its stdout as bytes.
#[track_caller]
fn run_ok(script: &str) -> Vec<u8> {
    run_expecting(script, &[0]).stdout
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---- helpers: objects made and read with the kernel's own calls ----

/// A segment made with shmget that holds `bytes` (written through shmat).
fn new_segment(key: i32, bytes: &[u8]) -> ShmId {
    let id = create_segment(key, bytes.len() as u64, 0o600);
    let attachment = shm::Attachment::attach(id, bytes.len() as u64, true).expect("shmat");
    assert_eq!(attachment.write_at(0, bytes).unwrap(), bytes.len());
    id
}

/// A set made with semget whose semaphores hold `values` (SETVAL).
fn new_set(key: i32, values: &[i32]) -> SemId {
    let id = create_set(key, values.len() as i32, 0o600);
    for (num, &v) in values.iter().enumerate() {
        sem::set_value(id, num as u16, v).expect("SETVAL");
    }
    id
}

/// The bodies of `queue`, one after another.
fn bodies(queue: &Queued) -> Vec<u8> {
    queue.iter().flat_map(|(_, body)| body.clone()).collect()
}

/// Bytes that are not all alike, so that a piece in the wrong place shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 23) as u8).collect()
}

/// What browsing must leave exactly as it was: the segment's bytes, the
/// set's IPC_STAT and every semaphore's value and pid, the queue's
/// IPC_STAT (qnum, cbytes, lrpid, rtime...) and every queued message.
#[derive(Debug, PartialEq, Eq)]
struct World {
    segment: Vec<u8>,
    set: SemStat,
    semaphores: Vec<(i32, i32)>,
    queue: MsgStat,
    messages: Queued,
}

fn world(seg: ShmId, set: SemId, queue: MsqId) -> World {
    let set_stat = sem::stat_any(set).expect("semctl(SEM_STAT_ANY)");
    let semaphores = (0..set_stat.nsems as u16)
        .map(|n| (sem_value(set, n), sem::query(set, n, Query::Pid).expect("GETPID")))
        .collect();
    World { segment: segment_bytes(seg), set: set_stat, semaphores, queue: kstat(queue), messages: queued(queue) }
}

// ---- the tests ----

#[test]
fn browsing_tools_take_no_message_and_change_no_value_or_byte() {
    let m = Mounted::new();
    let scratch = Scratch::new("browse");
    let mut segment = b"segment-marker\n".to_vec();
    segment.extend((0..4096 - segment.len()).map(|i| (i % 251) as u8));
    let seg = new_segment(0x7001, &segment);
    let set = new_set(0x7002, &[3, 0, 42]);
    let queue = create_queue(0x7003, 0o600);
    let sent = byte_messages(&[(1, b"alpha\n"), (2, b"beta\nbeta2\n"), (1, b"gamma\n")]);
    for (mtype, body) in &sent {
        send(queue, *mtype, body);
    }
    let before = world(seg, set, queue);
    assert_eq!(before.segment, segment, "precondition");
    assert_eq!(before.semaphores.iter().map(|s| s.0).collect::<Vec<_>>(), [3, 0, 42], "precondition");
    assert_eq!(before.messages, sent, "precondition");
    assert_eq!((before.queue.qnum, before.queue.cbytes), (3, 23), "precondition");

    let mnt = q(m.root());
    let any = q(&m.path(format!("msg/{}/any", queue.0)));
    let sem0 = q(&m.path(format!("sem/{}/0", set.0)));
    let sem2 = q(&m.path(format!("sem/{}/2", set.0)));
    let tmp = q(scratch.dir());
    let all_bodies = bodies(&sent);
    // Runs one browsing command, then requires the kernel's view unchanged.
    let browse = |script: &str, accepted: &[i32]| -> Output {
        let out = run_expecting(script, accepted);
        assert_eq!(world(seg, set, queue), before, "`{script}` changed something");
        out
    };

    let grep = browse(&format!("grep -r -a . {mnt}"), &[0, 1]);
    let want = format!("{}:gamma\n", m.path(format!("msg/{}/any", queue.0)).display());
    assert!(
        text(&grep.stdout).contains(&want),
        "grep -r did not show the queue's last message: {}",
        text(&grep.stdout)
    );

    // tar skips reading files when the archive is /dev/null, so the archive
    // also goes to a real file, which makes tar read every file.
    for archive in ["/dev/null".to_string(), format!("{tmp}/all.tar")] {
        let tar = browse(&format!("tar -cf {archive} -C {mnt} ."), &[0, 1]);
        let unexpected: Vec<&str> = std::str::from_utf8(&tar.stderr)
            .unwrap()
            .lines()
            .filter(|l| !l.contains("File shrank") && !l.contains("Exiting with failure status"))
            .collect();
        assert!(unexpected.is_empty(), "tar -cf {archive}: only 'File shrank' is documented; got {unexpected:?}");
    }
    let listed = text(&run_ok(&format!("tar -tf {tmp}/all.tar")));
    for name in [format!("./msg/{}/any", queue.0), format!("./sem/{}/2", set.0), format!("./shm/{}", seg.0)] {
        assert!(listed.lines().any(|l| l == name), "tar did not archive {name}: {listed}");
    }

    let cat = browse(&format!("find {mnt} -type f -exec cat {{}} +"), &[0]);
    assert!(cat.stdout.windows(all_bodies.len()).any(|w| w == all_bodies), "find | cat did not show the queue");

    browse(&format!("file {any} {sem0}"), &[0]);

    browse(&format!("cp -r {mnt}/sem {mnt}/msg {tmp}/"), &[0]);
    assert_eq!(fs::read(scratch.path(format!("msg/{}/any", queue.0))).unwrap(), all_bodies, "cp -r of msg/");
    assert_eq!(fs::read_to_string(scratch.path(format!("sem/{}/2", set.0))).unwrap(), "42\n", "cp -r of sem/");

    browse(&format!("du -a {mnt}"), &[0]);

    let less = browse(&format!("TERM=dumb less -F {any} < /dev/null"), &[0]);
    assert_eq!(text(&less.stdout), text(&all_bodies), "less -F");

    for (command, path, want) in [
        ("head -n 1", &sem2, "42\n"),
        ("tail -n 1", &sem2, "42\n"),
        ("head -n 1", &sem0, "3\n"),
        ("tail -n 1", &sem0, "3\n"),
        ("head -n 1", &any, "alpha\n"),
    ] {
        let out = browse(&format!("{command} {path}"), &[0]);
        assert_eq!((text(&out.stdout), stderr_of(&out)), (want.to_string(), String::new()), "{command} {path}");
    }
    // tail reads the last block and counts lines in what one read gave; a
    // read of a queue file stops at a message boundary, so tail sees too few
    // lines and prints from the start. It ends with the last line and takes
    // nothing; the contract promises no more for queue files.
    let tail = browse(&format!("tail -n 1 {any}"), &[0]);
    let (shown, stderr) = (text(&tail.stdout), stderr_of(&tail));
    assert!(
        stderr.is_empty() && shown.ends_with("gamma\n") && text(&all_bodies).ends_with(&shown),
        "tail -n 1 {any}: stdout {shown:?}, stderr {stderr:?}"
    );

    browse(&format!("ls -lR {mnt}"), &[0]);
    browse(&format!("find {mnt} -exec stat {{}} +"), &[0]);

    assert_eq!(world(seg, set, queue), before, "after all the browsing");
}

#[test]
fn cp_copies_semaphore_values_and_queue_contents() {
    let m = Mounted::new();
    let scratch = Scratch::new("cp");
    let set = new_set(0x7011, &[7, 0, 123]);
    let queue = create_queue(0x7012, 0o600);
    let sent = byte_messages(&[(1, b"one\n"), (4, b"four"), (1, b"three\n")]);
    for (mtype, body) in &sent {
        send(queue, *mtype, body);
    }
    let stat_before = kstat(queue);
    let set_dir = m.path(format!("sem/{}", set.0));
    let tmp = q(scratch.dir());

    let out = run_expecting(&format!("cp {} {tmp}/x", q(&set_dir.join("0"))), &[0]);
    assert_eq!(stderr_of(&out), "", "cp of a semaphore file says nothing (no 'replaced while being copied')");
    assert_eq!(fs::read_to_string(scratch.path("x")).unwrap(), "7\n");

    run_ok(&format!("cp -r {} {tmp}/s", q(&set_dir)));
    let copied = list(&scratch.path("s"));
    assert_eq!(copied, ["0", "1", "2"], "cp -r copies every semaphore");
    for (num, want) in ["7\n", "0\n", "123\n"].iter().enumerate() {
        assert_eq!(fs::read_to_string(scratch.path(format!("s/{num}"))).unwrap(), *want, "semaphore {num}");
    }

    run_ok(&format!("cp {} {tmp}/q", q(&m.path(format!("msg/{}/any", queue.0)))));
    assert_eq!(text(&fs::read(scratch.path("q")).unwrap()), "one\nfourthree\n", "cp of any: the bodies in order");
    run_ok(&format!("cp {} {tmp}/q1", q(&m.path(format!("msg/{}/1", queue.0)))));
    assert_eq!(text(&fs::read(scratch.path("q1")).unwrap()), "one\nthree\n", "cp of a type file: its bodies");

    assert_eq!(queued(queue), sent, "cp took nothing");
    assert_eq!(kstat(queue), stat_before, "cp left the queue's counters alone");
    assert_eq!((0..3).map(|n| sem_value(set, n)).collect::<Vec<_>>(), [7, 0, 123], "cp left the values alone");
}

#[test]
fn stat_of_files_is_honest() {
    let m = Mounted::new();
    let scratch = Scratch::new("stat");
    let set = new_set(0x7021, &[12345]);
    let file = m.path(format!("sem/{}/0", set.0));

    let printed = run_ok(&format!("cat {}", q(&file)));
    assert_eq!(text(&printed), "12345\n");
    let first = fs::metadata(&file).unwrap();
    let second = fs::metadata(&file).unwrap();
    assert_eq!(first.size(), printed.len() as u64, "a semaphore file's size is its text's length");
    assert_eq!(first.blocks(), 0, "a semaphore file takes no blocks");
    assert_eq!(first.ino(), second.ino(), "a semaphore file keeps its inode number");

    let limits = list(&m.path("limits"));
    assert!(!limits.is_empty(), "limits/ lists files");
    for name in &limits {
        let path = m.path(format!("limits/{name}"));
        let before = fs::metadata(&path).unwrap();
        let printed = run_ok(&format!("cat {}", q(&path)));
        let after = fs::metadata(&path).unwrap();
        assert_eq!(
            before.size(),
            printed.len() as u64,
            "limits/{name}: size is what cat prints ({:?})",
            text(&printed)
        );
        assert_eq!(before.blocks(), 0, "limits/{name} takes no blocks");
        assert_eq!(
            (before.mtime(), before.mtime_nsec(), before.ctime(), before.ctime_nsec()),
            (after.mtime(), after.mtime_nsec(), after.ctime(), after.ctime_nsec()),
            "limits/{name}: times fixed across a read"
        );
    }

    // As for browsing, /dev/null makes tar skip reading; a real archive too.
    let tmp = q(scratch.dir());
    for archive in ["/dev/null".to_string(), format!("{tmp}/ls.tar")] {
        let out = run(&format!("tar -cf {archive} -C {} limits sem", q(m.root())));
        assert_eq!(
            (out.status.code(), stderr_of(&out)),
            (Some(0), String::new()),
            "tar -cf {archive} of limits and sem: no warning"
        );
    }
    run_ok(&format!("mkdir {tmp}/x && tar -xf {tmp}/ls.tar -C {tmp}/x"));
    assert_eq!(
        fs::read_to_string(scratch.path(format!("x/sem/{}/0", set.0))).unwrap(),
        "12345\n",
        "tar archived the value"
    );
    for name in &limits {
        let shown = fs::read_to_string(m.path(format!("limits/{name}"))).unwrap();
        assert_eq!(
            fs::read_to_string(scratch.path(format!("x/limits/{name}"))).unwrap(),
            shown,
            "tar archived limits/{name}"
        );
    }
}

#[test]
fn shell_forms_that_write_to_a_semaphore_run_each_command_once() {
    let m = Mounted::new();
    let set = new_set(0x7031, &[0]);
    let f = q(&m.path(format!("sem/{}/0", set.0)));
    for (script, want) in [
        (format!("echo 5 > {f}"), 5),
        (format!("printf 7 > {f}"), 7),
        (format!("printf '\\n\\n3\\n\\n' > {f}"), 3),
        (format!("echo +2 | tee {f} > /dev/null"), 5),
        (format!("printf '+1' | dd of={f} status=none"), 6),
        (
            format!(
                "/usr/bin/python3 -c \"open('{}','w').write('-1\\n')\"",
                m.path(format!("sem/{}/0", set.0)).display()
            ),
            5,
        ),
    ] {
        let out = run(&script);
        assert_ok(&out, &script);
        assert_eq!(sem_value(set, 0), want, "after `{script}`");
    }
    // Longer than 4096 bytes: refused whole. The digits (9) differ from the
    // value (5), so that any part of it taken as a command shows.
    let script = format!("printf '%04097d' 9 > {f}");
    let out = run(&script);
    assert!(!out.status.success(), "`{script}` succeeded; stderr {:?}", stderr_of(&out));
    assert_eq!(sem_value(set, 0), 5, "after `{script}` (stderr {:?})", stderr_of(&out));
}

#[test]
fn shell_forms_that_write_to_a_queue_send_one_message_per_write() {
    let m = Mounted::new();
    let scratch = Scratch::new("send");
    // Messages up to 64 KiB in this IPC namespace (the default msgmax is 8192).
    fs::write("/proc/sys/kernel/msgmax", "65536").unwrap();
    assert_eq!(fs::read_to_string("/proc/sys/kernel/msgmax").unwrap().trim(), "65536", "precondition");
    let queue = create_queue(0x7041, 0o600);
    assert!(kstat(queue).qbytes >= 12000, "precondition: room for 12000 bytes");
    let file = scratch.path("file");
    let big = scratch.path("big");
    let five = pattern(5000);
    let twenty = pattern(20000);
    fs::write(&file, &five).unwrap();
    fs::write(&big, &twenty).unwrap();
    let (file, big) = (q(&file), q(&big));
    let any = q(&m.path(format!("msg/{}/any", queue.0)));
    let type3 = q(&m.path(format!("msg/{}/3", queue.0)));

    for (script, want) in [
        (format!("echo hi > {any}"), byte_messages(&[(1, b"hi\n")])),
        (format!("printf x > {type3}"), byte_messages(&[(3, b"x")])),
        (format!("cat {file} > {any}"), byte_messages(&[(1, &five)])),
        (format!("dd if={file} of={any} bs=5000 count=1 status=none"), byte_messages(&[(1, &five)])),
        (format!("tee {any} < {file} > /dev/null"), byte_messages(&[(1, &five)])),
        (
            format!("/usr/bin/python3 -c \"import sys; open(sys.argv[1],'wb').write(b'x'*5000)\" {any}"),
            byte_messages(&[(1, &[b'x'; 5000])]),
        ),
        // head writes 8 KiB pieces: each is a message (documented).
        (format!("head -c 12000 {big} > {any}"), byte_messages(&[(1, &twenty[..8192]), (1, &twenty[8192..12000])])),
        (
            format!("dd if={big} bs=12000 count=1 iflag=fullblock of={any} status=none"),
            byte_messages(&[(1, &twenty[..12000])]),
        ),
    ] {
        let out = run(&script);
        assert_ok(&out, &script);
        let got = queued(queue);
        assert_eq!(
            got.iter().map(|(t, b)| (*t, b.len())).collect::<Vec<_>>(),
            want.iter().map(|(t, b)| (*t, b.len())).collect::<Vec<_>>(),
            "after `{script}`: the messages' types and sizes"
        );
        assert!(got == want, "after `{script}`: the bodies differ from what was written");
        drain(queue);
        assert_eq!(kstat(queue).qnum, 0, "drained");
    }
}

#[test]
fn head_of_a_receiving_file_takes_one_message_and_tail_f_of_a_listed_file_takes_nothing() {
    let m = Mounted::new();
    let queue = create_queue(0x7051, 0o600);
    let sent = byte_messages(&[(1, b"first\n"), (2, b"second\n")]);
    for (mtype, body) in &sent {
        send(queue, *mtype, body);
    }
    let before = kstat(queue);

    let script = format!("timeout 2 tail -f {}", q(&m.path(format!("msg/{}/any", queue.0))));
    let out = run_expecting(&script, &[124]);
    assert_eq!(text(&out.stdout), "first\nsecond\n", "`{script}` prints what was queued at its start");
    assert_eq!(queued(queue), sent, "tail -f took nothing");
    assert_eq!(kstat(queue), before, "tail -f left the queue's counters alone");

    let script = format!("head -n 1 {}", q(&m.path(format!("msg/{}/.recv/any", queue.0))));
    let out = run_expecting(&script, &[0]);
    assert_eq!(text(&out.stdout), "first\n", "`{script}`");
    assert_eq!(queued(queue), byte_messages(&[(2, b"second\n")]), "head of .recv/any took exactly one message");
}
