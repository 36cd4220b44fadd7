//! Waiting operations (P and wait-for-zero): they block, stall nothing else,
//! and end on their caller's signals.

use super::*;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipcfs::ipc::sem;
use nix::sys::signal::Signal;

// ---- 4. waiting ----

#[test]
fn a_p_waits_while_the_value_is_zero_and_a_v_through_the_same_path_releases_it() {
    let m = Mounted::new();
    let id = create_set(0x4001, 1, 0o600);
    let path = sem_file(&m, id, 0);

    let mut p = Waiter::echo("-1", &path);
    wait_for("the P waits in the kernel (GETNCNT 1)", || ncnt(id, 0) == 1);
    wait_for("user.ipc.ncnt says 1", || attr(&path, "user.ipc.ncnt") == "1");
    assert!(p.is_running(), "the P finished while the value was 0");
    assert_eq!(sem_value(id, 0), 0);
    assert_eq!(cat(&path), "0\n", "reading the file a P waits on");
    assert_eq!(attr(&path, "user.ipc.zcnt"), "0");

    // `>` opens the very file the P holds open, with O_TRUNC.
    shell_ok(&echo_to("+1", &path));
    let out = p.finish(PROMPT, "the released P");
    assert_ok(&out, "echo -1 (released)");
    assert_eq!(sem_value(id, 0), 0, "the P took the unit");
    assert_eq!(ncnt(id, 0), 0);
    assert_eq!(attr(&path, "user.ipc.ncnt"), "0");
}

#[test]
fn a_p_of_several_units_waits_until_all_are_there() {
    let m = Mounted::new();
    let id = create_set(0x4002, 1, 0o600);
    let path = sem_file(&m, id, 0);
    set_value(id, 0, 2);

    let mut p = Waiter::echo("-3", &path);
    wait_for("the P of 3 waits (GETNCNT 1)", || ncnt(id, 0) == 1);
    assert!(p.is_running());
    assert_eq!(sem_value(id, 0), 2, "a waiting P takes nothing yet");
    shell_ok(&echo_to("+1", &path));
    assert_eq!(p.finish(PROMPT, "the P of 3").status.code(), Some(0));
    assert_eq!(sem_value(id, 0), 0);
}

#[test]
fn wait_for_zero_waits_until_the_value_is_zero() {
    let m = Mounted::new();
    let id = create_set(0x4003, 1, 0o600);
    let path = sem_file(&m, id, 0);
    set_value(id, 0, 2);

    let mut z = Waiter::echo("=0", &path);
    wait_for("=0 waits in the kernel (GETZCNT 1)", || zcnt(id, 0) == 1);
    wait_for("user.ipc.zcnt says 1", || attr(&path, "user.ipc.zcnt") == "1");
    assert!(z.is_running(), "=0 finished while the value was 2");
    assert_eq!(ncnt(id, 0), 0);

    shell_ok(&echo_to("-1", &path));
    assert_eq!(sem_value(id, 0), 1);
    assert!(z.is_running(), "=0 finished at value 1");
    wait_for("=0 still waits at value 1", || zcnt(id, 0) == 1);

    shell_ok(&echo_to("-1", &path));
    assert_ok(&z.finish(PROMPT, "=0 at value 0"), "echo =0");
    assert_eq!((sem_value(id, 0), zcnt(id, 0)), (0, 0));
    assert_eq!(attr(&path, "user.ipc.zcnt"), "0");
}

