//! Who may enter another namespace's tree, no `ns/` without the option, and
//! bad names and changes to `ns/` refused.

use super::*;

use std::fs;
use std::os::unix::fs::MetadataExt;

/// With `allow_other`, anyone may list `ns/`, but only root and the owner of
/// a namespace's user namespace may use its tree: root's for an ordinary
/// namespace, the user's for a rootless one. The own namespace's tree keeps
/// the kernel's rule.
#[test]
fn only_root_and_the_namespaces_owner_may_enter_it() {
    let a = Holder::new("ipcmk -M 64");
    let r = Holder::rootless(USER, "ipcmk -M 100 -p 0600");
    let readable = create_segment(0x0000_1234, 32, 0o644);
    let private = create_segment(0x0000_5678, 32, 0o600);
    let m = Mounted::with_options(&["-o", "all_namespaces,allow_other"]);
    let ns = m.path("ns");
    let (root_ns, rootless) = (q(&ns_dir(&m, a.ns)), q(&ns_dir(&m, r.ns)));
    let as_user = |uid: u32, script: &str| sh_as(uid, uid, &[], script);

    // Anyone may list ns/ and see who owns what. (Only the entries of this
    // test are looked at: those of other tests may go while `ls -l` runs.)
    let names = assert_ok(&as_user(USER, &format!("ls {}", q(&ns))), "ls ns");
    for name in [a.ns, r.ns] {
        assert!(names.lines().any(|l| l == name.to_string()), "ns/{name} in {names}");
    }
    let mode_and_owner = |dir: &str| assert_ok(&as_user(USER, &format!("stat -c '%A %u' {dir}")), "stat");
    assert_eq!(mode_and_owner(&root_ns), "dr-x------ 0\n");
    assert_eq!(mode_and_owner(&rootless), format!("dr-x------ {USER}\n"));

    // Root's namespace: root only.
    for script in [
        format!("ls {root_ns}"),
        format!("ls {root_ns}/shm"),
        format!("cat {root_ns}/shm/0"),
        format!("ls {}/ns/by-pid/{}/shm", q(m.root()), a.pid()),
    ] {
        assert_refused(&as_user(USER, &script), "Permission denied", &script);
    }
    // Every capability in a user namespace of one's own is none of the host's.
    for script in [format!("unshare -Ur ls {root_ns}/shm"), format!("unshare -Ur cat {root_ns}/shm/0")] {
        assert_refused(&as_user(USER, &script), "Permission denied", &script);
    }
    assert_eq!(list(&ns_dir(&m, a.ns).join("shm")), ["0"]);
    assert_eq!(fs::read(ns_dir(&m, a.ns).join("shm/0")).unwrap(), [0; 64]);

    // The rootless namespace: its user (and root), not another.
    assert_eq!(assert_ok(&as_user(USER, &format!("ls {rootless}/shm")), "ls as its owner"), "0\n");
    let ls = assert_ok(&as_user(USER, &format!("ls -ln {rootless}/shm")), "ls -ln as its owner");
    assert!(ls.lines().any(|l| l.starts_with("-rw------- 1 1000 ")), "{ls}");
    assert_eq!(assert_ok(&as_user(USER, &format!("cat {rootless}/shm/0 | wc -c")), "cat as its owner").trim(), "100");
    assert_eq!(list(&ns_dir(&m, r.ns).join("shm")), ["0"], "root may");
    for script in [format!("ls {rootless}"), format!("cat {rootless}/shm/0")] {
        assert_refused(&as_user(OTHER_USER, &script), "Permission denied", &script);
    }
    // Inside, the kernel's IPC rule: root's segments there, 0600 and 0644,
    // are for its owner only and for everyone's reading.
    sh_ok(&format!("truncate -s 10 {rootless}/shm/0x00000a01 {rootless}/shm/0x00000a02"));
    sh_ok(&format!("chmod 600 {rootless}/by-key/shm/0x00000a01 && chmod 644 {rootless}/by-key/shm/0x00000a02"));
    let script = format!("cat {rootless}/by-key/shm/0x00000a01");
    assert_refused(&as_user(USER, &script), "Permission denied", &script);
    let script = format!("cat {rootless}/by-key/shm/0x00000a02 | wc -c");
    assert_eq!(assert_ok(&as_user(USER, &script), &script).trim(), "10");
    let script = format!("printf x > {rootless}/by-key/shm/0x00000a02");
    assert_refused(&as_user(USER, &script), "Permission denied", &script);

    // The own namespace's tree: the kernel's rule, as without the option.
    let own_shm = q(&m.path("shm"));
    let mine = assert_ok(&as_user(USER, &format!("ls {own_shm}")), "ls shm");
    assert_eq!(mine, format!("{}\n{}\n", readable.0.min(private.0), readable.0.max(private.0)));
    let script = format!("cat {own_shm}/{} | wc -c", readable.0);
    assert_eq!(assert_ok(&as_user(USER, &script), &script).trim(), "32");
    let script = format!("cat {own_shm}/{}", private.0);
    assert_refused(&as_user(USER, &script), "Permission denied", &script);
}

