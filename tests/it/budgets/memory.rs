//! Finding 5, finding 12 and issue 15: neither a user's own namespace (with
//! any msgmax), nor names looked up by the hundred thousand, nor snapshots
//! of queues make the daemon spin or swell.

use super::*;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipcfs::ipc::msg;

// ---- 5: a user's own namespace (-A) ----

/// A process holding an IPC namespace of user `uid`'s own (`unshare -r
/// --ipc`, a rootless container) after running `setup` there; killed and
/// reaped when dropped.
struct Rootless {
    proc: Proc,
    ns: u64,
}

impl Rootless {
    fn new(uid: u32, setup: &str) -> Rootless {
        isolate();
        let own = ns_at("/proc/thread-self/ns/ipc").unwrap();
        let mut command = as_user(uid, uid, &[]);
        command
            .args(["setpriv", "--pdeathsig", "KILL", "--", "unshare", "-r", "--ipc", "sh", "-ec"])
            .arg(format!("{setup}\nexec sleep 1000"))
            .env("CLIENT", CLIENT);
        let mut proc = Proc::start(command, "unshare -r --ipc");
        let comm = |pid: i32| fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let pid = proc.pid();
        wait_until("the namespace's holder is ready", LIMIT, || {
            if let Some(status) = proc.child.try_wait().unwrap() {
                panic!("the namespace's setup failed ({status}): {:?} {:?}", proc.stdout(), proc.stderr());
            }
            comm(pid) == "sleep\n" && ns_at(format!("/proc/{pid}/ns/ipc")).is_some_and(|ns| ns != own)
        });
        let ns = ns_at(format!("/proc/{pid}/ns/ipc")).unwrap();
        Rootless { proc, ns }
    }

    /// Runs a shell command line as the namespace's root (its user, on the
    /// host): what that user can do there.
    fn sh(&self, uid: u32, script: &str) -> String {
        let out = as_user(uid, uid, &[])
            .args([
                "nsenter",
                "-U",
                "-i",
                "--preserve-credentials",
                "-t",
                &self.proc.pid().to_string(),
                "sh",
                "-c",
                script,
            ])
            .output()
            .unwrap();
        assert_ok(&out, script)
    }
}

/// A command run as root from the test's namespaces, bounded: it may wait
/// on a daemon that spins (the process cannot even be killed until the
/// daemon answers), so it runs as a process of its own.
fn run(program: &str, args: &[&str], paths: &[&Path]) -> Proc {
    let mut command = Command::new(program);
    command.args(args).args(paths).stdin(Stdio::null());
    Proc::start(command, &format!("{program} {}", args.join(" ")))
}

/// `ls -l` output: (name, size) of each entry.
fn names_and_sizes(listing: &str) -> Vec<(String, String)> {
    listing
        .lines()
        .filter(|l| !l.starts_with("total"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[8].to_string(), f[4].to_string())
        })
        .collect()
}