#[test]
fn o_nonblock_gets_eagain_instead_of_waiting_and_changes_nothing() {
    let m = Mounted::new();
    let id = create_set(0x4004, 1, 0o600);
    let path = sem_file(&m, id, 0);

    let before = snapshot(id);
    assert_eq!(errno(write_with_flags(&path, b"-1", libc::O_NONBLOCK)), libc::EAGAIN, "P at 0");
    assert_eq!(snapshot(id), before);
    assert_eq!((ncnt(id, 0), zcnt(id, 0)), (0, 0));

    set_value(id, 0, 1);
    let before = snapshot(id);
    assert_eq!(errno(write_with_flags(&path, b"-2\n", libc::O_NONBLOCK)), libc::EAGAIN, "P of 2 at 1");
    assert_eq!(errno(write_with_flags(&path, b"=0", libc::O_NONBLOCK)), libc::EAGAIN, "=0 at 1");
    assert_eq!(snapshot(id), before);
    assert_eq!((ncnt(id, 0), zcnt(id, 0)), (0, 0));

    // What need not wait still works on a non-blocking file.
    assert_eq!(write_with_flags(&path, b"-1", libc::O_NONBLOCK).unwrap(), 2);
    assert_eq!(sem_value(id, 0), 0);
    assert_eq!(write_with_flags(&path, b"=0", libc::O_NONBLOCK).unwrap(), 2);
    assert_eq!(write_with_flags(&path, b"+4", libc::O_NONBLOCK).unwrap(), 2);
    assert_eq!(sem_value(id, 0), 4);

    // The same through another program's O_NONBLOCK open.
    set_value(id, 0, 0);
    let out = shell(&format!(
        "python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK); os.write(fd, b\"-1\")' {}",
        q(&path)
    ));
    assert_refused(&out, "Resource temporarily unavailable", "python3 O_NONBLOCK write of -1");
    assert_eq!((sem_value(id, 0), ncnt(id, 0)), (0, 0));
}

// ---- 5. a wait stalls nothing ----

#[test]
fn blocked_waiters_stall_nothing_else_on_the_mount() {
    let m = Mounted::new();
    let a = create_set(0x5001, 2, 0o600);
    let b = create_set(0x5002, 2, 0o600);
    let segment = create_segment(0x5003, 4096, 0o600);
    let (a0, a1, b0, b1) = (sem_file(&m, a, 0), sem_file(&m, a, 1), sem_file(&m, b, 0), sem_file(&m, b, 1));

    // Started one after the other (each waits in the kernel before the next
    // starts); `twenty_ps_started_at_once_all_wait_on_the_semaphore_and_can_be_killed`
    // starts them together.
    let mut on_a = Vec::new();
    for n in 1..=20 {
        on_a.push(Waiter::echo("-1", &a0));
        wait_for(&format!("{n} P's wait on {}/0", a.0), || ncnt(a, 0) == n);
    }
    let mut on_b = Vec::new();
    for n in 1..=3 {
        on_b.push(Waiter::echo("-1", &b0));
        wait_for(&format!("{n} P's wait on {}/0", b.0), || ncnt(b, 0) == n);
    }
    for w in on_a.iter_mut().chain(on_b.iter_mut()) {
        assert!(w.is_running(), "a P finished at value 0");
    }

    // Reads, writes, P and V elsewhere, listings, stat, xattrs: all under `timeout 20`.
    assert_eq!(cat(&a0), "0\n");
    assert_eq!(cat(&a1), "0\n");
    assert_eq!(cat(&b0), "0\n");
    shell_ok(&format!("{}; {}; {}", echo_to("5", &a1), echo_to("+1", &a1), echo_to("-2", &a1)));
    assert_eq!(sem_value(a, 1), 4);
    shell_ok(&format!("{}; {}; {}", echo_to("+2", &b1), echo_to("-1", &b1), echo_to("=0", &a0)));
    assert_eq!(sem_value(b, 1), 1);
    shell_ok(&format!("{}; {}", echo_to("0", &a0), echo_to("0", &b0)));
    let listing = shell_ok(&format!(
        "ls -l {} {} {} {} {}",
        q(&m.path("sem")),
        q(&m.path("shm")),
        q(&set_dir(&m, a)),
        q(&set_dir(&m, b)),
        q(&m.path("by-key/sem"))
    ));
    assert!(listing.contains(&segment.0.to_string()) && listing.contains("0x00005001"), "{listing}");
    shell_ok(&format!("stat {} {} {} {}", q(&a0), q(&a1), q(&set_dir(&m, a)), q(&m.shm(segment))));
    shell_ok(&format!("getfattr -d {} {}", q(&a0), q(&set_dir(&m, a))));
    let md = bounded("stat in-process", {
        let a0 = a0.clone();
        move || fs::metadata(a0).unwrap()
    });
    assert!(md.is_file());
    wait_for("all 20 P's still wait", || ncnt(a, 0) == 20);
    wait_for("all 3 P's still wait", || ncnt(b, 0) == 3);

    // A V through the same path releases exactly one.
    shell_ok(&echo_to("+1", &a0));
    wait_for("the V releases exactly one P", || {
        on_a.iter_mut().filter_map(|w| (!w.is_running()).then_some(())).count() == 1
    });
    wait_for("19 P's still wait", || ncnt(a, 0) == 19);

    shell_ok(&echo_to("+19", &a0));
    shell_ok(&echo_to("+3", &b0));
    for (n, w) in on_a.iter_mut().chain(on_b.iter_mut()).enumerate() {
        assert_ok(&w.finish(PROMPT * 5, &format!("waiter {n}")), &format!("waiter {n}: echo -1"));
    }
    assert_eq!((sem_value(a, 0), ncnt(a, 0), sem_value(b, 0), ncnt(b, 0)), (0, 0, 0, 0));
    assert_eq!((sem_value(a, 1), sem_value(b, 1)), (4, 1));
}

