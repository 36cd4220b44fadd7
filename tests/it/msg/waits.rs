//! Waiting receives under `.wait/`: they wait, end on their caller's signals
//! (also racing a message) with nothing consumed for the dead, and stall
//! nothing else.

use super::*;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use ipcfs::ipc::msg::MsqId;
use nix::sys::signal::Signal;

// ---- 6. waiting receives ----

#[test]
fn a_read_under_wait_blocks_until_a_message_comes() {
    let m = Mounted::new();
    let id = create_queue(0x61, 0o600);
    let mut reader = Proc::read_one(&qpath(&m, id, ".wait/any"));
    reader.wait_blocked("a reader of .wait/any on an empty queue");
    assert_eq!(qnum(id), 0);
    send(id, 9, b"wake up\n");
    let status = reader.wait_exit(PROMPTLY, "the reader once a message came");
    assert!(status.success(), "{status}: {}", reader.stderr());
    assert_eq!(reader.stdout(), b"wake up\n");
    assert_eq!(qnum(id), 0);

    // A message already queued is returned at once.
    send(id, 1, b"ready");
    let out = sh_bounded(&format!("dd if={} bs=65536 count=1 status=none", q(&qpath(&m, id, ".wait/any"))));
    assert_eq!(assert_ok(&out, "dd of .wait/any"), "ready");
    assert_eq!(qnum(id), 0);
}

#[test]
fn cat_of_wait_any_prints_messages_as_they_come_until_interrupted() {
    let m = Mounted::new();
    let id = create_queue(0x62, 0o600);
    let mut reader = Proc::cat(&qpath(&m, id, ".wait/any"));
    let mut expected = Vec::new();
    for (mtype, body) in [(1, "one\n"), (5, "two\n"), (1, "three\n")] {
        reader.wait_blocked("cat .wait/any");
        send(id, mtype, body.as_bytes());
        expected.extend_from_slice(body.as_bytes());
        wait_until(&format!("cat printed {body:?}"), PROMPTLY, || reader.stdout() == expected);
    }
    reader.wait_blocked("cat .wait/any after three messages");
    reader.signal(Signal::SIGINT);
    let status = reader.wait_exit(PROMPTLY, "cat .wait/any after SIGINT");
    assert_eq!(exit_signal(&status), Some(libc::SIGINT));
    assert_eq!(reader.stdout(), expected);
    assert_eq!(qnum(id), 0);
}

#[test]
fn a_wait_type_file_wakes_only_for_its_type() {
    let m = Mounted::new();
    let id = create_queue(0x63, 0o600);
    let mut reader = Proc::read_one(&qpath(&m, id, ".wait/7"));
    reader.wait_blocked("a reader of .wait/7");
    send(id, 3, b"three");
    send(id, 1, b"one");
    send(id, 7, b"seven");
    let status = reader.wait_exit(PROMPTLY, "the reader of .wait/7");
    assert!(status.success(), "{status}: {}", reader.stderr());
    assert_eq!(reader.stdout(), b"seven", "the first type-7 message, not an earlier one of another type");
    assert_eq!(queued(id), messages(&[(3, "three"), (1, "one")]), "other types stay queued");
}

#[test]
fn a_wait_file_opened_with_o_nonblock_fails_with_eagain() {
    let m = Mounted::new();
    let id = create_queue(0x64, 0o600);
    let open_nonblocking =
        |name: &str| OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(qpath(&m, id, name)).unwrap();
    let any = open_nonblocking(".wait/any");
    assert_eq!(errno(read_once(&any, 100)), libc::EAGAIN, ".wait/any on an empty queue");
    send(id, 3, b"three");
    let seven = open_nonblocking(".wait/7");
    assert_eq!(errno(read_once(&seven, 100)), libc::EAGAIN, ".wait/7 with only type 3 queued");
    assert_eq!(queued(id), messages(&[(3, "three")]));

    send(id, 7, b"seven");
    assert_eq!(read_once(&seven, 100).unwrap(), b"seven", "a queued message is returned");
    assert_eq!(read_once(&any, 100).unwrap(), b"three");
    assert_eq!(errno(read_once(&any, 100)), libc::EAGAIN);
    assert_eq!(qnum(id), 0);
}

// ---- 7. interrupted and killed waiters ----

