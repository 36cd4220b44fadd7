//! The daemon's own limits: descriptors (RLIMIT_NOFILE) and mappings
//! (vm.max_map_count), which budgets are drawn from.

use super::Errno;

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
    let text = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    text.trim().parse().map_err(|_| Errno::EINVAL)
}
