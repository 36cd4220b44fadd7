//! Sending and receiving: one write(2) is one message and one read under
//! `.recv/` one message received; E2BIG, msgmax and the largest write; full
//! queues.

use super::*;

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::process::Command;
use std::time::{Duration, Instant};

use ipcfs::ipc::msg;
use nix::sys::signal::Signal;

// ---- 2. one write = one message, one read of .recv/ = one message ----

#[test]
fn one_write_sends_one_message_of_the_files_type() {
    let m = Mounted::new();
    let id = create_queue(0x21, 0o600);
    let path = |name: &str| q(&qpath(&m, id, name));

    sh_ok(&format!("echo hi > {}", path("any")));
    assert_eq!(queued(id), messages(&[(1, "hi\n")]), "any sends type 1, the newline included");
    sh_ok(&format!("echo hi > {}", path("42")));
    sh_ok(&format!("printf 'no newline' > {}", path("5")));
    sh_ok(&format!("printf max > {}", path(&i64::MAX.to_string())));
    assert_eq!(
        queued(id),
        messages(&[(1, "hi\n"), (42, "hi\n"), (5, "no newline"), (i64::MAX, "max")]),
        "an unlisted type can be written"
    );
    drain(id);

    // Two writes through one descriptor are two messages, never merged.
    sh_ok(&format!("{{ printf first; printf second; }} > {}", path("9")));
    assert_eq!(queued(id), messages(&[(9, "first"), (9, "second")]));
    drain(id);

    let file = OpenOptions::new().write(true).open(qpath(&m, id, "any")).unwrap();
    assert_eq!(write_once(&file, b"abc").unwrap(), 3);
    assert_eq!(write_once(&file, b"defg").unwrap(), 4);
    assert_eq!(queued(id), messages(&[(1, "abc"), (1, "defg")]));
    let k = kstat(id);
    assert_eq!((k.qnum, k.cbytes), (2, 7));
}

#[test]
fn binary_bodies_with_nul_bytes_round_trip_exactly() {
    let m = Mounted::new();
    let id = create_queue(0x22, 0o600);
    let body: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();

    // Through the file, out through msgrcv.
    let file = OpenOptions::new().write(true).open(qpath(&m, id, "3")).unwrap();
    assert_eq!(write_once(&file, &body).unwrap(), body.len());
    drop(file);
    assert_eq!(receive(id), (3, body.clone()));
    assert_eq!(qnum(id), 0);

    // In through msgsnd, out through the file: one read, exactly the body.
    send(id, 9, &body);
    let file = File::open(qpath(&m, id, ".recv/9")).unwrap();
    assert_eq!(read_once(&file, BIG).unwrap(), body);
    assert_eq!(qnum(id), 0);

    // And through cat.
    send(id, 1, &body);
    send(id, 2, b"\0");
    let out = Command::new("cat").arg(qpath(&m, id, ".recv/any")).output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, [&body[..], b"\0"].concat());
    assert_eq!(qnum(id), 0);
}

#[test]
fn one_read_receives_one_whole_message() {
    let m = Mounted::new();
    let id = create_queue(0x23, 0o600);
    for (mtype, body) in [(1, "first\n"), (2, "second message\n"), (1, "third\n")] {
        send(id, mtype, body.as_bytes());
    }
    let file = File::open(qpath(&m, id, ".recv/any")).unwrap();
    assert_eq!(read_once(&file, BIG).unwrap(), b"first\n", "one read, one message");
    assert_eq!(queued(id), messages(&[(2, "second message\n"), (1, "third\n")]));
    assert_eq!(read_once(&file, BIG).unwrap(), b"second message\n");
    assert_eq!(read_once(&file, BIG).unwrap(), b"third\n");
    assert_eq!(read_once(&file, BIG).unwrap(), b"", "an empty queue reads as end-of-file");
    assert_eq!(read_once(&file, BIG).unwrap(), b"");

    for (mtype, body) in [(1, "first\n"), (2, "second message\n"), (1, "third\n")] {
        send(id, mtype, body.as_bytes());
    }
    let out = sh_bounded(&format!("cat {}", q(&qpath(&m, id, ".recv/any"))));
    assert_eq!(assert_ok(&out, "cat .recv/any"), "first\nsecond message\nthird\n", "every message, in order");
    assert_eq!(qnum(id), 0);
}

