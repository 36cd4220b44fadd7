//! lsipc parity: every column `lsipc -m`, `-q` and `-s` can show is
//! reachable through the filesystem (stat, extended attributes, and for
//! COMMAND /proc/<user.ipc.cpid>), and equals lsipc's for the same objects.
//! lsipc 2.38 has no `-o ALL`, so the columns are named: all of those its
//! `--help` lists for each family.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::common::*;
use ipcfs::ipc::{msg, sem};

const GENERIC: &str = "KEY,ID,OWNER,PERMS,CUID,CUSER,CGID,CGROUP,UID,USER,GID,GROUP,CTIME";

fn lsipc(family: &str, columns: &str) -> Vec<HashMap<String, String>> {
    let all = format!("{GENERIC},{columns}");
    parse_lsipc_json(&sh_ok(&format!(
        "TZ=UTC lsipc {family} --json --bytes --numeric-perms --time-format=iso --notruncate -o {all}"
    )))
}

fn user_name(uid: u32) -> String {
    let name = sh_ok(&format!("getent passwd {uid} | cut -d: -f1"));
    if name.trim().is_empty() { uid.to_string() } else { name.trim().to_string() }
}

fn group_name(gid: u32) -> String {
    let name = sh_ok(&format!("getent group {gid} | cut -d: -f1"));
    if name.trim().is_empty() { gid.to_string() } else { name.trim().to_string() }
}

/// A time as lsipc prints it with TZ=UTC and --time-format=iso.
fn iso(seconds: i64) -> String {
    sh_ok(&format!("date -u -d @{seconds} +%Y-%m-%dT%H:%M:%S+00:00")).trim().to_string()
}

fn x(path: &Path, name: &str) -> String {
    xattr(path, name).unwrap_or_else(|e| panic!("{name} of {}: {e}", path.display()))
}

/// The generic columns, from the file: stat for the owner, mode and ctime,
/// extended attributes for the rest, names as ls -l shows them.
fn generic(path: &Path, name: &str) -> HashMap<&'static str, String> {
    let md = fs::metadata(path).unwrap();
    let (cuid, cgid): (u32, u32) =
        (x(path, "user.ipc.cuid").parse().unwrap(), x(path, "user.ipc.cgid").parse().unwrap());
    HashMap::from([
        ("key", x(path, "user.ipc.key")),
        ("id", name.to_string()),
        ("owner", user_name(md.uid())),
        ("perms", format!("{:04o}", md.mode() & 0o666)),
        ("cuid", cuid.to_string()),
        ("cuser", user_name(cuid)),
        ("cgid", cgid.to_string()),
        ("cgroup", group_name(cgid)),
        ("uid", md.uid().to_string()),
        ("user", user_name(md.uid())),
        ("gid", md.gid().to_string()),
        ("group", group_name(md.gid())),
        ("ctime", iso(md.ctime())),
    ])
}

/// A time column from the file's time: lsipc shows null for a time never
/// set, where the file shows ctime (docs/ipcfs.md), so there the file must
/// show ctime and the column reads as null.
fn time_column(lsipc: &str, file_time: i64, ctime: &str) -> String {
    if lsipc.is_empty() {
        assert_eq!(iso(file_time), ctime, "a time never set shows as ctime");
        String::new()
    } else {
        iso(file_time)
    }
}

fn compare(family: &str, rows: &[HashMap<String, String>], from_fs: impl Fn(&str) -> HashMap<&'static str, String>) {
    assert!(!rows.is_empty());
    for row in rows {
        let mine = from_fs(&row["id"]);
        for (column, value) in row {
            // lsipc 2.38 prints PERMS of queues as null.
            if column == "perms" && value.is_empty() {
                continue;
            }
            let shown = mine.get(column.as_str()).unwrap_or_else(|| panic!("{family}: no mapping for column {column}"));
            assert_eq!(shown, value, "{family} id {}: column {column}", row["id"]);
        }
    }
}

