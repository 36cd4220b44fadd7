//! Each namespace shows its own objects only, and every kind of operation
//! through `ns/<N>` happens in N and nowhere else.

use super::*;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use ipcfs::ipc::msg::{self, MsqId};
use ipcfs::ipc::sem::{self, SemId};

/// Each `ns/<N>` shows N's objects and nothing else, as `lsipc` in N does;
/// the root shows the mount's own namespace; the links name the right
/// namespaces; inode numbers of different trees never collide.
#[test]
fn each_namespace_shows_only_its_own_objects() {
    let a = Holder::new("ipcmk -M 1111\nipcmk -Q");
    let b = Holder::new("ipcmk -M 2222\nipcmk -S 3");
    let ours = create_segment(0x0000_0333, 333, 0o600);
    assert_eq!(ours.0, 0, "ids start at 0 in every namespace");
    let m = mount_all();
    let own = own_ns();

    let names = list(&m.path("ns"));
    for ns in [a.ns, b.ns, own] {
        assert!(names.contains(&ns.to_string()), "ns/{ns} in {names:?}");
    }
    assert!(names.contains(&"by-pid".to_string()), "{names:?}");

    let expected_a = objects(&[(0, 1111)], &[], &[0]);
    let expected_b = objects(&[(0, 2222)], &[(0, 3)], &[]);
    let expected_own = objects(&[(0, 333)], &[], &[]);
    assert_eq!(lsipc_says(|cmd| a.sh(cmd)), expected_a, "lsipc in A");
    assert_eq!(lsipc_says(|cmd| b.sh(cmd)), expected_b, "lsipc in B");
    assert_eq!(lsipc_says(sh_ok), expected_own, "lsipc in ours");
    assert_eq!(shown(&ns_dir(&m, a.ns)), expected_a, "ns/A");
    assert_eq!(shown(&ns_dir(&m, b.ns)), expected_b, "ns/B");
    assert_eq!(shown(m.root()), expected_own, "the root");
    assert_eq!(list(&ns_dir(&m, b.ns).join("sem/0")), ["0", "1", "2"]);
    // by-key/ is N's too (ipcmk picks a random key).
    let keys = list(&ns_dir(&m, a.ns).join("by-key/shm"));
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(a.sh("ipcs -m").contains(&keys[0]), "{keys:?} is A's key");
    assert_eq!(link(&ns_dir(&m, a.ns).join("by-key/shm").join(&keys[0])), "../../shm/0");

    // The links.
    assert_eq!(link(&ns_dir(&m, own)), "..");
    assert_eq!(link(&m.path(format!("ns/by-pid/{}", a.pid()))), format!("../{}", a.ns));
    assert_eq!(list(&m.path(format!("ns/by-pid/{}/shm", a.pid()))), ["0"]);
    assert_eq!(fs::metadata(m.path(format!("ns/by-pid/{}/shm/0", b.pid()))).unwrap().len(), 2222);
    let daemon = m.daemon_pid().unwrap();
    assert_eq!(link(&m.path(format!("ns/by-pid/{daemon}"))), format!("../{own}"));
    // A process of the test's namespace: its link leads back to the root.
    let mnt = q(m.root());
    let resolved = sh_ok(&format!("readlink {mnt}/ns/by-pid/$$ && realpath {mnt}/ns/by-pid/$$"));
    assert_eq!(resolved, format!("../{own}\n{}\n", m.root().display()));

    // Ids are per namespace, inode numbers per mount.
    let inos = [ino(&m.path("shm/0")), ino(&ns_dir(&m, a.ns).join("shm/0")), ino(&ns_dir(&m, b.ns).join("shm/0"))];
    assert!(inos[0] != inos[1] && inos[1] != inos[2] && inos[0] != inos[2], "{inos:?}");
    assert_eq!(inos[0] / SLOT, 0, "the root's tree is slot 0: {inos:?}");
    for (ns, shm0) in [(a.ns, inos[1]), (b.ns, inos[2])] {
        let root = ino(&ns_dir(&m, ns));
        assert!(root >= SLOT, "ns/{ns}: {root}");
        assert_eq!(shm0 / SLOT, root / SLOT, "ns/{ns}/shm/0 is in the slot of ns/{ns}");
    }
    assert_ne!(inos[1] / SLOT, inos[2] / SLOT);

    // A goes with its process; B and the root still show theirs only.
    let a_dir = ns_dir(&m, a.ns);
    let _a_number = a.pin(); // its number must not pass to a namespace made meanwhile
    drop(a);
    wait_until("ns/A is gone", LIMIT, || path_is_gone(&a_dir));
    assert!(!list(&m.path("ns")).contains(&a_dir.file_name().unwrap().to_str().unwrap().to_string()));
    assert_eq!(shown(&ns_dir(&m, b.ns)), expected_b, "ns/B after A went");
    assert_eq!(shown(m.root()), expected_own, "the root after A went");
}

