//! Findings 3 and 4: parked operations stop at each user's budget and cost
//! the daemon one thread each and almost no CPU; a full queue stalls
//! nothing.

use super::*;

use std::fs;
use std::time::{Duration, Instant};

use ipcfs::ipc::msg;
use ipcfs::ipc::sem;
use nix::sys::signal::Signal;

// ---- 3: parked waiters ----

/// Item 3, the budget: with `-o user_waits=8`, a user's 9th parked
/// operation fails with EAGAIN at once while their 8 stay parked (a receive
/// under `.wait/` as well as a P); another user's P still parks; and a
/// parked operation that ends gives its unit back.
#[test]
fn parked_operations_stop_at_the_budget_with_eagain() {
    let m = Mounted::with_options(&["-o", "allow_other,user_waits=8"]);
    let set = set_of(0o666);
    let queue = queue_of(0, 0o666);
    let sem_file = m.path(format!("sem/{}/0", set.0));
    let wait_any = m.path(format!("msg/{}/.wait/any", queue.0));

    let mut eight = Proc::client(A, &["wait", path_arg(&sem_file), "8", "-1"]);
    wait_until("8 parked P's", LIMIT, || ncnt(set, 0) == 8);

    let started = Instant::now();
    let mut ninth = Proc::client(A, &["wait", path_arg(&sem_file), "0", "-1"]);
    let parked_ninth = || ncnt(set, 0) == 9;
    let outcome = ninth.line("", Duration::from_secs(5));
    println!("the 9th P of uid {A}: {outcome} after {:?}", started.elapsed());
    assert_eq!(outcome, "error EAGAIN", "a user's 9th parked P with user_waits=8 (ncnt now {})", ncnt(set, 0));
    assert!(!parked_ninth() && ncnt(set, 0) == 8, "the 8 stay parked");
    let mut receive = Proc::client(A, &["wait", path_arg(&wait_any), "0", "-"]);
    assert_eq!(receive.line("", Duration::from_secs(5)), "error EAGAIN", "a user's 9th parked operation, a receive");

    // Another user parks.
    let mut other = Proc::client(B, &["wait", path_arg(&sem_file), "0", "-1"]);
    wait_until("another user's P parks", LIMIT, || ncnt(set, 0) == 9 || !other.stdout().is_empty());
    assert_eq!(other.stdout(), "", "another user's P must park");

    // Released, every parked P takes its unit; the budget is free again.
    sem::operate(set, 0, 9, None).expect("V 9");
    assert_eq!(other.line("", LIMIT), "done");
    wait_until("the 8 P's are done", LIMIT, || eight.count("done") == 8);
    assert_eq!(eight.finish(LIMIT).lines().filter(|l| *l != "started 8").collect::<Vec<_>>(), ["done"; 8]);
    assert_eq!(sem_value(set, 0), 0);
    let mut again = Proc::client(A, &["wait", path_arg(&sem_file), "0", "-1"]);
    wait_until("the user parks again", LIMIT, || ncnt(set, 0) == 1 || !again.stdout().is_empty());
    assert_eq!(again.stdout(), "", "after the waits ended, the user may park again");
    sem::operate(set, 0, 1, None).expect("V");
    assert_eq!(again.line("", LIMIT), "done");
}

