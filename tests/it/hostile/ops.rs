//! The operations of the reference-model property test, and how they are
//! drawn: through the mount (valid and hostile), behind the mount's back
//! (the test's own system calls), and the objects' life cycle (made, removed,
//! files kept open across steps).

use super::*;

use ipcfs::ipc::sem::SEMVMX;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

// ---- what a case is made of ----

pub(super) const NSEMS: u16 = 3;
/// How many files a case may keep open across steps.
pub(super) const SLOTS: usize = 3;
/// The keys of the objects a case makes are `KEY_MADE + n`: no random name
/// spells one, so none is found by chance.
pub(super) const KEY_MADE: i32 = 0x5eed_0000;
/// Sizes of the segments a case makes: the usual one, one shorter than a
/// page, one that ends inside a page.
pub(super) const SEG_SIZES: [u64; 3] = [SEG_SIZE, 100, 3 * 4096 + 5];
/// Sizes of the sets a case makes.
pub(super) const SET_SIZES: [u16; 2] = [NSEMS, 1];
/// What a call by id on a removed object gives (the kernel's answers).
pub(super) const GONE_BY_ID: &[i32] = &[libc::EINVAL, libc::EIDRM];
/// What an open file on a removed object gives (docs/ipcfs.md, Errors).
pub(super) const GONE: &[i32] = &[libc::ENOENT, libc::EIDRM];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Family {
    Shm,
    Sem,
    Msg,
}

impl Family {
    pub(super) fn dir(self) -> &'static str {
        match self {
            Family::Shm => "shm",
            Family::Sem => "sem",
            Family::Msg => "msg",
        }
    }
}

/// A file a case keeps open across steps, on the family's object of the
/// moment it was opened.
#[derive(Clone, Copy, Debug)]
pub(super) enum HeldFile {
    Segment,
    Semaphore(u16),
    Queue(QFile),
}

/// A call of the test's own, in the mount's IPC namespace but not through
/// the mount, on the family's object.
#[derive(Clone, Debug)]
pub(super) enum Behind {
    /// shmat and write, at `offset` modulo the segment's size.
    ShmWrite {
        offset: u64,
        data: Text,
    },
    /// IPC_SET: owner and group `owner`, and `mode`.
    ShmSet {
        owner: u32,
        mode: u32,
    },
    SemSetVal {
        num: u16,
        value: i32,
    },
    /// semop with IPC_NOWAIT.
    SemOp {
        num: u16,
        delta: i16,
    },
    SemSet {
        owner: u32,
        mode: u32,
    },
    /// msgsnd with IPC_NOWAIT.
    Send {
        mtype: i64,
        body: Text,
    },
    /// msgrcv with IPC_NOWAIT; `mtype` 0 takes any type.
    Receive {
        mtype: i64,
        room: usize,
    },
    QueueSet {
        owner: u32,
        mode: u32,
        qbytes: u64,
    },
    /// IPC_RMID.
    Remove(Family),
    /// A new object, which becomes the family's; with `same_id`, given the
    /// id of the family's object if that was removed (`*_next_id`).
    Create {
        family: Family,
        same_id: bool,
        keyed: bool,
        shape: usize,
    },
}

/// A queue file: `any` or a type, listed (reading browses), under `.recv/`
/// (reading receives) or under `.wait/` (reading receives, waiting).
#[derive(Clone, Copy, Debug)]
pub(super) enum QFile {
    Any,
    Type(i64),
    RecvAny,
    RecvType(i64),
    WaitAny,
    WaitType(i64),
}

impl QFile {
    pub(super) fn name(self) -> String {
        match self {
            QFile::Any => "any".into(),
            QFile::Type(t) => t.to_string(),
            QFile::RecvAny => ".recv/any".into(),
            QFile::RecvType(t) => format!(".recv/{t}"),
            QFile::WaitAny => ".wait/any".into(),
            QFile::WaitType(t) => format!(".wait/{t}"),
        }
    }

    /// The type it reads (0: any) and sends.
    pub(super) fn mtype(self) -> i64 {
        match self {
            QFile::Any | QFile::RecvAny | QFile::WaitAny => 0,
            QFile::Type(t) | QFile::RecvType(t) | QFile::WaitType(t) => t,
        }
    }

    /// A listed file: reading shows the messages, taking none.
    pub(super) fn browses(self) -> bool {
        matches!(self, QFile::Any | QFile::Type(_))
    }

    pub(super) fn waits(self) -> bool {
        matches!(self, QFile::WaitAny | QFile::WaitType(_))
    }
}

/// A directory of the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Place {
    Root,
    Shm,
    Sem,
    Msg,
    ByKey,
    ByKeyShm,
    Set,
    Queue,
    RecvDir,
    WaitDir,
}

