//! The integration tests of ipcfs, built as one test binary: one link step,
//! one process, and a failing area does not hide the others (every test of
//! the binary runs). Run them all with `tests/run.sh` (as root, with
//! /dev/fuse); one area with `cargo test --test it -- msg::`, one subject of
//! it with `cargo test --test it -- msg::waits::`.
//!
//! - [`common`]: the harness every area shares. [`common::Mounted`] starts
//!   the real binary on a temporary directory in IPC and mount namespaces of
//!   the test thread's own and unmounts on drop; beside it, the helpers the
//!   areas share (shell commands, the objects as the kernel's own calls see
//!   them, /proc).
//! - [`model`]: the filesystem model without a mount.
//! - One module per area of the mounted filesystem, each starting with what
//!   it covers; the largest are folders, a module per subject under the
//!   helpers their tests share (`mod.rs`).
//! - [`hostile`]: hostile input, in tables and against a reference model of
//!   the kernel (a property test).
//!
//! Every test runs on a thread of its own (libtest's), in IPC and mount
//! namespaces of that thread's own (`common::isolate`), so the tests of
//! every area run side by side in this one process: no test changes what is
//! process-wide (the umask, rlimits, signal dispositions, the environment),
//! and names that must be unique take `common::unique_tag`, not the process
//! id alone.

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
mod metrics;
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
mod users;
