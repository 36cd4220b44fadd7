//! Segment files served by FUSE passthrough from their shmem files.

use super::*;

/// Segment files served by FUSE passthrough: the kernel reads, writes and
/// maps them from the segment's own shmem file, registered with it once per
/// inode (every open of an inode must use the same one) and kept while the
/// inode has opens: letting go of it right after the reply to OPEN races
/// the kernel's use of it.
pub(super) struct Backings {
    /// Asked for (`-o passthrough`, the default), offered by the kernel,
    /// and not refused to the daemon (it needs CAP_SYS_ADMIN in the initial
    /// user namespace). The model's, which shows it.
    pub(super) on: Arc<AtomicBool>,
    pub(super) by_inode: Mutex<HashMap<u64, Backing>>,
}

pub(super) struct Backing {
    /// The kernel's reference to the segment's shmem file (the daemon's own
    /// descriptor for it belongs to the open file it was registered from).
    id: BackingId,
    /// The open files using it.
    handles: HashSet<u64>,
}

impl Backings {
    /// Replies to the open `o` of segment inode `ino` (`writes`: opened for
    /// writing) with passthrough, or as a plain open if it cannot be had.
    /// Reads of a read-only open never reach the daemon; writes still do
    /// (FOPEN_DIRECT_IO), so that nothing can grow a segment.
    pub(super) fn open(&self, fs: &IpcFs, ino: u64, o: Opened, writes: bool, reply: ReplyOpen) {
        if !self.on.load(Ordering::Relaxed) {
            return reply.opened(FileHandle(o.fh), open_flags(o));
        }
        let mut by_inode = self.by_inode.lock().unwrap_or_else(|p| p.into_inner());
        let backing = match by_inode.entry(ino) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => match fs.with_segment_file(o.fh, |f| reply.open_backing(f))
            {
                Ok(Ok(id)) => v.insert(Backing { id, handles: HashSet::new() }),
                Ok(Err(e)) if e.raw_os_error() == Some(crate::ipc::Errno::EPERM as i32) => {
                    self.on.store(false, Ordering::Relaxed);
                    log::info!(
                        "the kernel refuses FUSE passthrough to this daemon ({e}): segment files are served through the daemon"
                    );
                    return reply.opened(FileHandle(o.fh), open_flags(o));
                }
                Ok(Err(e)) => {
                    log::debug!("segment inode {ino} is served through the daemon: {e}");
                    return reply.opened(FileHandle(o.fh), open_flags(o));
                }
                Err(e) => {
                    log::debug!("segment inode {ino} is served through the daemon: {e}");
                    return reply.opened(FileHandle(o.fh), open_flags(o));
                }
            },
        };
        backing.handles.insert(o.fh);
        let flags = if writes {
            FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES
        } else {
            FopenFlags::empty()
        };
        reply.opened_passthrough(FileHandle(o.fh), flags, &backing.id);
    }

    /// Open file `fh` of `ino` is closed: the last one lets go of the backing file.
    pub(super) fn release(&self, ino: u64, fh: u64) {
        let mut by_inode = self.by_inode.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(backing) = by_inode.get_mut(&ino) {
            backing.handles.remove(&fh);
            if backing.handles.is_empty() {
                by_inode.remove(&ino);
            }
        }
    }
}
