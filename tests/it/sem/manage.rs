//! Making, changing and removing sets through the tree (mkdir, chmod,
//! chown, rmdir, rm), and other users held to the kernel's permission rule.

use super::*;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use ipcfs::ipc::Errno;
use ipcfs::ipc::sem::{self, SemId};

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
