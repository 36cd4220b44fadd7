//! The daemon's own limits: descriptors (RLIMIT_NOFILE) and mappings
//! (vm.max_map_count), which budgets are drawn from; and the machine's page
//! size and memory.

use nix::unistd::{SysconfVar, sysconf};

use super::Errno;
use super::sysctl::Sysctl;

fn nofile() -> Result<libc::rlimit, Errno> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit through the pointer.
    Errno::result(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) })?;
    Ok(limit)
}

/// Raises this process's soft descriptor limit to its hard limit (systemd
/// starts services at 1,024), and returns the new soft limit.
pub fn raise_open_files() -> Result<u64, Errno> {
    let mut limit = nofile()?;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads one rlimit through the pointer.
        Errno::result(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) })?;
    }
    Ok(limit.rlim_cur)
}

/// This process's soft descriptor limit.
pub fn open_files() -> Result<u64, Errno> {
    Ok(nofile()?.rlim_cur)
}

/// vm.max_map_count: how many mappings a process may have.
pub fn max_map_count() -> Result<u64, Errno> {
    Sysctl::MaxMapCount.read_number()
}

/// The size of a page of memory (4096 if the system will not say).
pub fn page_size() -> u32 {
    sysconf(SysconfVar::PAGE_SIZE).ok().flatten().map_or(4096, |size| size as u32)
}

/// How many pages of physical memory the machine has, if it says.
pub fn physical_pages() -> Option<u64> {
    sysconf(SysconfVar::_PHYS_PAGES).ok().flatten().map(|pages| pages.max(0) as u64)
}
