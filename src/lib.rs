//! ipcfs: System V IPC objects as files.
//!
//! Three layers, one direction: [`ipc`] wraps the system calls and the files
//! of /proc (the only unsafe code, and the only code that names `libc` or
//! opens /proc), [`fs`] is the filesystem model in plain Rust types, and
//! [`fuse`] adapts the model to fuser. Beside the adapter, [`router`] says
//! which IPC namespace's model serves a request and who may enter it.
//! [`options`] parses `-o`.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod fs;
pub mod fuse;
pub mod ipc;
pub mod options;
pub mod router;