#[test]
fn every_shared_memory_column_is_in_the_filesystem() {
    let m = Mounted::new();
    let mine = create_segment(0x0000b001, 5000, 0o640); // made by this process: COMMAND is shown
    shm::set(mine, 65534, 65534, 0o604).unwrap();
    let _held = shm::Attachment::attach(mine, 5000, false).unwrap();
    sh_ok("ipcmk -M 100 -p 0600 >/dev/null");
    let gone = create_segment(0x0000b003, 4096, 0o600);
    let attached = shm::Attachment::attach(gone, 4096, true).unwrap();
    shm::remove(gone).unwrap(); // marked for destruction while attached
    let rows = lsipc("-m", "SIZE,NATTCH,STATUS,ATTACH,DETACH,COMMAND,CPID,LPID");
    assert_eq!(rows.len(), 3);
    compare("shm", &rows, |id| {
        let path = m.path(format!("shm/{id}"));
        let md = fs::metadata(&path).unwrap();
        let mut row = generic(&path, id);
        let ctime = row["ctime"].clone();
        let lsipc_row = rows.iter().find(|r| r["id"] == id).unwrap();
        let mut status = Vec::new();
        if x(&path, "user.ipc.dest") == "1" {
            status.push("dest");
        }
        if x(&path, "user.ipc.locked") == "1" {
            status.push("locked");
        }
        let cpid = x(&path, "user.ipc.cpid");
        let command = fs::read(format!("/proc/{cpid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).trim_end_matches('\0').replace('\0', " "));
        row.extend([
            ("size", md.size().to_string()),
            ("nattch", x(&path, "user.ipc.nattch")),
            ("status", status.join(",")),
            ("attach", time_column(&lsipc_row["attach"], md.atime(), &ctime)),
            ("detach", time_column(&lsipc_row["detach"], md.mtime(), &ctime)),
            ("command", command.unwrap_or_default()),
            ("cpid", cpid),
            ("lpid", x(&path, "user.ipc.lpid")),
        ]);
        row
    });
    drop(attached);
}

#[test]
fn every_message_queue_column_is_in_the_filesystem() {
    let m = Mounted::new();
    let q = msg::get(Key(0x0000b101), libc::IPC_CREAT | libc::IPC_EXCL | 0o640).unwrap();
    fs::write(m.path(format!("msg/{}/any", q.0)), "hello").unwrap();
    fs::write(m.path(format!("msg/{}/any", q.0)), "world!").unwrap();
    let mut one = [0u8; 64];
    let mut receiving = fs::File::open(m.path(format!("msg/{}/.recv/any", q.0))).unwrap();
    let n = std::io::Read::read(&mut receiving, &mut one).unwrap();
    assert_eq!(&one[..n], b"hello", "one read, one message received");
    sh_ok("ipcmk -Q -p 0600 >/dev/null");
    let rows = lsipc("-q", "USEDBYTES,MSGS,SEND,RECV,LSPID,LRPID");
    assert_eq!(rows.len(), 2);
    compare("msg", &rows, |id| {
        let path = m.path(format!("msg/{id}"));
        let md = fs::metadata(&path).unwrap();
        let mut row = generic(&path, id);
        let lsipc_row = rows.iter().find(|r| r["id"] == id).unwrap();
        row.extend([
            ("usedbytes", md.size().to_string()),
            ("msgs", x(&path, "user.ipc.qnum")),
            ("send", time_column(&lsipc_row["send"], md.mtime(), &row["ctime"])),
            ("recv", time_column(&lsipc_row["recv"], md.atime(), &row["ctime"])),
            ("lspid", x(&path, "user.ipc.lspid")),
            ("lrpid", x(&path, "user.ipc.lrpid")),
        ]);
        row
    });
    let row = rows.iter().find(|r| r["id"] == q.0.to_string()).unwrap();
    assert_eq!((row["msgs"].as_str(), row["usedbytes"].as_str()), ("1", "6"));
}

#[test]
fn every_semaphore_column_is_in_the_filesystem() {
    let m = Mounted::new();
    let s = sem::get(Key(0x0000b201), 3, libc::IPC_CREAT | libc::IPC_EXCL | 0o640).unwrap();
    fs::write(m.path(format!("sem/{}/1", s.0)), "+2").unwrap();
    sh_ok("ipcmk -S 2 -p 0600 >/dev/null");
    let rows = lsipc("-s", "NSEMS,OTIME");
    assert_eq!(rows.len(), 2);
    compare("sem", &rows, |id| {
        let path = m.path(format!("sem/{id}"));
        let md = fs::metadata(&path).unwrap();
        let mut row = generic(&path, id);
        let lsipc_row = rows.iter().find(|r| r["id"] == id).unwrap();
        row.extend([
            ("nsems", x(&path, "user.ipc.nsems")),
            ("otime", time_column(&lsipc_row["otime"], md.mtime(), &row["ctime"])),
        ]);
        row
    });
    let row = rows.iter().find(|r| r["id"] == s.0.to_string()).unwrap();
    assert!(!row["otime"].is_empty(), "the V through the mount is the last semop");
}
