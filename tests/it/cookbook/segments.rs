//! The recipes for shared memory segments.

use super::*;

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use ipcfs::ipc::shm::Attachment;

// ---- shared memory ----

#[test]
fn unattached_segments_are_listed_then_removed_and_attached_ones_kept() {
    let m = Mounted::new();
    let keyed = create_segment(0x1001, 4096, 0o600);
    let private = create_segment(libc::IPC_PRIVATE, 8192, 0o644);
    let others = create_segment(0x1002, 4096, 0o600);
    shm::set(others, NOBODY_UID, NOBODY_GID, 0o600).unwrap();
    let attached = create_segment(0x1003, 4096, 0o666);
    let _attachment = Attachment::attach(attached, 4096, false).unwrap();
    // Removed while attached: still listed (marked for destruction) until detached.
    let doomed = create_segment(0x1004, 4096, 0o666);
    let _doomed_attachment = Attachment::attach(doomed, 4096, false).unwrap();
    shm::remove(doomed).unwrap();

    let unattached: BTreeSet<String> =
        [keyed, private, others].iter().map(|id| m.shm(*id).display().to_string()).collect();
    let list = recipe("unattached-segments").on(&m);
    assert_eq!(lines(&list.run_ok()), unattached);

    recipe("remove-unattached-segments").on(&m).run_ok();
    for id in [keyed, private, others] {
        assert!(!shm_exists(id), "unattached segment {} is still there", id.0);
    }
    assert!(shm_exists(attached) && shm_exists(doomed), "an attached segment was removed");
    assert_eq!(shm::stat_any(attached).unwrap().perm.key, Key(0x1003), "the attached segment was marked for removal");
    assert_eq!(list.run_ok(), "");
    recipe("remove-unattached-segments").on(&m).run_ok();
}

/// A process that holds segment `id` attached until dropped.
struct Attacher(Child);

