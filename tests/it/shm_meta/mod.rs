//! Mounted tests of what segment files say about their segments and of
//! managing segments through them: the tree and its key links, stat and the
//! extended attributes against shmctl(IPC_STAT), ipcs and lsipc, chmod, chown
//! and rm as IPC_SET and IPC_RMID, recycled ids, the kernel's permission rule
//! for other users, and read-only mounts.
//!
//! Segments are checked through the kernel directly (shmctl, and attachments
//! held by the test, which detach synchronously on drop). Files are never
//! opened through the mount where nattch or a segment's destruction matters:
//! FUSE sends RELEASE asynchronously, so the daemon may still be attached for
//! a moment after close(2) returns.
//!
//! Here: what the tests share; the tests, by subject, in [`layout`] (the tree,
//! changes behind the daemon's back), [`meta`] (stat, the tools, extended
//! attributes), [`manage`] (chmod, chown, rm, recycled ids) and [`refused`]
//! (errnos, other users, read-only mounts).

mod layout;
mod manage;
mod meta;
mod refused;

use crate::common::*;
