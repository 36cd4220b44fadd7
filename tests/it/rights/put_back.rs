//! Nothing lost: a message taken for a killed reader is put back even into
//! a full queue (item 11).

use super::*;

use std::fs;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ipcfs::ipc::Errno;
use ipcfs::ipc::msg;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

// ---- 11. a put-back is never lost ----

/// The daemon's threads sleeping in a given kernel function (wchan), such as
/// `do_msgrcv` or `do_msgsnd`.
fn daemon_threads_in(daemon: i32, function: &str) -> usize {
    let Ok(tasks) = fs::read_dir(format!("/proc/{daemon}/task")) else { return 0 };
    tasks.flatten().filter(|t| fs::read_to_string(t.path().join("wchan")).is_ok_and(|w| w.trim() == function)).count()
}

/// Item 11. A reader of `.wait/any` (uid 1001) held by the daemon in msgrcv
/// is SIGKILLed; at once a message M is sent and the queue (64 bytes) filled
/// by another sender. The daemon takes M for the dead reader and must put it
/// back, also when the queue is full by then: after draining, M is there,
/// exactly once. The rounds where M came out behind the filler of the whole
/// queue are those where the put-back met a full queue.
#[test]
fn a_message_taken_for_a_killed_reader_is_put_back_even_into_a_full_queue() {
    const ROUNDS: u32 = 20;
    const QBYTES: u64 = 64;
    const FILLER: &[u8] = b"filler!!"; // 8 bytes, type 3
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let daemon = m.daemon_pid().unwrap();
    let id = queue_of(OWNER, 0o600);
    let k = msg::stat_any(id).unwrap();
    msg::set(id, k.perm.uid, k.perm.gid, k.perm.mode, QBYTES).unwrap();
    let wait_any = m.path(format!("msg/{}/.wait/any", id.0));
    // Rounds where M was out of the queue when it was filled whole, and
    // where M came out behind that filler: put back into a full queue.
    // And where the daemon was seen waiting for room to put M back.
    let (mut full_at_once, mut behind, mut waited) = (0, 0, 0);
    for round in 0..ROUNDS {
        let body = format!("M{round:02}");
        let reader = as_user(OWNER, OWNER, &[])
            .args(["dd", &format!("if={}", wait_any.display()), "bs=65536", "count=1", "status=none"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut reader = KillOnDrop(reader);
        let pid = reader.0.id() as i32;
        wait_until(&format!("round {round}: the reader waits in the daemon's msgrcv"), PROMPTLY, || {
            waiting_on_fuse(pid) && daemon_threads_in(daemon, "do_msgrcv") >= 1
        });

        // Kill, send M, fill: as close together as one process can. M goes
        // straight to the daemon's waiting msgrcv, so the queue stays empty
        // and one message of QBYTES fills it in a single call; if M is
        // queued by then (the daemon gave up the receive first, or put M
        // back already), that one does not fit and small ones fill the rest.
        kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
        msg::send(id, 1, body.as_bytes(), false).unwrap();
        let whole = match msg::send(id, 2, &[b'F'; QBYTES as usize], false) {
            Ok(()) => true,
            Err(Errno::EAGAIN) => false,
            Err(e) => panic!("round {round}: the filler of {QBYTES} bytes: {e}"),
        };
        let mut fillers = usize::from(whole);
        loop {
            match msg::send(id, 3, FILLER, false) {
                Ok(()) => fillers += 1,
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("round {round}: filler: {e}"),
            }
            assert!(fillers <= QBYTES as usize, "round {round}: the queue does not fill");
        }
        if whole {
            full_at_once += 1;
        }

        // Before making room: the daemon has either answered the killed
        // reader (after its put-back, whatever became of it) or waits to put
        // M back, in msgsnd.
        let mut waits_for_room = false;
        wait_until(&format!("round {round}: the daemon is done with the killed reader"), PROMPTLY, || {
            waits_for_room = daemon_threads_in(daemon, "do_msgsnd") > 0;
            waits_for_room || !matches!(reader.0.try_wait(), Ok(None))
        });
        if waits_for_room && whole {
            waited += 1;
        }

        // Drain; the put-back may be waiting for room, so M may come late.
        let mut drained: Vec<(i64, Vec<u8>)> = Vec::new();
        let deadline = Instant::now() + PROMPTLY;
        while !drained.iter().any(|(_, b)| *b == body.as_bytes()) {
            match msg::receive(id, 0, 1 << 16, false) {
                Ok(message) => drained.push((message.mtype, message.body)),
                Err(Errno::ENOMSG) => {
                    assert!(
                        Instant::now() < deadline,
                        "round {round}: {body} is lost (drained {} fillers and nothing else; {} fillers were sent)",
                        drained.len(),
                        fillers
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("round {round}: msgrcv: {e}"),
            }
        }
        let status = wait_timeout(&mut reader.0, PROMPTLY)
            .unwrap_or_else(|| panic!("round {round}: the killed reader did not end"));
        assert_eq!(status.signal(), Some(libc::SIGKILL), "round {round}: the reader died of SIGKILL");
        let mut printed = Vec::new();
        reader.0.stdout.take().unwrap().read_to_end(&mut printed).unwrap();
        assert!(printed.is_empty(), "round {round}: the killed reader printed {printed:?}");
        wait_until(&format!("round {round}: the daemon holds no receive or send"), PROMPTLY, || {
            daemon_threads_in(daemon, "do_msgrcv") + daemon_threads_in(daemon, "do_msgsnd") == 0
        });
        // Whatever is left now is fillers only: M exactly once.
        drained.extend(std::iter::from_fn(|| msg::receive(id, 0, 1 << 16, false).ok().map(|m| (m.mtype, m.body))));
        let copies = drained.iter().filter(|(_, b)| *b == body.as_bytes()).count();
        assert_eq!(copies, 1, "round {round}: {body} must be queued exactly once: {drained:?}");
        assert!(
            drained.iter().all(|(t, b)| match t {
                1 => *b == body.as_bytes(),
                2 => b.len() == QBYTES as usize,
                3 => b == FILLER,
                _ => false,
            }),
            "round {round}: only {body} and fillers: {drained:?}"
        );
        let position = drained.iter().position(|(_, b)| *b == body.as_bytes()).unwrap();
        if drained[..position].iter().any(|(t, _)| *t == 2) {
            behind += 1;
        }
        assert_eq!(msg::stat_any(id).unwrap().qnum, 0, "round {round}: the queue is empty again");
    }
    println!(
        "put-back race: in {full_at_once} of {ROUNDS} rounds the queue was filled while the daemon held M; \
         in {waited} the daemon was seen waiting for room to put M back; \
         in {behind} M came out behind the filler (put back into a full queue)"
    );
    assert!(behind > 0, "the race was never produced (M never met a full queue): this run proved nothing");
}