#[test]
fn a_descriptor_opened_before_a_p_still_reads_and_writes_the_same_file() {
    let m = Mounted::new();
    let id = create_set(0x5004, 1, 0o600);
    let path = sem_file(&m, id, 0);

    // Opened before the P's start: the same file (and inode) they then use.
    let early = OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let mut waiters = Vec::new();
    for n in 1..=3 {
        waiters.push(Waiter::echo("-1", &path));
        wait_for(&format!("{n} P's wait"), || ncnt(id, 0) == n);
    }

    let (early, text) = bounded("a read through the early descriptor", move || {
        let mut early = early;
        let text = read_once(&mut early);
        (early, text)
    });
    assert_eq!(text, "0\n");
    // Commands that need not wait, on the very file the P's are writing to.
    let (early, results) = bounded("=0 and SETVAL 0 through the early descriptor", move || {
        let mut early = early;
        let results = [early.write(b"=0"), early.write(b"0\n")].map(|r| r.map_err(|e| errno_of(&e)));
        (early, results)
    });
    assert_eq!(results, [Ok(2), Ok(2)], "=0 and SETVAL 0 through the early descriptor");
    wait_for("nobody released yet", || ncnt(id, 0) == 3);
    let (early, result) = bounded("a V through the early descriptor", move || {
        let mut early = early;
        let result = early.write(b"+3").map_err(|e| errno_of(&e));
        (early, result)
    });
    assert_eq!(result, Ok(2));
    for (n, w) in waiters.iter_mut().enumerate() {
        assert_ok(&w.finish(PROMPT, &format!("P {n} released through the early descriptor")), "echo -1");
    }
    assert_eq!((sem_value(id, 0), ncnt(id, 0)), (0, 0));
    drop(early);
}

#[test]
fn a_file_open_for_writing_can_be_reopened_through_proc_self_fd() {
    // Opening a file that is open for writing sends a new writer to an inode
    // of its own by way of an ESTALE the kernel answers with a new lookup;
    // /proc/self/fd and /dev/fd lead to the inode itself, without a lookup,
    // and must open it all the same.
    let m = Mounted::new();
    let id = create_set(0x5009, 1, 0o600);
    let path = sem_file(&m, id, 0);
    for (fd_path, wanted) in [("/proc/self/fd/3", 4), ("/dev/fd/3", 5)] {
        shell_ok(&format!("exec 3>{}; echo {wanted} > {fd_path}", q(&path)));
        assert_eq!(sem_value(id, 0), wanted, "echo {wanted} > {fd_path}");
    }
}

