//! The kernel's permission rule, proved against the kernel itself: for many
//! combinations of mode, owner, creator and caller, every operation is done
//! once through the mount and once directly through the system calls, as the
//! same user (setpriv), on twin objects. The answers must agree, and so must
//! the objects afterwards (what was refused changed nothing, what was allowed
//! did the same thing).

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::common::*;
use ipcfs::ipc::creds::{Identity, run_as};
use ipcfs::ipc::msg::{self, MsqId};
use ipcfs::ipc::sem::{self, Query, SemId};

/// Every object is made by CREATOR (uid 1002, gid 3002), then given to an
/// owner: in the first layout someone else (uid 1001, gid 3001), in the
/// second the creator keeps the uid but the group is another.
const CREATOR: (u32, u32) = (1002, 3002);
const LAYOUTS: [(u32, u32); 2] = [(1001, 3001), (1002, 3001)];
const PROBE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/helpers/ipcprobe.py");

/// A caller: ids, supplementary groups and capabilities.
struct Who {
    name: &'static str,
    uid: u32,
    gid: u32,
    groups: &'static [u32],
    /// Extra setpriv arguments (capabilities).
    caps: &'static [&'static str],
}

const CALLERS: &[Who] = &[
    Who { name: "root", uid: 0, gid: 0, groups: &[], caps: &[] },
    Who {
        name: "root without capabilities",
        uid: 0,
        gid: 0,
        groups: &[],
        caps: &["--inh-caps=-all", "--bounding-set=-all"],
    },
    Who { name: "uid 1001", uid: 1001, gid: 1001, groups: &[], caps: &[] },
    Who { name: "uid 1002, the creator", uid: 1002, gid: 1002, groups: &[], caps: &[] },
    Who { name: "in group 3001 (supplementary)", uid: 2001, gid: 2001, groups: &[3001], caps: &[] },
    Who { name: "in group 3002, the creator's", uid: 2002, gid: 2002, groups: &[3002], caps: &[] },
    Who { name: "primary group 3001", uid: 2003, gid: 3001, groups: &[], caps: &[] },
    Who { name: "other", uid: 2004, gid: 2004, groups: &[7, 8], caps: &[] },
    Who {
        name: "other with CAP_IPC_OWNER",
        uid: 2005,
        gid: 2005,
        groups: &[],
        caps: &["--inh-caps=+ipc_owner", "--ambient-caps=+ipc_owner"],
    },
    Who {
        name: "other with CAP_SYS_ADMIN",
        uid: 2006,
        gid: 2006,
        groups: &[],
        caps: &["--inh-caps=+sys_admin", "--ambient-caps=+sys_admin"],
    },
];

const MODES: &[u32] = &[0o000, 0o400, 0o200, 0o600, 0o040, 0o020, 0o060, 0o004, 0o002, 0o006, 0o640, 0o466];

/// One of each kind of object, made by CREATOR and given to `owner`.
#[derive(Clone, Copy, Debug)]
struct Objects {
    shm: ShmId,
    sem: SemId,
    msg: MsqId,
}

fn make_objects(mode: u32, owner: (u32, u32)) -> Objects {
    let creator = Identity { uid: CREATOR.0, gid: CREATOR.1, groups: vec![] };
    let flags = libc::IPC_CREAT | libc::IPC_EXCL | 0o600;
    let (shm, sem, msg) = run_as(&creator, || {
        (
            shm::get(Key::PRIVATE, 64, flags).unwrap(),
            sem::get(Key::PRIVATE, 1, flags).unwrap(),
            msg::get(Key::PRIVATE, flags).unwrap(),
        )
    })
    .unwrap();
    msg::send(msg, 1, b"m", false).unwrap();
    let (uid, gid) = owner;
    shm::set(shm, uid, gid, mode).unwrap();
    sem::set(sem, uid, gid, mode).unwrap();
    msg::set(msg, uid, gid, mode, msg::stat_any(msg).unwrap().qbytes).unwrap();
    Objects { shm, sem, msg }
}

