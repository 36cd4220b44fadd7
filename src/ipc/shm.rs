//! Shared memory segments: `shmget`, `shmat`/`shmdt`, `shmctl`.
//!
//! The daemon reaches a segment's bytes through its shmem file
//! ([`SegmentMemory`]), which is not an attachment: `shm_nattch` counts only
//! programs' attachments, and a segment removed while a file of it is open is
//! gone at once, as an unlinked file is. Where the daemon may not open that
//! file it attaches the segment instead, for as long as it needs the bytes.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::ptr::NonNull;
use std::sync::{Arc, OnceLock};

use super::family::{self, IdDs};
use super::flags::GetFlags;
use super::{Errno, IpcPerm, Key, io_errno};

// Not (all) exported by the libc crate for Linux; values from <linux/shm.h>.
const SHM_STAT_ANY: libc::c_int = 15;
const SHM_INFO: libc::c_int = 14;
/// Mode flag: the segment is marked for destruction (IPC_RMID while attached).
pub const SHM_DEST: u32 = 0o1000;
/// Mode flag: the segment is locked in memory (SHM_LOCK).
pub const SHM_LOCKED: u32 = 0o2000;

/// A segment id as `ipcs -m` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShmId(pub i32);

/// What `shmctl(IPC_STAT)` tells about a segment (`struct shmid_ds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShmStat {
    pub id: ShmId,
    pub perm: IpcPerm,
    pub segsz: u64,
    pub atime: i64,
    pub dtime: i64,
    pub ctime: i64,
    pub cpid: i32,
    pub lpid: i32,
    pub nattch: u64,
}

impl ShmStat {
    fn from_raw(id: libc::c_int, perm: IpcPerm, ds: &libc::shmid_ds) -> ShmStat {
        ShmStat {
            id: ShmId(id),
            perm,
            segsz: ds.shm_segsz as u64,
            atime: ds.shm_atime,
            dtime: ds.shm_dtime,
            ctime: ds.shm_ctime,
            cpid: ds.shm_cpid,
            lpid: ds.shm_lpid,
            nattch: ds.shm_nattch,
        }
    }

    /// Marked for destruction: it goes away when the last process detaches.
    pub fn is_dest(&self) -> bool {
        self.perm.mode & SHM_DEST != 0
    }

    pub fn is_locked(&self) -> bool {
        self.perm.mode & SHM_LOCKED != 0
    }
}

// SAFETY: shmid_ds is plain old data with its ipc_perm first, and shmctl takes it
// as its buffer.
unsafe impl IdDs for libc::shmid_ds {
    const STAT_ANY: libc::c_int = SHM_STAT_ANY;

    unsafe fn ctl(id: libc::c_int, cmd: libc::c_int, buf: *mut Self) -> libc::c_int {
        // SAFETY: the caller passes a buffer fit for cmd (IdDs::ctl).
        unsafe { libc::shmctl(id, cmd, buf) }
    }
}

/// `shmget(key, size, flags)`: find or create a segment.
pub fn get(key: Key, size: u64, flags: impl Into<GetFlags>) -> Result<ShmId, Errno> {
    let size = usize::try_from(size).map_err(|_| Errno::EINVAL)?;
    // SAFETY: shmget takes no pointers.
    let id = Errno::result(unsafe { libc::shmget(key.0, size, flags.into().bits()) })?;
    Ok(ShmId(id))
}

/// `shmctl(IPC_STAT)`: needs read permission on the segment.
pub fn stat(id: ShmId) -> Result<ShmStat, Errno> {
    family::stat(id.0, ShmStat::from_raw)
}

/// The segment with this id, whoever may read it (`SHM_STAT_ANY`, as
/// /proc/sysvipc/shm shows every segment). `ENOENT` when no segment has the id.
pub fn stat_any(id: ShmId) -> Result<ShmStat, Errno> {
    family::stat_any(id.0, ShmStat::from_raw)
}

/// `shmctl(IPC_SET)`: set owner, group and permission bits.
pub fn set(id: ShmId, uid: u32, gid: u32, mode: u32) -> Result<(), Errno> {
    family::set::<libc::shmid_ds>(id.0, uid, gid, mode, |_| {})
}

/// `shmctl(SHM_LOCK)` / `shmctl(SHM_UNLOCK)`: keep the segment in memory.
pub fn set_locked(id: ShmId, locked: bool) -> Result<(), Errno> {
    let cmd = if locked { libc::SHM_LOCK } else { libc::SHM_UNLOCK };
    // SAFETY: SHM_LOCK and SHM_UNLOCK take no buffer.
    Errno::result(unsafe { libc::shmctl(id.0, cmd, std::ptr::null_mut()) })?;
    Ok(())
}

