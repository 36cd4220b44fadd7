//! Waits through `ns/<N>` (a P, a waiting receive) wait in N.

use super::*;

use ipcfs::ipc::msg::{self, MsqId};
use ipcfs::ipc::sem::{self, Query, SemId};

/// A P through `ns/<N>` on a semaphore at 0 waits in N (N's kernel counts
/// the waiter), and a V through `ns/<N>` from another process releases it;
/// the same-id set of the mount's own namespace sees neither.
#[test]
fn a_p_through_ns_waits_in_that_namespace_until_a_v_there() {
    let n = Holder::new("ipcmk -S 1");
    let ours = sem::get(Key(0x0b0b), 1, libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
    assert_eq!(ours.0, 0, "the same id as in N");
    // A P done here by mistake would not wait, and would show.
    sem::set_value(ours, 0, 1).unwrap();
    let m = mount_all();
    let semaphore = q(&ns_dir(&m, n.ns).join("sem/0/0"));

    let mut waiter = spawn_sh(&format!("echo -1 > {semaphore}"));
    wait_until("the P waits on N's semaphore", LIMIT, || {
        n.inside(|| sem::query(SemId(0), 0, Query::WaitingToTake).unwrap()) == 1
    });
    assert!(waiter.try_wait().unwrap().is_none(), "the P is still waiting");
    assert_eq!(sem::query(ours, 0, Query::WaitingToTake).unwrap(), 0);

    sh_ok(&format!("echo +1 > {semaphore}"));
    finish(waiter, "the P after the V");
    assert_eq!(n.inside(|| sem_value(SemId(0), 0)), 0, "the P took the V's unit");
    assert_eq!(sem_value(ours, 0), 1, "ours is untouched");
}

/// A waiting receive through `ns/<N>/msg/ID/.wait/any` waits in N and gets
/// the message sent there later, not the one waiting in the own namespace's
/// queue with the same id.
#[test]
fn a_waiting_receive_through_ns_gets_the_message_sent_there_later() {
    let n = Holder::new("ipcmk -Q");
    let ours = msg::get(Key(0x0c0c), libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
    assert_eq!(ours.0, 0, "the same id as in N");
    msg::send(ours, 1, b"ours", false).unwrap();
    let m = mount_all();
    let queue = ns_dir(&m, n.ns).join("msg/0");

    let reader = spawn_sh(&format!("exec dd if={} bs=65536 count=1 status=none", q(&queue.join(".wait/any"))));
    let pid = reader.id() as i32;
    wait_until("the receive waits", LIMIT, || waiting_on_fuse(pid));
    sh_ok(&format!("printf 'sent later' > {}", q(&queue.join("any"))));
    assert_eq!(finish(reader, "the waiting receive"), b"sent later");
    assert_eq!(n.inside(|| queued(MsqId(0))), [], "taken from N's queue");
    assert_eq!(queued(ours), [(1, b"ours".to_vec())], "ours is untouched");
}

/// ipcfs uses no SEM_UNDO: a P through `ns/<N>` stays done after the daemon
/// is gone.
#[test]
fn a_p_through_ns_stays_done_after_the_daemon_is_gone() {
    let n = Holder::new("ipcmk -S 1");
    n.inside(|| sem::set_value(SemId(0), 0, 2).unwrap());
    let mut m = mount_all();
    sh_ok(&format!("echo -1 > {}", q(&ns_dir(&m, n.ns).join("sem/0/0"))));
    assert_eq!(n.inside(|| sem_value(SemId(0), 0)), 1);
    assert!(m.terminate().success(), "the daemon ends cleanly");
    drop(m);
    assert_eq!(ipcs_sem_value(&n.sh("ipcs -s -i 0")), 1, "the P stays done");
}
