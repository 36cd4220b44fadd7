//! `limits/`: what `lsipc --global` shows, one file per resource, checked
//! against lsipc itself; writing a file sets the limit as `sysctl -w` would,
//! for root only, and bad input changes nothing. Every test runs in its own
//! IPC namespace, so the limits it sets are its own.

use std::collections::HashMap;
use std::fs;

use crate::common::*;

const RESOURCES: [&str; 12] = [
    "msgmni", "msgmax", "msgmnb", "shmmni", "shmall", "shmmax", "shmmin", "semmni", "semmns", "semmsl", "semopm",
    "semvmx",
];

/// lsipc --global, by resource (upper case): (description, limit, used).
fn lsipc_global() -> HashMap<String, (String, String, String)> {
    parse_lsipc_json(&sh_ok("lsipc --global --json --bytes"))
        .into_iter()
        .map(|r| (r["resource"].clone(), (r["description"].clone(), r["limit"].clone(), r["used"].clone())))
        .collect()
}

fn read(m: &Mounted, name: &str) -> String {
    fs::read_to_string(m.path(format!("limits/{name}"))).unwrap()
}

/// A count from `ipcs -u`, the kernel's own (IPC_INFO/SHM_INFO/SEM_INFO).
fn ipcs_u(label: &str) -> String {
    let out = sh_ok("LC_ALL=C ipcs -u");
    let line = out.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_else(|| panic!("ipcs -u: {label}"));
    line.split_whitespace().last().unwrap().to_string()
}

#[test]
fn every_limit_and_its_use_equal_lsipc_global() {
    let m = Mounted::new();
    // Something to count: 2 segments (3 pages), 2 sets (5 semaphores), 1 queue.
    create_segment(0x1171, 5000, 0o600);
    create_segment(0x1172, 100, 0o600);
    sh_ok("ipcmk -S 2 >/dev/null && ipcmk -S 3 >/dev/null && ipcmk -Q >/dev/null");
    let mut names = list(&m.path("limits"));
    names.sort();
    let mut want: Vec<String> = RESOURCES.iter().map(|s| s.to_string()).chain(["usage".to_string()]).collect();
    want.sort();
    assert_eq!(names, want);

    let lsipc = lsipc_global();
    let usage = read(&m, "usage");
    for name in RESOURCES {
        let (description, limit, used) = &lsipc[&name.to_ascii_uppercase()];
        let path = m.path(format!("limits/{name}"));
        assert_eq!(read(&m, name), format!("{limit}\n"), "limits/{name} against lsipc's LIMIT");
        assert_eq!(xattr(&path, "user.ipc.description").unwrap(), *description, "{name}");
        let shown_used = xattr(&path, "user.ipc.used").ok();
        match used.as_str() {
            "-" => assert_eq!(shown_used, None, "{name} has no USED in lsipc"),
            // lsipc divides the bytes of all segments by the page size and
            // rounds down, and (2.38) miscounts semaphores; ipcfs shows the
            // kernel's own counts, as ipcs -u does.
            _ if name == "shmall" => assert_eq!(shown_used, Some(ipcs_u("pages allocated")), "{name} against ipcs -u"),
            _ if name == "semmns" => {
                assert_eq!(shown_used, Some(ipcs_u("allocated semaphores")), "{name} against ipcs -u")
            }
            _ => assert_eq!(shown_used.as_deref(), Some(used.as_str()), "{name} against lsipc's USED"),
        }
        let row = usage.lines().find(|l| l.starts_with(&format!("{} ", name.to_ascii_uppercase()))).unwrap();
        assert!(row.contains(description.as_str()) && row.contains(&format!(" {limit} ")), "usage row {row:?}");
    }
    assert_eq!(xattr(&m.path("limits/shmmni"), "user.ipc.used").unwrap(), "2");
    assert_eq!(xattr(&m.path("limits/semmns"), "user.ipc.used").unwrap(), "5");
    assert_eq!(xattr(&m.path("limits/shmall"), "user.ipc.used").unwrap(), "3");
}

#[test]
fn root_sets_a_limit_by_writing_its_file() {
    let m = Mounted::new();
    sh_ok(&format!("echo 1234 > {}", q(&m.path("limits/shmmni"))));
    assert_eq!(fs::read_to_string("/proc/sys/kernel/shmmni").unwrap(), "1234\n");
    assert_eq!(read(&m, "shmmni"), "1234\n");
    // A field of kernel.sem changes alone.
    let before: Vec<String> =
        fs::read_to_string("/proc/sys/kernel/sem").unwrap().split_whitespace().map(String::from).collect();
    fs::write(m.path("limits/semopm"), "77").unwrap();
    let after: Vec<String> =
        fs::read_to_string("/proc/sys/kernel/sem").unwrap().split_whitespace().map(String::from).collect();
    assert_eq!(after, [before[0].clone(), before[1].clone(), "77".into(), before[3].clone()]);
    assert_eq!(lsipc_global()["SEMOPM"].1, "77");
}

#[test]
fn others_built_in_limits_and_bad_numbers_change_nothing() {
    let m = Mounted::new();
    let sysctls = || ["shmmni", "msgmax", "sem"].map(|n| fs::read_to_string(format!("/proc/sys/kernel/{n}")).unwrap());
    let before = sysctls();
    let shmmni = q(&m.path("limits/shmmni"));
    let out = sh_as(1000, 1000, &[], &format!("LC_ALL=C; echo 5 > {shmmni}"));
    assert_refused(&out, "Permission denied", "a user writing limits/shmmni");
    let out = sh_as(1000, 1000, &[], &format!("LC_ALL=C; truncate -s 0 {shmmni}"));
    assert_refused(&out, "Permission denied", "a user truncating limits/shmmni");
    assert_eq!(errno(std::fs::OpenOptions::new().write(true).open(m.path("limits/usage"))), libc::EACCES);
    for fixed in ["shmmin", "semvmx"] {
        let path = m.path(format!("limits/{fixed}"));
        assert_eq!(errno(fs::write(&path, "5")), libc::EACCES, "{fixed} is built into the kernel");
        assert!(fs::metadata(&path).unwrap().permissions().readonly(), "{fixed} is 0444");
    }
    for bad in ["abc", "-1", "1 2", "99999999999999999999999", "\n"] {
        assert_eq!(errno(fs::write(m.path("limits/msgmax"), bad)), libc::EINVAL, "{bad:?}");
    }
    // The kernel's own range check: shmmni is at most 32768 (IPCMNI).
    assert_eq!(errno(fs::write(m.path("limits/shmmni"), "100000")), libc::EINVAL);
    assert_eq!(errno(fs::write(m.path("limits/usage"), "1")), libc::EACCES);
    assert_eq!(sysctls(), before);
}

#[test]
fn a_read_only_mount_shows_limits_and_sets_none() {
    let m = Mounted::with_options(&["-o", "ro"]);
    let before = fs::read_to_string("/proc/sys/kernel/shmmni").unwrap();
    assert_eq!(read(&m, "shmmni"), before);
    assert_eq!(errno(fs::write(m.path("limits/shmmni"), "100")), libc::EROFS);
    assert_eq!(fs::read_to_string("/proc/sys/kernel/shmmni").unwrap(), before);
}