/// The operations, as (through the mount, directly) pairs.
fn operations(m: &Path, o: Objects, mode: u32, owner: (u32, u32)) -> (Vec<String>, Vec<String>) {
    let (s, e, q) = (o.shm.0, o.sem.0, o.msg.0);
    let (u, g) = owner;
    let m = m.display();
    let mode = format!("{mode:o}");
    let pairs = [
        (format!("fs_read {m}/shm/{s}"), format!("shm_read {s}")),
        (format!("fs_write {m}/shm/{s} X"), format!("shm_write {s} X")),
        (format!("fs_read {m}/sem/{e}/0"), format!("sem_get {e} 0")),
        (format!("fs_write {m}/sem/{e}/0 =0"), format!("sem_op {e} 0 0")),
        (format!("fs_write {m}/sem/{e}/0 +1"), format!("sem_op {e} 0 1")),
        (format!("fs_write {m}/sem/{e}/0 5"), format!("sem_setval {e} 0 5")),
        (format!("fs_read {m}/msg/{q}/.recv/any"), format!("msg_recv {q} 0")),
        (format!("fs_write {m}/msg/{q}/any hello"), format!("msg_send {q} 1 hello")),
        (format!("fs_chmod {m}/shm/{s} {mode}"), format!("shm_set {s} {u} {g} {mode}")),
        (format!("fs_chown {m}/shm/{s} {u} {g}"), format!("shm_set {s} {u} {g} {mode}")),
        (format!("fs_chmod {m}/sem/{e} {mode}"), format!("sem_set {e} {u} {g} {mode}")),
        (format!("fs_chown {m}/sem/{e} {u} {g}"), format!("sem_set {e} {u} {g} {mode}")),
        (format!("fs_chmod {m}/msg/{q} {mode}"), format!("msg_set {q} {u} {g} {mode}")),
        (format!("fs_chown {m}/msg/{q} {u} {g}"), format!("msg_set {q} {u} {g} {mode}")),
        (format!("fs_unlink {m}/shm/{s}"), format!("shm_rm {s}")),
        (format!("fs_rmdir {m}/sem/{e}"), format!("sem_rm {e}")),
        (format!("fs_rmdir {m}/msg/{q}"), format!("msg_rm {q}")),
    ];
    pairs.into_iter().unzip()
}

fn probe(who: &Who, ops: &[String]) -> Child {
    let groups = if who.groups.is_empty() {
        "--clear-groups".to_string()
    } else {
        format!("--groups={}", who.groups.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
    };
    let mut args: Vec<String> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            args.push(";".into());
        }
        args.extend(op.split(' ').map(String::from));
    }
    Command::new("setpriv")
        .args([format!("--reuid={}", who.uid), format!("--regid={}", who.gid), groups])
        .args(who.caps)
        .args(["--", PYTHON, PROBE])
        .args(args)
        .env("IPCPROBE_QBYTES", "16384")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn results(child: Child) -> Vec<String> {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "probe failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect()
}

/// What is left of the objects: compared between the twins.
#[derive(Debug, PartialEq, Eq)]
struct State {
    shm: Option<(u32, u32, u32, u8)>,
    sem: Option<(u32, u32, u32, i32)>,
    msg: Option<(u32, u32, u32, u64, u64)>,
}

fn state(o: Objects) -> State {
    let shm = shm::stat_any(o.shm).ok().map(|s| {
        let a = shm::Attachment::attach(o.shm, s.segsz, false).unwrap();
        (s.perm.uid, s.perm.gid, s.perm.mode & 0o777, a.read_at(0, 1)[0])
    });
    let sem = sem::stat_any(o.sem)
        .ok()
        .map(|s| (s.perm.uid, s.perm.gid, s.perm.mode & 0o777, sem::query(o.sem, 0, Query::Value).unwrap()));
    let msg = msg::stat_any(o.msg).ok().map(|q| (q.perm.uid, q.perm.gid, q.perm.mode & 0o777, q.qnum, q.cbytes));
    State { shm, sem, msg }
}

#[test]
fn every_operation_agrees_with_the_kernel_for_every_caller_mode_and_owner() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let mut disagreements = Vec::new();
    let mut checked = 0;
    for (&mode, owner) in MODES.iter().flat_map(|mode| LAYOUTS.iter().map(move |o| (mode, *o))) {
        // All callers of one mode and owner at once: twice ten processes in flight.
        let runs: Vec<_> = CALLERS
            .iter()
            .map(|who| {
                let (through, direct) = (make_objects(mode, owner), make_objects(mode, owner));
                let (fs_ops, _) = operations(m.root(), through, mode, owner);
                let (_, direct_ops) = operations(m.root(), direct, mode, owner);
                let before = state(through);
                assert_eq!(before, state(direct));
                let children = (probe(who, &fs_ops), probe(who, &direct_ops));
                (who, through, direct, fs_ops, direct_ops, children.0, children.1)
            })
            .collect();
        for (who, through, direct, fs_ops, direct_ops, fs_child, direct_child) in runs {
            let (fs_results, direct_results) = (results(fs_child), results(direct_child));
            assert_eq!(fs_results.len(), fs_ops.len());
            for (i, (got, want)) in fs_results.iter().zip(&direct_results).enumerate() {
                checked += 1;
                if got != want {
                    disagreements.push(format!(
                        "mode {mode:03o}, owner {owner:?}, {}: `{}` gave {got}, `{}` gave {want}",
                        who.name, fs_ops[i], direct_ops[i]
                    ));
                }
            }
            let (after_fs, after_direct) = (state(through), state(direct));
            if after_fs != after_direct {
                disagreements.push(format!(
                    "mode {mode:03o}, owner {owner:?}, {}: objects differ afterwards: through the mount {after_fs:?}, directly {after_direct:?}",
                    who.name
                ));
            }
        }
    }
    assert!(disagreements.is_empty(), "{} of {checked} disagree:\n{}", disagreements.len(), disagreements.join("\n"));
    // The matrix must have exercised both outcomes of each kind.
    assert_eq!(checked, MODES.len() * LAYOUTS.len() * CALLERS.len() * 17);
}