#[test]
fn interrupted_and_terminated_waiters_end_promptly_and_take_nothing() {
    let m = Mounted::new();
    let id = create_queue(0x71, 0o600);
    for (signal, file) in [(Signal::SIGINT, ".wait/any"), (Signal::SIGTERM, ".wait/any"), (Signal::SIGTERM, ".wait/5")]
    {
        let what = format!("cat {file} after {signal}");
        let mut reader = Proc::cat(&qpath(&m, id, file));
        reader.wait_blocked(&what);
        wait_until_daemon_holds(&m, 1);
        reader.signal(signal);
        let status = reader.wait_exit(PROMPTLY, &what);
        assert_eq!(exit_signal(&status), Some(signal as i32), "{what}: {status}");
        assert!(reader.stdout().is_empty());
        assert_nothing_consumed_for_the_dead(&m, id, &what);
    }
}

#[test]
fn waiters_killed_with_sigkill_end_promptly_and_take_nothing() {
    let m = Mounted::new();
    let id = create_queue(0x72, 0o600);
    for round in 0..10 {
        let file = if round % 2 == 0 { ".wait/any" } else { ".wait/1" };
        let what = format!("round {round}: cat {file} after SIGKILL");
        let mut reader = Proc::cat(&qpath(&m, id, file));
        reader.wait_blocked(&what);
        wait_until_daemon_holds(&m, 1);
        reader.signal(Signal::SIGKILL);
        let status = reader.wait_exit(PROMPTLY, &what);
        assert_eq!(exit_signal(&status), Some(libc::SIGKILL), "{what}: {status}");
        assert_nothing_consumed_for_the_dead(&m, id, &what);
    }
}

#[test]
fn a_waiter_ended_by_timeout_s_int_takes_nothing() {
    let m = Mounted::new();
    let id = create_queue(0x73, 0o600);
    let started = Instant::now();
    let path = qpath(&m, id, ".wait/any");
    let mut timeout = Proc::spawn("timeout", &["-s", "INT", "1.5", "cat", path.to_str().unwrap()]);
    // The cat that timeout started must be waiting before the signal comes.
    let children = format!("/proc/{0}/task/{0}/children", timeout.pid());
    let mut cat = 0;
    wait_until("timeout started cat", Duration::from_secs(1), || {
        cat = fs::read_to_string(&children).unwrap_or_default().trim().parse().unwrap_or(0);
        cat != 0
    });
    wait_until("cat waits", Duration::from_secs(1), || waiting_on_fuse(cat));
    // timeout(1) waits for cat before it exits.
    let status = timeout.wait_exit(Duration::from_secs_f64(1.5) + PROMPTLY, "timeout -s INT 1.5 cat .wait/any");
    assert_eq!(status.code(), Some(124), "timeout says the command timed out: {status}, {}", timeout.stderr());
    assert!(started.elapsed() >= Duration::from_secs_f64(1.5));
    assert!(timeout.stdout().is_empty());
    assert_nothing_consumed_for_the_dead(&m, id, "timeout -s INT");
}

#[test]
fn a_reader_that_catches_the_signal_gets_eintr_and_takes_nothing() {
    let m = Mounted::new();
    let id = create_queue(0x74, 0o600);

    // Gives up in its handler: the read failed with EINTR, promptly.
    let mut quitter = python_reader(&qpath(&m, id, ".wait/any"), true);
    quitter.wait_blocked("a python reader of .wait/any");
    wait_until_daemon_holds(&m, 1);
    let signalled = Instant::now();
    quitter.signal(Signal::SIGUSR1);
    let status = quitter.wait_exit(PROMPTLY, "the python reader after SIGUSR1");
    assert_eq!(status.code(), Some(3), "{status}: {}", quitter.stderr());
    assert!(signalled.elapsed() < PROMPTLY);
    assert_eq!(quitter.stderr(), "caught\n");
    assert!(quitter.stdout().is_empty());
    assert_nothing_consumed_for_the_dead(&m, id, "a python reader that gave up");

    // Returns from its handler: Python retries the read, which gets the next
    // message and only that.
    let mut stayer = python_reader(&qpath(&m, id, ".wait/any"), false);
    stayer.wait_blocked("a python reader of .wait/any");
    wait_until_daemon_holds(&m, 1);
    stayer.signal(Signal::SIGUSR1);
    wait_until("the handler ran", PROMPTLY, || stayer.stderr() == "caught\n");
    stayer.wait_blocked("the python reader, retrying");
    wait_until_daemon_holds(&m, 1);
    assert_eq!(qnum(id), 0);
    send(id, 4, b"for the survivor");
    let status = stayer.wait_exit(PROMPTLY, "the python reader once a message came");
    assert!(status.success(), "{status}: {}", stayer.stderr());
    assert_eq!(stayer.stdout(), b"for the survivor");
    wait_until_daemon_idle(&m);
    assert_eq!(qnum(id), 0, "received exactly once");
}