/// `shmctl(IPC_RMID)`: destroy now, or mark for destruction while attached.
pub fn remove(id: ShmId) -> Result<(), Errno> {
    family::remove::<libc::shmid_ds>(id.0)
}

/// System-wide usage, from `shmctl(SHM_INFO)` (`struct shm_info`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShmUsage {
    pub used_ids: u64,
    /// Pages of shared memory in all segments.
    pub total_pages: u64,
}

#[repr(C)]
struct RawShmInfo {
    used_ids: libc::c_int,
    shm_tot: libc::c_ulong,
    shm_rss: libc::c_ulong,
    shm_swp: libc::c_ulong,
    swap_attempts: libc::c_ulong,
    swap_successes: libc::c_ulong,
}

pub fn usage() -> Result<ShmUsage, Errno> {
    let mut info = MaybeUninit::<RawShmInfo>::uninit();
    // SAFETY: SHM_INFO writes a struct shm_info, which RawShmInfo mirrors.
    Errno::result(unsafe { libc::shmctl(0, SHM_INFO, info.as_mut_ptr().cast()) })?;
    // SAFETY: SHM_INFO succeeded, so the kernel filled in info.
    let info = unsafe { info.assume_init_ref() };
    Ok(ShmUsage { used_ids: info.used_ids as u64, total_pages: info.shm_tot })
}

/// Copies through a mapping of at least this many bytes map their pages in
/// first, with one call.
const LARGE: usize = 64 * 1024;
const PAGE: usize = 4096;

/// Pages mapped into the daemon: a `shmat` attachment, or an `mmap` of a
/// segment's file. Unmapped on drop.
#[derive(Debug)]
struct Mapping {
    addr: NonNull<u8>,
    /// The bytes that are the segment's (the mapping may be longer).
    len: usize,
    writable: bool,
    /// `Some(length)` for an mmap, `None` for an attachment.
    mmap_len: Option<usize>,
}