/// Receiving and sending have no file position (reading a listed file
/// browses a snapshot, which does).
#[test]
fn receiving_and_sending_files_have_no_file_position() {
    let m = Mounted::new();
    let id = create_queue(0x26, 0o600);
    send(id, 1, b"stays");
    let mut file = File::open(qpath(&m, id, ".recv/any")).unwrap();
    let mut buf = vec![0u8; BIG];
    assert_eq!(errno(file.read_at(&mut buf, 0)), libc::ESPIPE, "pread");
    assert_eq!(queued(id), messages(&[(1, "stays")]), "pread took nothing");
    assert_eq!(errno(file.seek(SeekFrom::Start(0))), libc::ESPIPE, "lseek");
    let writer = OpenOptions::new().write(true).open(qpath(&m, id, "4")).unwrap();
    assert_eq!(errno(writer.write_at(b"x", 0)), libc::ESPIPE, "pwrite");
    assert_eq!(queued(id), messages(&[(1, "stays")]), "pwrite sent nothing");
}

#[test]
fn reads_on_an_empty_queue_return_end_of_file_at_once() {
    let m = Mounted::new();
    let id = create_queue(0x24, 0o600);
    let started = Instant::now();
    for name in [".recv/any", ".recv/1", ".recv/77"] {
        let out = sh_bounded(&format!("cat {}", q(&qpath(&m, id, name))));
        assert_eq!(assert_ok(&out, &format!("cat {name}")), "");
        let file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(qpath(&m, id, name)).unwrap();
        assert_eq!(read_once(&file, 100).unwrap(), b"", "{name} with O_NONBLOCK: end-of-file, not EAGAIN");
        let file = File::open(qpath(&m, id, name)).unwrap();
        assert_eq!(read_once(&file, 100).unwrap(), b"", "{name}: end-of-file");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "reads without .wait must not wait");
    assert_eq!(kstat(id).qnum, 0);
}

#[test]
fn a_recv_type_file_receives_only_its_type() {
    let m = Mounted::new();
    let id = create_queue(0x25, 0o600);
    for (mtype, body) in [(5, "a5"), (6, "b6"), (5, "c5"), (7, "d7")] {
        send(id, mtype, body.as_bytes());
    }
    assert_eq!(sh_ok(&format!("cat {}", q(&qpath(&m, id, ".recv/5")))), "a5c5");
    assert_eq!(queued(id), messages(&[(6, "b6"), (7, "d7")]), "other types stay queued");
    assert_eq!(sh_ok(&format!("cat {}", q(&qpath(&m, id, ".recv/8")))), "", "no type-8 message");
    assert_eq!(queued(id), messages(&[(6, "b6"), (7, "d7")]));
    let file = File::open(qpath(&m, id, ".recv/7")).unwrap();
    assert_eq!(read_once(&file, BIG).unwrap(), b"d7");
    assert_eq!(read_once(&file, BIG).unwrap(), b"");
    assert_eq!(queued(id), messages(&[(6, "b6")]));
}

// ---- 3, 4. sizes ----