/// A reader of `.wait/any` that the daemon holds in msgrcv, killed by
/// `signal` around the moment `body` is sent; returns what it printed.
fn kill_as_a_message_comes(m: &Mounted, id: MsqId, signal: Signal, kill_first: bool, body: &str) -> String {
    let what = format!("{signal} {} {body}", if kill_first { "before" } else { "after" });
    let mut reader = Proc::read_one(&qpath(m, id, ".wait/any"));
    reader.wait_blocked(&what);
    wait_until_daemon_holds(m, 1);
    if kill_first {
        reader.signal(signal);
        send(id, 1, body.as_bytes());
    } else {
        send(id, 1, body.as_bytes());
        reader.signal(signal);
    }
    let status = reader.wait_exit(PROMPTLY, &what);
    assert!(!status.success() || !reader.stdout().is_empty(), "{what}: {status} without output");
    String::from_utf8(reader.stdout()).unwrap()
}

/// The message arrives while the reader's fatal signal is pending: the
/// daemon either gives up before it receives anything, or sees the signal
/// when the message is received and puts it back. Either way the message
/// stays queued, once.
#[test]
fn waiters_killed_just_before_a_message_arrives_leave_it_queued() {
    let m = Mounted::new();
    let id = create_queue(0x75, 0o600);
    for round in 0..20u32 {
        let body = format!("m{round:02}");
        let signal = if round % 2 == 0 { Signal::SIGKILL } else { Signal::SIGTERM };
        let printed = kill_as_a_message_comes(&m, id, signal, true, &body);
        assert_eq!(printed, "", "round {round}: a reader killed before the message came printed it");
        wait_until_daemon_idle(&m);
        assert_eq!(drain(id), messages(&[(1, &body)]), "round {round}: {body} must stay queued exactly once");
    }
}

/// The message is sent first and the signal follows at once. The daemon may
/// hand the message over before the signal comes (the sender may even be
/// preempted in between), and a reader killed after that takes it down with
/// it: no filesystem can undo that. What must never happen is a message
/// delivered twice: put back although a reader printed it.
#[test]
fn waiters_killed_just_after_a_message_arrives_never_double_it() {
    let m = Mounted::new();
    let id = create_queue(0x77, 0o600);
    for round in 0..20u32 {
        let body = format!("m{round:02}");
        let signal = if round % 2 == 0 { Signal::SIGKILL } else { Signal::SIGTERM };
        let printed = kill_as_a_message_comes(&m, id, signal, false, &body);
        wait_until_daemon_idle(&m);
        let left = drain(id);
        assert!(printed.is_empty() || printed == body, "round {round}: printed {printed:?}");
        assert!(left.is_empty() || left == messages(&[(1, &body)]), "round {round}: left {left:?}");
        assert!(printed.is_empty() || left.is_empty(), "round {round}: {body} printed and also put back");
    }
}

#[test]
fn a_reader_interrupted_as_a_message_arrives_gets_it_exactly_once() {
    let m = Mounted::new();
    let id = create_queue(0x76, 0o600);
    for round in 0..20u32 {
        let body = format!("m{round:02}");
        // dd catches SIGUSR1 and reads again after EINTR.
        let mut reader = Proc::read_one(&qpath(&m, id, ".wait/any"));
        reader.wait_blocked("a reader of .wait/any");
        wait_until_daemon_holds(&m, 1);
        send(id, 1, body.as_bytes());
        // Vary the moment the signal comes, from at once to a little later.
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_micros(u64::from(round % 5) * 50) {
            std::hint::spin_loop();
        }
        reader.signal(Signal::SIGUSR1);
        let status = reader.wait_exit(PROMPTLY, &format!("round {round}: a reader interrupted as {body} came"));
        assert!(status.success(), "round {round}: {status}: {}", reader.stderr());
        assert_eq!(String::from_utf8(reader.stdout()).unwrap(), body, "round {round}");
        wait_until_daemon_idle(&m);
        assert_eq!(qnum(id), 0, "round {round}: received exactly once");
    }
}