// SAFETY: the mapping belongs to the whole process, and the bytes are only
// reached through raw-pointer copies, system calls and, for the length of
// one reply, a `&[u8]` handed to writev (Window::lend). That slice is
// formally an aliasing reference to memory other processes may change, as
// with any shared mapping (memmap2 does the same); only the kernel reads it.
// Sharing a mapping between threads is no different from sharing it with the
// other processes attached to the segment.
unsafe impl Send for Mapping {}
// SAFETY: as for Send.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn attach(id: ShmId, len: u64, writable: bool) -> Result<Mapping, Errno> {
        let len = usize::try_from(len).map_err(|_| Errno::EFBIG)?;
        let flags = if writable { 0 } else { libc::SHM_RDONLY };
        // SAFETY: a null address lets the kernel choose where to map.
        let addr = unsafe { libc::shmat(id.0, std::ptr::null(), flags) };
        if addr as isize == -1 {
            return Err(Errno::last());
        }
        let addr = NonNull::new(addr.cast::<u8>()).ok_or(Errno::EFAULT)?;
        Ok(Mapping { addr, len, writable, mmap_len: None })
    }

    /// Maps all of `file` shared, for reading and writing; `len` of it are
    /// the segment's bytes.
    fn map_file(file: &File, len: usize) -> Result<Mapping, Errno> {
        let whole = usize::try_from(file.metadata().map_err(io_errno)?.len()).map_err(|_| Errno::EFBIG)?;
        if whole < len {
            return Err(Errno::EINVAL);
        }
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: a fresh shared mapping of a file we hold, at an address the
        // kernel chooses; it changes no memory of ours.
        let addr = unsafe { libc::mmap(std::ptr::null_mut(), whole, prot, libc::MAP_SHARED, file.as_raw_fd(), 0) };
        if addr == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        let addr = NonNull::new(addr.cast::<u8>()).ok_or(Errno::EFAULT)?;
        Ok(Mapping { addr, len, writable: true, mmap_len: Some(whole) })
    }

    /// The segment's shmem file, opened through this attachment (see
    /// [`shmem_file`]).
    fn open_file(&self) -> Result<File, Errno> {
        /// This process's /proc/self/map_files/, opened once (it stays this
        /// process's): each open of a segment's file is then one lookup
        /// instead of a walk of four.
        static MAP_FILES: OnceLock<Option<File>> = OnceLock::new();
        let start = self.addr.as_ptr() as usize;
        let name = format!("{:x}-{:x}", start, start + self.len.next_multiple_of(PAGE));
        let dir = MAP_FILES.get_or_init(|| {
            let flags = libc::O_PATH | libc::O_DIRECTORY;
            OpenOptions::new().read(true).custom_flags(flags).open("/proc/self/map_files").ok()
        });
        let Some(dir) = dir else {
            return OpenOptions::new()
                .read(true)
                .write(true)
                .open(format!("/proc/self/map_files/{name}"))
                .map_err(io_errno);
        };
        let name = std::ffi::CString::new(name).map_err(|_| Errno::EINVAL)?;
        // SAFETY: openat reads a NUL-terminated name; the descriptor it
        // returns is new and owned by the File made from it.
        let fd =
            Errno::result(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })?;
        // SAFETY: fd is a fresh descriptor nothing else owns.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Maps in the pages of `start..start+count` with one call, instead of a
    /// page fault for each page as the copy touches it (a fresh attachment has
    /// none mapped). Only a hint: where it fails, the copy faults them in.
    fn populate(&self, start: usize, count: usize) {
        const MADV_POPULATE_READ: libc::c_int = 22;
        const MADV_POPULATE_WRITE: libc::c_int = 23;
        if count < LARGE {
            return;
        }
        let first = start / PAGE * PAGE;
        let advice = if self.writable { MADV_POPULATE_WRITE } else { MADV_POPULATE_READ };
        // SAFETY: first..start+count lies inside the mapping (which starts on
        // a page boundary); madvise only maps pages in, it never changes them.
        unsafe { libc::madvise(self.addr.as_ptr().add(first).cast(), start + count - first, advice) };
    }

    fn read_at(&self, offset: u64, len: usize) -> Vec<u8> {
        let (start, count) = clamp(self.len, offset, len);
        self.populate(start, count);
        let mut out = Vec::with_capacity(count);
        // SAFETY: start..start+count lies inside the mapping (clamp), and out
        // has capacity for count bytes, which the copy initialises.
        unsafe {
            std::ptr::copy_nonoverlapping(self.addr.as_ptr().add(start), out.as_mut_ptr(), count);
            out.set_len(count);
        }
        out
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<usize, Errno> {
        if !self.writable {
            return Err(Errno::EBADF);
        }
        let (start, count) = clamp(self.len, offset, data.len());
        self.populate(start, count);
        // SAFETY: start..start+count lies inside a writable mapping (clamp and
        // the check above), and data holds at least count bytes.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.addr.as_ptr().add(start), count) };
        Ok(count)
    }

    /// The bytes of `start..start+count` (inside the mapping), for the
    /// kernel to copy (see [`Window::lend`]).
    fn slice(&self, start: usize, count: usize) -> &[u8] {
        assert!(start + count <= self.len);
        self.populate(start, count);
        // SAFETY: start..start+count lies inside the mapping (the assert),
        // which lives as long as self. Concurrent changes by other processes
        // are why the slice may only go to the kernel, which copies shared
        // memory as it finds it.
        unsafe { std::slice::from_raw_parts(self.addr.as_ptr().add(start), count) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let ok = match self.mmap_len {
            // SAFETY: addr came from a successful shmat and is detached only here.
            None => (unsafe { libc::shmdt(self.addr.as_ptr().cast()) }) == 0,
            // SAFETY: addr..addr+len came from a successful mmap, unmapped only here.
            Some(len) => (unsafe { libc::munmap(self.addr.as_ptr().cast(), len) }) == 0,
        };
        if !ok {
            log::warn!("unmapping a segment failed: {}", Errno::last());
        }
    }
}

/// The part of `offset..offset+len` inside `size` bytes, as (start, count).
fn clamp(size: usize, offset: u64, len: usize) -> (usize, usize) {
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(size);
    (start, len.min(size - start))
}

/// A segment attached (`shmat`): counted in `shm_nattch` for as long as it
/// lives, detached on drop. What a program that uses a segment holds.
#[derive(Debug)]
pub struct Attachment(Mapping);

impl Attachment {
    /// `shmat` the segment; read-only unless `writable`. `len` must be the
    /// segment's size (`shm_segsz`), which never changes.
    pub fn attach(id: ShmId, len: u64, writable: bool) -> Result<Attachment, Errno> {
        Mapping::attach(id, len, writable).map(Attachment)
    }

    pub fn len(&self) -> u64 {
        self.0.len as u64
    }

    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// Copies up to `len` bytes from `offset`; fewer at the end, none past it.
    pub fn read_at(&self, offset: u64, len: usize) -> Vec<u8> {
        self.0.read_at(offset, len)
    }

    /// Copies as much of `data` as fits from `offset`; returns the count.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<usize, Errno> {
        self.0.write_at(offset, data)
    }
}

/// The segment's own shmem file (`/SYSV<key> (deleted)` in the kernel's
/// internal tmpfs or hugetlbfs), open for reading and writing. Found by
/// attaching the segment and opening the mapping's file through
/// `/proc/self/map_files/`, which needs CAP_SYS_ADMIN (or
/// CAP_CHECKPOINT_RESTORE); the attachment is gone when this returns.
///
/// Holding the file is not an attachment: `shm_nattch` does not count it, and
/// IPC_RMID removes the segment at once. The memory stays, and the file
/// keeps reading and writing it, until the file is closed: as with an
/// unlinked tmpfs file. The file is not bounded: a write past its end grows
/// it (and a later shmat would map the growth), so only [`SegmentMemory`]
/// writes to it.
pub fn shmem_file(id: ShmId, len: u64) -> Result<File, Errno> {
    Mapping::attach(id, len, true)?.open_file()
}

