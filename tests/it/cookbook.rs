//! Runs every recipe of docs/cookbook.md against a real mount and checks that
//! it does what the cookbook says.
//!
//! The recipes are not copied here: each is the fenced block of the cookbook
//! that starts with `# recipe: NAME`, read from the file as it is now, with
//! the cookbook's example mount point (/mnt/ipc) and example ids replaced by
//! the test's own ([`Script::with`] fails if the example is not in the text,
//! so a changed recipe fails loudly instead of testing nothing).
//! [`every_recipe_is_run_by_a_test`] makes sure no recipe goes untested.
//!
//! Each recipe runs through `sh -c`, as a user would paste it, under
//! `timeout` so that a recipe that wrongly waits fails instead of hanging.
//! `watch` is replaced by a function that runs its command once. Objects are
//! made and checked with the system calls directly; tests wait for observable
//! conditions (the kernel's waiter counts, the daemon's waiting threads),
//! never for a fixed time.

use crate::common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use ipcfs::ipc::Errno;
use ipcfs::ipc::msg::{self, MsqId};
use ipcfs::ipc::sem::{self, Query, SemId};
use ipcfs::ipc::shm::Attachment;

const COOKBOOK: &str = include_str!("../../docs/cookbook.md");
/// The mount point the cookbook's recipes use.
const EXAMPLE_MOUNT: &str = "/mnt/ipc";

// ---- the recipes ----

/// Every recipe of the cookbook by name: the text of each fenced block whose
/// first line is `# recipe: NAME`.
fn recipes() -> BTreeMap<&'static str, String> {
    let mut recipes = BTreeMap::new();
    let mut lines = COOKBOOK.lines();
    while let Some(line) = lines.next() {
        if !line.starts_with("```") {
            continue;
        }
        let block: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
        if let Some(name) = block.first().and_then(|l| l.strip_prefix("# recipe: ")) {
            let text = block[1..].join("\n") + "\n";
            assert!(recipes.insert(name.trim(), text).is_none(), "two recipes are called {name}");
        }
    }
    recipes
}

/// A recipe, ready to run.
#[derive(Clone)]
struct Script {
    name: String,
    text: String,
}

/// The recipe called `name`.
fn recipe(name: &str) -> Script {
    let text = recipes().remove(name).unwrap_or_else(|| panic!("docs/cookbook.md has no recipe {name}"));
    Script { name: name.into(), text }
}

/// `watch` runs its command (its last argument) once.
const WATCH_ONCE: &str = "watch() { for command; do :; done; sh -c \"$command\"; }\n";

impl Script {
    /// Replaces the cookbook's example `example` (every occurrence, which
    /// must exist) with `actual`.
    fn with(mut self, example: &str, actual: &str) -> Script {
        assert!(self.text.contains(example), "recipe {} no longer mentions {example:?}:\n{}", self.name, self.text);
        self.text = self.text.replace(example, actual);
        self
    }

    /// The recipe on the test's mount instead of /mnt/ipc.
    fn on(self, m: &Mounted) -> Script {
        let root = m.root().display().to_string();
        self.with(EXAMPLE_MOUNT, &root)
    }

    /// Only the first `n` lines of the recipe.
    fn first_lines(mut self, n: usize) -> Script {
        self.text = self.text.lines().take(n).map(|l| format!("{l}\n")).collect();
        self
    }

    /// What `sh -c` is given.
    fn shell_text(&self) -> String {
        format!("{WATCH_ONCE}{}", self.text)
    }

    fn command(&self, dir: Option<&Path>) -> Command {
        let mut command = Command::new("timeout");
        command.arg(LIMIT.as_secs().to_string()).args(["sh", "-c", &self.shell_text()]);
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        command.stdin(Stdio::null());
        command
    }

    fn run(&self) -> Output {
        self.command(None).output().unwrap()
    }

    /// Runs in `dir` as the working directory.
    fn run_in(&self, dir: &Path) -> Output {
        self.command(Some(dir)).output().unwrap()
    }