#[test]
fn a_read_buffer_smaller_than_the_message_is_e2big_and_the_message_stays() {
    let m = Mounted::new();
    let id = create_queue(0x31, 0o600);
    let body: Vec<u8> = (0..100u8).collect();
    send(id, 4, &body);
    send(id, 1, b"after");
    let before = queued(id);

    for name in [".recv/any", ".recv/4", ".wait/any", ".wait/4"] {
        let file = File::open(qpath(&m, id, name)).unwrap();
        assert_eq!(errno(read_once(&file, 10)), libc::E2BIG, "{name}: 10-byte buffer, 100-byte message");
        assert_eq!(errno(read_once(&file, 99)), libc::E2BIG, "{name}: one byte short");
        assert_eq!(queued(id), before, "{name}: the message stays queued, first");
    }
    let out = sh_bounded(&format!("LC_ALL=C dd if={} bs=10 count=1 status=none", q(&qpath(&m, id, ".recv/any"))));
    assert_refused(&out, "Argument list too long", "dd with a 10-byte block");
    assert!(out.stdout.is_empty());
    assert_eq!(queued(id), before);
    assert_eq!(kstat(id).lrpid, 0, "nothing was received");

    // Exactly the message's size is enough.
    let file = File::open(qpath(&m, id, ".recv/any")).unwrap();
    assert_eq!(read_once(&file, 100).unwrap(), body);
    assert_eq!(queued(id), messages(&[(1, "after")]));
}

#[test]
fn a_message_larger_than_msgmax_is_einval_and_exactly_msgmax_is_sent() {
    let m = Mounted::new();
    let id = create_queue(0x41, 0o600);
    let msgmax = kernel_msgmax();
    assert!(kstat(id).qbytes as usize >= 2 * msgmax, "precondition: room for two of the largest messages");

    let file = OpenOptions::new().write(true).open(qpath(&m, id, "any")).unwrap();
    assert_eq!(errno(write_once(&file, &vec![b'x'; msgmax + 1])), libc::EINVAL, "msgmax + 1 bytes");
    let k = kstat(id);
    assert_eq!((k.qnum, k.cbytes, k.stime), (0, 0, 0), "nothing was sent");

    let body: Vec<u8> = (0..msgmax).map(|i| (i % 251) as u8).collect();
    assert_eq!(write_once(&file, &body).unwrap(), msgmax, "exactly msgmax bytes");
    assert_eq!(queued(id), vec![(1, body.clone())]);

    let reader = File::open(qpath(&m, id, ".recv/any")).unwrap();
    assert_eq!(read_once(&reader, BIG).unwrap(), body);
    assert_eq!(qnum(id), 0);
}

/// The largest message a write(2) can send, whatever kernel.msgmax says:
/// 1 MiB less 4 KiB.
const LARGEST_WRITE: usize = 1_044_480;

#[test]
fn one_write_is_one_message_up_to_1_mib_less_4_kib_and_longer_writes_send_nothing() {
    let m = Mounted::new();
    // Room in this IPC namespace for messages beyond what one FUSE request carries.
    fs::write("/proc/sys/kernel/msgmax", (4usize << 20).to_string()).unwrap();
    fs::write("/proc/sys/kernel/msgmnb", (16usize << 20).to_string()).unwrap();
    let id = create_queue(0x42, 0o600);
    assert_eq!(kstat(id).qbytes, 16 << 20, "precondition");
    let take = |id| msg::receive(id, 0, 4 << 20, false).map(|m| (m.mtype, m.body));
    let file = OpenOptions::new().write(true).open(qpath(&m, id, "8")).unwrap();
    let data: Vec<u8> = (0..(3usize << 20)).map(|i| (i % 253) as u8).collect();

    // Any page offset of the caller's buffer: the kernel splits long writes there.
    for offset in [0, 1, 100, 4095] {
        for len in [LARGEST_WRITE + 1, 1 << 20, (1 << 20) + 1, (2 << 20) + 3] {
            let what = format!("a write of {len} bytes at buffer offset {offset}");
            assert_eq!(errno(write_once(&file, &data[offset..offset + len])), libc::EINVAL, "{what}");
            let k = kstat(id);
            assert_eq!((k.qnum, k.cbytes), (0, 0), "{what}: nothing may be sent, not even a piece");
        }
        let body = &data[offset..offset + LARGEST_WRITE];
        assert_eq!(write_once(&file, body).unwrap(), LARGEST_WRITE, "the largest write at offset {offset}");
        assert_eq!(qnum(id), 1, "one write, one message");
        assert_eq!(take(id), Ok((8, body.to_vec())));
    }

    // Reading: the largest message whole; a longer one (sent with msgsnd)
    // fails with E2BIG and stays queued.
    let reader = File::open(qpath(&m, id, ".recv/any")).unwrap();
    send(id, 1, &data[..LARGEST_WRITE]);
    assert_eq!(read_once(&reader, 2 << 20).unwrap(), &data[..LARGEST_WRITE]);
    send(id, 1, &data[..LARGEST_WRITE + 1]);
    assert_eq!(errno(read_once(&reader, 2 << 20)), libc::E2BIG, "a message longer than ipcfs moves");
    assert_eq!(take(id), Ok((1, data[..LARGEST_WRITE + 1].to_vec())), "it stayed queued");
}

