//! nullfs: the FUSE yardstick for ipcfs's benchmarks (benches/run.sh).
//!
//! A fuser filesystem that does nothing but answer, configured like ipcfs
//! (the same fuser, event-loop threads, clone_fd, 1 MiB requests, direct I/O,
//! attributes and entries never cached), so that what ipcfs costs beyond it
//! is what ipcfs itself does:
//!
//! ```text
//! MOUNT/zero     256 MiB (--size) of zeros: direct I/O, reads answered from one
//!                preallocated buffer, writes acknowledged and dropped
//! MOUNT/small    4096 bytes, the same
//! MOUNT/stream   4096 bytes, the same but a stream (FOPEN_STREAM|NONSEEKABLE),
//!                as ipcfs's semaphore and queue files are
//! ```
//!
//! `cargo run --release --example nullfs -- MOUNTPOINT`; stays in the
//! foreground, unmounts on SIGINT/SIGTERM/SIGHUP (or `umount MOUNTPOINT`).

#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use clap::Parser;
use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, KernelConfig,
    LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyWrite, Request, WriteFlags,
};
use nix::mount::{MntFlags, umount2};
use nix::sys::signal::{SigSet, Signal};

/// Largest read and write request, as ipcfs asks for.
const MAX_IO: u32 = 1 << 20;
/// Nothing is cached: every stat is a GETATTR, every path walk a LOOKUP, as
/// for ipcfs's live objects.
const TTL: Duration = Duration::ZERO;

const ROOT: u64 = 1;
const ZERO: u64 = 2;
const SMALL: u64 = 3;
const STREAM: u64 = 4;
const SMALL_SIZE: u64 = 4096;

/// A FUSE filesystem that only answers (the benchmarks' yardstick).
#[derive(Parser, Debug)]
#[command(name = "nullfs")]
struct Cli {
    /// Size of MOUNT/zero in bytes.
    #[arg(long, default_value_t = 256 << 20)]
    size: u64,
    /// Event-loop threads (ipcfs uses 2).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Where to mount.
    mountpoint: PathBuf,
}

struct NullFs {
    size: u64,
    /// What every read is answered from: allocated and touched once, so
    /// replies copy from real memory (not the shared zero page).
    zeros: Box<[u8]>,
}

impl NullFs {
    fn new(size: u64) -> NullFs {
        let mut zeros = vec![1u8; MAX_IO as usize];
        std::hint::black_box(&mut zeros);
        zeros.fill(0);
        NullFs { size, zeros: zeros.into_boxed_slice() }
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let (kind, size, perm, nlink) = match ino {
            ROOT => (FileType::Directory, 0, 0o755, 2),
            ZERO => (FileType::RegularFile, self.size, 0o666, 1),
            SMALL | STREAM => (FileType::RegularFile, SMALL_SIZE, 0o666, 1),
            _ => return None,
        };
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind,
            perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: MAX_IO,
            flags: 0,
        })
    }

    fn size_of(&self, ino: u64) -> u64 {
        if ino == ZERO { self.size } else { SMALL_SIZE }
    }
}

impl Filesystem for NullFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(MAX_IO);
        let _ = config.set_max_readahead(MAX_IO);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let ino = match (parent.0, name.as_encoded_bytes()) {
            (ROOT, b"zero") => ZERO,
            (ROOT, b"small") => SMALL,
            (ROOT, b"stream") => STREAM,
            _ => return reply.error(Errno::ENOENT),
        };
        match self.attr(ino) {
            Some(attr) => reply.entry(&TTL, &attr, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino.0) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut flags = FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES;
        match ino.0 {
            ZERO | SMALL => {}
            STREAM => flags |= FopenFlags::FOPEN_STREAM | FopenFlags::FOPEN_NONSEEKABLE,
            ROOT => return reply.error(Errno::EISDIR),
            _ => return reply.error(Errno::ENOENT),
        }
        reply.opened(FileHandle(0), flags);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // A stream has no position: every read is a fresh "message".
        let offset = if ino.0 == STREAM { 0 } else { offset };
        let left = self.size_of(ino.0).saturating_sub(offset);
        let n = left.min(u64::from(size)).min(self.zeros.len() as u64) as usize;
        reply.data(&self.zeros[..n]);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.written(data.len() as u32);
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        if ino.0 != ROOT {
            return reply.error(Errno::ENOTDIR);
        }
        let entries = [
            (ROOT, FileType::Directory, "."),
            (ROOT, FileType::Directory, ".."),
            (ZERO, FileType::RegularFile, "zero"),
            (SMALL, FileType::RegularFile, "small"),
            (STREAM, FileType::RegularFile, "stream"),
        ];
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn,fuser::session=error")).init();
    // Block the stop signals before any thread starts; one thread waits for them.
    let mut stop = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        stop.add(signal);
    }
    if let Err(e) = stop.thread_block() {
        eprintln!("nullfs: cannot block signals: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("nullfs".into()),
        MountOption::Subtype("nullfs".into()),
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    config.n_threads = Some(cli.threads.max(1));
    config.clone_fd = true;
    let session = match fuser::Session::new(NullFs::new(cli.size), &cli.mountpoint, &config) {
        Ok(session) => session,
        Err(e) => {
            eprintln!("nullfs: cannot mount on {}: {e}", cli.mountpoint.display());
            return std::process::ExitCode::FAILURE;
        }
    };
    let target = cli.mountpoint.clone();
    std::thread::spawn(move || unmount_on_signal(stop, &target));
    match session.run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nullfs: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn unmount_on_signal(stop: SigSet, mountpoint: &Path) {
    if stop.wait().is_ok() && umount2(mountpoint, MntFlags::empty()).is_err() {
        let _ = umount2(mountpoint, MntFlags::MNT_DETACH);
    }
    if stop.wait().is_ok() {
        std::process::exit(1);
    }
}
