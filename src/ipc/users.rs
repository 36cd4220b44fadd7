//! Which processes use which IPC objects, from /proc: a process's SysV
//! attachments (its /proc/PID/maps) and the IPC call each of its threads is
//! blocked in (/proc/PID/task/TID/syscall). Pure parsers over the text, and
//! thin readers.

use std::collections::BTreeSet;

use super::{Errno, io_errno};

/// What a blocked thread waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// `semop` or `semtimedop` on set `id`.
    Semop(i32),
    /// `msgrcv` on queue `id`.
    Msgrcv(i32),
    /// `msgsnd` on queue `id`.
    Msgsnd(i32),
}

/// The segment ids of the SysV attachments in a /proc/PID/maps text: a
/// SysV mapping's path is `/SYSV%08x (deleted)` and its inode column the
/// shmid.
pub fn parse_maps(text: &str) -> BTreeSet<i32> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let inode = fields.nth(4)?;
            fields.next().filter(|path| path.starts_with("/SYSV"))?;
            inode.parse().ok()
        })
        .collect()
}

/// The inode numbers of the files of device `dev` that a /proc/PID/maps
/// text shows mapped (its `major:minor` column, in hex).
pub fn parse_mapped_inodes(text: &str, dev: u64) -> BTreeSet<u64> {
    let device = format!("{:02x}:{:02x}", libc::major(dev), libc::minor(dev));
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            (fields.nth(3)? == device).then_some(())?;
            fields.next()?.parse().ok()
        })
        .collect()
}

/// The IPC call a /proc/PID/task/TID/syscall text says the thread is in:
/// the call's number, then its arguments in hex (`running`, or `-1` and a
/// stack pointer, when it is in none).
pub fn parse_syscall(text: &str) -> Option<Blocked> {
    let mut fields = text.split_whitespace();
    let number: i64 = fields.next()?.parse().ok()?;
    let first = fields.next()?.strip_prefix("0x")?;
    let id = i32::try_from(u64::from_str_radix(first, 16).ok()?).ok()?;
    match number {
        n if n == libc::SYS_semop || n == libc::SYS_semtimedop => Some(Blocked::Semop(id)),
        n if n == libc::SYS_msgrcv => Some(Blocked::Msgrcv(id)),
        n if n == libc::SYS_msgsnd => Some(Blocked::Msgsnd(id)),
        _ => None,
    }
}

/// Process `pid`'s /proc/PID/maps.
pub fn maps(pid: u32) -> Result<String, Errno> {
    std::fs::read_to_string(format!("/proc/{pid}/maps")).map_err(io_errno)
}

/// The IPC calls the threads of process `pid` are blocked in now.
pub fn blocked_calls(pid: u32) -> Vec<Blocked> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("syscall")).ok())
        .filter_map(|text| parse_syscall(&text))
        .collect()
}

/// The process thread `tid` belongs to (its `Tgid:`).
pub fn process_of(tid: u32) -> Option<u32> {
    super::proc::Status::read(tid).ok()?.tgid
}

/// Where process `pid` is: `/proc/PID` (what a link of `users/` points to).
pub fn process_path(pid: u32) -> String {
    format!("/proc/{pid}")
}

/// The command name of process `pid` (/proc/PID/comm).
pub fn command(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|c| c.trim_end_matches('\n').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysv_mappings_give_their_shmid() {
        let maps = "\
7f0000000000-7f0000001000 rw-s 00000000 00:01 5                          /SYSV00001234 (deleted)
7f0000002000-7f0000003000 r--s 00000000 00:01 32769                      /SYSV00000000 (deleted)
7f0000004000-7f0000005000 rw-s 00000000 00:05 7                          /dev/shm/not-sysv
7f0000006000-7f0000007000 rw-p 00000000 00:00 0 
55e000000000-55e000001000 r-xp 00000000 08:01 123                        /usr/bin/cat";
        assert_eq!(parse_maps(maps), BTreeSet::from([5, 32769]));
        assert_eq!(parse_maps(""), BTreeSet::new());
        let fuse = "7f0000008000-7f0000009000 rw-s 00000000 00:3d 70                         /mnt/ipc/shm/0";
        assert_eq!(parse_mapped_inodes(&format!("{maps}\n{fuse}"), libc::makedev(0, 0x3d)), BTreeSet::from([70]));
        assert_eq!(parse_mapped_inodes(fuse, libc::makedev(0, 0x3e)), BTreeSet::new());
    }

    #[test]
    fn blocked_ipc_calls_give_their_id() {
        let semop = format!("{} 0x2a 0x7ffd1234 0x1 0x0 0x0 0x0 0x7ffd0000 0x7f00", libc::SYS_semop);
        assert_eq!(parse_syscall(&semop), Some(Blocked::Semop(42)));
        let rcv = format!("{} 0x8000 0x7ffd 0x2000 0x0 0x0 0x0 0x7ffd0000 0x7f00", libc::SYS_msgrcv);
        assert_eq!(parse_syscall(&rcv), Some(Blocked::Msgrcv(32768)));
        let snd = format!("{} 0x0 0x7ffd 0x10 0x0 0x0 0x0 0x7ffd0000 0x7f00", libc::SYS_msgsnd);
        assert_eq!(parse_syscall(&snd), Some(Blocked::Msgsnd(0)));
        assert_eq!(parse_syscall("0 0x3 0x7ffd 0x10 0x0 0x0 0x0 0x1 0x2"), None, "read(2)");
        assert_eq!(parse_syscall("running"), None);
        assert_eq!(parse_syscall("-1 0x7ffd0000 0x7f00"), None);
        assert_eq!(parse_syscall(""), None);
    }
}