impl Attacher {
    fn new(id: ShmId) -> Attacher {
        let script = "import ctypes, sys\n\
                      libc = ctypes.CDLL(None, use_errno=True)\n\
                      libc.shmat.restype = ctypes.c_void_p\n\
                      libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]\n\
                      assert libc.shmat(int(sys.argv[1]), None, 0) != ctypes.c_void_p(-1).value\n\
                      print('attached', flush=True)\n\
                      sys.stdin.read()\n";
        let mut child = Command::new("/usr/bin/python3")
            .args(["-c", script, &id.0.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line, "attached\n", "the python attacher failed");
        Attacher(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Attacher {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

#[test]
fn who_attached_names_the_processes_attached_now() {
    let m = Mounted::new();
    let seg = create_segment(0x2001, 4096, 0o600);
    let untouched = create_segment(0x2002, 4096, 0o600);
    let attacher = Attacher::new(seg);
    let other = Attacher::new(untouched);
    let daemon = m.daemon_pid().unwrap();
    let who = recipe("who-attached").with("shm/7", &format!("shm/{}", seg.0)).on(&m);

    let before = who.run_ok();
    assert_eq!(before, format!("{} python3\n", attacher.pid()), "only the attacher is attached");
    assert!(!before.contains(&other.pid().to_string()));

    // An open segment file is no attachment: the daemon is not listed.
    let open = fs::File::open(m.shm(seg)).unwrap();
    let during = who.run_ok();
    assert_eq!(during, format!("{} python3\n", attacher.pid()));
    assert!(!during.contains(&format!("{daemon} ")), "the daemon holds the file, not an attachment");
    drop(open);
}

#[test]
fn largest_segments_come_first_with_their_owners() {
    let m = Mounted::new();
    let small = create_segment(0x3001, 4096, 0o600);
    let large = create_segment(0x3002, 1 << 20, 0o600);
    shm::set(large, NOBODY_UID, NOBODY_GID, 0o600).unwrap();
    let middle = create_segment(libc::IPC_PRIVATE, 65536, 0o600);
    let out = recipe("largest-segments").on(&m).run_ok();
    let expected: String = [(large, "1048576", "4242"), (middle, "65536", "root"), (small, "4096", "root")]
        .iter()
        .map(|(id, size, owner)| format!("{size}\t{owner}\t{}\n", m.shm(*id).display()))
        .collect();
    assert_eq!(out, expected);
}

#[test]
fn shm_per_user_adds_up_each_owners_bytes() {
    let m = Mounted::new();
    create_segment(0x3101, 4096, 0o600);
    create_segment(0x3102, 65536, 0o600);
    let theirs = create_segment(0x3103, 1 << 20, 0o600);
    shm::set(theirs, NOBODY_UID, NOBODY_GID, 0o600).unwrap();
    let out = recipe("shm-per-user").on(&m).run_ok();
    assert_eq!(lines(&out), lines("root 69632\n4242 1048576\n"));
}

#[test]
fn shm_usage_counts_pages_and_segments_against_the_limits() {
    let m = Mounted::new();
    let sizes = [4096, 8192, 1];
    for size in sizes {
        create_segment(libc::IPC_PRIVATE, size, 0o600);
    }
    let page: u64 = sh_ok("getconf PAGESIZE").trim().parse().unwrap();
    let in_use = sizes.iter().map(|size| size.div_ceil(page)).sum::<u64>() * page / 4096;
    let out = recipe("shm-usage").on(&m).run_ok();
    let rows: Vec<Vec<u64>> = out
        .lines()
        .filter_map(|l| l.split_whitespace().map(|f| f.parse().ok()).collect::<Option<Vec<u64>>>())
        .collect();
    assert_eq!(rows.len(), 2, "two figures lines in {out:?}");
    let (pages, segments) = (&rows[0], &rows[1]);
    assert_eq!(pages[1], in_use, "4 KiB pages in use: {out}");
    assert_eq!(pages[0], pages[1] + pages[2], "size = used + available: {out}");
    let shmmni: u64 = sh_ok("cat /proc/sys/kernel/shmmni").trim().parse().unwrap();
    assert_eq!(segments, &vec![shmmni, 3, shmmni - 3], "segments: {out}");
}

#[test]
fn dump_segment_shows_the_live_bytes() {
    let m = Mounted::new();
    let seg = create_segment(0x3301, 65536, 0o600);
    write_segment(seg, 0x60, b"hello");
    let out = recipe("dump-segment").with("shm/7", &format!("shm/{}", seg.0)).on(&m).run_ok();
    let zeros = "000000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  >................<";
    let hello = "000060 68 65 6c 6c 6f 00 00 00 00 00 00 00 00 00 00 00  >hello...........<";
    let rest = "000070 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  >................<";
    // The dump, zero lines folded into `*`; then the 16 bytes at 0x60.
    assert_eq!(out.lines().collect::<Vec<_>>(), [zeros, "*", hello, rest, "*", "010000", hello, "000070"]);
}

#[test]
fn patch_segment_writes_those_bytes_and_keeps_the_others() {
    let m = Mounted::new();
    let seg = create_segment(0x3401, 4096, 0o600);
    write_segment(seg, 0, &[0xaa; 4096]);
    recipe("patch-segment").with("shm/7", &format!("shm/{}", seg.0)).on(&m).run_ok();
    let mut expected = vec![0xaa; 4096];
    expected[100..105].copy_from_slice(b"ready");
    assert!(segment_bytes(seg) == expected, "the segment is not the old bytes with `ready` at 100");
}

#[test]
fn backup_and_restore_bring_back_key_size_mode_and_bytes() {
    let m = Mounted::new();
    let scratch = Scratch::new("cookbook");
    let key = 0x1234abcd;
    let seg = create_segment(key, 10000, 0o640);
    let bytes: Vec<u8> = (0..10000u32).map(|i| (i * 7 % 251) as u8).collect();
    write_segment(seg, 0, &bytes);

    let backup = recipe("backup-segment").with("shm/7", &format!("shm/{}", seg.0)).on(&m);
    backup.ok(backup.run_in(scratch.dir()));
    assert!(fs::read(scratch.path("shm-0x1234abcd.bin")).unwrap() == bytes, "the backup's bytes");
    assert_eq!(fs::read_to_string(scratch.path("shm-0x1234abcd.mode")).unwrap(), "640\n");

    shm::remove(seg).unwrap();
    let restore = recipe("restore-segment").on(&m);
    restore.ok(restore.run_in(scratch.dir()));
    let restored = ShmId(id_by_key(&m, "shm", key));
    let stat = shm::stat_any(restored).unwrap();
    assert_eq!((stat.perm.key, stat.segsz, stat.perm.mode & 0o777), (Key(key), 10000, 0o640));
    assert!(segment_bytes(restored) == bytes, "the restored bytes");

    // With the key taken, the restore stops at once and changes nothing.
    write_segment(restored, 0, b"changed");
    let again = restore.run_in(scratch.dir());
    assert_refused(&again, "File exists", "restore over an existing key");
    assert_eq!(&segment_bytes(restored)[..7], b"changed");
    assert_eq!(shm::stat_any(restored).unwrap().perm.mode & 0o777, 0o640);
}

#[test]
fn create_segment_makes_it_and_shows_its_id() {
    let m = Mounted::new();
    let out = recipe("create-segment").on(&m).run_ok();
    let id = ShmId(id_by_key(&m, "shm", 0x1234abcd));
    assert_eq!(out, format!("../../shm/{}\n", id.0));
    let stat = shm::stat_any(id).unwrap();
    assert_eq!((stat.segsz, stat.perm.mode & 0o777), (65536, 0o666 & !umask()));
}