// ---- 8. waits stall nothing ----

#[test]
fn waiting_readers_and_writers_stall_nothing_else() {
    let m = Mounted::new();
    let waited = create_queue(0x81, 0o666);
    let full = full_queue(0x82);
    let other = create_queue(0x83, 0o666);
    send(other, 1, b"other1 ");
    send(other, 2, b"other2 ");
    let segment = create_segment(0x84, 4096, 0o666);
    let sem_text = sh_ok("ipcmk -S 1");
    let sem: i32 = sem_text.trim().strip_prefix("Semaphore id: ").unwrap().parse().unwrap();

    let mut readers: Vec<Proc> = (0..10)
        .map(|i| {
            let file = if i % 2 == 0 { ".wait/any".to_string() } else { format!(".wait/{}", i) };
            Proc::cat(&qpath(&m, waited, &file))
        })
        .collect();
    let mut writer = Proc::sh(&format!("printf abc > {}", q(&qpath(&m, full, "any"))));
    for reader in &mut readers {
        reader.wait_blocked("a waiting reader");
    }
    writer.wait_blocked("a waiting writer");
    wait_until_daemon_holds(&m, 11);

    let p = |rel: String| q(&m.path(rel));
    let script = [
        format!("ls {} >/dev/null", p("msg".into())),
        format!(
            "ls {} {} {}",
            p(format!("msg/{}", waited.0)),
            p(format!("msg/{}/.wait", full.0)),
            p("by-key/msg".into())
        ),
        format!("stat -c %s {} {}", p(format!("msg/{}", full.0)), p(format!("msg/{}/.wait/any", waited.0))),
        format!("getfattr -n user.ipc.qnum --only-values {}; echo", p(format!("msg/{}", full.0))),
        format!("cat {}", p(format!("msg/{}/.recv/any", other.0))),
        format!("printf again > {}", p(format!("msg/{}/5", other.0))),
        format!("cat {}; echo", p(format!("msg/{}/.recv/5", other.0))),
        format!("printf seg > {}", p(format!("shm/{}", segment.0))),
        format!("head -c 3 {}; echo", p(format!("shm/{}", segment.0))),
        format!("echo 3 > {}", p(format!("sem/{sem}/0"))),
        format!("cat {}", p(format!("sem/{sem}/0"))),
        format!("getfattr -n user.ipc.qnum --only-values {}; echo", p(format!("msg/{}", waited.0))),
    ]
    .join(" && ");
    let started = Instant::now();
    let out = sh_bounded(&format!("set -e; {script}"));
    let text = assert_ok(&out, "operations while 11 waits are held");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let expected_tail = "8\n0\n1\nother1 other2 again\nseg\n3\n0\n";
    assert!(text.ends_with(expected_tail), "got {text:?}, expected it to end with {expected_tail:?}");
    assert_eq!(fs::read(m.shm(segment)).unwrap()[..3], *b"seg");
    assert!(readers.iter_mut().all(Proc::running) && writer.running(), "the waits are still held");

    // Now feed the waiters: every message goes to exactly one of them (the
    // readers of .wait/any may take any type; every type has a reader).
    let mut sent = Vec::new();
    for i in 0..10 {
        let mtype = if i % 2 == 0 { 1 } else { i };
        let body = format!("<w{i}>");
        send(waited, mtype, body.as_bytes());
        sent.push(body);
    }
    let all_output = |readers: &[Proc]| {
        let mut got: Vec<String> = readers
            .iter()
            .flat_map(|r| {
                let text = String::from_utf8(r.stdout()).unwrap();
                text.split_inclusive('>').map(str::to_string).collect::<Vec<_>>()
            })
            .collect();
        got.sort();
        got
    };
    sent.sort();
    wait_until("every waiter got a message", PROMPTLY, || all_output(&readers).len() >= sent.len());
    assert_eq!(all_output(&readers), sent, "each message went to exactly one waiter");
    assert_eq!(qnum(waited), 0);

    assert_eq!(receive(full), (1, b"12345678".to_vec()));
    let status = writer.wait_exit(PROMPTLY, "the waiting writer once there is room");
    assert!(status.success());
    assert_eq!(queued(full), messages(&[(1, "abc")]));
}
