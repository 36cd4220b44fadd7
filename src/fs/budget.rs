//! What callers may make the daemon spend.
//!
//! A root daemon serves every user, so whatever it holds on a caller's
//! behalf comes out of one shared pool: its mappings (vm.max_map_count, which
//! a failed thread start turns into an abort), its descriptors
//! (RLIMIT_NOFILE), its threads and its memory. Each of those is charged
//! here, per user and in all, and a charge refused is that caller's errno:
//! the daemon never runs short for the others.
//!
//! - [`Spend::File`]: an open file or directory (its handle, and a listing's
//!   snapshot). Per user: `-o user_files` (EMFILE beyond).
//! - [`Spend::Name`]: a queue file's name the kernel was given by a lookup
//!   and not yet let go of (it is told to at once, see `fuse::Forgetter`);
//!   the daemon keeps an inode for each. Per user: `user_files` too
//!   (EAGAIN beyond: the names come back as the kernel lets go of them).
//! - [`Spend::Wait`]: an operation parked on a thread of its own (a P, a
//!   receive under `.wait/`, a send to a full queue, a long walk of a queue).
//!   Per user: `-o user_waits`; in all, an eighth of vm.max_map_count (a
//!   thread costs the daemon about four mappings). EAGAIN beyond.
//! - [`Spend::Mapping`]: one for each open segment file, which may map the
//!   segment (an attachment where the daemon cannot hold its file, or a
//!   mapping of a hugetlb segment's file to write it). In all, a quarter of
//!   vm.max_map_count (ENOMEM beyond); per user, `user_files` bounds it
//!   already.
//! - [`Spend::Descriptor`]: a descriptor held for a while: the shmem file an
//!   open segment file reads and writes through (beyond the budget, that open
//!   attaches the segment instead: nothing is refused), or a waiting caller's
//!   /proc status (a wait beyond it gets EAGAIN). In all, the descriptor
//!   limit less a reserve for the daemon's own work.
//!
//! - [`Spend::Memory`]: bytes the daemon holds for a caller: the snapshot of
//!   a queue that reading a listed queue file shows. Per user 64 MiB, in all
//!   512 MiB (ENOMEM beyond).
//!
//! A [`Charge`] gives its units back when dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::error::{Error, Result};
use crate::ipc::Errno;

/// Per-user budgets, as `-o user_files` and `-o user_waits` set them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserBudget {
    pub files: usize,
    pub waits: usize,
}

impl Default for UserBudget {
    /// A user's own process may hold 1,024 files by default (systemd's soft
    /// RLIMIT_NOFILE); 256 parked operations cost the daemon 256 threads.
    fn default() -> Self {
        UserBudget { files: 1024, waits: 256 }
    }
}

/// What a charge is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Spend {
    File,
    /// A queue file's name the kernel has not let go of yet.
    Name,
    Wait,
    Mapping,
    Descriptor,
    /// Bytes, charged many at a time (see [`Budgets::charge_bytes`]).
    Memory,
}

/// The bytes one user may make the daemon hold, and all users together.
const USER_MEMORY: usize = 64 << 20;
const TOTAL_MEMORY: usize = 512 << 20;

/// Descriptors the daemon keeps for itself: /proc reads, listings, the
/// FUSE device, watchers.
const DESCRIPTOR_RESERVE: u64 = 256;
/// vm.max_map_count when it cannot be read: the kernel's default.
const DEFAULT_MAX_MAP_COUNT: u64 = 65530;

pub struct Budgets {
    user: UserBudget,
    /// The most of each kind in all (None: only the per-user bound).
    total: HashMap<Spend, usize>,
    used: Mutex<Used>,
}

#[derive(Default)]
struct Used {
    by_user: HashMap<(u32, Spend), usize>,
    total: HashMap<Spend, usize>,
}

impl Budgets {
    /// Budgets for this daemon: `user` per user, and totals from the
    /// kernel's limits on this process.
    pub fn new(user: UserBudget) -> Arc<Budgets> {
        let maps = max_map_count();
        let descriptors = crate::ipc::limits::open_files().unwrap_or(1024).saturating_sub(DESCRIPTOR_RESERVE);
        Budgets::with_totals(user, maps / 4, maps / 8, descriptors)
    }

    fn with_totals(user: UserBudget, mappings: u64, waits: u64, descriptors: u64) -> Arc<Budgets> {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let total = HashMap::from([
            (Spend::Mapping, size(mappings)),
            (Spend::Wait, size(waits)),
            (Spend::Descriptor, size(descriptors)),
            (Spend::Memory, TOTAL_MEMORY),
        ]);
        Arc::new(Budgets { user, total, used: Mutex::new(Used::default()) })
    }

    pub fn user(&self) -> UserBudget {
        self.user
    }

    fn per_user(&self, spend: Spend) -> Option<usize> {
        match spend {
            Spend::File | Spend::Name => Some(self.user.files),
            Spend::Wait => Some(self.user.waits),
            Spend::Mapping | Spend::Descriptor => None,
            Spend::Memory => Some(USER_MEMORY),
        }
    }

    /// One unit of `spend` for user `uid`, or the errno that tells the
    /// caller it has used up its share (or the daemon its whole).
    pub fn charge(self: &Arc<Self>, uid: u32, spend: Spend) -> Result<Charge> {
        self.charge_n(uid, spend, 1)
    }

    /// `bytes` of memory held for user `uid` ([`Spend::Memory`]).
    pub fn charge_bytes(self: &Arc<Self>, uid: u32, bytes: usize) -> Result<Charge> {
        self.charge_n(uid, Spend::Memory, bytes)
    }