/// Item 3, the cost: 200 parked P's of one user and 50 parked receives of
/// another cost the daemon at most one thread each (and a few more), and
/// over 2 idle seconds almost no CPU. An interrupted waiter (SIGINT with a
/// handler) ends with EINTR and takes nothing, killed ones take nothing,
/// and their threads go.
#[test]
fn parked_waiters_cost_one_thread_each_and_almost_no_cpu() {
    const PS: usize = 200;
    const RECEIVES: usize = 50;
    const _: () = assert!(PS < DEFAULT_USER_WAITS, "within the default budget");
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let pid = daemon(&m);
    let set = set_of(0o666);
    let queue = queue_of(0, 0o666);
    let sem_file = m.path(format!("sem/{}/0", set.0));
    let wait_any = m.path(format!("msg/{}/.wait/any", queue.0));
    // Warm up: one wait of each kind, begun and ended.
    fs::write(&sem_file, "+1").unwrap();
    fs::write(&sem_file, "-1").unwrap();
    msg::send(queue, 1, b"warm", false).unwrap();
    let mut buf = [0; 64];
    let n = std::io::Read::read(&mut fs::File::open(&wait_any).unwrap(), &mut buf).unwrap();
    assert_eq!(&buf[..n], b"warm");
    let threads_before = thread_count(pid);
    let idle_before = idle_ticks(pid, Duration::from_secs(2));
    println!("daemon idle: {}; {idle_before} ticks in 2 s", figures(pid));

    let mut ps = Proc::client(A, &["wait", path_arg(&sem_file), &PS.to_string(), "-1"]);
    let mut receives = Proc::client(B, &["wait", path_arg(&wait_any), &RECEIVES.to_string(), "-"]);
    wait_until("every P and receive is parked", Duration::from_secs(30), || {
        ncnt(set, 0) == PS as i32 && threads_in_syscall(pid, libc::SYS_msgrcv) == RECEIVES
    });
    let threads = thread_count(pid);
    let ticks = idle_ticks(pid, Duration::from_secs(2));
    println!(
        "daemon with {PS} P's and {RECEIVES} receives parked: {}; {} threads more than idle; {ticks} ticks in 2 s idle",
        figures(pid),
        threads - threads_before
    );
    let waiters = (PS + RECEIVES) as u64;
    assert!(
        threads <= threads_before + waiters + 8,
        "{waiters} parked operations must cost at most one daemon thread each: {threads_before} threads before, {threads} with them"
    );
    // The contract: "well under 5% of a CPU". The daemon under test is a
    // debug build, which spends about twice what a release build does (7-8
    // ticks here, about 4 in release); one thread per waiter polling /proc
    // for itself cost 24-32. 16 ticks in 2 s is 4% of this 2-CPU machine.
    assert!(
        ticks < 16,
        "{waiters} idle waiters cost the daemon {ticks} ticks of CPU in 2 s ({}%)",
        ticks * 100 / (2 * HZ)
    );

    // Interrupted: EINTR, promptly, and nothing taken.
    let mut one = Proc::client(A, &["wait", path_arg(&sem_file), "0", "-1"]);
    wait_until("one more P parked", LIMIT, || ncnt(set, 0) == PS as i32 + 1);
    let sent = Instant::now();
    one.signal(Signal::SIGINT);
    let outcome = one.line("", LIMIT);
    let took = sent.elapsed();
    println!("an interrupted P: {outcome} after {took:?}");
    assert_eq!(outcome, "error EINTR");
    assert!(took < PROMPT, "the interrupted P ended after {took:?}");
    wait_until("the interrupted P is no longer waiting", PROMPT, || ncnt(set, 0) == PS as i32);
    assert_eq!(sem_value(set, 0), 0, "the interrupted P took nothing");

    // Killed: every wait ends, nothing is taken, the threads go.
    ps.kill();
    receives.kill();
    wait_until("the killed waiters' waits end", Duration::from_secs(10), || {
        ncnt(set, 0) == 0 && threads_in_syscall(pid, libc::SYS_msgrcv) == 0
    });
    sem::operate(set, 0, 1, None).expect("V");
    msg::send(queue, 1, b"kept", false).unwrap();
    assert_eq!((sem_value(set, 0), qnum(queue)), (1, 1), "nothing taken for the killed waiters");
    wait_until("the daemon's waiting threads are gone", Duration::from_secs(10), || {
        thread_count(pid) <= threads_before + 2
    });
    println!("daemon after: {}", figures(pid));
}

// ---- 4: a full queue ----

