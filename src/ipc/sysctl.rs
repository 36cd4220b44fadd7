//! Sysctls: the files of /proc/sys ipcfs reads, and the ones it writes.
//!
//! The kernel answers for the namespaces of the thread that opens the file:
//! `kernel.shm*`, `msg*` and `sem` are those of its IPC namespace,
//! `kernel.hostname` that of its UTS namespace. Who may write one is the
//! kernel's to say when the file is opened, so a write made as a caller
//! (see [`super::creds`]) is decided as the caller's own would be.

use std::fs::OpenOptions;

use super::{Errno, io_errno};

/// One sysctl file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sysctl {
    /// `kernel.NAME`: /proc/sys/kernel/NAME (the IPC limits, `sem`, `hostname`).
    Kernel(&'static str),
    /// `vm.max_map_count`: how many mappings a process may have.
    MaxMapCount,
    /// `fs.fuse.max_pages_limit`: the most pages a FUSE request may carry.
    FuseMaxPagesLimit,
}

impl Sysctl {
    fn path(self) -> String {
        match self {
            Sysctl::Kernel(name) => format!("/proc/sys/kernel/{name}"),
            Sysctl::MaxMapCount => "/proc/sys/vm/max_map_count".into(),
            Sysctl::FuseMaxPagesLimit => "/proc/sys/fs/fuse/max_pages_limit".into(),
        }
    }

    /// The file's text, as the kernel writes it (with its newline).
    pub fn read(self) -> Result<String, Errno> {
        std::fs::read_to_string(self.path()).map_err(io_errno)
    }

    /// A sysctl that holds one number; `EINVAL` if it does not.
    pub fn read_number(self) -> Result<u64, Errno> {
        self.read()?.trim().parse().map_err(|_| Errno::EINVAL)
    }

    /// Opens the file for writing and closes it: whether the calling thread
    /// may write it, asked of the kernel without writing.
    pub fn open_for_writing(self) -> Result<(), Errno> {
        OpenOptions::new().write(true).open(self.path()).map(drop).map_err(io_errno)
    }

    /// Writes `value` in one write, as `echo value > file` does.
    pub fn write(self, value: &str) -> Result<(), Errno> {
        std::fs::write(self.path(), value).map_err(io_errno)
    }
}

/// `kernel.hostname` without its newline: the host name of the calling
/// thread's UTS namespace.
pub fn hostname() -> Result<String, Errno> {
    Ok(Sysctl::Kernel("hostname").read()?.trim_end_matches('\n').to_string())
}

/// The four fields of `kernel.sem`: SEMMSL SEMMNS SEMOPM SEMMNI. None if
/// the text is not four numbers.
pub fn parse_sem(text: &str) -> Option<[u64; 4]> {
    let fields: Vec<u64> = text.split_whitespace().map(|f| f.parse().ok()).collect::<Option<_>>()?;
    fields.try_into().ok()
}

/// `kernel.sem` as written back: the four fields, space-separated.
pub fn format_sem(fields: [u64; 4]) -> String {
    fields.map(|f| f.to_string()).join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_sem_is_four_numbers() {
        assert_eq!(parse_sem("32000\t1024000000\t500\t32000\n"), Some([32000, 1024000000, 500, 32000]));
        assert_eq!(parse_sem("1 2 3"), None);
        assert_eq!(parse_sem("1 2 3 4 5"), None);
        assert_eq!(parse_sem("1 2 x 4"), None);
        assert_eq!(format_sem([250, 32000, 100, 128]), "250 32000 100 128");
    }

    #[test]
    fn sysctls_read_here() {
        assert!(Sysctl::Kernel("shmmni").read_number().is_ok());
        assert!(parse_sem(&Sysctl::Kernel("sem").read().unwrap()).is_some());
        assert!(hostname().is_ok_and(|name| !name.ends_with('\n')));
        assert_eq!(Sysctl::Kernel("no-such-sysctl").read(), Err(Errno::ENOENT));
        assert_eq!(Sysctl::Kernel("sem").read_number(), Err(Errno::EINVAL), "four numbers are not one");
    }
}