// ---- 5. full queues ----

#[test]
fn a_write_to_a_full_queue_through_o_nonblock_fails_with_eagain() {
    let m = Mounted::new();
    let id = create_queue(0x51, 0o600);
    send(id, 1, b"12345678");
    sh_ok(&format!("setfattr -n user.ipc.qbytes -v 10 {}", q(&qpath(&m, id, ""))));
    assert_eq!(kstat(id).qbytes, 10);

    let file = OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(qpath(&m, id, "any")).unwrap();
    assert_eq!(errno(write_once(&file, b"abc")), libc::EAGAIN, "8 + 3 bytes do not fit in 10");
    assert_eq!(queued(id), messages(&[(1, "12345678")]), "nothing was sent");
    assert_eq!(write_once(&file, b"ab").unwrap(), 2, "8 + 2 bytes fit");
    assert_eq!(queued(id), messages(&[(1, "12345678"), (1, "ab")]));
    assert_eq!(errno(write_once(&file, b"c")), libc::EAGAIN);
    assert_eq!(queued(id), messages(&[(1, "12345678"), (1, "ab")]));
}

#[test]
fn a_write_to_a_full_queue_waits_until_there_is_room() {
    let m = Mounted::new();
    let id = full_queue(0x52);
    let mut writer = Proc::sh(&format!("printf abc > {}", q(&qpath(&m, id, "3"))));
    writer.wait_blocked("a writer to a full queue");
    wait_until_daemon_holds(&m, 1);
    assert_eq!(queued(id), messages(&[(1, "12345678")]), "nothing sent while waiting");

    assert_eq!(receive(id), (1, b"12345678".to_vec()));
    let status = writer.wait_exit(PROMPTLY, "the writer once there is room");
    assert!(status.success(), "{status}: {}", writer.stderr());
    assert_eq!(queued(id), messages(&[(3, "abc")]), "the message arrived exactly once, with its type");
    wait_until_daemon_idle(&m);
    assert_eq!(queued(id), messages(&[(3, "abc")]));
}

#[test]
fn a_killed_waiting_writer_sends_nothing() {
    let m = Mounted::new();
    let id = full_queue(0x53);
    for signal in [Signal::SIGKILL, Signal::SIGTERM, Signal::SIGINT] {
        let before = queued(id);
        let mut writer = Proc::sh(&format!("printf abc > {}", q(&qpath(&m, id, "any"))));
        writer.wait_blocked("a writer to a full queue");
        wait_until_daemon_holds(&m, 1);
        writer.signal(signal);
        let status = writer.wait_exit(PROMPTLY, &format!("a waiting writer after {signal}"));
        assert_eq!(exit_signal(&status), Some(signal as i32), "{status}");
        wait_until_daemon_idle(&m);
        assert_eq!(queued(id), before, "after {signal}: nothing partial, nothing sent");
    }
    // Room now: a send left behind by a dead writer would show.
    assert_eq!(receive(id), (1, b"12345678".to_vec()));
    wait_until_daemon_idle(&m);
    assert!(queued(id).is_empty());
}