/// Something extended attributes can be asked of.
#[derive(Clone, Copy, Debug)]
pub(super) enum Node {
    Root,
    ShmDir,
    Segment,
    Set,
    Semaphore(u16),
    Queue,
    QueueFile(QFile),
    RecvDir,
    WaitDir,
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Reshape {
    Mkdir,
    Mknod,
    Symlink,
    Link,
    Rename,
    Unlink,
    Rmdir,
}

#[derive(Clone, Debug)]
pub(super) enum Op {
    /// pwrite into the segment (in range, across the end, or far beyond).
    ShmWrite {
        offset: u64,
        data: Text,
    },
    ShmRead {
        offset: u64,
        room: usize,
    },
    ShmTruncate {
        len: u64,
    },
    /// A 64 MiB write.
    ShmWriteHuge {
        offset: u64,
    },
    /// One write to a semaphore file, opened O_NONBLOCK: a command or not.
    SemWrite {
        num: u16,
        text: Text,
    },
    Send {
        to: QFile,
        body: Text,
    },
    SendHuge {
        to: QFile,
        len: usize,
    },
    /// One read, O_NONBLOCK, with a buffer of `room` bytes: a receive, or
    /// a look at a listed file.
    Read {
        from: QFile,
        room: usize,
    },
    Lookup {
        place: Place,
        name: Text,
    },
    Reshape {
        how: Reshape,
        place: Place,
        name: Text,
    },
    OpenDirForWrite {
        place: Place,
    },
    SetXattr {
        node: Node,
        name: Text,
        value: Text,
    },
    RemoveXattr {
        node: Node,
        name: Text,
    },
    TruncateStream {
        node: Node,
        len: i64,
    },
    Behind(Behind),
    /// `rm shm/ID`, `rmdir sem/ID` or `rmdir msg/ID` of the family's object.
    Remove(Family),
    /// A new object made through the mount by a new key (`truncate -s` of
    /// `shm/0xKEY`, `mkdir sem/0xKEY:N`, `mkdir msg/0xKEY`), which becomes
    /// the family's; with `same_id`, given the id of the family's object if
    /// that was removed.
    Create {
        family: Family,
        same_id: bool,
        shape: usize,
    },
    /// Opens the file (read-write; semaphore and queue files O_NONBLOCK) and
    /// keeps it in `slot`, closing what was there.
    Hold {
        slot: usize,
        file: HeldFile,
    },
    /// One read through a kept file: pread at `offset` on a segment.
    HeldRead {
        slot: usize,
        offset: u64,
        room: usize,
    },
    /// One write through a kept file: pwrite at `offset` on a segment.
    HeldWrite {
        slot: usize,
        offset: u64,
        data: Text,
    },
    /// fstat of a kept file.
    HeldStat {
        slot: usize,
    },
    Release {
        slot: usize,
    },
}

pub(super) fn bytes(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Text> {
    vec(any::<u8>(), len).prop_map(Text)
}

pub(super) fn shm_offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0..SEG_SIZE,
        1 => SEG_SIZE - 64..SEG_SIZE + 64,
        1 => select(vec![1u64 << 32, 1 << 40, 1 << 62, i64::MAX as u64 - 200]),
    ]
}

pub(super) fn send_file() -> impl Strategy<Value = QFile> {
    prop_oneof![
        3 => Just(QFile::Any),
        3 => (1i64..=5).prop_map(QFile::Type),
        3 => Just(QFile::Type(i64::MAX)),
        1 => Just(QFile::RecvAny),
        1 => (1i64..=5).prop_map(QFile::RecvType),
    ]
}

pub(super) fn read_file() -> impl Strategy<Value = QFile> {
    prop_oneof![
        2 => Just(QFile::Any),
        3 => (1i64..=5).prop_map(QFile::Type),
        1 => Just(QFile::Type(i64::MAX)),
        2 => Just(QFile::RecvAny),
        3 => (1i64..=5).prop_map(QFile::RecvType),
        1 => Just(QFile::RecvType(i64::MAX)),
        1 => Just(QFile::WaitAny),
        1 => (1i64..=5).prop_map(QFile::WaitType),
    ]
}

pub(super) fn is_white(b: u8) -> bool {
    b.is_ascii_whitespace()
}

