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
//!
//! Here: the helpers the tests share; the tests, by subject, in [`io`],
//! [`waits`], [`meta`] and [`manage`].

mod io;
mod manage;
mod meta;
mod waits;

use crate::common::*;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use ipcfs::ipc::sem::{self, SemId};
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