/// Every kind of operation through `ns/<N>` happens in N, and not in the
/// mount's own namespace, where objects with the same ids wait to show a
/// mistake.
#[test]
fn operations_through_ns_happen_in_that_namespace_only() {
    let n = Holder::new("ipcmk -M 4096\nipcmk -S 1\nipcmk -Q");
    let our_shm = create_segment(0x0000_0a0a, 4096, 0o640);
    let our_sem = sem::get(Key(0x0b0b), 1, libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
    let our_msg = msg::get(Key(0x0c0c), libc::IPC_CREAT | libc::IPC_EXCL | 0o600).unwrap();
    assert_eq!((our_shm.0, our_sem.0, our_msg.0), (0, 0, 0), "the same ids as in N");
    sem::set_value(our_sem, 0, 7).unwrap();
    msg::send(our_msg, 1, b"ours", false).unwrap();
    let m = mount_all();
    let there = ns_dir(&m, n.ns);
    let path = |p: &str| q(&there.join(p));
    let daemon = m.daemon_pid().unwrap();

    // Bytes written to a segment land in N's.
    sh_ok(&format!("printf 'written through ns/' | dd of={} conv=notrunc status=none", path("shm/0")));
    let read = sh_bytes(&format!("cat {}", path("shm/0")));
    assert_eq!(read.len(), 4096);
    assert_eq!(&read[..19], b"written through ns/");
    assert!(read[19..].iter().all(|&b| b == 0));
    assert_eq!(n.inside(|| shm::stat_any(ShmId(0)).unwrap().lpid), daemon, "the daemon attached it in N");
    assert_eq!(n.inside(|| segment_bytes(ShmId(0))), read, "N's segment, read in N");
    assert_eq!(shm::stat_any(our_shm).unwrap().lpid, 0, "ours was never attached");
    assert!(segment_bytes(our_shm).iter().all(|&b| b == 0), "and is untouched");

    // mkdir makes a queue in N.
    fs::create_dir(there.join("msg/0x0000beef")).unwrap();
    assert!(n.sh("ipcs -q").contains("0x0000beef"), "the queue is in N");
    assert!(!sh_ok("ipcs -q").contains("0x0000beef"), "and not in ours");

    // Send and receive.
    sh_ok(&format!("echo 'sent through ns/' > {}", path("msg/0/any")));
    assert_eq!(n.inside(|| queued(MsqId(0))), [(1, b"sent through ns/\n".to_vec())]);
    assert_eq!(sh_bytes(&format!("cat {}", path("msg/0/.recv/any"))), b"sent through ns/\n");
    assert_eq!(n.inside(|| queued(MsqId(0))), []);
    assert_eq!(queued(our_msg), [(1, b"ours".to_vec())], "our queue is untouched");

    // A V, and setting a value.
    sh_ok(&format!("echo +1 > {}", path("sem/0/0")));
    assert_eq!(sh_ok(&format!("cat {}", path("sem/0/0"))), "1\n");
    assert_eq!(ipcs_sem_value(&n.sh("ipcs -s -i 0")), 1, "N's semaphore");
    sh_ok(&format!("echo 5 > {}", path("sem/0/0")));
    assert_eq!(n.inside(|| sem_value(SemId(0), 0)), 5);
    assert_eq!(sem_value(our_sem, 0), 7, "ours is untouched");

    // chmod sets the mode in N.
    fs::set_permissions(there.join("shm/0"), fs::Permissions::from_mode(0o604)).unwrap();
    assert!(n.sh("ipcs -m -i 0").contains("access_perms=0604"), "{}", n.sh("ipcs -m -i 0"));
    assert_eq!(fs::metadata(there.join("shm/0")).unwrap().mode() & 0o777, 0o604);
    assert_eq!(shm::stat_any(our_shm).unwrap().perm.mode & 0o777, 0o640, "ours keeps its mode");

    // rm removes the segment in N only.
    fs::remove_file(there.join("shm/0")).unwrap();
    assert!(n.inside(|| shm::stat_any(ShmId(0)).is_err()), "gone from N");
    assert_eq!(list(&there.join("shm")), [] as [&str; 0]);
    assert!(shm::stat_any(our_shm).is_ok(), "ours is still there");
    assert_eq!(list(&m.path("shm")), ["0"]);

    // Limits are N's.
    let our_msgmni = fs::read_to_string("/proc/sys/kernel/msgmni").unwrap();
    assert_ne!(our_msgmni, "1234\n");
    fs::write(there.join("limits/msgmni"), "1234").unwrap();
    assert_eq!(n.sh("cat /proc/sys/kernel/msgmni"), "1234\n");
    assert_eq!(fs::read_to_string(there.join("limits/msgmni")).unwrap(), "1234\n");
    assert_eq!(fs::read_to_string("/proc/sys/kernel/msgmni").unwrap(), our_msgmni, "ours is unchanged");
    assert_eq!(fs::read_to_string(m.path("limits/msgmni")).unwrap(), our_msgmni);
}

/// With `-A`, each tree's `metrics/ipc.prom` shows that namespace's objects,
/// every object's sample labelled with the namespace first; the limits are
/// unlabelled.
#[test]
fn each_namespaces_metrics_show_its_own_objects_labelled_with_it() {
    let a = Holder::new("ipcmk -M 1111");
    let ours = create_segment(0x0000_0333, 333, 0o600);
    let m = mount_all();
    let own = own_ns();
    let sizes = |path: &std::path::Path| -> Vec<String> {
        let text = fs::read_to_string(path).unwrap();
        text.lines().filter(|l| l.starts_with("ipc_shm_size_bytes{")).map(str::to_string).collect()
    };
    assert_eq!(
        sizes(&m.path("metrics/ipc.prom")),
        [format!("ipc_shm_size_bytes{{namespace=\"{own}\",id=\"{}\",key=\"0x00000333\",owner=\"0\"}} 333", ours.0)]
    );
    let theirs = sizes(&ns_dir(&m, a.ns).join("metrics/ipc.prom"));
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert!(theirs[0].starts_with(&format!("ipc_shm_size_bytes{{namespace=\"{}\",id=\"0\",", a.ns)), "{theirs:?}");
    assert!(theirs[0].ends_with("} 1111"), "{theirs:?}");
    let text = fs::read_to_string(m.path("metrics/ipc.prom")).unwrap();
    assert!(text.lines().any(|l| l.starts_with("ipc_limit{resource=\"shmmni\"} ")), "limits carry no namespace label");
}

/// With `-A`, each tree's `users/` shows the processes of that namespace
/// only.
#[test]
fn each_namespaces_users_show_its_own_processes() {
    let attach = "ipcmk -M 4096 >/dev/null\n/usr/bin/python3 -c 'import ctypes,time; l=ctypes.CDLL(None); \
                  l.shmat.restype=ctypes.c_void_p; l.shmat(0,None,0); time.sleep(60)' &";
    let a = Holder::new(attach);
    let m = mount_all();
    let segment = ns_dir(&m, a.ns).join("shm/0");
    wait_for("A's process attaches its segment", || xattr(&segment, "user.ipc.nattch").is_ok_and(|n| n == "1"));
    let users = list(&ns_dir(&m, a.ns).join("users/shm/0"));
    assert_eq!(users.len(), 1, "{users:?}");
    let pid: u32 = users[0].parse().unwrap();
    assert_eq!((comm(pid).as_str(), process_ns(pid)), ("python3", Some(a.ns)), "A's attacher");
    assert!(list(&m.path("users/shm")).is_empty(), "nobody uses a segment of the mount's own namespace");
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
}
