//! The daemon's end: killed with `kill -9` under load (after `umount -l`
//! and a new mount everything equals the kernel's), and stopped by SIGTERM
//! with waits blocked (the waiters are released, nothing is taken).

use super::*;

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;

use ipcfs::ipc::msg::{self, MsqId};
use ipcfs::ipc::sem;
use ipcfs::ipc::shm::Attachment;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

// ---- 3. a killed daemon ----

/// `kill -9` of the daemon in the middle of message, semaphore and segment
/// load. Every client ends with ENOTCONN (or ECONNABORTED for a call in
/// flight); the kernel drops the daemon's attachments at once; after
/// `umount -l` a new mount shows every segment byte, semaphore value and
/// message the kernel holds, and only the test's own attachment is left.
#[test]
fn a_daemon_killed_under_load_loses_nothing() {
    for round in 0..soak() {
        let mut m = Mounted::new();
        let key = 0x7e1a0100 + round as i32 * 4;
        sh_ok(&format!("truncate -s 65536 {}", q(&m.path(format!("shm/{}", Key(key))))));
        let seg = shm::get(Key(key), 0, 0).unwrap();
        fs::create_dir(m.path(format!("sem/{}:4", Key(key + 1)))).unwrap();
        let set = sem::get(Key(key + 1), 0, 0).unwrap();
        for (n, value) in ["0", "5", "2", "7"].iter().enumerate() {
            fs::write(m.path(format!("sem/{}/{n}", set.0)), value).unwrap();
        }
        fs::create_dir(m.path(format!("msg/{}", Key(key + 2)))).unwrap();
        let queue = msg::get(Key(key + 2), 0).unwrap();
        // The test's own attachment, which must be all that is left at the end.
        let own = Attachment::attach(seg, 65536, false).unwrap();
        assert_eq!(nattch(seg), 1);

        let segment = m.shm(seg);
        let semaphore = |n: u16| m.path(format!("sem/{}/{n}", set.0));
        let queue_file = |name: &str| m.path(format!("msg/{}/{name}", queue.0));
        let mut looping = vec![
            Client::start("segment writer at 0", &["shm-write", arg(&segment), "0"]),
            Client::start("segment writer at 8192", &["shm-write", arg(&segment), "8192"]),
            Client::start("segment writer at 60000", &["shm-write", arg(&segment), "60000"]),
            Client::start("P/V on sem 1", &["sem-pair", arg(&semaphore(1)), "-1", "+1"]),
            Client::start("P/V on sem 1", &["sem-pair", arg(&semaphore(1)), "-1", "+1"]),
            Client::start("V/P on sem 3", &["sem-pair", arg(&semaphore(3)), "+1", "-1"]),
            Client::start("sender to any", &["send", arg(&queue_file("any")), "s0", "999999"]),
            Client::start("sender to 4", &["send", arg(&queue_file("4")), "s1", "999999"]),
            Client::start("receiver of .wait/any", &["receive", arg(&queue_file(".wait/any")), "wait"]),
            Client::start("receiver of .recv/any", &["receive", arg(&queue_file(".recv/any")), "poll"]),
        ];
        let mut blocked = vec![
            Client::start("P on sem 0", &["once-write", arg(&semaphore(0)), "-1"]),
            Client::start("P on sem 0", &["once-write", arg(&semaphore(0)), "-1"]),
            Client::start("=0 on sem 2", &["once-write", arg(&semaphore(2)), "=0"]),
            Client::start("receive of .wait/99", &["once-read", arg(&queue_file(".wait/99"))]),
        ];
        for client in &mut looping {
            client.wait_said("ready", PROMPTLY);
        }
        for client in &mut blocked {
            client.wait_blocked();
        }
        assert_eq!(nattch(seg), 1, "ours alone: the daemon holds open segment files by their shmem file");

        let pid = m.daemon_pid().unwrap();
        kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
        let status = reap(&mut m, PROMPTLY);
        assert_eq!(exit_signal(&status), Some(libc::SIGKILL), "{status}");
        for client in looping.iter_mut().chain(blocked.iter_mut()) {
            let status = client.finish(PROMPTLY);
            let error = client.error();
            assert!(
                !status.success() && matches!(error.as_deref(), Some("ENOTCONN" | "ECONNABORTED")),
                "{}",
                client.report()
            );
        }
        assert_eq!(nattch(seg), 1, "the dead daemon left no attachment");
        assert_eq!(errno(fs::metadata(m.path("shm"))), libc::ENOTCONN, "the dead mount");

        // The recovery docs/ipcfs.md gives: lazy unmount, then mount again.
        sh_ok(&format!("umount -l {}", q(m.root())));
        assert!(!is_mounted(m.root()));
        let again = Mounted::new();
        assert_serving_the_kernels_objects(&again);
        assert_eq!(fs::read(again.shm(seg)).unwrap(), own.read_at(0, 65536), "every segment byte");
        assert_ne!(own.read_at(0, 8), vec![0; 8], "precondition: the writers wrote");
        for n in 0..4u16 {
            let text = fs::read_to_string(again.path(format!("sem/{}/{n}", set.0))).unwrap();
            assert_eq!(text, format!("{}\n", sem_value(set, n)), "semaphore {n}");
        }
        // The blocked P's took nothing; each P/V client held at most one unit
        // when the daemon died.
        let values = sem_values(set, 4);
        assert!(values[0] == 0 && (3..=5).contains(&values[1]) && values[2] == 2, "{values:?}");
        assert!((7..=8).contains(&values[3]), "{values:?}");
        // Every message, received through the new mount's `.recv/any` (one
        // read each), against what the kernel held.
        let kernel = queued_text(queue);
        let mut file = File::open(again.path(format!("msg/{}/.recv/any", queue.0))).unwrap();
        let mut through_mount = Vec::new();
        let mut buf = vec![0u8; BIG];
        loop {
            let n = file.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            through_mount.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(through_mount, kernel.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>(), "every message, in order");
        let unique: HashSet<&String> = through_mount.iter().collect();
        assert_eq!(unique.len(), through_mount.len(), "no message twice");
        assert_eq!(qnum(queue), 0);
        drop(file);
        assert_eq!(nattch(seg), 1, "the new daemon attached nothing to read the segment");
        drop(own);
        assert_eq!(nattch(seg), 0, "nothing else holds the segment");
    }
}

// ---- 5. unmount with waits blocked ----

/// SIGTERM to the daemon while P's, a wait for zero, receives and a send to
/// a full queue are blocked and a segment file is open: every waiter is
/// released with EINTR, nothing is taken or sent, the mount leaves the tree,
/// the open segment file is still served, and once it is closed the daemon
/// exits with status 0.
#[test]
fn unmount_releases_blocked_waiters_and_takes_nothing() {
    for round in 0..soak() {
        let mut m = Mounted::new();
        let set = create_set(libc::IPC_PRIVATE, 3, 0o600);
        set_sem_values(set, &[0, 1, 3]);
        let (empty, holding, full) = (
            create_queue(libc::IPC_PRIVATE, 0o600),
            create_queue(libc::IPC_PRIVATE, 0o600),
            create_queue(libc::IPC_PRIVATE, 0o600),
        );
        send(holding, 1, b"one");
        send(holding, 2, b"two");
        let k = msg::stat_any(full).unwrap();
        msg::set(full, k.perm.uid, k.perm.gid, k.perm.mode, 10).unwrap();
        send(full, 1, b"12345678");
        let seg = create_segment(0x7e1a0300 + round as i32, 4096, 0o600);
        fill_segment(seg, b"kept");

        let semaphore = |n: u16| arg(&m.path(format!("sem/{}/{n}", set.0))).to_string();
        let wait_file = |q: MsqId, name: &str| arg(&m.path(format!("msg/{}/{name}", q.0))).to_string();
        let mut waiters = vec![
            Client::start("P on sem 0", &["once-write", &semaphore(0), "-1"]),
            Client::start("P on sem 0", &["once-write", &semaphore(0), "-1"]),
            Client::start("P of 2 on sem 1", &["once-write", &semaphore(1), "-2"]),
            Client::start("=0 on sem 2", &["once-write", &semaphore(2), "=0"]),
            Client::start("receive of .wait/any", &["once-read", &wait_file(empty, ".wait/any")]),
            Client::start("receive of .wait/any", &["once-read", &wait_file(empty, ".wait/any")]),
            Client::start("receive of .wait/9", &["once-read", &wait_file(holding, ".wait/9")]),
            Client::start("send to a full queue", &["once-write", &wait_file(full, "any"), "more"]),
        ];
        let held = OpenOptions::new().read(true).write(true).open(m.shm(seg)).unwrap();
        for waiter in &mut waiters {
            waiter.wait_blocked();
        }
        wait_until("the daemon holds every wait", PROMPTLY, || daemon_waits(&m) >= waiters.len());
        let before = (sem_values(set, 3), queued_text(empty), queued_text(holding), queued_text(full));

        kill(Pid::from_raw(m.daemon_pid().unwrap()), Signal::SIGTERM).unwrap();
        for waiter in &mut waiters {
            let status = waiter.finish(PROMPTLY);
            assert!(!status.success() && waiter.error().as_deref() == Some("EINTR"), "{}", waiter.report());
        }
        wait_until("the mount leaves the tree", PROMPTLY, || !is_mounted(m.root()));
        assert_eq!(
            (sem_values(set, 3), queued_text(empty), queued_text(holding), queued_text(full)),
            before,
            "nothing consumed"
        );

        // The open file is still served, until it is closed.
        assert!(daemon_alive(&m), "the daemon serves the open file");
        assert_eq!(held.write_at(b"still", 0).unwrap(), 5);
        let mut buf = [0u8; 8];
        held.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"stillept");
        drop(held);
        let status = reap(&mut m, PROMPTLY);
        assert!(status.success(), "the daemon's exit: {status}");
        assert_eq!(nattch(seg), 0, "no attachment left");
        assert_eq!(segment_bytes(seg)[..8], *b"stillept");
        assert_eq!(
            (sem_values(set, 3), queued_text(empty), queued_text(holding), queued_text(full)),
            before,
            "nothing consumed"
        );
        sem::remove(set).unwrap();
        for queue in [empty, holding, full] {
            msg::remove(queue).unwrap();
        }
        shm::remove(seg).unwrap();
    }
}