/// Text for a semaphore file: commands, near misses and garbage. Never
/// starting with white space, and never with a vertical tab, on which the
/// docs say nothing.
pub(super) fn sem_text() -> impl Strategy<Value = Text> {
    let hostile = [
        "+99999999999999999999",
        "99999999999999999999",
        "-0",
        "+0",
        "+",
        "-",
        "=",
        "=5",
        "=00",
        "1 2",
        "+1+1",
        "5\n6\n",
        "abc",
        "0x10",
        "32768",
        "+32768",
        "-32768",
        "7\0",
        "٧",
    ];
    prop_oneof![
        2 => (0u32..=40000).prop_map(|n| text(format!("{n}\n"))),
        2 => (1u32..=40000).prop_map(|n| text(format!("+{n}"))),
        2 => (1u32..=50).prop_map(|n| text(format!("-{n}\n"))),
        1 => Just(text("=0")),
        2 => select(hostile.to_vec()).prop_map(text),
        2 => vec(select(b"0123456789+-= \n\tx\xff".to_vec()), 1..10).prop_map(Text),
        1 => vec(any::<u8>(), 1..16).prop_map(Text),
    ]
    .prop_filter("no leading white space, no vertical tab", |t| !is_white(t.0[0]) && !t.0.contains(&0x0b))
}

pub(super) fn name() -> impl Strategy<Value = Text> {
    let tricky = [
        "abc",
        "007",
        "-1",
        "+1",
        "0",
        "1",
        "2",
        "3",
        "5",
        "00",
        "01",
        "-0",
        "1e3",
        " 1",
        "1 ",
        "99999999999999999999",
        "2147483648",
        "4294967296",
        "9223372036854775807",
        "9223372036854775808",
        "any",
        "ANY",
        ".wait",
        ".recv",
        ".",
        "..",
        "private",
        "0x0",
        "0x1",
        "0xdeadbeef",
        "0x00000000",
        "0x1:2",
        "shm",
        "sem",
        "msg",
        "by-key",
    ];
    prop_oneof![
        4 => select(tricky.to_vec()).prop_map(text),
        2 => "[0-9]{1,20}".prop_map(text),
        2 => "[-+0-9a-z.:]{1,12}".prop_map(text),
        1 => (250usize..300).prop_map(|n| text("1".repeat(n))),
        1 => vec(any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0), 1..8).prop_map(Text),
    ]
}

pub(super) fn place() -> impl Strategy<Value = Place> {
    select(vec![
        Place::Root,
        Place::Shm,
        Place::Sem,
        Place::Msg,
        Place::ByKey,
        Place::ByKeyShm,
        Place::Set,
        Place::Queue,
        Place::RecvDir,
        Place::WaitDir,
    ])
}

pub(super) fn node() -> impl Strategy<Value = Node> {
    prop_oneof![
        Just(Node::Root),
        Just(Node::ShmDir),
        Just(Node::Segment),
        Just(Node::Set),
        (0..NSEMS).prop_map(Node::Semaphore),
        Just(Node::Queue),
        send_file().prop_map(Node::QueueFile),
        Just(Node::RecvDir),
        Just(Node::WaitDir),
    ]
}

pub(super) fn xattr_name() -> impl Strategy<Value = Text> {
    let names: Vec<&str> = SHM_ATTRS
        .iter()
        .chain(&SET_ATTRS)
        .chain(&SEMAPHORE_ATTRS)
        .chain(&QUEUE_ATTRS)
        .copied()
        .chain(["user.whatever", "user.ipc.KEY", "trusted.x", "security.x", "foo.bar"])
        .collect();
    prop_oneof![
        3 => select(names).prop_map(text),
        1 => "user\\.[a-z.]{1,12}".prop_map(text),
        1 => vec(1u8..=255, 1..6).prop_map(|tail| Text([b"user.ipc.".as_slice(), &tail].concat())),
    ]
}

pub(super) fn xattr_value() -> impl Strategy<Value = Text> {
    prop_oneof![
        select(vec!["", "1", "-1", "+5", "abc", "1 2", "0x10", "99999999999999999999999", "\u{ff11}"]).prop_map(text),
        bytes(0..=8),
    ]
}

pub(super) fn reshape() -> impl Strategy<Value = Reshape> {
    select(vec![
        Reshape::Mkdir,
        Reshape::Mknod,
        Reshape::Symlink,
        Reshape::Link,
        Reshape::Rename,
        Reshape::Unlink,
        Reshape::Rmdir,
    ])
}

pub(super) fn family() -> impl Strategy<Value = Family> {
    select(vec![Family::Shm, Family::Sem, Family::Msg])
}

/// An owner for IPC_SET: the test's own user, or another.
pub(super) fn owner() -> impl Strategy<Value = u32> {
    select(vec![nix::unistd::geteuid().as_raw(), 1000])
}

pub(super) fn ipc_mode() -> impl Strategy<Value = u32> {
    select(vec![0o600, 0o640, 0o644, 0o000, 0o777, 0o422])
}

