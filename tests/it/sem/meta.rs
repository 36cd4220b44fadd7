//! What a set's files say: stat and the extended attributes against semctl,
//! ipcs and lsipc.

use super::*;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;

use ipcfs::ipc::sem::{self, Query};

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