    /// Runs as another user, as `setpriv` does it.
    fn run_as(&self, uid: u32, gid: u32) -> Output {
        Command::new("setpriv")
            .args([format!("--reuid={uid}"), format!("--regid={gid}"), "--clear-groups".into(), "--".into()])
            .args(["timeout", &LIMIT.as_secs().to_string(), "sh", "-c", &self.shell_text()])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs and requires success; returns stdout.
    #[track_caller]
    fn run_ok(&self) -> String {
        self.ok(self.run())
    }

    #[track_caller]
    fn ok(&self, out: Output) -> String {
        assert_ok(&out, &format!("recipe {}:\n{}", self.name, self.text))
    }

    /// Starts the recipe and lets it run (for recipes that wait).
    fn spawn(&self, dir: Option<&Path>) -> Child {
        self.command(dir).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }
}

#[test]
fn every_recipe_is_run_by_a_test() {
    let recipes = recipes();
    assert!(recipes.len() >= 20, "found only {} recipes: is the `# recipe:` marker still used?", recipes.len());
    let tests = include_str!("cookbook.rs");
    let untested: Vec<_> = recipes.keys().filter(|name| !tests.contains(&format!("recipe(\"{name}\")"))).collect();
    assert!(untested.is_empty(), "recipes no test runs: {untested:?}");
    for (name, text) in &recipes {
        assert!(text.contains(EXAMPLE_MOUNT), "recipe {name} does not use the mount at {EXAMPLE_MOUNT}");
    }
}

// ---- helpers ----

/// Waits for a started recipe to end; its stdout, which must be a success.
#[track_caller]
fn finish(script: &Script, child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    script.ok(out)
}

fn shm_exists(id: ShmId) -> bool {
    match shm::stat_any(id) {
        Ok(_) => true,
        Err(Errno::ENOENT | Errno::EINVAL | Errno::EIDRM) => false,
        Err(e) => panic!("shmctl({}): {e}", id.0),
    }
}

fn sem_exists(id: SemId) -> bool {
    match sem::stat_any(id) {
        Ok(_) => true,
        Err(Errno::ENOENT | Errno::EINVAL | Errno::EIDRM) => false,
        Err(e) => panic!("semctl({}): {e}", id.0),
    }
}

fn msg_exists(id: MsqId) -> bool {
    match msg::stat_any(id) {
        Ok(_) => true,
        Err(Errno::ENOENT | Errno::EINVAL | Errno::EIDRM) => false,
        Err(e) => panic!("msgctl({}): {e}", id.0),
    }
}

/// The id a `by-key` link points to.
fn id_by_key(m: &Mounted, kind: &str, key: i32) -> i32 {
    let target = fs::read_link(m.path(format!("by-key/{kind}/{}", Key(key)))).unwrap();
    let id = target.file_name().unwrap().to_str().unwrap();
    assert_eq!(target, Path::new(&format!("../../{kind}/{id}")));
    id.parse().unwrap()
}

/// `text` as one sh word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn lines(text: &str) -> BTreeSet<String> {
    text.lines().map(str::to_string).collect()
}

// ---- shared memory ----

#[test]
fn unattached_segments_are_listed_then_removed_and_attached_ones_kept() {
    let m = Mounted::new();
    let keyed = create_segment(0x1001, 4096, 0o600);
    let private = create_segment(libc::IPC_PRIVATE, 8192, 0o644);
    let others = create_segment(0x1002, 4096, 0o600);
    shm::set(others, NOBODY_UID, NOBODY_GID, 0o600).unwrap();
    let attached = create_segment(0x1003, 4096, 0o666);
    let _attachment = Attachment::attach(attached, 4096, false).unwrap();
    // Removed while attached: still listed (marked for destruction) until detached.
    let doomed = create_segment(0x1004, 4096, 0o666);
    let _doomed_attachment = Attachment::attach(doomed, 4096, false).unwrap();
    shm::remove(doomed).unwrap();

    let unattached: BTreeSet<String> =
        [keyed, private, others].iter().map(|id| m.shm(*id).display().to_string()).collect();
    let list = recipe("unattached-segments").on(&m);
    assert_eq!(lines(&list.run_ok()), unattached);

    recipe("remove-unattached-segments").on(&m).run_ok();
    for id in [keyed, private, others] {
        assert!(!shm_exists(id), "unattached segment {} is still there", id.0);
    }
    assert!(shm_exists(attached) && shm_exists(doomed), "an attached segment was removed");
    assert_eq!(shm::stat_any(attached).unwrap().perm.key, Key(0x1003), "the attached segment was marked for removal");
    assert_eq!(list.run_ok(), "");
    recipe("remove-unattached-segments").on(&m).run_ok();
}

