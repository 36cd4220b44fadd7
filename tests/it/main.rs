//! The integration tests of ipcfs, built as one test binary: one link step,
//! one process, and a failing area does not hide the others (cargo runs the
//! whole binary). Run them with `tests/run.sh` (root, /dev/fuse); one area
//! with `cargo test --test it -- msg::`.
//!
//! - [`common`]: the harness every area shares: [`common::Mounted`] starts
//!   the real binary on a temporary directory in IPC and mount namespaces of
//!   the test thread's own and unmounts on drop, plus the helpers the areas
//!   share (shell commands, the kernel's own view of the objects, /proc).
//! - [`model`]: the filesystem model without a mount.
//! - One module per area of the mounted filesystem, each starting with what
//!   it covers.
//! - [`hostile`]: hostile input, in tables and against a reference model of
//!   the kernel (property tests).
//!
//! Every test runs on a thread of its own (libtest's), in IPC and mount
//! namespaces of that thread's own (`common::isolate`), so tests of every
//! area run side by side in this one process; what is process-wide (the
//! umask, rlimits, signal dispositions, the environment) no test changes.

mod common;

mod access;
mod all_namespaces;
mod budgets;
mod cookbook;
mod errors;
mod hostile;
mod install;
mod limits;
mod lsipc;
mod model;
mod mount;
mod msg;
mod names;
mod namespaces;
mod passthrough;
mod reliability;
mod rights;
mod sem;
mod shm_io;
mod shm_meta;
mod smoke;
mod tools;
