//! How objects look in stat(2): what the kernel's times and sizes become.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// st_blksize: large, so that cat, cp and dd pick big buffers.
pub const BLOCK_SIZE: u32 = 1 << 20;

/// A kernel time in seconds; 0 (never set) shows as `fallback`.
pub fn kernel_time(seconds: i64, fallback: i64) -> SystemTime {
    let seconds = if seconds == 0 { fallback } else { seconds };
    UNIX_EPOCH + Duration::from_secs(seconds.max(0) as u64)
}