#[test]
fn twenty_ps_started_at_once_all_wait_on_the_semaphore_and_can_be_killed() {
    // Twenty scripts doing `echo -1 > file` at the same moment: each must
    // reach its own wait on the semaphore (none may queue behind another in
    // the kernel's per-inode lock, where GETNCNT does not count it and a V
    // cannot release it), and each must end promptly when killed.
    let m = Mounted::new();
    let id = create_set(0x5005, 1, 0o600);
    let path = sem_file(&m, id, 0);
    let mut waiters: Vec<Waiter> = (0..20).map(|_| Waiter::echo("-1", &path)).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while ncnt(id, 0) != 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let waiting = ncnt(id, 0);
    let where_they_are: Vec<String> = waiters
        .iter()
        .map(|w| fs::read_to_string(format!("/proc/{}/wchan", w.child.id())).unwrap_or_default())
        .collect();
    assert_eq!(waiting, 20, "P's started together that wait on the semaphore after 5 s; wchan: {where_they_are:?}");

    // Kill half: they end promptly, the others keep waiting.
    for w in &waiters[..10] {
        w.signal(Signal::SIGKILL);
    }
    for (n, w) in waiters[..10].iter_mut().enumerate() {
        w.finish(PROMPT, &format!("killed P {n}"));
    }
    wait_for("10 P's still wait", || ncnt(id, 0) == 10);
    shell_ok(&echo_to("+10", &path));
    for (n, w) in waiters[10..].iter_mut().enumerate() {
        assert_ok(&w.finish(PROMPT, &format!("released P {n}")), "echo -1");
    }
    assert_eq!((sem_value(id, 0), ncnt(id, 0)), (0, 0));
}

#[test]
fn a_v_racing_a_p_on_the_same_file_never_deadlocks() {
    // `echo -1 > f & echo +1 > f`: whichever comes first, both must finish.
    let m = Mounted::new();
    let id = create_set(0x5006, 1, 0o600);
    let path = sem_file(&m, id, 0);
    let script = format!("{} & {}; wait", echo_to("-1", &path), echo_to("+1", &path));
    for round in 0..100 {
        let out = Command::new("timeout").args(["5", "bash", "-c", &script]).stdin(Stdio::null()).output().unwrap();
        assert!(
            out.status.success(),
            "round {round}: `echo -1 & echo +1` on one file did not finish within 5 s ({}): {}",
            out.status,
            stderr_of(&out)
        );
        assert_eq!((sem_value(id, 0), ncnt(id, 0)), (0, 0), "round {round}");
    }
}

// ---- 6. interrupted waits ----

/// A P at value 0 under `timeout -s SIGNAL`: it must end promptly once the
/// signal comes, nobody may be left waiting, and nothing may have been taken
/// for it (a V afterwards leaves exactly 1).
fn check_p_interrupted_by_timeout(signal: &str) {
    let m = Mounted::new();
    let id = create_set(0x6001, 1, 0o600);
    let path = sem_file(&m, id, 0);
    let started = Instant::now();
    let script = echo_to("-1", &path);
    let mut p = Waiter::spawn("timeout", &["-s", signal, "0.5", "sh", "-c", &script]);
    wait_for("the P waits (GETNCNT 1) before timeout's signal", || ncnt(id, 0) == 1);
    let out = p.finish(PROMPT + Duration::from_millis(500), &format!("P under timeout -s {signal}"));
    assert_eq!(out.status.code(), Some(124), "timeout sent {signal}: {}", stderr_of(&out));
    assert!(started.elapsed() < PROMPT + Duration::from_millis(500), "took {:?}", started.elapsed());
    assert_eq!((ncnt(id, 0), sem_value(id, 0)), (0, 0), "nobody waits any more, nothing changed");
    shell_ok(&echo_to("+1", &path));
    assert_eq!(sem_value(id, 0), 1, "nothing was taken on behalf of the interrupted P");
}

#[test]
fn a_p_interrupted_by_sigint_ends_promptly_and_takes_nothing() {
    check_p_interrupted_by_timeout("INT");
}

#[test]
fn a_p_interrupted_by_sigterm_ends_promptly_and_takes_nothing() {
    check_p_interrupted_by_timeout("TERM");
}