/// Item 5: in a user's own namespace (`unshare -Ur --ipc`) the user sets
/// kernel.msgmax to 0 after queueing messages of two types (types 5: 3 of 4
/// bytes, 9: 2 of 7). Through `ns/<inode>/`, stat of the type files and
/// `ls -l` of the queue complete (the kernel then refuses to copy any of
/// those messages, so a type's size cannot be learnt: the right size or a
/// refusal, never a wrong size), `any` shows the queue's bytes, and the
/// daemon is idle afterwards. With msgmax at 1 GiB, stat and `ls -l` show
/// the right sizes, and a stat neither swells the daemon nor costs it
/// much CPU.
#[test]
fn a_users_own_namespace_with_any_msgmax_does_not_drive_the_daemon() {
    let holder = Rootless::new(
        A,
        "ipcmk -Q >/dev/null\n\
         /usr/bin/python3 -c \"$CLIENT\" send 0 5 3 4 >/dev/null\n\
         /usr/bin/python3 -c \"$CLIENT\" send 0 9 2 7 >/dev/null\n\
         echo 0 > /proc/sys/kernel/msgmax",
    );
    let m = Mounted::with_options(&["-o", "all_namespaces,allow_other"]);
    let pid = daemon(&m);
    let qdir = m.path(format!("ns/{}/msg/0", holder.ns));
    assert_eq!(holder.sh(A, "cat /proc/sys/kernel/msgmax"), "0\n");
    println!("daemon before: {}", figures(pid));

    // msgmax 0.
    for (name, size) in [("any", "26"), ("5", "12"), ("9", "14")] {
        let started = Instant::now();
        let outcome = run("stat", &["-c", "%s"], &[&qdir.join(name)]).ended(LIMIT);
        println!("msgmax 0: stat {name}: {outcome:?} after {:?}", started.elapsed());
        match (name, outcome) {
            (_, Ok(shown)) => assert_eq!(shown.trim(), size, "stat of {name} with msgmax 0"),
            ("any", Err(e)) => panic!("stat of any (the queue's byte count) with msgmax 0: {e}"),
            (_, Err(_)) => {}
        }
    }
    let started = Instant::now();
    let outcome = run("ls", &["-l"], &[&qdir]).ended(LIMIT);
    println!("msgmax 0: ls -l of the queue after {:?}: {outcome:?}", started.elapsed());
    if let Ok(listing) = &outcome {
        assert_eq!(
            names_and_sizes(listing),
            [("5".into(), "12".into()), ("9".into(), "14".into()), ("any".into(), "26".into())],
            "{listing}"
        );
    }
    let ticks = idle_ticks(pid, Duration::from_secs(2));
    println!("daemon after, msgmax 0: {}; {ticks} ticks in the next 2 s", figures(pid));
    assert!(ticks < 20, "the daemon stays busy after a stat in a namespace with msgmax 0: {ticks} ticks in 2 s");
    assert_alive(&m);

    // msgmax 1 GiB.
    holder.sh(A, "echo 1073741824 > /proc/sys/kernel/msgmax");
    let (rss, peak, ticks) = (rss_kib(pid), peak_rss_kib(pid), cpu_ticks(pid));
    let started = Instant::now();
    let shown = run("stat", &["-c", "%s"], &[&qdir.join("9")]).finish(LIMIT);
    let took = started.elapsed();
    let (rss_after, peak_after, ticks_after) = (rss_kib(pid), peak_rss_kib(pid), cpu_ticks(pid));
    println!(
        "msgmax 1 GiB: stat 9 shows {} after {took:?}, {} ticks; daemon RSS {rss} -> {rss_after} KiB, peak {peak} -> {peak_after} KiB",
        shown.trim(),
        ticks_after - ticks
    );
    assert_eq!(shown, "14\n", "type 9's bytes with msgmax 1 GiB");
    assert!(
        peak_after < peak + 64 * 1024 && rss_after < rss + 64 * 1024,
        "a stat with msgmax 1 GiB grew the daemon from {rss} KiB (peak {peak}) to {rss_after} KiB (peak {peak_after})"
    );
    assert!(ticks_after - ticks < HZ, "a stat with msgmax 1 GiB cost the daemon {} ticks", ticks_after - ticks);
    let listing = run("ls", &["-l"], &[&qdir]).finish(LIMIT);
    assert_eq!(
        names_and_sizes(&listing),
        [("5".into(), "12".into()), ("9".into(), "14".into()), ("any".into(), "26".into())],
        "ls -l with msgmax 1 GiB: {listing}"
    );
    println!("daemon after, msgmax 1 GiB: {}", figures(pid));
    drop(holder);
}

// ---- 12: names looked up ----

