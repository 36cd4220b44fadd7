//! Who uses an object, and how: the vocabulary of `users/` (see users.rs).

/// One of the three families, where the tree names it (`users/shm/`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Shm,
    Sem,
    Msg,
}

/// How a process uses an object (`user.ipc.role` of its link in `users/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A segment attached (shmat).
    Attached,
    /// A segment's file open through the mount.
    Open,
    /// A segment's file mapped through the mount (and perhaps closed).
    Mapped,
    /// Blocked in semop on the set, through the mount or its own call.
    WaitingTake,
    WaitingZero,
    /// Blocked in semop by its own call (which operation, /proc does not say).
    Waiting,
    WaitingReceive,
    WaitingSend,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Attached => "attached",
            Role::Open => "open",
            Role::Mapped => "mapped",
            Role::WaitingTake => "waiting-take",
            Role::WaitingZero => "waiting-zero",
            Role::Waiting => "waiting",
            Role::WaitingReceive => "waiting-receive",
            Role::WaitingSend => "waiting-send",
        }
    }
}

/// A use of an object by a caller through the mount, which the daemon
/// knows of (an open segment file, a wait it runs): the caller's thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Use {
    pub family: ObjectKind,
    pub id: i32,
    pub tid: u32,
    pub role: Role,
}
