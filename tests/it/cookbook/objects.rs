//! The recipes for any kind of object, and those for containers (other IPC
//! namespaces, with `-A`).

use super::*;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use ipcfs::ipc::msg::MsqId;
use ipcfs::ipc::sem::SemId;

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