/// Item 12: 300,000 distinct type names looked up under one queue (mode
/// 0600, three messages), half by a user without read permission and half
/// by its owner, all at once, do not grow the daemon's memory by more than
/// 16 MB (without a bound on what a name costs: about 50 MB).
#[test]
fn names_looked_up_do_not_grow_the_daemon() {
    const NAMES: u64 = 300_000;
    const LOOPS: u64 = 4;
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let pid = daemon(&m);
    let queue = queue_of(A, 0o600);
    fill(queue, 3, 2);
    let qdir = m.path(format!("msg/{}", queue.0));
    // Warm up: a few lookups of each kind.
    for uid in [A, B] {
        Proc::client(uid, &["stat", path_arg(&qdir), "1", "100", "1"]).finish(LIMIT);
    }
    let (rss, ticks) = (rss_kib(pid), cpu_ticks(pid));
    println!("daemon before: {}", figures(pid));

    // Each loop its own names: B's from 1000, A's from 1,000,000.
    let per_loop = NAMES / LOOPS;
    let started = Instant::now();
    let mut loops: Vec<(u32, Proc)> = (0..LOOPS)
        .map(|i| {
            let uid = if i % 2 == 0 { B } else { A };
            let first = if uid == B { 1000 } else { 1_000_000 } + (i / 2) * per_loop;
            (
                uid,
                Proc::client(
                    uid,
                    &["stat", path_arg(&qdir), &first.to_string(), &(first + per_loop - 1).to_string(), "1"],
                ),
            )
        })
        .collect();
    let results: Vec<(u32, String)> =
        loops.iter_mut().map(|(uid, l)| (*uid, l.line("stats", Duration::from_secs(120)))).collect();
    let (rss_after, ticks_after) = (rss_kib(pid), cpu_ticks(pid));
    println!(
        "{NAMES} names ({} by uid {B} without read permission, {} by uid {A} the owner): {results:?} in {:?}",
        NAMES / 2,
        NAMES / 2,
        started.elapsed()
    );
    println!(
        "daemon after: {}; RSS growth {} KiB; {} ticks ({} µs a lookup)",
        figures(pid),
        rss_after as i64 - rss as i64,
        ticks_after - ticks,
        (ticks_after - ticks) * 1_000_000 / HZ / NAMES
    );
    for (_, result) in &results {
        assert_eq!(result, &format!("stats {per_loop} sizes 0:{per_loop} errors none"));
    }
    assert!(
        rss_after < rss + 16 * 1024,
        "{NAMES} distinct names looked up grew the daemon from {rss} KiB to {rss_after} KiB"
    );
    assert_alive(&m);
}

/// Reading a listed queue file holds a snapshot of its messages in the
/// daemon, charged to the opener: 64 MiB per user. Beyond, open fails with
/// ENOMEM and nothing changes; another user still opens; a close gives the
/// bytes back; a type file is charged only its own bytes.
#[test]
fn snapshots_of_queues_are_charged_to_their_openers_memory() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    fs::write("/proc/sys/kernel/msgmax", (1 << 20).to_string()).unwrap();
    fs::write("/proc/sys/kernel/msgmnb", (8 << 20).to_string()).unwrap();
    let queue = queue_of(1001, 0o644);
    // The largest message ipcfs moves: 1 MiB less a page.
    let body = vec![b'm'; (1 << 20) - 4096];
    for mtype in [1, 1, 1, 1, 1, 1, 1, 2] {
        msg::send(queue, mtype, &body, false).unwrap();
    }
    let before = msg::stat_any(queue).unwrap();
    assert_eq!(before.cbytes, 8 * body.len() as u64, "precondition: about 8 MiB queued");
    let any = m.path(format!("msg/{}/any", queue.0));
    let two = m.path(format!("msg/{}/2", queue.0));

    // Root's share (64 MiB) holds eight snapshots of the whole queue, and
    // the type-2 file's (1 MiB) are each shrunk to their own bytes.
    let mut held: Vec<fs::File> = (0..8).map(|_| fs::File::open(&any).unwrap()).collect();
    let ninth = fs::File::open(&any).map(drop);
    assert_eq!(errno(ninth), libc::ENOMEM, "the ninth snapshot of 8 MiB is beyond the 64 MiB share");
    // With six held (about 50 MiB), nine snapshots of type 2 fit: each is
    // charged the whole queue while it is taken, then only its 1 MiB.
    held.truncate(6);
    let type_files: Vec<fs::File> = (0..9).map(|_| fs::File::open(&two).unwrap()).collect();
    assert_eq!(errno(fs::File::open(&any).map(drop)), libc::ENOMEM, "nine 1 MiB snapshots leave less than 8 MiB");
    drop(type_files);
    held.push(fs::File::open(&any).expect("a close gives the bytes back"));

    // Another user has a share of its own.
    let out = sh_as_user(1002, &format!("head -c 16 {} | wc -c", path_arg(&any)));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "16");
    drop(held);
    let after = msg::stat_any(queue).unwrap();
    assert_eq!((after.qnum, after.cbytes, after.lrpid), (before.qnum, before.cbytes, before.lrpid), "nothing taken");
    msg::remove(queue).unwrap();
}