pub(super) fn behind() -> impl Strategy<Value = Behind> {
    prop_oneof![
        3 => (0..SEG_SIZE, bytes(1..=32)).prop_map(|(offset, data)| Behind::ShmWrite { offset, data }),
        1 => (owner(), ipc_mode()).prop_map(|(owner, mode)| Behind::ShmSet { owner, mode }),
        2 => (0..NSEMS, prop_oneof![4 => 0..=SEMVMX, 1 => Just(SEMVMX + 1)])
            .prop_map(|(num, value)| Behind::SemSetVal { num, value }),
        2 => (0..NSEMS, -4i16..=4).prop_map(|(num, delta)| Behind::SemOp { num, delta }),
        1 => (owner(), ipc_mode()).prop_map(|(owner, mode)| Behind::SemSet { owner, mode }),
        3 => (1i64..=5, bytes(1..=32)).prop_map(|(mtype, body)| Behind::Send { mtype, body }),
        2 => (0i64..=5, 1usize..=40).prop_map(|(mtype, room)| Behind::Receive { mtype, room }),
        1 => (owner(), ipc_mode(), select(vec![64u64, 200, 16384]))
            .prop_map(|(owner, mode, qbytes)| Behind::QueueSet { owner, mode, qbytes }),
        3 => family().prop_map(Behind::Remove),
        3 => (family(), same_id(), any::<bool>(), 0..SEG_SIZES.len())
            .prop_map(|(family, same_id, keyed, shape)| Behind::Create { family, same_id, keyed, shape }),
    ]
}

/// Mostly: give a new object the id of the family's removed one.
pub(super) fn same_id() -> impl Strategy<Value = bool> {
    prop_oneof![3 => Just(true), 1 => Just(false)]
}

pub(super) fn held_file() -> impl Strategy<Value = HeldFile> {
    prop_oneof![
        2 => Just(HeldFile::Segment),
        2 => (0..NSEMS).prop_map(HeldFile::Semaphore),
        3 => read_file().prop_map(HeldFile::Queue),
    ]
}

/// Removing and making objects through the mount, and files kept open.
pub(super) fn lifecycle() -> impl Strategy<Value = Op> {
    let slot = || 0..SLOTS;
    prop_oneof![
        1 => family().prop_map(Op::Remove),
        1 => (family(), same_id(), 0..SEG_SIZES.len())
            .prop_map(|(family, same_id, shape)| Op::Create { family, same_id, shape }),
        3 => (slot(), held_file()).prop_map(|(slot, file)| Op::Hold { slot, file }),
        4 => (slot(), shm_offset(), 1usize..=128).prop_map(|(slot, offset, room)| Op::HeldRead { slot, offset, room }),
        4 => (slot(), shm_offset(), prop_oneof![sem_text(), bytes(1..=32)])
            .prop_map(|(slot, offset, data)| Op::HeldWrite { slot, offset, data }),
        1 => slot().prop_map(|slot| Op::HeldStat { slot }),
        1 => slot().prop_map(|slot| Op::Release { slot }),
    ]
}

pub(super) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => through_the_mount(),
        20 => behind().prop_map(Op::Behind),
        16 => lifecycle(),
    ]
}

/// Operations on the objects through the mount, valid and hostile.
pub(super) fn through_the_mount() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (shm_offset(), bytes(1..=64)).prop_map(|(offset, data)| Op::ShmWrite { offset, data }),
        2 => (shm_offset(), 1usize..=128).prop_map(|(offset, room)| Op::ShmRead { offset, room }),
        1 => prop_oneof![0..SEG_SIZE + 2, Just(1 << 40), Just(i64::MAX as u64)].prop_map(|len| Op::ShmTruncate { len }),
        1 => select(vec![0, SEG_SIZE - 100, SEG_SIZE, 1 << 40]).prop_map(|offset| Op::ShmWriteHuge { offset }),
        5 => (0..NSEMS, sem_text()).prop_map(|(num, text)| Op::SemWrite { num, text }),
        4 => (send_file(), bytes(1..=32)).prop_map(|(to, body)| Op::Send { to, body }),
        1 => (send_file(), select(vec![MSGMAX + 1, HUGE])).prop_map(|(to, len)| Op::SendHuge { to, len }),
        4 => (read_file(), 1usize..=40).prop_map(|(from, room)| Op::Read { from, room }),
        3 => (place(), name()).prop_map(|(place, name)| Op::Lookup { place, name }),
        3 => (reshape(), place(), name()).prop_map(|(how, place, name)| Op::Reshape { how, place, name }),
        1 => place().prop_map(|place| Op::OpenDirForWrite { place }),
        3 => (node(), xattr_name(), xattr_value()).prop_map(|(node, name, value)| Op::SetXattr { node, name, value }),
        1 => (node(), xattr_name()).prop_map(|(node, name)| Op::RemoveXattr { node, name }),
        1 => (
            prop_oneof![(0..NSEMS).prop_map(Node::Semaphore), send_file().prop_map(Node::QueueFile)],
            select(vec![0, 5, 4096, 1 << 40, i64::MAX]),
        )
            .prop_map(|(node, len)| Op::TruncateStream { node, len }),
    ]
}
