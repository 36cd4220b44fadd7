//! Mounted tests of the data path of segment files: read, write, truncate,
//! append, bulk copies with dd/cat/cp/cmp, creating segments with truncate and
//! fallocate, the daemon's own attachments (`shm_nattch`), and the access mode
//! of an open file.
//!
//! Every test checks the segment behind the file with the kernel's own calls
//! (`shmget`, `shmctl`, an attachment of the test's own playing "another
//! process"), so a file that merely looks right is not enough to pass.
//!
//! Here: the helpers the tests share; the tests, by subject, in [`io`]
//! (reading, writing, the end of a segment), [`truncate`] (O_TRUNC, truncate,
//! O_APPEND), [`copies`] (dd, cat, cp, cmp), [`create`] (creating segments with
//! standard tools) and [`held`] (what the daemon holds, the access mode of an
//! open file).

mod copies;
mod create;
mod held;
mod io;
mod truncate;

use crate::common::*;

use std::path::Path;

// ---- helpers ----

/// The id of the segment with this key (`shmget(key, 0, 0)`).
fn id_of_key(key: u32) -> Result<ShmId, i32> {
    shm::get(Key(key as i32), 0, 0).map_err(|e| e as i32)
}

fn p(path: &Path) -> String {
    path.display().to_string()
}