/// A segment's bytes as the daemon holds them for an open file: its shmem
/// file where the daemon may open it, else an attachment.
///
/// Through the file, `pread`/`pwrite` copy straight between the page cache
/// and our buffers, as a tmpfs read does, and the segment is not attached
/// (see [`shmem_file`]). A hugetlbfs file has no `write`: writes go through
/// a mapping of the file, made at the first one.
#[derive(Debug)]
pub struct SegmentMemory {
    len: usize,
    writable: bool,
    reach: Reach,
}

#[derive(Debug)]
enum Reach {
    File { file: File, mapped: OnceLock<Result<Mapping, Errno>> },
    Attached(Mapping),
}

impl SegmentMemory {
    /// Holds segment `id` of `len` bytes (its `shm_segsz`), for writing if
    /// `writable`: through its shmem file if `use_file` and the daemon may
    /// open it, else attached.
    pub fn open(id: ShmId, len: u64, writable: bool, use_file: bool) -> Result<SegmentMemory, Errno> {
        let attached = Mapping::attach(id, len, writable)?;
        let size = attached.len;
        let reach = match use_file.then(|| attached.open_file()) {
            Some(Ok(file)) => Reach::File { file, mapped: OnceLock::new() },
            _ => Reach::Attached(attached),
        };
        Ok(SegmentMemory { len: size, writable, reach })
    }

    pub fn len(&self) -> u64 {
        self.len as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The shmem file, where the segment is held through it.
    pub fn file(&self) -> Option<&File> {
        match &self.reach {
            Reach::File { file, .. } => Some(file),
            Reach::Attached(_) => None,
        }
    }

    /// Whether the segment is attached (counted in `shm_nattch`).
    pub fn is_attached(&self) -> bool {
        matches!(self.reach, Reach::Attached(_))
    }

    /// Up to `len` bytes from `offset` (fewer at the end, none past it), to
    /// be read when a reply is sent.
    pub fn window(self: &Arc<Self>, offset: u64, len: usize) -> Window {
        let (start, count) = clamp(self.len, offset, len);
        Window { memory: self.clone(), start, count }
    }

    /// Copies as much of `data` as fits from `offset`; returns the count.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<usize, Errno> {
        if !self.writable {
            return Err(Errno::EBADF);
        }
        let (start, count) = clamp(self.len, offset, data.len());
        match &self.reach {
            Reach::Attached(mapping) => mapping.write_at(offset, data),
            Reach::File { file, mapped } => match file.write_all_at(&data[..count], start as u64) {
                Ok(()) => Ok(count),
                // A hugetlbfs file (SHM_HUGETLB) has no write: map it.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    let mapping = mapped.get_or_init(|| Mapping::map_file(file, self.len));
                    mapping.as_ref().map_err(|e| *e)?.write_at(offset, data)
                }
                Err(e) => Err(io_errno(e)),
            },
        }
    }

    /// Sets every byte from `offset` to the end to zero.
    pub fn zero_from(&self, offset: u64) -> Result<(), Errno> {
        let zeros = vec![0; LARGE];
        let (mut at, _) = clamp(self.len, offset, 0);
        while at < self.len {
            at += self.write_at(at as u64, &zeros[..LARGE.min(self.len - at)])?;
        }
        Ok(())
    }
}

thread_local! {
    /// Each thread's buffer for the bytes of a read reply: reused, so a
    /// 1 MiB read costs no allocation and no fresh pages.
    static REPLY_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Bytes of a held segment, read when they are sent; the segment stays
/// held while the window lives.
#[derive(Debug)]
pub struct Window {
    memory: Arc<SegmentMemory>,
    start: usize,
    count: usize,
}

impl Window {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Lends the bytes (or the errno of reading them) to `send`, which
    /// should only hand them to a system call or copy them, never look at
    /// them twice: when they come straight from a mapping, other processes
    /// attached to the segment may change them at any moment.
    pub fn lend<R>(&self, send: impl FnOnce(Result<&[u8], Errno>) -> R) -> R {
        match &self.memory.reach {
            Reach::Attached(mapping) => send(Ok(mapping.slice(self.start, self.count))),
            Reach::File { file, .. } => REPLY_BUFFER.with_borrow_mut(|buffer| {
                buffer.resize(buffer.len().max(self.count), 0);
                match file.read_at(&mut buffer[..self.count], self.start as u64) {
                    Ok(n) => send(Ok(&buffer[..n])),
                    Err(e) => send(Err(io_errno(e))),
                }
            }),
        }
    }
}