/// Item 4: on a queue of user A (mode 0600) filled with 16,384 one-byte
/// messages, user B (no read permission) stats type files in two loops:
/// each shows size 0, costs the daemon almost nothing, and user C's
/// `ls -l shm/` meanwhile completes at once. A's `ls -l` of the queue
/// completes with the right sizes, and A's `rm msg/ID/any` returns while
/// A's senders keep refilling the queue; the daemon serves on.
#[test]
fn a_full_queue_stalls_nothing() {
    const MESSAGES: usize = 16384;
    const TYPES: i64 = 3;
    const SENDERS: i64 = 16;
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let pid = daemon(&m);
    let queue = queue_of(A, 0o600);
    let qdir = m.path(format!("msg/{}", queue.0));
    fill(queue, MESSAGES, TYPES);
    assert_eq!(qnum(queue), MESSAGES as u64, "the default msgmnb (16384) holds 16384 one-byte messages");
    let segment = segment_of(C, 4096, 0o600);

    let ticks_before = cpu_ticks(pid);
    let started = Instant::now();
    let mut loops: Vec<Proc> =
        (0..2).map(|_| Proc::client(B, &["stat", path_arg(&qdir), "1", &(TYPES + 2).to_string(), "20"])).collect();
    for l in &mut loops {
        l.line("started", LIMIT);
    }
    let ls_started = Instant::now();
    let ls = sh_as_user(C, &format!("ls -l {}", q(&m.path("shm"))));
    let ls_took = ls_started.elapsed();
    assert!(assert_ok(&ls, "ls -l shm/ as a third user").contains(&format!(" {}\n", segment.0)));
    let results: Vec<String> = loops.iter_mut().map(|l| l.line("stats", Duration::from_secs(30))).collect();
    let took = started.elapsed();
    let ticks = cpu_ticks(pid) - ticks_before;
    println!("uid {B} without read permission, two loops: {results:?} in {took:?}; the daemon spent {ticks} ticks");
    println!("uid {C}'s ls -l shm/ meanwhile: {ls_took:?}");
    for result in &results {
        assert_eq!(result, &format!("stats {} sizes 0:{} errors none", 20 * (TYPES + 2), 20 * (TYPES + 2)));
    }
    assert!(ticks < 50, "240 stats without read permission cost the daemon {ticks} ticks");
    assert!(ls_took < Duration::from_secs(3), "another user's ls -l shm/ took {ls_took:?}");

    // The owner lists the full queue, with the bytes of each type; a third
    // user's `ls -l shm/` meanwhile completes at once.
    let started = Instant::now();
    let mut listing = Proc::start(
        {
            let mut c = as_user(A, A, &[]);
            c.arg("ls").arg("-l").arg(&qdir);
            c
        },
        "ls -l of the full queue as its owner",
    );
    let busy = wait_for_fuse_call(listing.pid(), Duration::from_secs(5));
    let ls_started = Instant::now();
    let ls = sh_as_user(C, &format!("ls -l {}", q(&m.path("shm"))));
    let ls_took = ls_started.elapsed();
    let text = listing.finish(Duration::from_secs(30));
    let took = started.elapsed();
    println!("uid {A}'s ls -l of the full queue: {took:?}\n{text}");
    println!(
        "uid {C}'s ls -l shm/ meanwhile: {ls_took:?} (the listing {})",
        if busy { "was in a FUSE call" } else { "was not seen in a FUSE call" }
    );
    assert!(assert_ok(&ls, "ls -l shm/ as a third user").contains(&format!(" {}\n", segment.0)));
    assert!(
        ls_took < Duration::from_secs(3),
        "another user's ls -l shm/ took {ls_took:?} while the owner listed a full queue"
    );
    let sizes: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.starts_with("total"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[8].to_string(), f[4].to_string())
        })
        .collect();
    let mut expected = vec![("any".to_string(), MESSAGES.to_string())];
    expected.extend((1..=TYPES).map(|t| {
        let count = (0..MESSAGES as i64).filter(|i| 1 + i % TYPES == t).count();
        (t.to_string(), count.to_string())
    }));
    expected.sort();
    let mut sizes_sorted = sizes.clone();
    sizes_sorted.sort();
    assert_eq!(sizes_sorted, expected, "types and their bytes");

    // rm of every message while the owner's senders refill the queue: they
    // wait in msgsnd for room (the queue is full) when it starts.
    let senders: Vec<Proc> =
        (1..=SENDERS).map(|t| Proc::client(A, &["send", &queue.0.to_string(), &t.to_string(), "-1", "1"])).collect();
    for sender in &senders {
        wait_until("a sender waits for room", LIMIT, || threads_in_syscall(sender.pid(), libc::SYS_msgsnd) == 1);
    }
    let started = Instant::now();
    let mut rm = Proc::start(
        {
            let mut c = as_user(A, A, &[]);
            c.args(["rm", path_arg(&qdir.join("any"))]);
            c
        },
        "rm msg/ID/any with the owner's senders refilling the queue",
    );
    rm.finish(Duration::from_secs(30));
    let took = started.elapsed();
    // The senders say so once their msgsnd returns: after the rm, maybe. A
    // sender the kernel did not wake before the others refilled the queue
    // (its wakeups are not fair under load) waits for room again: the test
    // takes a message at a time until every sender has sent.
    wait_until("the senders sent (the rm made room)", LIMIT, || {
        let all = senders.iter().all(|s| s.stdout().starts_with("ready"));
        if !all {
            let _ = msg::receive(queue, 0, 64, false);
        }
        all
    });
    let sent: Vec<String> = senders.iter().map(|s| s.stdout()).collect();
    println!("uid {A}'s rm msg/ID/any with {SENDERS} senders refilling: {took:?} (senders said {sent:?})");
    drop(senders);
    assert_alive(&m);
    let ls = assert_ok(&sh_as_user(C, &format!("ls {}", q(&m.path("shm")))), "ls shm/ afterwards");
    assert_eq!(ls, format!("{}\n", segment.0));
    let out = assert_ok(&sh_as_user(A, &format!("stat -c %s {}", q(&qdir.join("any")))), "stat any afterwards");
    assert_eq!(out.trim(), msg::stat_any(queue).unwrap().cbytes.to_string());
}
