//! Mounted tests of semaphore sets: the `sem/<semid>/<semnum>` tree and its
//! key links, reading and writing values, waiting operations (P and
//! wait-for-zero) that block, stall nothing else and end on their caller's
//! signals, stat and the extended attributes against semctl, ipcs and lsipc,
//! creating, changing and removing sets with mkdir, chmod, chown, rmdir and
//! rm, and the kernel's permission rule for other users.
//!
//! Every outcome is checked with the kernel's own calls (GETVAL, GETNCNT,
//! GETZCNT, IPC_STAT), not only through the mount. Anything that would hang
//! if ipcfs were wrong runs under `timeout 20`, or on a thread with the same
//! bound, so that a deadlock fails the test instead of stalling the suite.
//! Tests wait for observable conditions (polled), never for a fixed time
//! (except to let the clock reach the next second where kernel times matter).
//!
//! Writes whose errno matters go through bash (its `echo` reports "write
//! error: <strerror>"); dash, /bin/sh here, says "I/O error" for every
//! failed write, so it only starts waiters whose success or failure counts.

use crate::common::*;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ipcfs::ipc::Errno;
use ipcfs::ipc::sem::{self, Query, SemId};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How soon an interrupted, released or woken waiter must be gone (ipcfs
/// looks at its callers' signals every 0.1 s).
const PROMPT: Duration = Duration::from_secs(2);

// ---- helpers: the kernel's view ----

/// SETVAL behind the daemon's back.
fn set_value(id: SemId, num: u16, v: i32) {
    sem::set_value(id, num, v).expect("SETVAL");
}

// ---- helpers: paths and processes ----

fn set_dir(m: &Mounted, id: SemId) -> PathBuf {
    m.path(format!("sem/{}", id.0))
}

fn sem_file(m: &Mounted, id: SemId, num: u16) -> PathBuf {
    m.path(format!("sem/{}/{num}", id.0))
}

/// Opens `path` write-only with extra `flags` (no O_TRUNC) and makes one write(2).
#[track_caller]
fn write_with_flags(path: &Path, data: &[u8], flags: i32) -> std::io::Result<usize> {
    let what = format!("write({:?}) to {}", String::from_utf8_lossy(data), path.display());
    let (path, data) = (path.to_owned(), data.to_vec());
    bounded(&what, move || OpenOptions::new().write(true).custom_flags(flags).open(&path)?.write(&data))
}

#[track_caller]
fn write_once(path: &Path, data: &[u8]) -> std::io::Result<usize> {
    write_with_flags(path, data, 0)
}

/// One read(2) of up to 64 bytes, as text.
fn read_once(file: &mut File) -> String {
    let mut buf = [0u8; 64];
    let n = file.read(&mut buf).expect("read");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

fn shell_command(script: &str) -> Command {
    let mut command = Command::new("timeout");
    command.args(["20", "bash", "-c", script]).env("LC_ALL", "C").stdin(Stdio::null());
    command
}

/// Runs a bash command line as root under `timeout 20`, in C locale.
fn shell(script: &str) -> Output {
    shell_command(script).output().unwrap()
}

#[track_caller]
fn shell_ok(script: &str) -> String {
    assert_ok(&shell(script), script)
}

/// Runs a bash command line as another user with these supplementary
/// groups, under `timeout 20`, in C locale.
fn shell_as(uid: u32, gid: u32, groups: &[u32], script: &str) -> Output {
    as_user(uid, gid, groups).args(["timeout", "20", "bash", "-c", script]).env("LC_ALL", "C").output().unwrap()
}

/// `echo CMD > PATH`: the shell's way to operate on a semaphore (the
/// redirection opens with O_TRUNC).
fn echo_to(cmd: &str, path: &Path) -> String {
    format!("echo {cmd} > {}", q(path))
}

/// `cat PATH` as root.
#[track_caller]
fn cat(path: &Path) -> String {
    shell_ok(&format!("cat {}", q(path)))
}

/// One extended attribute read through the mount (`getfattr`, bounded).
#[track_caller]
fn attr(path: &Path, name: &str) -> String {
    shell_ok(&format!("getfattr --only-values --absolute-names -n {name} {}", q(path)))
}

/// Writes one command with write(2) through libc in a process that catches
/// SIGUSR1 (so the signal interrupts without killing), then prints the
/// result and errno: "-1 4" for EINTR. argv: path, command.
const PYTHON_WRITE: &str = r#"
import ctypes, os, signal, sys
signal.signal(signal.SIGUSR1, lambda *_: None)
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(sys.argv[1], os.O_WRONLY)
data = sys.argv[2].encode()
n = libc.write(fd, data, len(data))
print(n, ctypes.get_errno(), flush=True)
"#;

/// A background process that may block in ipcfs. Killed (by its own pid)
/// if the test ends while it still runs.
struct Waiter {
    child: Child,
}

impl Waiter {
    fn spawn(program: &str, args: &[&str]) -> Waiter {
        let child = Command::new(program)
            .args(args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        Waiter { child }
    }

    /// `sh -c 'echo CMD > PATH'`.
    fn echo(cmd: &str, path: &Path) -> Waiter {
        Waiter::spawn("sh", &["-c", &echo_to(cmd, path)])
    }

    /// python3 writing `cmd` with a caught SIGUSR1 (see [`PYTHON_WRITE`]).
    fn python_write(cmd: &str, path: &Path) -> Waiter {
        Waiter::spawn("python3", &["-c", PYTHON_WRITE, path.to_str().unwrap(), cmd])
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Requires the process to end within `limit`; returns what it did.
    #[track_caller]
    fn finish(&mut self, limit: Duration, what: &str) -> Output {
        let status =
            wait_timeout(&mut self.child, limit).unwrap_or_else(|| panic!("{what}: still running after {limit:?}"));
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        if let Some(mut pipe) = self.child.stdout.take() {
            pipe.read_to_end(&mut stdout).unwrap();
        }
        if let Some(mut pipe) = self.child.stderr.take() {
            pipe.read_to_end(&mut stderr).unwrap();
        }
        Output { status, stdout, stderr }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = wait_timeout(&mut self.child, Duration::from_secs(5));
        }
    }
}

/// `ipcs -s -i ID`: the header's fields (uid, gid, cuid, cgid, mode, nsems)
/// and the table's rows (semnum, value, ncount, zcount, pid).
fn ipcs_detail(id: SemId) -> (HashMap<String, String>, Vec<Vec<String>>) {
    let text = shell_ok(&format!("ipcs -s -i {}", id.0));
    let mut fields = HashMap::new();
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if in_table {
            if words.len() == 5 {
                rows.push(words.iter().map(|w| w.to_string()).collect());
            }
        } else if words.first() == Some(&"semnum") {
            in_table = true;
        } else if let Some(rest) = line.strip_prefix("nsems = ") {
            fields.insert("nsems".to_string(), rest.trim().to_string());
        } else {
            for word in words {
                if let Some((name, value)) = word.trim_end_matches(',').split_once('=') {
                    if !name.is_empty() && !value.is_empty() {
                        fields.insert(name.to_string(), value.to_string());
                    }
                }
            }
        }
    }
    (fields, rows)
}

// ---- 1. layout ----

#[test]
fn tree_has_a_directory_per_set_a_file_per_semaphore_and_links_for_keyed_sets() {
    let m = Mounted::new();
    let keyed = create_set(0x5e11, 3, 0o600);
    let high = create_set(0xfedc0001_u32 as i32, 1, 0o640);
    let private = create_set(libc::IPC_PRIVATE, 2, 0o600);
    let mut ids: Vec<String> = [keyed, high, private].iter().map(|id| id.0.to_string()).collect();
    ids.sort();
    assert_eq!(list(&m.path("sem")), ids);
    assert_eq!(list(&m.path("by-key/sem")), ["0x00005e11", "0xfedc0001"], "a link per keyed set, none for private");

    for (id, nsems) in [(keyed, 3), (high, 1), (private, 2)] {
        let dir = set_dir(&m, id);
        assert!(fs::metadata(&dir).unwrap().is_dir(), "sem/{} is a directory", id.0);
        let expected: Vec<String> = (0..nsems).map(|n: u16| n.to_string()).collect();
        assert_eq!(list(&dir), expected, "one file per semaphore of set {}", id.0);
        for n in 0..nsems {
            assert!(fs::metadata(sem_file(&m, id, n)).unwrap().is_file());
        }
        assert_eq!(errno(fs::metadata(sem_file(&m, id, nsems))), libc::ENOENT, "no semaphore {nsems}");
    }
    assert_eq!(errno(fs::metadata(m.path(format!("sem/{}/00", keyed.0)))), libc::ENOENT, "one spelling");
    assert_eq!(errno(fs::metadata(m.path(format!("sem/{}/-1", keyed.0)))), libc::ENOENT);

    for (key, id) in [("0x00005e11", keyed), ("0xfedc0001", high)] {
        let link = m.path(format!("by-key/sem/{key}"));
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "{key} is a symlink");
        assert_eq!(fs::read_link(&link).unwrap(), Path::new(&format!("../../sem/{}", id.0)));
        let followed = fs::metadata(&link).unwrap();
        assert!(followed.is_dir());
        assert_eq!(followed.ino(), fs::metadata(set_dir(&m, id)).unwrap().ino(), "{key} leads to sem/{}", id.0);
        assert_eq!(list(&link), list(&set_dir(&m, id)));
    }
    assert_eq!(attr(&set_dir(&m, private), "user.ipc.key"), "0x00000000");
    assert_eq!(errno(fs::symlink_metadata(m.path("by-key/sem/0x00000000"))), libc::ENOENT);
    assert_eq!(errno(fs::symlink_metadata(m.path("by-key/sem/0x5e11"))), libc::ENOENT, "one spelling of keys");
}

#[test]
fn sets_made_and_removed_by_ipcmk_and_ipcrm_show_at_once() {
    let m = Mounted::new();
    // Looked up (and missed) before they exist: no negative entry may stick.
    assert_eq!(errno(fs::metadata(m.path("sem/0"))), libc::ENOENT);
    assert_eq!(errno(fs::symlink_metadata(m.path("by-key/sem/0x00c0ffee"))), libc::ENOENT);
    assert!(list(&m.path("sem")).is_empty());

    let made = ipcmk_set(None, 4, 0o640);
    let made_key = key_name(kstat(made).perm.key.0);
    assert_eq!(list(&m.path("sem")), [made.0.to_string()]);
    assert_eq!(list(&set_dir(&m, made)), ["0", "1", "2", "3"]);
    assert_eq!(fs::metadata(set_dir(&m, made)).unwrap().size(), 4);
    assert_eq!(list(&m.path("by-key/sem")), std::slice::from_ref(&made_key));

    let keyed = create_set(0x00c0ffee, 2, 0o600);
    assert_eq!(fs::read_link(m.path("by-key/sem/0x00c0ffee")).unwrap(), Path::new(&format!("../../sem/{}", keyed.0)));
    assert_eq!(list(&set_dir(&m, keyed)), ["0", "1"]);

    shell_ok(&format!("ipcrm -s {}", made.0));
    assert!(is_gone(made));
    assert_eq!(list(&m.path("sem")), [keyed.0.to_string()]);
    assert_eq!(errno(fs::metadata(set_dir(&m, made))), libc::ENOENT);
    assert_eq!(errno(fs::metadata(sem_file(&m, made, 0))), libc::ENOENT);
    assert_eq!(errno(fs::symlink_metadata(m.path(format!("by-key/sem/{made_key}")))), libc::ENOENT);
    assert_eq!(list(&m.path("by-key/sem")), ["0x00c0ffee"]);

    shell_ok("ipcrm -S 0x00c0ffee");
    assert!(is_gone(keyed));
    assert!(list(&m.path("sem")).is_empty());
    assert!(list(&m.path("by-key/sem")).is_empty());
    assert_eq!(errno(fs::metadata(set_dir(&m, keyed))), libc::ENOENT);

    let again = create_set(0x00c0ffee, 1, 0o600);
    assert_eq!(fs::read_link(m.path("by-key/sem/0x00c0ffee")).unwrap(), Path::new(&format!("../../sem/{}", again.0)));
    assert_eq!(list(&set_dir(&m, again)), ["0"]);
}

// ---- 2. reading ----

#[test]
fn cat_prints_the_kernels_value_fresh_every_time() {
    let m = Mounted::new();
    let id = create_set(0x2ead, 3, 0o600);
    let path = sem_file(&m, id, 1);
    assert_eq!(cat(&path), "0\n");
    for v in [1, 7, 32767, 0, 12345] {
        set_value(id, 1, v);
        assert_eq!(cat(&path), format!("{v}\n"), "after SETVAL {v} behind the daemon's back");
        assert_eq!(cat(&path), format!("{}\n", sem_value(id, 1)));
    }
    sem::operate(id, 1, 3, None).unwrap();
    assert_eq!(cat(&path), "12348\n", "after a semop behind the daemon's back");
    assert_eq!(cat(&sem_file(&m, id, 0)), "0\n", "the other semaphores keep theirs");
    assert_eq!(cat(&sem_file(&m, id, 2)), "0\n");
    assert_eq!(fs::read_to_string(&path).unwrap(), "12348\n", "read to the end in-process");
}

#[test]
fn one_descriptor_reads_the_value_then_eof_and_a_read_at_offset_zero_is_fresh() {
    let m = Mounted::new();
    let id = create_set(0x2eae, 1, 0o600);
    set_value(id, 0, 7);
    let mut file = File::open(sem_file(&m, id, 0)).unwrap();
    assert_eq!(read_once(&mut file), "7\n");
    set_value(id, 0, 12);
    assert_eq!(read_once(&mut file), "", "end-of-file after the value");
    assert_eq!(read_once(&mut file), "", "and end-of-file it stays, as on any file");
    let mut buf = [0u8; 16];
    let n = file.read_at(&mut buf, 0).unwrap();
    assert_eq!(&buf[..n], b"12\n", "pread at 0: the value now");
    set_value(id, 0, 3);
    file.seek(SeekFrom::Start(0)).unwrap();
    assert_eq!(read_once(&mut file), "3\n", "lseek to 0, then read: the value now");
    set_value(id, 0, 32767);
    let n = file.read_at(&mut buf, 1).unwrap();
    assert_eq!(&buf[..n], b"\n", "past offset 0: the rest of the text the last read at 0 took");
    let n = file.read_at(&mut buf[..2], 0).unwrap();
    assert_eq!(&buf[..n], b"32", "a short read at 0 takes the value fresh");
    let n = file.read_at(&mut buf, 2).unwrap();
    assert_eq!(&buf[..n], b"767\n", "and the next piece is of that same text");
}

#[test]
fn semaphore_files_have_positions_like_sysfs_files_so_head_and_tail_work() {
    let m = Mounted::new();
    let id = create_set(0x2eaf, 1, 0o600);
    set_value(id, 0, 5);
    let path = sem_file(&m, id, 0);
    let mut file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
    assert_eq!(file.seek(SeekFrom::End(0)).unwrap(), 2, "lseek(SEEK_END): the size of \"5\\n\"");
    assert_eq!(file.seek(SeekFrom::Start(1)).unwrap(), 1);
    assert_eq!(file.write_at(b"+1", 100).unwrap(), 2, "a write is a command wherever it lands");
    assert_eq!(sem_value(id, 0), 6);
    assert_eq!(read_once(&mut file), "\n", "from offset 1 with no text taken yet: the rest of a fresh one");
    for (tool, want) in [("head -n 1", "6\n"), ("tail -n 1", "6\n"), ("head -c 1", "6"), ("tail -c 2", "6\n")] {
        let out = shell(&format!("{tool} {}", q(&path)));
        assert!(out.status.success() && out.stderr.is_empty(), "{tool}: {}", stderr_of(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{tool}");
    }
    assert_eq!(sem_value(id, 0), 6, "reading changed nothing");
}

// ---- 3. writing ----

#[test]
fn writes_set_add_take_and_wait_for_zero() {
    let m = Mounted::new();
    let id = create_set(0x3001, 2, 0o600);
    let path = sem_file(&m, id, 0);

    shell_ok(&echo_to("7", &path));
    assert_eq!(sem_value(id, 0), 7, "N sets the value");
    shell_ok(&echo_to("+3", &path));
    assert_eq!(sem_value(id, 0), 10, "+N adds");
    shell_ok(&echo_to("-4", &path));
    assert_eq!(sem_value(id, 0), 6, "-N takes when available");
    shell_ok(&echo_to("-6", &path));
    assert_eq!(sem_value(id, 0), 0, "-N may take everything at once");
    shell_ok(&echo_to("=0", &path));
    assert_eq!(sem_value(id, 0), 0, "=0 returns at once at zero");
    assert_eq!(sem_value(id, 1), 0, "semaphore 1 untouched");

    // One write(2) each, without O_TRUNC; the count written is the whole command.
    for (command, expected) in [
        (&b"12"[..], 12),
        (b"0", 0),
        (b"32767", 32767),
        (b"5\n", 5),
        (b"9  \n", 9),
        (b"+1 ", 10),
        (b"+32757", 32767),
        (b"-32767\n", 0),
        (b"+2\n\n", 2),
        (b"-1 \t\n", 1),
        (b"-1", 0),
        (b"=0", 0),
        (b"=0\n", 0),
    ] {
        let text = String::from_utf8_lossy(command).into_owned();
        assert_eq!(write_once(&path, command).unwrap(), command.len(), "write {text:?}");
        assert_eq!(sem_value(id, 0), expected, "after {text:?}");
        assert_eq!(cat(&path), format!("{expected}\n"));
    }
    assert_eq!((ncnt(id, 0), zcnt(id, 0)), (0, 0), "nothing left waiting");

    let other = sem_file(&m, id, 1);
    shell_ok(&echo_to("+4", &other));
    assert_eq!((sem_value(id, 0), sem_value(id, 1)), (0, 4), "each file is its own semaphore");
}

#[test]
fn bad_commands_fail_with_einval_or_erange_and_change_nothing() {
    let m = Mounted::new();
    let id = create_set(0x3002, 1, 0o600);
    let path = sem_file(&m, id, 0);
    set_value(id, 0, 5);
    let before = snapshot(id);
    for (command, expected) in [
        (&b"abc"[..], libc::EINVAL),
        (b"+", libc::EINVAL),
        (b"-", libc::EINVAL),
        (b"=", libc::EINVAL),
        (b"-0", libc::EINVAL),
        (b"+0", libc::EINVAL),
        (b"=5", libc::EINVAL),
        (b"=1", libc::EINVAL),
        (b"1 2", libc::EINVAL),
        (b"1\n2\n", libc::EINVAL),
        (b"+1 +1", libc::EINVAL),
        (b"-1x", libc::EINVAL),
        (b"+-1", libc::EINVAL),
        (b"++1", libc::EINVAL),
        (b"0x10", libc::EINVAL),
        (b"1.5", libc::EINVAL),
        (b"\xff", libc::EINVAL),
        (b"32768", libc::ERANGE),
        (b"+32768", libc::ERANGE),
        (b"-32768", libc::ERANGE),
        (b"99999999999999999999", libc::ERANGE),
        (b"+99999999999999999999", libc::ERANGE),
        (b"+32763", libc::ERANGE),
    ] {
        let text = String::from_utf8_lossy(command).into_owned();
        assert_eq!(errno(write_once(&path, command)), expected, "write {text:?}");
        assert_eq!(snapshot(id), before, "{text:?} changed something");
        assert_eq!((ncnt(id, 0), zcnt(id, 0)), (0, 0), "{text:?} left a waiter");
    }

    // A write(2) of nothing never reaches the filesystem; it must change nothing.
    let _ = write_once(&path, b"");
    assert_eq!(snapshot(id), before, "an empty write changed something");

    // At the top of the range, +1 is ERANGE (from the kernel's semop).
    set_value(id, 0, 32767);
    let top = snapshot(id);
    assert_eq!(errno(write_once(&path, b"+1")), libc::ERANGE, "+1 at 32767");
    assert_eq!(snapshot(id), top);

    // The shell sees the same errors.
    set_value(id, 0, 5);
    let before = snapshot(id);
    assert_refused(&shell(&echo_to("abc", &path)), "Invalid argument", "echo abc");
    assert_refused(&shell(&echo_to("32768", &path)), "Numerical result out of range", "echo 32768");
    assert_eq!(snapshot(id), before);
}

#[test]
fn white_space_alone_is_a_no_op_and_blank_lines_around_a_command_work() {
    // The shell's printf writes '\n\n5\n\n' line by line: the blank lines
    // must neither fail nor change anything, and the 5 must be set once.
    let m = Mounted::new();
    let id = create_set(0x3007, 1, 0o600);
    let path = sem_file(&m, id, 0);
    set_value(id, 0, 1);
    for blank in [&b"\n"[..], b"  ", b"\t\n", b"\n\n\n"] {
        assert_eq!(write_once(&path, blank).map_err(|e| errno_of(&e)), Ok(blank.len()), "{blank:?}");
        assert_eq!(sem_value(id, 0), 1, "{blank:?} changed the value");
    }
    shell_ok(&format!("printf '' > {0}; printf '\\n' > {0}", q(&path)));
    shell_ok(&format!("printf '\\n\\n5\\n\\n' > {}", q(&path)));
    assert_eq!(sem_value(id, 0), 5);
    shell_ok(&format!("printf '\\n+2\\n\\n' > {}", q(&path)));
    assert_eq!(sem_value(id, 0), 7, "the V ran once");
}

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

// ---- 7. stat and extended attributes ----

#[test]
fn set_directory_mode_adds_search_where_read_is_granted_and_files_show_the_sets_bits() {
    let m = Mounted::new();
    let id = create_set(0x7001, 3, 0o600);
    sem::set(id, NOBODY_UID, NOBODY_GID, 0o600).unwrap();
    let dir = set_dir(&m, id);
    for (mode, dir_symbolic) in [
        (0o640, "rwxr-x---"),
        (0o604, "rwx---r-x"),
        (0o600, "rwx------"),
        (0o444, "r-xr-xr-x"),
        (0o222, "-w--w--w-"),
        (0o000, "---------"),
        (0o666, "rwxrwxrwx"),
        (0o460, "r-xrwx---"),
        (0o206, "-w----rwx"),
    ] {
        sem::set(id, NOBODY_UID, NOBODY_GID, mode).unwrap();
        let md = fs::metadata(&dir).unwrap();
        assert_eq!(md.mode(), libc::S_IFDIR | perm_bits(dir_symbolic), "set dir of mode {mode:03o}");
        let ls = shell_ok(&format!("ls -ld {}", q(&dir)));
        assert_eq!(&ls[..10], format!("d{dir_symbolic}"), "ls -ld of mode {mode:03o}");
        assert_eq!((md.uid(), md.gid(), md.size()), (NOBODY_UID, NOBODY_GID, 3), "owner and nsems");
        for n in 0..3 {
            let md = fs::metadata(sem_file(&m, id, n)).unwrap();
            assert_eq!(md.mode(), libc::S_IFREG | mode, "semaphore {n} of mode {mode:03o}");
            // The size is the value's text, "0\n".
            assert_eq!((md.uid(), md.gid(), md.size()), (NOBODY_UID, NOBODY_GID, 2));
        }
    }
    let k = kstat(id);
    assert_eq!((k.perm.cuid, k.perm.cgid), (0, 0), "the creator stays root");
}

#[test]
fn times_are_the_sets_otime_and_ctime() {
    let m = Mounted::new();
    let id = create_set(0x7002, 2, 0o600);
    let dir = set_dir(&m, id);
    let file = sem_file(&m, id, 1);
    let created = kstat(id);
    assert_eq!(created.otime, 0, "precondition: never operated");
    for path in [&dir, &file] {
        let md = fs::metadata(path).unwrap();
        assert_eq!((md.mtime(), md.atime(), md.ctime()), (created.ctime, created.ctime, created.ctime), "{path:?}");
    }

    wait_for_next_second();
    shell_ok(&echo_to("+1", &file));
    let operated = kstat(id);
    assert!(operated.otime > created.ctime && operated.ctime == created.ctime, "precondition: {operated:?}");
    for path in [&dir, &file] {
        let md = fs::metadata(path).unwrap();
        assert_eq!((md.mtime(), md.atime(), md.ctime()), (operated.otime, operated.otime, operated.ctime), "{path:?}");
    }
    let other = fs::metadata(sem_file(&m, id, 0)).unwrap();
    assert_eq!(other.mtime(), operated.otime, "every file shows the set's otime");

    wait_for_next_second();
    sem::set(id, 0, 0, 0o640).unwrap();
    let changed = kstat(id);
    assert!(changed.ctime > changed.otime, "precondition: {changed:?}");
    let md = fs::metadata(&dir).unwrap();
    assert_eq!((md.mtime(), md.ctime()), (changed.otime, changed.ctime), "after IPC_SET");
    let md = fs::metadata(&file).unwrap();
    assert_eq!((md.mtime(), md.ctime()), (changed.otime, changed.ctime));
}

#[test]
fn extended_attributes_equal_semctl() {
    let m = Mounted::new();
    // Made by another user, then given to root: creator and owner differ.
    let id = ipcmk_set(Some((USER, USER_GID)), 3, 0o640);
    sem::set(id, 0, 0, 0o640).unwrap();
    let k = kstat(id);
    assert_eq!((k.perm.cuid, k.perm.cgid, k.perm.uid), (USER, USER_GID, 0), "precondition");

    let expected: HashMap<String, String> = [
        ("user.ipc.key", key_name(k.perm.key.0)),
        ("user.ipc.id", id.0.to_string()),
        ("user.ipc.cuid", USER.to_string()),
        ("user.ipc.cgid", USER_GID.to_string()),
        ("user.ipc.nsems", "3".to_string()),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v))
    .collect();
    let dir = set_dir(&m, id);
    assert_eq!(getfattr_dump(&dir), expected, "getfattr -d on the set");
    for (name, value) in &expected {
        assert_eq!(&attr(&dir, name), value, "getfattr -n {name}");
    }

    let semaphore_attrs = |num: u16| -> HashMap<String, String> {
        [
            ("user.ipc.pid", query(id, num, Query::Pid)),
            ("user.ipc.ncnt", ncnt(id, num)),
            ("user.ipc.zcnt", zcnt(id, num)),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
    };
    let file = sem_file(&m, id, 1);
    assert_eq!(getfattr_dump(&file), semaphore_attrs(1), "never operated");
    assert_eq!(attr(&file, "user.ipc.pid"), "0");

    shell_ok(&echo_to("+1", &file));
    let daemon = m.daemon_pid().unwrap();
    assert_eq!(query(id, 1, Query::Pid), daemon, "the daemon operated");
    assert_eq!(getfattr_dump(&file), semaphore_attrs(1));
    assert_eq!(attr(&file, "user.ipc.pid"), daemon.to_string());

    sem::operate(id, 1, 1, None).unwrap();
    assert_eq!(attr(&file, "user.ipc.pid"), std::process::id().to_string(), "the test operated");
    assert_eq!(attr(&sem_file(&m, id, 0), "user.ipc.pid"), "0", "semaphore 0 never operated");
    assert_eq!(getfattr_dump(&sem_file(&m, id, 2)), semaphore_attrs(2));

    let out = shell(&format!("getfattr -n user.ipc.value {}", q(&file)));
    assert_refused(&out, "No such attribute", "getfattr of an attribute ipcfs does not have");
}

#[test]
fn extended_attributes_are_read_only() {
    let m = Mounted::new();
    let id = create_set(0x7003, 2, 0o600);
    set_value(id, 0, 3);
    let (dir, file) = (set_dir(&m, id), sem_file(&m, id, 0));
    let before = (snapshot(id), getfattr_dump(&dir), getfattr_dump(&file));
    for (path, name) in [
        (&dir, "user.ipc.key"),
        (&dir, "user.ipc.id"),
        (&dir, "user.ipc.cuid"),
        (&dir, "user.ipc.cgid"),
        (&dir, "user.ipc.nsems"),
        (&file, "user.ipc.pid"),
        (&file, "user.ipc.ncnt"),
        (&file, "user.ipc.zcnt"),
    ] {
        let out = shell(&format!("setfattr -n {name} -v 1 {}", q(path)));
        assert_refused(&out, "Operation not permitted", &format!("setfattr {name}"));
        let out = shell(&format!("setfattr -x {name} {}", q(path)));
        assert_refused(&out, "Operation not permitted", &format!("setfattr -x {name}"));
    }
    assert_eq!((snapshot(id), getfattr_dump(&dir), getfattr_dump(&file)), before, "refused setfattr changed something");
}

#[test]
fn stat_getfattr_and_cat_agree_with_ipcs_and_lsipc() {
    let m = Mounted::new();
    let a = create_set(0x0000aaaa, 3, 0o640);
    sem::set(a, NOBODY_UID, NOBODY_GID, 0o640).unwrap();
    let b = create_set(0x0bbb0000, 1, 0o604);
    let c = create_set(libc::IPC_PRIVATE, 2, 0o660);
    sem::set(c, NOBODY_UID + 1, 0, 0o660).unwrap();
    wait_for_next_second();
    set_value(a, 1, 42);
    sem::operate(a, 2, 7, None).unwrap();
    shell_ok(&echo_to("+5", &sem_file(&m, b, 0)));
    set_value(c, 0, 1);
    // A waiter, so that ncount is not 0 everywhere.
    let mut z = Waiter::echo("=0", &sem_file(&m, c, 0));
    wait_for("=0 waits on c/0", || zcnt(c, 0) == 1);

    let rows = lsipc_rows("-s --numeric-perms", "KEY,ID,PERMS,OWNER,UID,GID,CUID,CGID,NSEMS,OTIME,CTIME");
    assert_eq!(rows.len(), 3, "{rows:?}");
    let ipcs = shell_ok("ipcs -s");
    let ls = ls_long(&m.path("sem"), "-l");
    let ls_ctime = ls_long(&m.path("sem"), "-lc");
    assert_eq!(ls.len(), 3, "{ls:?}");

    for (id, key, nsems, mode, dir_symbolic, uid, gid) in [
        (a, "0x0000aaaa", 3, 0o640, "rwxr-x---", NOBODY_UID, NOBODY_GID),
        (b, "0x0bbb0000", 1, 0o604, "rwx---r-x", 0, 0),
        (c, "0x00000000", 2, 0o660, "rwxrwx---", NOBODY_UID + 1, 0),
    ] {
        let name = id.0.to_string();
        let k = kstat(id);
        let md = fs::metadata(set_dir(&m, id)).unwrap();
        let row = rows.iter().find(|r| r["id"] == name).unwrap_or_else(|| panic!("lsipc has no id {name}: {rows:?}"));
        let ipcs_line: Vec<&str> = ipcs
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.len() == 5 && f[1] == name)
            .unwrap_or_else(|| panic!("ipcs -s has no id {name}: {ipcs}"));
        let ls_row = &ls[&name];

        // the kernel and stat
        assert_eq!((k.nsems, k.perm.mode & 0o777, k.perm.uid, k.perm.gid), (nsems, mode, uid, gid), "{name}");
        assert_eq!((md.size(), md.mode() & 0o7777, md.uid(), md.gid()), (nsems, perm_bits(dir_symbolic), uid, gid));
        // key
        assert_eq!(row["key"], key, "lsipc key of {name}");
        assert_eq!(ipcs_line[0], key, "ipcs key of {name}");
        assert_eq!(attr(&set_dir(&m, id), "user.ipc.key"), key);
        // permissions: the files show the set's, the directory adds search
        assert_eq!(u32::from_str_radix(&row["perms"], 8).unwrap(), mode, "lsipc perms of {name}");
        assert_eq!(u32::from_str_radix(ipcs_line[3], 8).unwrap(), mode, "ipcs perms of {name}");
        assert_eq!(ls_row[0], format!("d{dir_symbolic}"), "ls perms of {name}");
        // owner
        assert_eq!(ls_row[1], row["owner"], "ls and lsipc owner of {name}");
        assert_eq!(ls_row[1], ipcs_line[2], "ls and ipcs owner of {name}");
        assert_eq!((row["uid"].clone(), row["gid"].clone()), (uid.to_string(), gid.to_string()), "{name}");
        assert_eq!((row["cuid"].as_str(), row["cgid"].as_str()), ("0", "0"));
        // nsems
        assert_eq!(row["nsems"], nsems.to_string(), "lsipc nsems of {name}");
        assert_eq!(ipcs_line[4], nsems.to_string(), "ipcs nsems of {name}");
        assert_eq!(ls_row[3], nsems.to_string(), "ls size of {name}");
        assert_eq!(attr(&set_dir(&m, id), "user.ipc.nsems"), nsems.to_string());
        // times (lsipc shows null for an otime never set; the directory shows ctime there)
        assert_eq!(ls_ctime[&name][4], row["ctime"], "ctime of {name}");
        let otime = if row["otime"].is_empty() { row["ctime"].clone() } else { row["otime"].clone() };
        assert_eq!(ls_row[4], otime, "mtime of {name}");

        // ipcs -i: the header and every semaphore's value, waiters and last pid
        let (fields, table) = ipcs_detail(id);
        assert_eq!(fields["uid"], uid.to_string(), "ipcs -i uid of {name}");
        assert_eq!(fields["gid"], gid.to_string(), "ipcs -i gid of {name}");
        assert_eq!((fields["cuid"].as_str(), fields["cgid"].as_str()), ("0", "0"));
        assert_eq!(u32::from_str_radix(&fields["mode"], 8).unwrap(), mode, "ipcs -i mode of {name}");
        assert_eq!(fields["nsems"], nsems.to_string());
        assert_eq!(table.len() as u64, nsems, "{table:?}");
        for (num, semaphore) in table.iter().enumerate() {
            let file = sem_file(&m, id, num as u16);
            assert_eq!(semaphore[0], num.to_string());
            assert_eq!(format!("{}\n", semaphore[1]), cat(&file), "value of {name}/{num}");
            assert_eq!(semaphore[2], attr(&file, "user.ipc.ncnt"), "ncount of {name}/{num}");
            assert_eq!(semaphore[3], attr(&file, "user.ipc.zcnt"), "zcount of {name}/{num}");
            assert_eq!(semaphore[4], attr(&file, "user.ipc.pid"), "pid of {name}/{num}");
        }
    }
    assert_eq!(attr(&sem_file(&m, b, 0), "user.ipc.pid"), m.daemon_pid().unwrap().to_string());
    assert_eq!(attr(&sem_file(&m, c, 0), "user.ipc.zcnt"), "1");

    shell_ok(&echo_to("0", &sem_file(&m, c, 0)));
    assert_ok(&z.finish(PROMPT, "=0 on c/0"), "echo =0");
}

// ---- 8. creating, changing and removing sets ----

/// The id of the set with this key (`semget(key, 0, 0)`).
fn id_of_key(key: i32) -> SemId {
    sem::get(Key(key), 0, 0).unwrap_or_else(|e| panic!("semget({}): {e}", key_name(key)))
}

#[test]
fn mkdir_creates_sets_with_count_and_mode_without_execute_bits() {
    let m = Mounted::new();
    let sem_root = m.path("sem");

    shell_ok(&format!("umask 022; mkdir {}", q(&sem_root.join("0x1234"))));
    let one = id_of_key(0x1234);
    let k = kstat(one);
    assert_eq!((k.nsems, k.perm.mode & 0o777, k.perm.uid, k.perm.cuid), (1, 0o644, 0, 0), "0777 & ~022, less x");
    assert_eq!(sem_value(one, 0), 0);

    shell_ok(&format!("mkdir -m 600 {}", q(&sem_root.join("0x1235:4"))));
    let four = id_of_key(0x1235);
    let k = kstat(four);
    assert_eq!((k.nsems, k.perm.mode & 0o777), (4, 0o600));
    assert_eq!(list(&set_dir(&m, four)), ["0", "1", "2", "3"]);
    assert_eq!(fs::metadata(set_dir(&m, four)).unwrap().mode(), libc::S_IFDIR | 0o700);

    shell_ok(&format!("mkdir -m 755 {}", q(&sem_root.join("0XABCDEF12:2"))));
    let upper = id_of_key(0xabcdef12_u32 as i32);
    let k = kstat(upper);
    assert_eq!((k.nsems, k.perm.mode & 0o777), (2, 0o644), "execute bits dropped");

    let before = kernel_object_count("sem");
    shell_ok(&format!("mkdir -m 640 {}", q(&sem_root.join("private:2"))));
    assert_eq!(kernel_object_count("sem"), before + 1);
    let mut ids: Vec<String> = [one, four, upper].iter().map(|id| id.0.to_string()).collect();
    let private = list(&sem_root).into_iter().find(|n| !ids.contains(n)).expect("the private set is listed");
    let private = SemId(private.parse().unwrap());
    let k = kstat(private);
    assert_eq!((k.perm.key, k.nsems, k.perm.mode & 0o777), (Key::PRIVATE, 2, 0o640));
    ids.push(private.0.to_string());
    ids.sort();

    assert_eq!(list(&sem_root), ids, "sets are listed by id only, never by the names they were made with");
    assert_eq!(list(&m.path("by-key/sem")), ["0x00001234", "0x00001235", "0xabcdef12"]);
    // A creation name with a key still finds its set as a path (so that
    // `mkdir -p` and `mkdir -m` work), though it is never listed.
    for (name, id) in [("0x1234", one), ("0x1235:4", four), ("0xabcdef12", upper)] {
        let by_name = sem_root.join(name);
        assert!(fs::metadata(&by_name).unwrap().is_dir(), "sem/{name}");
        assert_eq!(attr(&by_name, "user.ipc.id"), id.0.to_string(), "sem/{name} is set {}", id.0);
    }
    assert_eq!(errno(fs::metadata(sem_root.join("0x9999"))), libc::ENOENT, "no set has that key");
    shell_ok(&format!("mkdir -p {}", q(&sem_root.join("0x1234"))));
    assert_eq!(kernel_object_count("sem"), 4, "mkdir -p of an existing key creates nothing");
}

#[test]
fn mkdir_by_another_user_makes_the_set_as_that_user() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let out = shell_as(USER, USER_GID, &[], &format!("umask 077; mkdir {}", q(&m.path("sem/0x7777:2"))));
    assert_ok(&out, "mkdir as user");
    let id = id_of_key(0x7777);
    let k = kstat(id);
    assert_eq!((k.perm.uid, k.perm.gid, k.perm.cuid, k.perm.cgid), (USER, USER_GID, USER, USER_GID));
    assert_eq!((k.nsems, k.perm.mode & 0o777), (2, 0o600));
    let md = fs::metadata(set_dir(&m, id)).unwrap();
    assert_eq!((md.uid(), md.gid()), (USER, USER_GID));
    assert_eq!(attr(&set_dir(&m, id), "user.ipc.cuid"), USER.to_string());

    // The new owner uses it; to a third user it is closed (0600).
    let file = sem_file(&m, id, 1);
    assert_ok(&shell_as(USER, USER_GID, &[], &echo_to("+2", &file)), "V by the creator");
    assert_eq!(sem_value(id, 1), 2);
    let out = shell_as(NOBODY_UID, NOBODY_GID, &[], &format!("cat {}", q(&file)));
    assert_refused(&out, "Permission denied", "cat by another user of a 0600 set");
}

#[test]
fn mkdir_of_an_existing_key_is_eexist_and_bad_names_are_einval() {
    let m = Mounted::new();
    let existing = create_set(0xe815, 3, 0o600);
    set_value(existing, 2, 9);
    let before = snapshot(existing);
    for name in ["0xe815", "0x0000e815", "0xE815:2", "0xe815:3"] {
        let out = shell(&format!("mkdir {}", q(&m.path(format!("sem/{name}")))));
        assert_refused(&out, "File exists", &format!("mkdir sem/{name}"));
    }
    assert_eq!(snapshot(existing), before);

    for name in [
        "hello",
        "0x1:0",
        "0x1:abc",
        "0x1:",
        ":2",
        "0x",
        "0xg",
        "0x123456789",
        "1234",
        "0x1:-1",
        "0x1:+2",
        "0x1:2:3",
        "private:0",
        "Private",
        "0x1:99999",
    ] {
        let out = shell(&format!("mkdir {}", q(&m.path(format!("sem/{name}")))));
        assert_refused(&out, "Invalid argument", &format!("mkdir sem/{name}"));
    }
    assert_eq!(kernel_object_count("sem"), 1, "nothing was created");
    assert_eq!(list(&m.path("sem")), [existing.0.to_string()]);
    assert_eq!(sem::get(Key(1), 0, 0), Err(Errno::ENOENT));
}

#[test]
fn chmod_and_chown_on_a_set_run_ipc_set() {
    let m = Mounted::new();
    let id = create_set(0x8001, 2, 0o600);
    set_value(id, 1, 4);
    let dir = set_dir(&m, id);

    shell_ok(&format!("chmod 755 {}", q(&dir)));
    assert_eq!(kstat(id).perm.mode & 0o777, 0o644, "x is dropped: it is derived from r");
    assert_eq!(fs::metadata(&dir).unwrap().mode(), libc::S_IFDIR | 0o755);
    assert_eq!(fs::metadata(sem_file(&m, id, 0)).unwrap().mode(), libc::S_IFREG | 0o644);

    fs::set_permissions(&dir, fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(kstat(id).perm.mode & 0o777, 0o640);
    assert_eq!(fs::metadata(&dir).unwrap().mode(), libc::S_IFDIR | 0o750);

    shell_ok(&format!("chown {NOBODY_UID} {}", q(&dir)));
    let k = kstat(id);
    assert_eq!((k.perm.uid, k.perm.gid, k.perm.mode & 0o777), (NOBODY_UID, 0, 0o640));
    shell_ok(&format!("chgrp {NOBODY_GID} {}", q(&dir)));
    let k = kstat(id);
    assert_eq!((k.perm.uid, k.perm.gid, k.perm.mode & 0o777), (NOBODY_UID, NOBODY_GID, 0o640));
    let md = fs::metadata(&dir).unwrap();
    assert_eq!((md.uid(), md.gid()), (NOBODY_UID, NOBODY_GID));
    shell_ok(&format!("chown 0:0 {}", q(&dir)));
    let k = kstat(id);
    assert_eq!((k.perm.uid, k.perm.gid, k.perm.cuid, k.perm.cgid), (0, 0, 0, 0), "the creator never changes");
    assert_eq!((k.nsems, sem_value(id, 1)), (2, 4), "IPC_SET changes no values");
}

#[test]
fn chmod_and_chown_on_a_semaphore_file_are_eperm_and_change_nothing() {
    let m = Mounted::new();
    let id = create_set(0x8002, 2, 0o640);
    let file = sem_file(&m, id, 1);
    let before = snapshot(id);
    assert_refused(&shell(&format!("chmod 600 {}", q(&file))), "Operation not permitted", "chmod 600 on a semaphore");
    assert_refused(&shell(&format!("chmod 640 {}", q(&file))), "Operation not permitted", "chmod to the same mode");
    assert_refused(&shell(&format!("chown {NOBODY_UID} {}", q(&file))), "Operation not permitted", "chown");
    assert_refused(&shell(&format!("chgrp {NOBODY_GID} {}", q(&file))), "Operation not permitted", "chgrp");
    assert_eq!(errno(fs::set_permissions(&file, fs::Permissions::from_mode(0o666))), libc::EPERM);
    assert_eq!(snapshot(id), before);
    assert_eq!(fs::metadata(&file).unwrap().mode(), libc::S_IFREG | 0o640);
}

#[test]
fn rmdir_and_rm_r_remove_the_set() {
    let m = Mounted::new();
    let a = create_set(0x8003, 2, 0o600);
    let b = create_set(0x8004, 3, 0o600);
    let kept = create_set(0x8005, 1, 0o600);

    shell_ok(&format!("rmdir {}", q(&set_dir(&m, a))));
    assert!(is_gone(a), "rmdir ran IPC_RMID");
    assert_eq!(errno(fs::metadata(set_dir(&m, a))), libc::ENOENT);

    shell_ok(&format!("rm -r {}", q(&set_dir(&m, b))));
    assert!(is_gone(b), "rm -r removed the set");
    assert_eq!(list(&m.path("sem")), [kept.0.to_string()]);
    assert_eq!(list(&m.path("by-key/sem")), ["0x00008005"]);

    fs::remove_dir(set_dir(&m, kept)).unwrap();
    assert!(is_gone(kept));
    assert!(list(&m.path("sem")).is_empty());
    let out = shell(&format!("rmdir {}", q(&set_dir(&m, kept))));
    assert_refused(&out, "No such file or directory", "rmdir of a removed set");
}

#[test]
fn waiters_on_a_removed_set_end_promptly_with_eidrm() {
    let m = Mounted::new();
    let id = create_set(0x8006, 2, 0o600);
    set_value(id, 1, 1);
    let mut p = Waiter::python_write("-1", &sem_file(&m, id, 0));
    let mut z = Waiter::spawn("bash", &["-c", &echo_to("=0", &sem_file(&m, id, 1))]);
    wait_for("the P waits", || ncnt(id, 0) == 1);
    wait_for("=0 waits", || zcnt(id, 1) == 1);

    shell_ok(&format!("rmdir {}", q(&set_dir(&m, id))));
    assert!(is_gone(id));
    let out = p.finish(PROMPT, "P on a removed set");
    assert_eq!(assert_ok(&out, "python3 write -1").trim(), format!("-1 {}", libc::EIDRM), "write(2) result, errno");
    let out = z.finish(PROMPT, "=0 on a removed set");
    assert_refused(&out, "Identifier removed", "=0 on a removed set");

    // The same when the set is removed behind the daemon's back.
    let id = create_set(0x8007, 1, 0o600);
    let mut p = Waiter::spawn("bash", &["-c", &echo_to("-1", &sem_file(&m, id, 0))]);
    wait_for("the P waits", || ncnt(id, 0) == 1);
    shell_ok(&format!("ipcrm -s {}", id.0));
    assert_refused(&p.finish(PROMPT, "P on a set removed by ipcrm"), "Identifier removed", "P on a removed set");
}

#[test]
fn rm_of_a_semaphore_changes_nothing_and_is_for_those_who_may_remove_the_set() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let id = create_set(0x8008, 2, 0o666);
    set_value(id, 0, 3);
    set_value(id, 1, 8);
    let before = snapshot(id);
    let file = sem_file(&m, id, 0);

    shell_ok(&format!("rm {}", q(&file)));
    assert_eq!(snapshot(id), before, "rm of a semaphore changes nothing");
    assert_eq!(list(&set_dir(&m, id)), ["0", "1"]);
    assert_eq!(cat(&file), "3\n");

    let out = shell_as(USER, USER_GID, &[], &format!("rm -f {}", q(&file)));
    assert_refused(&out, "Operation not permitted", "rm by a user who may not remove the set");
    let out = shell_as(USER, USER_GID, &[], &format!("rm -rf {}", q(&set_dir(&m, id))));
    assert_refused(&out, "Operation not permitted", "rm -r by a user who may not remove the set");
    assert_eq!(snapshot(id), before);

    // The creator may, even when another user owns the set.
    let made = ipcmk_set(Some((USER, USER_GID)), 2, 0o600);
    sem::set(made, NOBODY_UID, NOBODY_GID, 0o600).unwrap();
    let made_before = snapshot(made);
    assert_ok(&shell_as(USER, USER_GID, &[], &format!("rm {}", q(&sem_file(&m, made, 1)))), "rm by the creator");
    assert_eq!(snapshot(made), made_before);
}

// ---- 9. other users ----

#[test]
fn another_user_without_permission_is_refused_and_changes_nothing() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let id = create_set(0x9001, 2, 0o600);
    set_value(id, 0, 3);
    let before = snapshot(id);
    let (dir, file) = (set_dir(&m, id), sem_file(&m, id, 0));
    let as_user = |script: &str| shell_as(USER, USER_GID, &[], script);

    assert_refused(&as_user(&format!("cat {}", q(&file))), "Permission denied", "cat");
    for cmd in ["+1", "-1", "5", "=0"] {
        assert_refused(&as_user(&echo_to(cmd, &file)), "Permission denied", &format!("echo {cmd}"));
        assert_eq!(snapshot(id), before, "echo {cmd} changed something");
    }
    assert_refused(&as_user(&format!("ls {}", q(&dir))), "Permission denied", "listing the set");
    assert_refused(&as_user(&format!("rmdir {}", q(&dir))), "Operation not permitted", "rmdir");
    assert_refused(&as_user(&format!("chmod 666 {}", q(&dir))), "Operation not permitted", "chmod");
    assert_refused(&as_user(&format!("chown {USER} {}", q(&dir))), "Operation not permitted", "chown");
    assert_eq!(snapshot(id), before);
    assert_eq!((ncnt(id, 0), zcnt(id, 0)), (0, 0));

    // Looking is open to everyone, as ipcs is.
    let out = as_user(&format!("stat -c %a {} && getfattr -n user.ipc.nsems --only-values {}", q(&dir), q(&dir)));
    assert_eq!(assert_ok(&out, "stat and getfattr as another user"), "700\n2");
}