/// A process that holds segment `id` attached until dropped.
struct Attacher(Child);

impl Attacher {
    fn new(id: ShmId) -> Attacher {
        let script = "import ctypes, sys\n\
                      libc = ctypes.CDLL(None, use_errno=True)\n\
                      libc.shmat.restype = ctypes.c_void_p\n\
                      libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]\n\
                      assert libc.shmat(int(sys.argv[1]), None, 0) != ctypes.c_void_p(-1).value\n\
                      print('attached', flush=True)\n\
                      sys.stdin.read()\n";
        let mut child = Command::new("/usr/bin/python3")
            .args(["-c", script, &id.0.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line, "attached\n", "the python attacher failed");
        Attacher(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Attacher {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

#[test]
fn who_attached_names_the_processes_attached_now() {
    let m = Mounted::new();
    let seg = create_segment(0x2001, 4096, 0o600);
    let untouched = create_segment(0x2002, 4096, 0o600);
    let attacher = Attacher::new(seg);
    let other = Attacher::new(untouched);
    let daemon = m.daemon_pid().unwrap();
    let who = recipe("who-attached").with("shm/7", &format!("shm/{}", seg.0)).on(&m);

    let before = who.run_ok();
    assert_eq!(before, format!("{} python3\n", attacher.pid()), "only the attacher is attached");
    assert!(!before.contains(&other.pid().to_string()));

    // An open segment file is no attachment: the daemon is not listed.
    let open = fs::File::open(m.shm(seg)).unwrap();
    let during = who.run_ok();
    assert_eq!(during, format!("{} python3\n", attacher.pid()));
    assert!(!during.contains(&format!("{daemon} ")), "the daemon holds the file, not an attachment");
    drop(open);
}

#[test]
fn largest_segments_come_first_with_their_owners() {
    let m = Mounted::new();
    let small = create_segment(0x3001, 4096, 0o600);
    let large = create_segment(0x3002, 1 << 20, 0o600);
    shm::set(large, NOBODY_UID, NOBODY_GID, 0o600).unwrap();
    let middle = create_segment(libc::IPC_PRIVATE, 65536, 0o600);
    let out = recipe("largest-segments").on(&m).run_ok();
    let expected: String = [(large, "1048576", "4242"), (middle, "65536", "root"), (small, "4096", "root")]
        .iter()
        .map(|(id, size, owner)| format!("{size}\t{owner}\t{}\n", m.shm(*id).display()))
        .collect();
    assert_eq!(out, expected);
}

#[test]
fn shm_per_user_adds_up_each_owners_bytes() {
    let m = Mounted::new();
    create_segment(0x3101, 4096, 0o600);
    create_segment(0x3102, 65536, 0o600);
    let theirs = create_segment(0x3103, 1 << 20, 0o600);
    shm::set(theirs, NOBODY_UID, NOBODY_GID, 0o600).unwrap();
    let out = recipe("shm-per-user").on(&m).run_ok();
    assert_eq!(lines(&out), lines("root 69632\n4242 1048576\n"));
}

#[test]
fn shm_usage_counts_pages_and_segments_against_the_limits() {
    let m = Mounted::new();
    let sizes = [4096, 8192, 1];
    for size in sizes {
        create_segment(libc::IPC_PRIVATE, size, 0o600);
    }
    let page: u64 = sh_ok("getconf PAGESIZE").trim().parse().unwrap();
    let in_use = sizes.iter().map(|size| size.div_ceil(page)).sum::<u64>() * page / 4096;
    let out = recipe("shm-usage").on(&m).run_ok();
    let rows: Vec<Vec<u64>> = out
        .lines()
        .filter_map(|l| l.split_whitespace().map(|f| f.parse().ok()).collect::<Option<Vec<u64>>>())
        .collect();
    assert_eq!(rows.len(), 2, "two figures lines in {out:?}");
    let (pages, segments) = (&rows[0], &rows[1]);
    assert_eq!(pages[1], in_use, "4 KiB pages in use: {out}");
    assert_eq!(pages[0], pages[1] + pages[2], "size = used + available: {out}");
    let shmmni: u64 = sh_ok("cat /proc/sys/kernel/shmmni").trim().parse().unwrap();
    assert_eq!(segments, &vec![shmmni, 3, shmmni - 3], "segments: {out}");
}

#[test]
fn dump_segment_shows_the_live_bytes() {
    let m = Mounted::new();
    let seg = create_segment(0x3301, 65536, 0o600);
    write_segment(seg, 0x60, b"hello");
    let out = recipe("dump-segment").with("shm/7", &format!("shm/{}", seg.0)).on(&m).run_ok();
    let zeros = "000000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  >................<";
    let hello = "000060 68 65 6c 6c 6f 00 00 00 00 00 00 00 00 00 00 00  >hello...........<";
    let rest = "000070 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  >................<";
    // The dump, zero lines folded into `*`; then the 16 bytes at 0x60.
    assert_eq!(out.lines().collect::<Vec<_>>(), [zeros, "*", hello, rest, "*", "010000", hello, "000070"]);
}

#[test]
fn patch_segment_writes_those_bytes_and_keeps_the_others() {
    let m = Mounted::new();
    let seg = create_segment(0x3401, 4096, 0o600);
    write_segment(seg, 0, &[0xaa; 4096]);
    recipe("patch-segment").with("shm/7", &format!("shm/{}", seg.0)).on(&m).run_ok();
    let mut expected = vec![0xaa; 4096];
    expected[100..105].copy_from_slice(b"ready");
    assert!(segment_bytes(seg) == expected, "the segment is not the old bytes with `ready` at 100");
}

#[test]
fn backup_and_restore_bring_back_key_size_mode_and_bytes() {
    let m = Mounted::new();
    let scratch = Scratch::new("cookbook");
    let key = 0x1234abcd;
    let seg = create_segment(key, 10000, 0o640);
    let bytes: Vec<u8> = (0..10000u32).map(|i| (i * 7 % 251) as u8).collect();
    write_segment(seg, 0, &bytes);

    let backup = recipe("backup-segment").with("shm/7", &format!("shm/{}", seg.0)).on(&m);
    backup.ok(backup.run_in(scratch.dir()));
    assert!(fs::read(scratch.path("shm-0x1234abcd.bin")).unwrap() == bytes, "the backup's bytes");
    assert_eq!(fs::read_to_string(scratch.path("shm-0x1234abcd.mode")).unwrap(), "640\n");

    shm::remove(seg).unwrap();
    let restore = recipe("restore-segment").on(&m);
    restore.ok(restore.run_in(scratch.dir()));
    let restored = ShmId(id_by_key(&m, "shm", key));
    let stat = shm::stat_any(restored).unwrap();
    assert_eq!((stat.perm.key, stat.segsz, stat.perm.mode & 0o777), (Key(key), 10000, 0o640));
    assert!(segment_bytes(restored) == bytes, "the restored bytes");

    // With the key taken, the restore stops at once and changes nothing.
    write_segment(restored, 0, b"changed");
    let again = restore.run_in(scratch.dir());
    assert_refused(&again, "File exists", "restore over an existing key");
    assert_eq!(&segment_bytes(restored)[..7], b"changed");
    assert_eq!(shm::stat_any(restored).unwrap().perm.mode & 0o777, 0o640);
}

#[test]
fn create_segment_makes_it_and_shows_its_id() {
    let m = Mounted::new();
    let out = recipe("create-segment").on(&m).run_ok();
    let id = ShmId(id_by_key(&m, "shm", 0x1234abcd));
    assert_eq!(out, format!("../../shm/{}\n", id.0));
    let stat = shm::stat_any(id).unwrap();
    assert_eq!((stat.segsz, stat.perm.mode & 0o777), (65536, 0o666 & !umask()));
}

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

// ---- message queues ----

/// The `ls -l` lines of a recipe's output: file name to size.
fn ls_sizes(out: &str) -> BTreeMap<String, u64> {
    out.lines()
        .filter(|l| l.starts_with('-'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[f.len() - 1].to_string(), f[4].parse().unwrap())
        })
        .collect()
}

#[test]
fn watch_queue_shows_the_queue_fill_and_drain() {
    let m = Mounted::new();
    let queue = create_queue(0x5001, 0o600);
    let watch = recipe("watch-queue").with("msg/3", &format!("msg/{}", queue.0)).on(&m);
    let qbytes = msg::stat_any(queue).unwrap().qbytes;
    let attributes = |cbytes: u64, qnum: u64| {
        let dir = m.path(format!("msg/{}", queue.0));
        format!(
            "# file: {}\nuser.ipc.cbytes=\"{cbytes}\"\nuser.ipc.qbytes=\"{qbytes}\"\nuser.ipc.qnum=\"{qnum}\"\n\n",
            dir.display()
        )
    };

    send(queue, 1, "a");
    send(queue, 7, "bb");
    send(queue, 7, "ccc");
    let full = watch.run_ok();
    assert!(full.starts_with(&attributes(6, 3)), "{full}");
    assert_eq!(ls_sizes(&full), BTreeMap::from([("1".into(), 1), ("7".into(), 5), ("any".into(), 6)]));

    while msg::receive(queue, 0, 64, false).is_ok() {}
    let empty = watch.run_ok();
    assert!(empty.starts_with(&attributes(0, 0)), "{empty}");
    assert_eq!(ls_sizes(&empty), BTreeMap::from([("any".into(), 0)]));
}

#[test]
fn send_message_sends_each_type_byte_for_byte() {
    let m = Mounted::new();
    let queue = create_queue(0x5101, 0o600);
    recipe("send-message").with("msg/3", &format!("msg/{}", queue.0)).on(&m).run_ok();
    assert_eq!(qnum(queue), 2);
    assert_eq!(msg::receive(queue, 7, 64, false).unwrap().body, b"resize 42.jpg");
    assert_eq!(msg::receive(queue, 1, 64, false).unwrap().body, b"hello\n");
}

#[test]
fn take_message_takes_one_then_one_of_a_type_then_all() {
    let m = Mounted::new();
    let queue = create_queue(0x5201, 0o600);
    let take = recipe("take-message").with("msg/3", &format!("msg/{}", queue.0)).on(&m);
    assert_eq!(take.clone().first_lines(1).run_ok(), "", "an empty queue gives nothing at once");

    for (mtype, body) in [(1, "a\n"), (2, "b\n"), (7, "c\n"), (3, "d\n")] {
        send(queue, mtype, body);
    }
    // What the cookbook says of byte-at-a-time readers: they fail and take nothing.
    let byte = sh(&format!("head -c 1 {}", q(&m.path(format!("msg/{}/.recv/any", queue.0)))));
    assert_refused(&byte, "Argument list too long", "head -c 1");
    assert_eq!(qnum(queue), 4);

    // The first of any type, the first of type 7, then all the rest in order.
    assert_eq!(take.run_ok(), "a\nc\nb\nd\n");
    assert_eq!(qnum(queue), 0);
}

#[test]
fn wait_message_waits_for_the_next_message() {
    let m = Mounted::new();
    let queue = create_queue(0x5301, 0o600);
    let script = recipe("wait-message").with("msg/3", &format!("msg/{}", queue.0)).on(&m);
    let child = script.spawn(None);
    let daemon = m.daemon_pid().unwrap();
    // The daemon's thread named ipcfs-wait sits in msgrcv for a waiting reader.
    wait_for("the daemon waits in msgrcv", || {
        fs::read_dir(format!("/proc/{daemon}/task"))
            .unwrap()
            .any(|task| fs::read_to_string(task.unwrap().path().join("comm")).is_ok_and(|c| c.trim() == "ipcfs-wait"))
    });
    send(queue, 4, "job 1");
    assert_eq!(finish(&script, child), "got: job 1\n");
    assert_eq!(qnum(queue), 0);
}

#[test]
fn peek_messages_shows_them_without_taking_any() {
    let m = Mounted::new();
    let queue = create_queue(0x5401, 0o600);
    send(queue, 1, "first\n");
    send(queue, 7, "second\n");
    send(queue, 7, "third\n");
    // What receiving changes: the count, the bytes, the last receiver and its time.
    let untouched = |s: msg::MsgStat| (s.qnum, s.cbytes, s.lrpid, s.rtime);
    let before = untouched(msg::stat_any(queue).unwrap());
    let peek = recipe("peek-messages").with("msg/3", &format!("msg/{}", queue.0));
    assert_eq!(peek.clone().on(&m).run_ok(), "first\nsecond\nthird\nsecond\nthird\n");
    assert_eq!(untouched(msg::stat_any(queue).unwrap()), before, "peeking took a message");

    // A read-only mount shows them the same way, and cannot take them.
    let ro = Mounted::with_options(&["-o", "ro"]);
    assert_eq!(peek.on(&ro).run_ok(), "first\nsecond\nthird\nsecond\nthird\n");
    for file in [".recv/any", ".wait/any"] {
        let take = sh(&format!("dd if={} bs=1M count=1 status=none", q(&ro.path(format!("msg/{}/{file}", queue.0)))));
        assert_refused(&take, "Read-only file system", &format!("dd if={file} on a read-only mount"));
    }
    assert_eq!(untouched(msg::stat_any(queue).unwrap()), before, "a read-only mount took a message");
}

#[test]
fn drain_queue_discards_one_type_then_everything() {
    let m = Mounted::new();
    let queue = create_queue(0x5501, 0o600);
    for (mtype, body) in [(7, "a"), (1, "b"), (7, "c"), (2, "d")] {
        send(queue, mtype, body);
    }
    let drain = recipe("drain-queue").with("msg/3", &format!("msg/{}", queue.0)).on(&m);
    drain.clone().first_lines(1).run_ok();
    assert_eq!(qnum(queue), 2);
    assert_eq!(msg::receive(queue, 7, 64, false), Err(Errno::ENOMSG));
    drain.run_ok();
    assert_eq!(qnum(queue), 0);
    assert!(msg_exists(queue), "the queue itself was removed");
}

#[test]
fn queue_limit_sets_and_shows_the_byte_limit() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let queue = create_queue(0x5601, 0o600);
    let limit = recipe("queue-limit").with("msg/3", &format!("msg/{}", queue.0)).on(&m);
    let default = msg::stat_any(queue).unwrap().qbytes;
    assert!(default < 65536, "a new queue's limit is kernel.msgmnb: {default}");
    // Above kernel.msgmnb only with CAP_SYS_RESOURCE, which the daemon looks
    // for in the caller: without it, refused and nothing changes.
    let without = sh(&format!(
        "setpriv --inh-caps=-sys_resource --bounding-set=-sys_resource sh -c {}",
        shell_quote(&limit.shell_text())
    ));
    assert_refused(&without, "Operation not permitted", "queue-limit without CAP_SYS_RESOURCE");
    assert_eq!(msg::stat_any(queue).unwrap().qbytes, default);
    // Up to kernel.msgmnb, the owner may.
    sh_ok("echo 65536 > /proc/sys/kernel/msgmnb");
    let out = limit.run_ok();
    assert!(out.contains("user.ipc.qbytes=\"65536\"\n"), "{out}");
    assert_eq!(msg::stat_any(queue).unwrap().qbytes, 65536);
    // Others may not, whatever the limit.
    assert_refused(&limit.run_as(NOBODY_UID, NOBODY_GID), "Operation not permitted", "queue-limit by another user");
}

#[test]
fn create_queue_makes_it_and_shows_its_id() {
    let m = Mounted::new();
    let out = recipe("create-queue").on(&m).run_ok();
    let id = MsqId(id_by_key(&m, "msg", 0x1234abcd));
    assert_eq!(out, format!("../../msg/{}\n", id.0));
    assert_eq!(msg::stat_any(id).unwrap().perm.mode & 0o777, 0o620);
}

// ---- any object ----

#[test]
fn find_by_key_finds_every_kind_of_object_with_that_key() {
    let m = Mounted::new();
    create_segment(0x1234, 4096, 0o600);
    let seg = create_segment(0xabcd, 4096, 0o600);
    let set = create_set(0xabcd, 1, 0o600);
    create_queue(0xabce, 0o600);
    let queue = create_queue(0xabcd, 0o600);
    let out = recipe("find-by-key").on(&m).run_ok();
    let links: Vec<String> = out
        .lines()
        .filter(|l| l.starts_with('l'))
        .map(|l| l.split_once(&format!("{}/", m.root().display())).unwrap().1.to_string())
        .collect();
    assert_eq!(
        links,
        [
            format!("by-key/msg/0x0000abcd -> ../../msg/{}", queue.0),
            format!("by-key/sem/0x0000abcd -> ../../sem/{}", set.0),
            format!("by-key/shm/0x0000abcd -> ../../shm/{}", seg.0),
        ]
    );
    assert_eq!(out.lines().last(), Some(seg.0.to_string().as_str()), "the segment's id");
}

/// Objects of two users and of root, some given away, for the recipes that
/// list and remove one user's objects.
struct Population {
    /// Created by USER, owned by USER.
    made_and_owned: Objects,
    /// Created by USER, then given to NOBODY_UID.
    given_away: ShmId,
    /// Created by root, then given to USER.
    received: ShmId,
    /// Created and owned by NOBODY_UID.
    others: Objects,
}

struct Objects {
    shm: ShmId,
    sem: SemId,
    msg: MsqId,
}

impl Objects {
    /// Creates a segment, a set and a queue through the mount as `uid`, and
    /// queues messages so that removing the queue has something to discard.
    fn make_as(m: &Mounted, uid: u32, gid: u32, key: i32) -> Objects {
        let script = format!(
            "truncate -s 4096 {shm} && mkdir {sem} && mkdir {msg}",
            shm = q(&m.path(format!("shm/{}", Key(key)))),
            sem = q(&m.path(format!("sem/{}:2", Key(key)))),
            msg = q(&m.path(format!("msg/{}", Key(key)))),
        );
        assert_ok(&sh_as(uid, gid, &[], &script), &script);
        let objects = Objects {
            shm: ShmId(id_by_key(m, "shm", key)),
            sem: SemId(id_by_key(m, "sem", key)),
            msg: MsqId(id_by_key(m, "msg", key)),
        };
        send(objects.msg, 1, "one");
        send(objects.msg, 5, "five");
        objects
    }

    fn paths(&self, m: &Mounted) -> [PathBuf; 3] {
        [m.shm(self.shm), m.path(format!("sem/{}", self.sem.0)), m.path(format!("msg/{}", self.msg.0))]
    }

    fn exist(&self) -> [bool; 3] {
        [shm_exists(self.shm), sem_exists(self.sem), msg_exists(self.msg)]
    }
}

impl Population {
    fn new(m: &Mounted) -> Population {
        let made_and_owned = Objects::make_as(m, USER, USER, 0x6001);
        let others = Objects::make_as(m, NOBODY_UID, NOBODY_GID, 0x6002);
        assert_ok(&sh_as(USER, USER, &[], &format!("truncate -s 4096 {}", q(&m.path("shm/0x6003")))), "truncate");
        let given_away = ShmId(id_by_key(m, "shm", 0x6003));
        shm::set(given_away, NOBODY_UID, NOBODY_GID, 0o600).unwrap();
        let received = create_segment(0x6004, 4096, 0o640);
        shm::set(received, USER, USER, 0o640).unwrap();
        Population { made_and_owned, given_away, received, others }
    }
}

#[test]
fn user_objects_lists_what_the_user_owns() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let p = Population::new(&m);
    let out = recipe("user-objects").on(&m).run_ok();
    let mode = |path: &Path| format!("{:o}", fs::metadata(path).unwrap().permissions().mode() & 0o777);
    let mut expected: Vec<PathBuf> = p.made_and_owned.paths(&m).to_vec();
    expected.push(m.shm(p.received));
    let expected: String = expected.iter().map(|path| format!("{}\t{}\n", path.display(), mode(path))).collect();
    assert_eq!(lines(&out), lines(&expected));
    assert!(out.contains("\t640\n"), "the received segment's mode: {out}");
}

#[test]
fn removing_by_owner_as_root_removes_exactly_what_the_user_owns() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let p = Population::new(&m);
    recipe("remove-objects-by-owner").on(&m).run_ok();
    assert_eq!(p.made_and_owned.exist(), [false; 3]);
    assert!(!shm_exists(p.received), "a segment the user owns but did not create");
    assert!(shm_exists(p.given_away), "a segment the user created but gave away");
    assert_eq!(p.others.exist(), [true; 3]);
}

#[test]
fn removing_by_owner_as_the_user_removes_their_own_objects() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let p = Population::new(&m);
    let script = recipe("remove-objects-by-owner").on(&m);
    script.ok(script.run_as(USER, USER));
    assert_eq!(p.made_and_owned.exist(), [false; 3]);
    assert!(!shm_exists(p.received), "a segment the user owns but did not create");
    assert!(shm_exists(p.given_away));
    assert_eq!(p.others.exist(), [true; 3]);
}