    fn charge_n(self: &Arc<Self>, uid: u32, spend: Spend, n: usize) -> Result<Charge> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let mine = used.by_user.get(&(uid, spend)).copied().unwrap_or(0);
        let all = used.total.get(&spend).copied().unwrap_or(0);
        let beyond = |used: usize, most: usize| used.checked_add(n).is_none_or(|after| after > most);
        if self.per_user(spend).is_some_and(|most| beyond(mine, most)) {
            return Err(Error::Budget(match spend {
                Spend::File => Errno::EMFILE,
                Spend::Memory => Errno::ENOMEM,
                _ => Errno::EAGAIN,
            }));
        }
        if self.total.get(&spend).is_some_and(|&most| beyond(all, most)) {
            return Err(Error::Budget(match spend {
                Spend::File | Spend::Name | Spend::Descriptor => Errno::ENFILE,
                Spend::Mapping | Spend::Memory => Errno::ENOMEM,
                Spend::Wait => Errno::EAGAIN,
            }));
        }
        *used.by_user.entry((uid, spend)).or_insert(0) += n;
        *used.total.entry(spend).or_insert(0) += n;
        Ok(Charge { budgets: self.clone(), uid, spend, amount: n })
    }

    /// How many units of `spend` user `uid` holds (for tests and diagnostics).
    pub fn used_by(&self, uid: u32, spend: Spend) -> usize {
        self.used.lock().unwrap_or_else(|p| p.into_inner()).by_user.get(&(uid, spend)).copied().unwrap_or(0)
    }

    fn give_back(&self, uid: u32, spend: Spend, amount: usize) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = used.by_user.get_mut(&(uid, spend)) {
            *n = n.saturating_sub(amount);
            if *n == 0 {
                used.by_user.remove(&(uid, spend));
            }
        }
        if let Some(n) = used.total.get_mut(&spend) {
            *n = n.saturating_sub(amount);
        }
    }
}

/// vm.max_map_count; the kernel's default when it cannot be read (the
/// budgets then still stay within what a default kernel allows).
fn max_map_count() -> u64 {
    crate::ipc::limits::max_map_count().unwrap_or(DEFAULT_MAX_MAP_COUNT)
}

/// One unit of a budget, given back when dropped.
#[derive(Debug)]
pub struct Charge {
    budgets: Arc<Budgets>,
    uid: u32,
    spend: Spend,
    amount: usize,
}

impl std::fmt::Debug for Budgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budgets").field("user", &self.user).finish_non_exhaustive()
    }
}

impl Charge {
    /// Keeps only `amount` of what was charged (at most all of it), giving
    /// the rest back.
    pub fn shrink_to(&mut self, amount: usize) {
        if amount < self.amount {
            self.budgets.give_back(self.uid, self.spend, self.amount - amount);
            self.amount = amount;
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budgets.give_back(self.uid, self.spend, self.amount);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_refused_beyond_its_share_and_others_are_not() {
        let budgets = Budgets::with_totals(UserBudget { files: 2, waits: 1 }, 100, 100, 100);
        let a = [budgets.charge(1, Spend::File).unwrap(), budgets.charge(1, Spend::File).unwrap()];
        assert_eq!(budgets.charge(1, Spend::File).unwrap_err().errno(), Errno::EMFILE as i32);
        let _b = budgets.charge(2, Spend::File).expect("another user");
        let _w = budgets.charge(1, Spend::Wait).unwrap();
        assert_eq!(budgets.charge(1, Spend::Wait).unwrap_err().errno(), Errno::EAGAIN as i32);
        drop(a);
        assert_eq!(budgets.used_by(1, Spend::File), 0);
        assert!(budgets.charge(1, Spend::File).is_ok(), "given back on drop");
    }

    #[test]
    fn totals_bound_everyone_together() {
        let budgets = Budgets::with_totals(UserBudget { files: 10, waits: 10 }, 2, 1, 0);
        let _m = [budgets.charge(1, Spend::Mapping).unwrap(), budgets.charge(2, Spend::Mapping).unwrap()];
        assert_eq!(budgets.charge(3, Spend::Mapping).unwrap_err().errno(), Errno::ENOMEM as i32);
        assert!(budgets.charge(3, Spend::Descriptor).is_err());
        let _w = budgets.charge(1, Spend::Wait).unwrap();
        assert_eq!(budgets.charge(2, Spend::Wait).unwrap_err().errno(), Errno::EAGAIN as i32);
    }

    #[test]
    fn memory_is_charged_in_bytes() {
        let budgets = Budgets::with_totals(UserBudget::default(), 1, 1, 1);
        let a = budgets.charge_bytes(1, USER_MEMORY - 10).unwrap();
        assert_eq!(budgets.charge_bytes(1, 11).unwrap_err().errno(), Errno::ENOMEM as i32);
        let _b = budgets.charge_bytes(1, 10).expect("up to the share");
        assert!(budgets.charge_bytes(2, 100).is_ok(), "another user");
        drop(a);
        assert_eq!(budgets.used_by(1, Spend::Memory), 10);
        assert_eq!(budgets.charge_bytes(3, usize::MAX).unwrap_err().errno(), Errno::ENOMEM as i32);
        let mut c = budgets.charge_bytes(4, 1000).unwrap();
        c.shrink_to(10);
        assert_eq!(budgets.used_by(4, Spend::Memory), 10, "shrunk to what is kept");
        c.shrink_to(500);
        assert_eq!(budgets.used_by(4, Spend::Memory), 10, "never grows");
    }
}