#[test]
fn read_permission_allows_cat_and_wait_for_zero_but_no_change() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let id = create_set(0x9002, 1, 0o644);
    let file = sem_file(&m, id, 0);
    let as_user = |script: &str| shell_as(USER, USER_GID, &[], script);

    assert_eq!(assert_ok(&as_user(&format!("cat {}", q(&file))), "cat"), "0\n");
    assert_ok(&as_user(&echo_to("=0", &file)), "=0 needs only read");
    assert_eq!(assert_ok(&as_user(&format!("ls {}", q(&set_dir(&m, id)))), "listing needs read"), "0\n");
    let before = snapshot(id);
    for cmd in ["+1", "-1", "5"] {
        assert_refused(&as_user(&echo_to(cmd, &file)), "Permission denied", &format!("echo {cmd}"));
        assert_eq!(snapshot(id), before, "echo {cmd} changed something");
    }
    set_value(id, 0, 6);
    assert_eq!(assert_ok(&as_user(&format!("cat {}", q(&file))), "cat"), "6\n");
}

#[test]
fn group_bits_apply_to_supplementary_groups_and_the_creators_group() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let id = create_set(0x9003, 1, 0o660);
    sem::set(id, 0, SHARED_GID, 0o660).unwrap();
    let file = sem_file(&m, id, 0);

    let member = |script: &str| shell_as(USER, USER_GID, &[SHARED_GID], script);
    assert_ok(&member(&echo_to("+2", &file)), "V by a member of the set's group");
    assert_eq!(assert_ok(&member(&format!("cat {}", q(&file))), "cat by a member"), "2\n");
    let outsider = |script: &str| shell_as(USER, USER_GID, &[], script);
    assert_refused(&outsider(&format!("cat {}", q(&file))), "Permission denied", "cat by a non-member");
    assert_refused(&outsider(&echo_to("+1", &file)), "Permission denied", "V by a non-member");
    assert_eq!(sem_value(id, 0), 2);

    // A member gets the group bits even when "other" would grant more.
    sem::set(id, 0, SHARED_GID, 0o606).unwrap();
    assert_refused(&member(&format!("cat {}", q(&file))), "Permission denied", "cat by a member of a 0606 set");
    assert_refused(&member(&echo_to("+1", &file)), "Permission denied", "V by a member of a 0606 set");
    assert_eq!(assert_ok(&outsider(&format!("cat {}", q(&file))), "cat by another"), "2\n");
    assert_ok(&outsider(&echo_to("+1", &file)), "V by another (other bits)");
    assert_eq!(sem_value(id, 0), 3);

    // The creator's group (root's, 0) counts as the set's group too.
    sem::set(id, 0, NOBODY_GID, 0o060).unwrap();
    let creators_group = |script: &str| shell_as(USER, USER_GID, &[0], script);
    assert_eq!(assert_ok(&creators_group(&format!("cat {}", q(&file))), "cat via cgid"), "3\n");
    assert_refused(&outsider(&format!("cat {}", q(&file))), "Permission denied", "cat by a non-member");
}

#[test]
fn the_creator_counts_as_owner() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let id = ipcmk_set(Some((USER, USER_GID)), 1, 0o600);
    sem::set(id, NOBODY_UID, NOBODY_GID, 0o600).unwrap();
    let (dir, file) = (set_dir(&m, id), sem_file(&m, id, 0));
    let creator = |script: &str| shell_as(USER, USER_GID, &[], script);

    assert_ok(&creator(&echo_to("+1", &file)), "V by the creator");
    assert_eq!(assert_ok(&creator(&format!("cat {}", q(&file))), "cat by the creator"), "1\n");
    assert_ok(&creator(&format!("chmod 640 {}", q(&dir))), "chmod by the creator");
    assert_eq!(kstat(id).perm.mode & 0o777, 0o640);
    assert_ok(&creator(&format!("rmdir {}", q(&dir))), "rmdir by the creator");
    assert!(is_gone(id));
}