#[test]
fn a_killed_p_ends_promptly_and_takes_nothing_every_time() {
    let m = Mounted::new();
    let id = create_set(0x6002, 1, 0o600);
    let path = sem_file(&m, id, 0);
    for round in 0..10 {
        let mut p = Waiter::echo("-1", &path);
        wait_for(&format!("round {round}: the P waits"), || ncnt(id, 0) == 1);
        p.signal(Signal::SIGKILL);
        let out = p.finish(PROMPT, &format!("round {round}: P after SIGKILL"));
        assert_eq!(exit_signal(&out.status), Some(libc::SIGKILL), "round {round}: {}", out.status);
        assert_eq!((ncnt(id, 0), sem_value(id, 0)), (0, 0), "round {round}: the daemon stopped waiting");
    }
    shell_ok(&echo_to("+1", &path));
    assert_eq!(sem_value(id, 0), 1, "nothing was taken on behalf of the killed P's");
}

#[test]
fn a_killed_wait_for_zero_ends_promptly() {
    let m = Mounted::new();
    let id = create_set(0x6003, 1, 0o600);
    let path = sem_file(&m, id, 0);
    set_value(id, 0, 1);
    for round in 0..3 {
        let mut z = Waiter::echo("=0", &path);
        wait_for(&format!("round {round}: =0 waits"), || zcnt(id, 0) == 1);
        z.signal(Signal::SIGKILL);
        z.finish(PROMPT, &format!("round {round}: =0 after SIGKILL"));
        assert_eq!((zcnt(id, 0), sem_value(id, 0)), (0, 1), "round {round}");
    }
}

#[test]
fn a_kill_just_before_a_v_never_takes_the_unit() {
    // The caller is already dead when the unit comes: whether the daemon
    // notices before or after its semop succeeds, the unit must stay.
    let m = Mounted::new();
    let id = create_set(0x6004, 1, 0o600);
    let path = sem_file(&m, id, 0);
    for round in 0..10 {
        set_value(id, 0, 0);
        let mut p = Waiter::echo("-1", &path);
        wait_for(&format!("round {round}: the P waits"), || ncnt(id, 0) == 1);
        p.signal(Signal::SIGKILL);
        sem::operate(id, 0, 1, None).unwrap();
        let out = p.finish(PROMPT, &format!("round {round}: P after SIGKILL"));
        assert_eq!(exit_signal(&out.status), Some(libc::SIGKILL), "round {round}");
        assert_eq!((ncnt(id, 0), sem_value(id, 0)), (0, 1), "round {round}: the killed P's unit is back");
    }
}

#[test]
fn a_caught_signal_fails_the_write_with_eintr_and_takes_nothing() {
    let m = Mounted::new();
    let id = create_set(0x6005, 1, 0o600);
    let path = sem_file(&m, id, 0);

    let mut p = Waiter::python_write("-1", &path);
    wait_for("the P waits", || ncnt(id, 0) == 1);
    p.signal(Signal::SIGUSR1);
    let out = p.finish(PROMPT, "P after a caught SIGUSR1");
    assert_eq!(assert_ok(&out, "python3 write -1").trim(), format!("-1 {}", libc::EINTR), "write(2) result, errno");
    assert_eq!((ncnt(id, 0), sem_value(id, 0)), (0, 0));

    set_value(id, 0, 2);
    let mut z = Waiter::python_write("=0", &path);
    wait_for("=0 waits", || zcnt(id, 0) == 1);
    z.signal(Signal::SIGUSR1);
    let out = z.finish(PROMPT, "=0 after a caught SIGUSR1");
    assert_eq!(assert_ok(&out, "python3 write =0").trim(), format!("-1 {}", libc::EINTR));
    assert_eq!((zcnt(id, 0), sem_value(id, 0)), (0, 2));

    set_value(id, 0, 0);
    shell_ok(&echo_to("+1", &path));
    assert_eq!(sem_value(id, 0), 1, "nothing was taken on behalf of the interrupted P");
}
