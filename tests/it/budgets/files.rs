//! Findings 1 and 2: open files stop at each user's budget and at the
//! global mapping cap, and a user holding many reads leaves the daemon
//! descriptors for everyone.

use super::*;

use std::fs;
use std::time::{Duration, Instant};

use ipcfs::ipc::msg;

// ---- 1: open files ----

/// Item 1 with the default budget: a user opening their own segment again
/// and again (one process, descriptors kept) gets EMFILE at exactly the
/// 1025th; meanwhile another user opens, waits and receives as before, and
/// the daemon's mappings stay within the budget and a few hundred. Once the
/// user's files are closed, the budget is theirs again.
#[test]
fn opens_of_ones_own_segment_stop_at_the_budget_and_others_keep_working() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let pid = daemon(&m);
    let hogged = segment_of(A, 4096, 0o600);
    let own_b = segment_of(B, 4096, 0o600);
    let set = set_of(0o666);
    let queue = queue_of(0, 0o666);
    msg::send(queue, 1, b"first", false).unwrap();
    let maps_before = map_count(pid);
    println!("daemon before: {}", figures(pid));

    let most = DEFAULT_USER_FILES + 200;
    let mut hog = Proc::client(A, &["open", path_arg(&m.shm(hogged)), &most.to_string(), "rw", "0"]);
    let line = hog.line("opened", Duration::from_secs(60));
    let maps_held = map_count(pid);
    println!("uid {A}: {line}");
    println!("daemon with them open: {}", figures(pid));
    let (opened, refused, _) = parse_opened(&line);
    assert_eq!(
        (opened, refused.as_str()),
        (DEFAULT_USER_FILES, "EMFILE"),
        "one user's opens must stop with EMFILE after user_files (default {DEFAULT_USER_FILES}) \
         (opened {opened} of {most} tried, then {refused})"
    );
    assert_alive(&m);
    assert!(
        maps_held < maps_before + DEFAULT_USER_FILES + 300,
        "the daemon's mappings went from {maps_before} to {maps_held} for {opened} opens"
    );

    others_still_served(&m, B, Some(own_b), set, queue);

    // The budget comes back with the files: once they are closed (and the
    // kernel has told the daemon), the user may open again.
    hog.kill();
    let probe = format!("exec 3<> {} && echo opened", q(&m.shm(hogged)));
    wait_until("the user may open again after closing everything", LIMIT, || sh_as_user(A, &probe).status.success());
    println!("daemon after: {}", figures(pid));
}

/// Item 1 with `-o user_files=200`: the budget is per user, over all of the
/// user's processes, and counts open directories too; another user has a
/// budget of their own, refused at exactly its end as well.
#[test]
fn the_open_file_budget_is_per_user_over_all_their_processes_and_directories() {
    let m = Mounted::with_options(&["-o", "allow_other,user_files=200"]);
    let pid = daemon(&m);
    let seg_a = segment_of(A, 4096, 0o600);
    let seg_b = segment_of(B, 4096, 0o600);
    let shm_dir = m.path("shm");

    let mut files = Proc::client(A, &["open", path_arg(&m.shm(seg_a)), "150", "rw", "0"]);
    let (opened, refused, _) = parse_opened(&files.line("opened", LIMIT));
    assert_eq!((opened, refused.as_str()), (150, "none"), "150 of 200 opens");
    let mut dirs = Proc::client(A, &["open", path_arg(&shm_dir), "30", "dir", "0"]);
    let (opened, refused, _) = parse_opened(&dirs.line("opened", LIMIT));
    assert_eq!((opened, refused.as_str()), (30, "none"), "30 more, directories");
    let mut more = Proc::client(A, &["open", path_arg(&m.shm(seg_a)), "100", "rw", "0"]);
    let line = more.line("opened", LIMIT);
    println!("uid {A}, a third process after 150 files and 30 directories: {line}");
    let (opened, refused, _) = parse_opened(&line);
    assert_eq!(
        (opened, refused.as_str()),
        (20, "EMFILE"),
        "a third process of the same user gets what is left of user_files=200 (150 files and 30 \
         directories are open), then EMFILE"
    );

    // Another user: a budget of their own, to its last unit.
    let mut other = Proc::client(B, &["open", path_arg(&m.shm(seg_b)), "300", "rw", "0"]);
    let line = other.line("opened", LIMIT);
    println!("uid {B}: {line}");
    let (opened, refused, _) = parse_opened(&line);
    assert_eq!((opened, refused.as_str()), (200, "EMFILE"), "another user's own budget of 200");
    println!("daemon with 400 files open: {}", figures(pid));

    // Closed, the whole budget is the user's again.
    for p in [&mut files, &mut dirs, &mut more] {
        p.kill();
    }
    wait_until("the user's whole budget is back", LIMIT, || {
        let mut probe = Proc::client(A, &["open", path_arg(&m.shm(seg_a)), "201", "rw", "0", "close"]);
        let (opened, _, _) = parse_opened(&probe.line("opened", LIMIT));
        probe.finish(LIMIT);
        opened == 200
    });
    assert_alive(&m);
}

