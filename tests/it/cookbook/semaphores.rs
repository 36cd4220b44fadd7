//! The recipes for semaphore sets.

use super::*;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use ipcfs::ipc::sem::{self, Query, SemId};

// ---- semaphores ----

/// `sh -c 'echo COMMAND > PATH'`: a client of the mount that waits, killed
/// on drop if it is still waiting.
struct Waiter(Child);

impl Waiter {
    fn new(command: &str, path: &Path) -> Waiter {
        let child = Command::new("sh")
            .args(["-c", &format!("echo {command} > {}", q(path))])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Waiter(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits for the client to end; it must have succeeded.
    #[track_caller]
    fn ends_well(mut self) {
        let status = wait_timeout(&mut self.0, LIMIT).expect("the waiter did not end");
        assert!(status.success(), "the waiter failed: {status}");
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn semaphore_recipes_show_values_waiters_and_last_operators() {
    let m = Mounted::new();
    let set = create_set(0x4001, 3, 0o600);
    let quiet = create_set(0x4002, 2, 0o600);
    // Semaphore 0: set by this process; 1: never operated on, one waiting to
    // take; 2: set through the mount, one waiting for zero.
    sem::set_value(set, 0, 2).unwrap();
    sem::set_value(quiet, 1, 5).unwrap();
    sh_ok(&format!("echo 1 > {}", q(&m.path(format!("sem/{}/2", set.0)))));
    let taker = Waiter::new("-1", &m.path(format!("sem/{}/1", set.0)));
    let zero = Waiter::new("=0", &m.path(format!("sem/{}/2", set.0)));
    wait_for("one waits to take", || query(set, 1, Query::WaitingToTake) == 1);
    wait_for("one waits for zero", || query(set, 2, Query::WaitingForZero) == 1);

    let me = fs::read_to_string(format!("/proc/{}/comm", std::process::id())).unwrap();
    let daemon = m.daemon_pid().unwrap();
    let who = recipe("semaphore-who").with("sem/5", &format!("sem/{}", set.0)).on(&m).run_ok();
    assert_eq!(
        who,
        format!(
            "SEMNUM VALUE NCNT ZCNT PID COMMAND\n0 2 0 0 {} {}\n1 0 1 0 0 -\n2 1 0 1 {daemon} ipcfs\n",
            std::process::id(),
            me.trim()
        )
    );

    let waiters = recipe("semaphore-waiters").with("sem/5", &format!("sem/{}", set.0)).on(&m).run_ok();
    assert_eq!(lines(&waiters), lines(&format!("pid {} semaphore 1\npid {} semaphore 2\n", taker.pid(), zero.pid())));

    let anywhere = recipe("semaphores-with-waiters").on(&m).run_ok();
    let dir = m.path(format!("sem/{}", set.0));
    assert_eq!(lines(&anywhere), lines(&format!("{0}/1 ncnt 1\n{0}/2 zcnt 1\n", dir.display())));

    sem::operate(set, 1, 1, None).unwrap();
    sem::set_value(set, 2, 0).unwrap();
    taker.ends_well();
    zero.ends_well();
    assert_eq!(recipe("semaphores-with-waiters").on(&m).run_ok(), "");
}

#[test]
fn set_semaphore_sets_adds_and_takes() {
    let m = Mounted::new();
    let set = create_set(0x4101, 1, 0o600);
    let out = recipe("set-semaphore").with("sem/5", &format!("sem/{}", set.0)).on(&m).run_ok();
    assert_eq!(out, "2\n");
    assert_eq!(sem_value(set, 0), 2);
}

#[test]
fn semaphore_lock_waits_for_the_unit_and_gives_it_back() {
    let m = Mounted::new();
    let scratch = Scratch::new("cookbook");
    let set = create_set(0x4201, 1, 0o600);
    let lock = recipe("semaphore-lock").with("sem/5", &format!("sem/{}", set.0)).on(&m);
    let log = scratch.path("shared.log");

    sem::set_value(set, 0, 1).unwrap();
    lock.ok(lock.run_in(scratch.dir()));
    assert_eq!(fs::read_to_string(&log).unwrap().lines().count(), 1);
    assert_eq!(sem_value(set, 0), 1, "the lock was given back");

    // Held by someone else: the recipe waits for it.
    sem::operate(set, 0, -1, None).unwrap();
    let child = lock.spawn(Some(scratch.dir()));
    wait_for("the recipe waits for the lock", || query(set, 0, Query::WaitingToTake) == 1);
    assert_eq!(fs::read_to_string(&log).unwrap().lines().count(), 1, "it ran without the lock");
    sem::operate(set, 0, 1, None).unwrap();
    finish(&lock, child);
    assert_eq!(fs::read_to_string(&log).unwrap().lines().count(), 2);
    assert_eq!(sem_value(set, 0), 1, "the lock was given back");
}

#[test]
fn semaphore_trylock_takes_a_free_unit_and_never_waits() {
    let m = Mounted::new();
    let set = create_set(0x4301, 1, 0o600);
    let trylock = recipe("semaphore-trylock").with("sem/5", &format!("sem/{}", set.0)).on(&m);
    assert_eq!(trylock.run_ok(), "busy\n");
    assert_eq!((sem_value(set, 0), query(set, 0, Query::WaitingToTake)), (0, 0));
    sem::set_value(set, 0, 1).unwrap();
    assert_eq!(trylock.run_ok(), "got the lock\n");
    assert_eq!(sem_value(set, 0), 1, "the lock was given back");
}

#[test]
fn wait_for_zero_returns_when_the_count_reaches_zero() {
    let m = Mounted::new();
    let set = create_set(0x4401, 2, 0o600);
    sem::set_value(set, 1, 2).unwrap();
    let script = recipe("wait-for-zero").with("sem/5", &format!("sem/{}", set.0)).on(&m);
    let mut child = script.spawn(None);
    wait_for("the recipe waits for zero", || query(set, 1, Query::WaitingForZero) == 1);
    sem::operate(set, 1, -1, None).unwrap();
    assert!(child.try_wait().unwrap().is_none(), "it ended at 1");
    sem::operate(set, 1, -1, None).unwrap();
    assert_eq!(finish(&script, child), "all workers done\n");
}

#[test]
fn semaphore_timeout_gives_up_and_takes_nothing() {
    let m = Mounted::new();
    let set = create_set(0x4501, 1, 0o600);
    let script =
        recipe("semaphore-timeout").with("timeout 5 ", "timeout 0.2 ").with("sem/5", &format!("sem/{}", set.0)).on(&m);
    assert_eq!(script.run_ok(), "no unit within 5 seconds\n");
    wait_for("the daemon stops waiting", || query(set, 0, Query::WaitingToTake) == 0);
    sem::operate(set, 0, 1, None).unwrap();
    assert_eq!(sem_value(set, 0), 1, "the given-up wait took a unit");
}

#[test]
fn create_semaphore_set_makes_it_and_shows_its_id() {
    let m = Mounted::new();
    let out = recipe("create-semaphore-set").on(&m).run_ok();
    let id = SemId(id_by_key(&m, "sem", 0x1234abcd));
    assert_eq!(out, format!("../../sem/{}\n", id.0));
    let stat = sem::stat_any(id).unwrap();
    assert_eq!((stat.nsems, stat.perm.mode & 0o777), (4, 0o600));
    assert!((0..4).all(|n| sem_value(id, n) == 0));
}