#[test]
fn removing_by_creator_removes_exactly_what_the_user_created() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let p = Population::new(&m);
    recipe("remove-objects-by-creator").on(&m).run_ok();
    assert_eq!(p.made_and_owned.exist(), [false; 3]);
    assert!(!shm_exists(p.given_away), "a segment the user created and gave away");
    assert!(shm_exists(p.received), "a segment given to the user by root");
    assert_eq!(p.others.exist(), [true; 3]);
}

// ---- containers ----

/// A process in new IPC and UTS namespaces with host name `name`, which has
/// run `setup` there; killed when dropped.
struct Container(Child);

impl Container {
    fn start(name: &str, setup: &str) -> Container {
        let script = format!("hostname {name} && {setup} && echo ready && exec sleep 1000");
        let mut child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--", "unshare", "--ipc", "--uts", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n", "the container did not start");
        Container(child)
    }

    /// Its IPC namespace's inode number, its name under `ns/`.
    fn ns(&self) -> String {
        ns_at(format!("/proc/{}/ns/ipc", self.0.id())).unwrap().to_string()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn shm_per_namespace_adds_up_each_containers_bytes() {
    let m = Mounted::with_options(&["-A"]);
    create_segment(0x3201, 65536, 0o600);
    let name = format!("db-{}", unique_tag());
    let db = Container::start(&name, "ipcmk -M 1048576 >/dev/null && ipcmk -M 4096 >/dev/null");
    let out = recipe("shm-per-namespace").on(&m).run_ok();
    let ours = ns_at("/proc/thread-self/ns/ipc").unwrap();
    let rows: Vec<&str> = out.lines().collect();
    assert!(rows.contains(&format!("1052672\t{}\t{name}", db.ns()).as_str()), "{out}");
    assert!(rows.contains(&format!("65536\t{ours}\t-").as_str()), "{out}");
    let sizes: Vec<u64> = rows.iter().map(|r| r.split('\t').next().unwrap().parse().unwrap()).collect();
    assert!(sizes.is_sorted_by(|a, b| a >= b), "largest first: {out}");
}

#[test]
fn objects_of_a_process_are_those_of_its_namespace() {
    let m = Mounted::with_options(&["-A"]);
    create_segment(0x3301, 12288, 0o600);
    let web = Container::start(&format!("web-{}", unique_tag()), "ipcmk -M 8192 >/dev/null");
    let script = recipe("objects-of-process").on(&m).with("pid=1234", &format!("pid={}", web.0.id()));
    let out = script.run_ok();
    assert!(out.contains(" 8192 "), "the container's segment: {out}");
    assert!(!out.contains(" 12288 "), "not the test's own segment: {out}");
    // The daemon is a process of the test's own namespace.
    let daemon = m.daemon_pid().unwrap();
    let ours = script.with(&format!("pid={}", web.0.id()), &format!("pid={daemon}")).run_ok();
    assert!(ours.contains(" 12288 ") && !ours.contains(" 8192 "), "{ours}");
}