#[test]
fn the_probe_itself_sees_refusals() {
    // Guards the test above against a probe that always says "ok".
    isolate();
    let o = make_objects(0o600, LAYOUTS[0]);
    let other = &CALLERS[7];
    let out = results(probe(other, &[format!("shm_read {}", o.shm.0), format!("msg_rm {}", o.msg.0)]));
    assert_eq!(out, ["EACCES", "EPERM"]);
}

/// `-o ro`: reads work; every change is EROFS and changes nothing, for sets
/// and queues too; a queue read only looks at the messages.
#[test]
fn a_read_only_mount_changes_nothing() {
    let m = Mounted::with_options(&["-o", "ro,allow_other"]);
    let o = make_objects(0o666, LAYOUTS[0]);
    sem::set_value(o.sem, 0, 3).unwrap();
    msg::send(o.msg, 7, b"seven", false).unwrap();
    let before = state(o);
    let (s, e, q) = (o.shm.0, o.sem.0, o.msg.0);
    let root = m.root().display();
    let ops: Vec<String> = [
        format!("fs_write {root}/shm/{s} X"),
        format!("fs_write {root}/sem/{e}/0 +1"),
        format!("fs_write {root}/sem/{e}/0 5"),
        format!("fs_write {root}/msg/{q}/any hello"),
        format!("fs_chmod {root}/shm/{s} 600"),
        format!("fs_chmod {root}/sem/{e} 600"),
        format!("fs_chown {root}/msg/{q} 5 5"),
        format!("fs_unlink {root}/shm/{s}"),
        format!("fs_unlink {root}/msg/{q}/any"),
        format!("fs_rmdir {root}/sem/{e}"),
        format!("fs_rmdir {root}/msg/{q}"),
    ]
    .into();
    for who in [&CALLERS[0], &CALLERS[2]] {
        let out = results(probe(who, &ops));
        assert!(out.iter().all(|r| r == "EROFS"), "{}: {out:?}", who.name);
    }
    for (what, script) in [
        ("mkdir sem", format!("mkdir {root}/sem/0x77")),
        ("mkdir msg", format!("mkdir {root}/msg/0x77")),
        ("create shm", format!("truncate -s 4096 {root}/shm/0x77")),
        ("setfattr", format!("setfattr -n user.ipc.qbytes -v 100 {root}/msg/{q}")),
    ] {
        let out = sh(&format!("LC_ALL=C {script}"));
        assert!(String::from_utf8_lossy(&out.stderr).contains("Read-only file system"), "{what}: {out:?}");
    }
    // Reads work, and a queue read only looks: twice the same messages.
    let read_all = || sh_ok(&format!("cat {root}/msg/{q}/any"));
    assert_eq!(read_all(), "mseven");
    assert_eq!(read_all(), "mseven");
    assert_eq!(sh_ok(&format!("cat {root}/msg/{q}/7 {root}/sem/{e}/0")), "seven3\n");
    assert_eq!(state(o), before, "nothing changed");
}

/// Capabilities a caller holds in a user namespace of its own (`unshare -Ur`
/// gives every one) are not the host's: the kernel checks CAP_IPC_OWNER and
/// CAP_SYS_ADMIN in the namespace's owning user namespace, and so does ipcfs.
#[test]
fn capabilities_in_a_user_namespace_of_ones_own_count_for_nothing() {
    let m = Mounted::with_options(&["-o", "allow_other"]);
    let id = create_segment(0x4e01, 4096, 0o600);
    let path = q(&m.shm(id));
    for script in [format!("unshare -Ur cat {path}"), format!("unshare -Ur rm {path}")] {
        let out = sh_as(1000, 1000, &[], &script);
        assert!(!out.status.success(), "{script}: allowed");
        let says = stderr_of(&out);
        assert!(says.contains("Permission denied") || says.contains("Operation not permitted"), "{script}: {says}");
    }
    assert!(std::fs::metadata(m.shm(id)).is_ok(), "the segment is still there");
}