/// Item 1, all users together: 66 users each opening a shared segment up to
/// their budget (67,584 opens, more than vm.max_map_count, 65,530 by
/// default, could map) do not take the daemon to vm.max_map_count: a global
/// cap refuses the excess with a clear errno (ENOMEM, also for anyone else
/// opening a segment while the cap is reached), the daemon lives, and a P
/// that waits (a thread) and a receive still work; once the files are
/// closed, opens work again.
#[test]
fn all_users_together_cannot_take_the_daemon_to_the_mapping_limit() {
    const USERS: u32 = 66;
    let max_map_count: usize = fs::read_to_string("/proc/sys/vm/max_map_count").unwrap().trim().parse().unwrap();
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let pid = daemon(&m);
    let shared = segment_of(0, 4096, 0o666);
    let own_b = segment_of(B, 4096, 0o600);
    let set = set_of(0o666);
    let queue = queue_of(0, 0o666);
    msg::send(queue, 1, b"first", false).unwrap();
    println!("daemon before: {}; vm.max_map_count {max_map_count}", figures(pid));

    let started = Instant::now();
    let seg = m.shm(shared);
    let mut hogs: Vec<Proc> = (0..USERS)
        .map(|i| Proc::client(2001 + i, &["open", path_arg(&seg), &DEFAULT_USER_FILES.to_string(), "rw", "0"]))
        .collect();
    let mut opened = 0;
    let mut refusals = std::collections::BTreeMap::<String, usize>::new();
    for hog in &mut hogs {
        let (n, refused, _) = parse_opened(&hog.line("opened", Duration::from_secs(60)));
        opened += n;
        *refusals.entry(refused).or_default() += 1;
    }
    let maps = map_count(pid);
    println!(
        "{USERS} users, up to {DEFAULT_USER_FILES} opens each: {opened} opened in {:?}, refusals by process {refusals:?}",
        started.elapsed()
    );
    println!("daemon with them open: {}", figures(pid));
    assert_alive(&m);
    assert!(
        maps < max_map_count / 2,
        "the daemon holds {maps} mappings of vm.max_map_count {max_map_count}: no room left for its threads"
    );
    for refused in refusals.keys() {
        assert!(
            ["none", "ENOMEM", "EMFILE", "EAGAIN"].contains(&refused.as_str()),
            "an open beyond the daemon's whole budget must fail with a clear errno, not {refused}"
        );
    }
    // Segments are what the users spent together: another user's open may be
    // refused too, but only with the errno of the cap. Waits and receives
    // are not segments.
    let out = sh_as_user(B, &format!("exec 3<> {}", q(&m.shm(own_b))));
    println!(
        "another user's open meanwhile: {:?}",
        if out.status.success() { "opened".into() } else { stderr_of(&out) }
    );
    assert!(out.status.success() || stderr_of(&out).contains("Cannot allocate memory"), "{}", stderr_of(&out));
    others_still_served(&m, B, None, set, queue);

    for hog in &mut hogs {
        hog.kill();
    }
    wait_until("opens work again once the files are closed", LIMIT, || {
        sh_as_user(C, &format!("exec 3<> {}", q(&seg))).status.success()
    });
    println!("daemon after: {}", figures(pid));
}

// ---- 2: the daemon's descriptors ----

/// Item 2: started with the soft descriptor limit systemd gives services
/// (1024), the daemon raises it to its hard limit; a user holding 1,100
/// opens of a 1 MiB segment (as many as the budget lets) and reading 64 KiB
/// through each leaves `ls`, receives and P's working for everyone else.
#[test]
fn a_user_holding_many_reads_leaves_the_daemon_descriptors_for_everyone() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit, which `limit` is.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    let hard = limit.rlim_max;
    assert!(hard >= 4096, "this test needs a hard descriptor limit of at least 4096, not {hard}");
    let nofile = format!("--nofile=1024:{hard}");
    let m = Mounted::with_wrapper(&["prlimit", &nofile, "--"], &["-o", "allow_other"]);
    let pid = daemon(&m);
    let limits = proc_limit(pid, "Max open files");
    println!("daemon started with soft 1024, hard {hard}: now {limits:?}");
    assert_eq!(limits, (hard, hard), "the daemon must raise its soft RLIMIT_NOFILE to the hard limit");

    let big = segment_of(A, 1 << 20, 0o600);
    let own_b = segment_of(B, 4096, 0o600);
    let set = set_of(0o666);
    let queue = queue_of(0, 0o666);
    msg::send(queue, 1, b"first", false).unwrap();
    msg::send(queue, 1, b"second", false).unwrap();
    println!("daemon before: {}", figures(pid));

    let mut hog = Proc::client(A, &["open", path_arg(&m.shm(big)), "1100", "rw", "65536"]);
    let line = hog.line("opened", Duration::from_secs(60));
    println!("uid {A}: {line}");
    println!("daemon with them open and read: {}", figures(pid));
    let (opened, refused, reads) = parse_opened(&line);
    assert!(
        opened == 1100 || (opened >= DEFAULT_USER_FILES && refused == "EMFILE"),
        "1,100 opens, or as many as the budget allows then EMFILE: {line}"
    );
    assert_eq!(reads, "read-errors none short-reads 0", "every open file's 64 KiB read: {line}");
    assert_alive(&m);

    // Everyone else.
    let ls = assert_ok(&sh_as_user(B, &format!("ls {}", q(&m.path("shm")))), "ls shm/ as another user");
    let mut listed: Vec<&str> = ls.lines().collect();
    listed.sort();
    let mut expected = vec![big.0.to_string(), own_b.0.to_string()];
    expected.sort();
    assert_eq!(listed, expected, "ls shm/");
    others_still_served(&m, B, Some(own_b), set, queue);
    assert_eq!(qnum(queue), 1, "one receive took one message");
    let got = msg::receive(queue, 0, 64, false).unwrap();
    assert_eq!(got.body, b"second", "the other message is still there, in order");
}