/// Without the option there is no `ns/`; each of its spellings makes one.
#[test]
fn ns_is_there_only_with_the_option() {
    let m = Mounted::new();
    assert_eq!(errno(fs::metadata(m.path("ns"))), libc::ENOENT);
    assert_eq!(errno(fs::metadata(m.path("ns/by-pid"))), libc::ENOENT);
    let names = list(m.root());
    assert!(names.contains(&"shm".to_string()) && !names.contains(&"ns".to_string()), "{names:?}");
    drop(m);
    for option in [&["-o", "all_namespaces"][..], &["-A"], &["--all-namespaces"]] {
        let m = Mounted::with_options(option);
        assert!(list(m.root()).contains(&"ns".to_string()), "{option:?}");
        assert_eq!(link(&ns_dir(&m, own_ns())), "..", "{option:?}");
    }
}

/// Names that are not a namespace's or a process's canonical number name
/// nothing; `ns/` and `ns/by-pid/` cannot be changed.
#[test]
fn bad_names_name_nothing_and_ns_cannot_be_changed() {
    let a = Holder::new("");
    let m = mount_all();
    let own = own_ns();
    let pid = a.pid();
    for name in [
        "ns/123".to_string(),
        "ns/0123".into(),
        format!("ns/0{}", a.ns),
        format!("ns/+{}", a.ns),
        format!("ns/{}0", a.ns),
        "ns/by-pid/999999999".into(),
        "ns/by-pid/abc".into(),
        format!("ns/by-pid/0{pid}"),
        "ns/by-pid/-1".into(),
    ] {
        assert!(path_is_gone(&m.path(&name)), "{name}");
    }

    let before = ns_snapshot(&m, &[a.ns, own], pid);
    let mnt = q(m.root());
    let ns = format!("{mnt}/ns");
    let member = format!("{ns}/{}", a.ns);
    for script in [
        format!("mkdir {ns}/new"),
        format!("mkdir {ns}/123"),
        format!("mkdir {ns}/by-pid/123"),
        format!("rmdir {member}"),
        format!("rm -f {ns}/{own}"),
        format!("rm -f {ns}/by-pid/{pid}"),
        format!("rmdir {ns}/by-pid"),
        format!("chmod 777 {member}"),
        format!("chmod 700 {ns}"),
        format!("chmod 700 {ns}/by-pid"),
        format!("chown 1000 {member}"),
        format!("mv {member} {ns}/moved"),
        format!("ln -s .. {ns}/new"),
        format!("touch {ns}/new"),
    ] {
        let out = sh(&script);
        let stderr = stderr_of(&out);
        assert!(
            !out.status.success()
                && (stderr.contains("Operation not permitted")
                    || stderr.contains("Permission denied")
                    // Creating a file where no object has that name.
                    || (script.starts_with("touch") && stderr.contains("No such file or directory"))),
            "`{script}` must be refused: {} {stderr:?}",
            out.status
        );
    }
    assert_eq!(ns_snapshot(&m, &[a.ns, own], pid), before);
    let names = list(&m.path("ns"));
    assert!(!names.iter().any(|n| n == "new" || n == "moved"), "{names:?}");
}

/// What the changes tried on `ns/` must leave as it was: the mode, owner and
/// inode number of `ns/`, `ns/by-pid/` and the namespaces' entries, and the links.
fn ns_snapshot(m: &Mounted, namespaces: &[u64], pid: u32) -> Vec<String> {
    let mut paths = vec![m.path("ns"), m.path("ns/by-pid"), m.path(format!("ns/by-pid/{pid}"))];
    paths.extend(namespaces.iter().map(|ns| ns_dir(m, *ns)));
    paths
        .iter()
        .map(|p| {
            let meta = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
            let target = fs::read_link(p).map(|t| t.display().to_string()).unwrap_or_default();
            format!("{} {:o} {} {} -> {target}", p.display(), meta.mode(), meta.uid(), meta.ino())
        })
        .collect()
}
