//! Tables of hostile input on the tree: names that are neither ids nor keys,
//! `.` and `..`, extended attributes, and attempts to reshape the tree. Each
//! operation goes through a [`Bench`]: the errno the docs give, nothing
//! changed in the kernel, and the daemon still serving.

use super::calls::*;
use super::*;

use std::collections::BTreeSet;

use ipcfs::ipc::msg;
use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};

#[test]
fn names_that_are_not_canonical_ids_or_keys_are_enoent_and_too_long_names_enametoolong() {
    let m = Mounted::new();
    let w = World::new();
    let mut b = Bench::new(&m);
    let (s, e, q) = (w.seg.0, w.set.0, w.queue.0);

    // The canonical names resolve: the refusals below are about spelling.
    let found = [
        format!("shm/{s}"),
        format!("sem/{e}/2"),
        format!("msg/{q}/any"),
        format!("msg/{q}/9223372036854775807"),
        format!("msg/{q}/.wait/5"),
        format!("msg/{q}/.recv/5"),
        format!("msg/{q}/.recv/any"),
        format!("by-key/shm/0x{KEY_SHM:08x}"),
        format!("sem/0x{KEY_SEM:x}"),
    ];
    for name in found {
        let path = under(&m, &name);
        b.refuses(format!("stat {name}"), Want::Ok(0), || stat(&path));
    }

    let mut enoent: Vec<Vec<u8>> = [
        "shm/abc".to_string(),
        "shm/007".into(),
        format!("shm/0{s}"),
        format!("shm/00{s}"),
        "shm/-1".into(),
        format!("shm/-{s}"),
        format!("shm/+{s}"),
        format!("shm/{s} "),
        format!("shm/ {s}"),
        format!("shm/{s}.0"),
        format!("shm/{s}\n"),
        "shm/99999999999999999999".into(),
        "shm/2147483648".into(),
        "shm/4294967295".into(),
        format!("shm/{}", i64::from(s) + (1 << 32)),
        "shm/1e3".into(),
        "shm/0x10".into(),
        // A key name never finds an existing segment in shm/.
        format!("shm/0x{KEY_SHM:08x}"),
        format!("shm/0x{KEY_SHM:x}"),
        "shm/private".into(),
        "sem/abc".into(),
        format!("sem/0{e}"),
        "sem/-1".into(),
        "sem/2147483648".into(),
        "sem/99999999999999999999".into(),
        format!("sem/{e}/3"),
        format!("sem/{e}/99999"),
        format!("sem/{e}/65536"),
        format!("sem/{e}/65537"),
        format!("sem/{e}/4294967296"),
        format!("sem/{e}/00"),
        format!("sem/{e}/01"),
        format!("sem/{e}/-0"),
        format!("sem/{e}/+1"),
        format!("sem/{e}/0x1"),
        format!("sem/{e}/ 1"),
        format!("sem/{e}/any"),
        "sem/0xdeadbeef".into(),
        format!("sem/0x{KEY_SEM:x}:0"),
        format!("sem/0x{KEY_SEM:x}:abc"),
        format!("sem/0x{KEY_SEM:x}:99999999999"),
        format!("sem/0x{KEY_SHM:x}"),
        "msg/abc".into(),
        format!("msg/0{q}"),
        "msg/-0".into(),
        "msg/0xdeadbeef".into(),
        format!("msg/0x{KEY_MSG:x}:1"),
        format!("msg/{q}/0"),
        format!("msg/{q}/-3"),
        format!("msg/{q}/00"),
        format!("msg/{q}/01"),
        format!("msg/{q}/+1"),
        format!("msg/{q}/9223372036854775808"),
        format!("msg/{q}/18446744073709551617"),
        format!("msg/{q}/99999999999999999999999999999999999999999"),
        format!("msg/{q}/ANY"),
        format!("msg/{q}/Any"),
        format!("msg/{q}/any "),
        format!("msg/{q}/1.0"),
        format!("msg/{q}/0x1"),
        format!("msg/{q}/.WAIT"),
        format!("msg/{q}/.wait/.wait"),
        format!("msg/{q}/.wait/0"),
        format!("msg/{q}/.wait/-1"),
        format!("msg/{q}/.RECV"),
        format!("msg/{q}/.recv/.recv"),
        format!("msg/{q}/.recv/.wait"),
        format!("msg/{q}/.recv/0"),
        format!("msg/{q}/.recv/-1"),
        format!("msg/{q}/.wait/.recv"),
        format!("by-key/shm/0x{KEY_SHM:x}"),
        format!("by-key/shm/0x{KEY_SHM:08X}"),
        format!("by-key/shm/0X{KEY_SHM:08x}"),
        "by-key/shm/0x00000000".into(),
        "by-key/shm/0x100000000".into(),
        format!("by-key/shm/{s}"),
        "by-key/shm/private".into(),
        format!("by-key/sem/0x{KEY_SHM:08x}"),
        format!("by-key/msg/0x{KEY_SEM:08x}"),
        "by-key/x".into(),
        "SHM".into(),
        "shm ".into(),
        ".wait".into(),
        ".recv".into(),
        "x".into(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();
    // Not UTF-8: no name ipcfs shows or accepts.
    for prefix in
        ["shm/".to_string(), "sem/".into(), format!("sem/{e}/"), "msg/".into(), format!("msg/{q}/"), "".into()]
    {
        enoent.push([prefix.as_bytes(), b"\xff"].concat());
        enoent.push([prefix.as_bytes(), b"1\xc3"].concat());
    }
    // 255 bytes is the longest name: looked up, and simply not there.
    enoent.push([b"shm/".as_slice(), &[b'1'; 255]].concat());
    enoent.push(format!("msg/{q}/{}", "9".repeat(255)).into_bytes());
    for name in enoent {
        let path = under(&m, &name);
        b.refuses(format!("stat {:?}", Text(name.clone())), Want::Err(libc::ENOENT), || stat(&path));
        let path = under(&m, &name);
        b.refuses(format!("open {:?}", Text(name)), Want::Err(libc::ENOENT), || open(&path, libc::O_RDONLY).map(|_| 0));
    }

    let too_long: Vec<String> = vec![
        format!("shm/{}", "1".repeat(256)),
        format!("shm/{}", "1".repeat(1024)),
        format!("shm/{}", "1".repeat(1025)),
        format!("shm/{}", "1".repeat(5000)),
        format!("sem/{}", "0".repeat(300)),
        format!("sem/{e}/{}", "0".repeat(256)),
        format!("msg/{q}/{}", "1".repeat(256)),
        format!("msg/{q}/.wait/{}", "a".repeat(4000)),
        format!("msg/{q}/.recv/{}", "1".repeat(256)),
        format!("by-key/shm/0x{}", "0".repeat(300)),
        "x".repeat(256),
    ];
    for name in too_long {
        let path = under(&m, &name);
        let what = format!("stat {:?}", text(&name));
        b.refuses(&what, Want::Err(libc::ENAMETOOLONG), || stat(&path));
        b.refuses(format!("create {what}"), Want::Err(libc::ENAMETOOLONG), || {
            open(&path, libc::O_WRONLY | libc::O_CREAT).map(|_| 0)
        });
    }
    b.finish();
}

#[test]
fn dot_and_dot_dot_are_the_directory_and_its_parent() {
    let m = Mounted::new();
    let w = World::new();
    let mut b = Bench::new(&m);
    let (s, e, q) = (w.seg.0, w.set.0, w.queue.0);
    let same = [
        ("shm/..".to_string(), "".to_string()),
        ("shm/.".into(), "shm".into()),
        ("shm/./../sem/./..".into(), "".into()),
        ("by-key/shm/..".into(), "by-key".into()),
        (format!("sem/{e}/.."), "sem".into()),
        (format!("sem/{e}/."), format!("sem/{e}")),
        (format!("msg/{q}/.."), "msg".into()),
        (format!("msg/{q}/."), format!("msg/{q}")),
        (format!("msg/{q}/.wait/.."), format!("msg/{q}")),
        (format!("msg/{q}/.wait/."), format!("msg/{q}/.wait")),
        (format!("msg/{q}/.recv/.."), format!("msg/{q}")),
        (format!("msg/{q}/.recv/."), format!("msg/{q}/.recv")),
    ];
    for (a, z) in same {
        let (pa, pz) = (under(&m, &a), under(&m, &z));
        b.refuses(format!("{a} is {z}/"), Want::Ok(1), || same_file(&pa, &pz));
    }
    // Semaphore and queue files get an inode per lookup (see src/fs/inode.rs),
    // so these are told by what they answer: the value of semaphore 2, and
    // the first message of the queue, too large for one byte to receive.
    let dotted = under(&m, format!("sem/{e}/../{e}/./2"));
    b.refuses(format!("read sem/{e}/../{e}/./2"), Want::Ok(6), || count(read_once(&dotted, 0, 100)));
    let dotted = under(&m, format!("msg/{q}/.wait/../../{q}/.recv/./any"));
    b.refuses(format!("read msg/{q}/.wait/../../{q}/.recv/./any"), Want::Err(libc::E2BIG), || {
        count(read_once(&dotted, 0, 1))
    });
    // The mount's root's parent is outside the mount.
    let (root, up) = (under(&m, ""), under(&m, ".."));
    b.refuses("the root's .. is not the root", Want::Ok(0), || same_file(&root, &up));
    for file in [
        format!("shm/{s}/.."),
        format!("shm/{s}/."),
        format!("sem/{e}/0/.."),
        format!("msg/{q}/any/."),
        format!("msg/{q}/.recv/any/.."),
    ] {
        let path = under(&m, &file);
        b.refuses(format!("stat {file}"), Want::Err(libc::ENOTDIR), || stat(&path));
    }
    b.finish();
}

#[test]
fn kernel_attributes_cannot_be_set_or_removed_and_unknown_ones_are_not_supported() {
    let m = Mounted::new();
    let w = World::new();
    let mut b = Bench::new(&m);
    let (s, e, q) = (w.seg.0, w.set.0, w.queue.0);
    let nodes: [(String, &[&str]); 12] = [
        (format!("shm/{s}"), &SHM_ATTRS),
        (format!("sem/{e}"), &SET_ATTRS),
        (format!("sem/{e}/1"), &SEMAPHORE_ATTRS),
        (format!("msg/{q}"), &QUEUE_ATTRS),
        (format!("msg/{q}/any"), &[]),
        (format!("msg/{q}/5"), &[]),
        (format!("msg/{q}/.wait"), &[]),
        (format!("msg/{q}/.recv"), &[]),
        (format!("msg/{q}/.recv/any"), &[]),
        ("".into(), &[]),
        ("shm".into(), &[]),
        ("by-key/shm".into(), &[]),
    ];
    let every_name: BTreeSet<&str> =
        SHM_ATTRS.iter().chain(&SET_ATTRS).chain(&SEMAPHORE_ATTRS).chain(&QUEUE_ATTRS).copied().collect();
    let unknown: [&[u8]; 8] = [
        b"user.whatever",
        b"user.ipc.KEY",
        b"user.ipc.key.x",
        b"user.ipc.key ",
        b"user.ipc.\xff",
        b"user.IPC.key",
        b"user.ipc",
        b"user.ipc.",
    ];
    for (node, attrs) in &nodes {
        let path = under(&m, node);
        for name in &every_name {
            let is_kernels = attrs.contains(name);
            if *node == format!("msg/{q}") && *name == "user.ipc.qbytes" {
                b.refuses(format!("removexattr {name} on {node}"), Want::Err(libc::EPERM), || {
                    remove_xattr(&path, name.as_bytes())
                });
                continue;
            }
            let want = Want::Err(if is_kernels { libc::EPERM } else { libc::EOPNOTSUPP });
            b.refuses(format!("setxattr {name}=1 on {node:?}"), want, || set_xattr(&path, name.as_bytes(), b"1"));
            b.refuses(format!("removexattr {name} on {node:?}"), want, || remove_xattr(&path, name.as_bytes()));
        }
        for name in unknown {
            let what = format!("{:?} on {node:?}", text(name));
            b.refuses(format!("setxattr {what}"), Want::Err(libc::EOPNOTSUPP), || set_xattr(&path, name, b"x"));
            b.refuses(format!("removexattr {what}"), Want::Err(libc::EOPNOTSUPP), || remove_xattr(&path, name));
        }
        // Other namespaces are the kernel's to judge; nothing may change.
        for name in [&b"trusted.x"[..], b"security.x", b"security.capability", b"system.posix_acl_access", b"foo.bar"] {
            let what = format!("{:?} on {node:?}", text(name));
            b.refuses(format!("setxattr {what}"), Want::Refused, || set_xattr(&path, name, b"1"));
            b.refuses(format!("removexattr {what}"), Want::Refused, || remove_xattr(&path, name));
        }
        b.refuses(format!("setxattr user. on {node:?}"), Want::Refused, || set_xattr(&path, b"user.", b"1"));
        let long = [b"user.".as_slice(), &[b'x'; 300]].concat();
        b.refuses(format!("setxattr of a 305-byte name on {node:?}"), Want::Refused, || set_xattr(&path, &long, b"1"));
        b.refuses(format!("setxattr a 65 KiB value on {node:?}"), Want::Refused, || {
            set_xattr(&path, b"user.ipc.key", &vec![b'1'; 65 << 10])
        });
    }
    // The one writable attribute, with values that are no byte limit.
    let queue = under(&m, format!("msg/{q}"));
    let garbage: [&[u8]; 13] = [
        b"",
        b" ",
        b"-1",
        b"+5",
        b"abc",
        b"1 2",
        b"0x10",
        b"1e3",
        b"16384.0",
        b"99999999999999999999999",
        b"\xff",
        "１".as_bytes(),
        b"5\0",
    ];
    for value in garbage {
        b.refuses(
            format!("setxattr user.ipc.qbytes={:?}", text(value)),
            Want::OneOf(&[libc::EINVAL, libc::ERANGE]),
            || set_xattr(&queue, b"user.ipc.qbytes", value),
        );
    }
    let qbytes = msg::stat_any(w.queue).unwrap().qbytes.to_string();
    b.refuses("setxattr user.ipc.qbytes to its own value", Want::Ok(0), || {
        set_xattr(&queue, b"user.ipc.qbytes", qbytes.as_bytes())
    });
    // user.* is for regular files and directories only: the kernel says so.
    let link = under(&m, format!("by-key/shm/0x{KEY_SHM:08x}"));
    b.refuses("setxattr on a by-key link", Want::Refused, || set_xattr(&link, b"user.ipc.key", b"1"));
    b.finish();
}

#[test]
fn the_tree_cannot_be_reshaped_and_directories_cannot_be_written() {
    let m = Mounted::new();
    let w = World::new();
    let mut b = Bench::new(&m);
    let (s, e, q) = (w.seg.0, w.set.0, w.queue.0);
    let segment = under(&m, format!("shm/{s}"));
    // Every directory, with an entry in it.
    let dirs: [(String, String); 12] = [
        ("".into(), "shm".into()),
        ("shm".into(), s.to_string()),
        ("sem".into(), e.to_string()),
        ("msg".into(), q.to_string()),
        ("by-key".into(), "shm".into()),
        ("by-key/shm".into(), format!("0x{KEY_SHM:08x}")),
        ("by-key/sem".into(), format!("0x{KEY_SEM:08x}")),
        ("by-key/msg".into(), format!("0x{KEY_MSG:08x}")),
        (format!("sem/{e}"), "0".into()),
        (format!("msg/{q}"), "any".into()),
        (format!("msg/{q}/.wait"), "any".into()),
        (format!("msg/{q}/.recv"), "any".into()),
    ];
    for (dir, entry) in &dirs {
        let inside = |name: &str| under(&m, if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") });
        let (new, existing) = (inside("newname"), inside(entry));
        let mkdir_want = if dir == "sem" || dir == "msg" { libc::EINVAL } else { libc::EPERM };
        b.refuses(format!("mkdir {dir}/newname"), Want::Err(mkdir_want), || mkdir(&new));
        b.refuses(format!("mkdir {dir}/{entry}"), Want::Err(libc::EEXIST), || mkdir(&existing));
        b.refuses(format!("mknod fifo {dir}/newname"), Want::Err(libc::EPERM), || make_fifo(&new));
        let keyed = inside(&format!("0x{KEY_FREE:x}"));
        b.refuses(format!("mknod regular {dir}/0x{KEY_FREE:x}"), Want::Err(libc::EPERM), || make_regular(&keyed));
        b.refuses(format!("symlink {dir}/newname"), Want::Err(libc::EPERM), || symlink(&new));
        b.refuses(format!("symlink over {dir}/{entry}"), Want::Err(libc::EEXIST), || symlink(&existing));
        b.refuses(format!("link a segment to {dir}/newname"), Want::Err(libc::EPERM), || link(&segment, &new));
        b.refuses(format!("rename {dir}/{entry} to newname"), Want::Err(libc::EPERM), || rename(&existing, &new));
        b.refuses(format!("rename a segment to {dir}/newname"), Want::Err(libc::EPERM), || rename(&segment, &new));
        // Exchanging the segment with itself is nothing to do for the VFS.
        let want = if dir == "shm" { Want::Anything } else { Want::Refused };
        b.refuses(format!("exchange {dir}/{entry} with a segment"), want, || {
            nix_done(renameat2(AT_FDCWD, &existing, AT_FDCWD, &segment, RenameFlags::RENAME_EXCHANGE))
        });
        if dir != "shm" {
            // Writing where no object has the name: no such file; in a
            // queue's directories, a name that is no message type: EINVAL.
            let want = if dir.starts_with("msg/") { libc::EINVAL } else { libc::ENOENT };
            b.refuses(format!("create {dir}/0x{KEY_FREE:x}"), Want::Err(want), || {
                open(&keyed, libc::O_WRONLY | libc::O_CREAT).map(|_| 0)
            });
        }
        let long = inside(&"1".repeat(256));
        b.refuses(format!("mkdir a 256-byte name in {dir}/"), Want::Err(libc::ENAMETOOLONG), || mkdir(&long));
        b.refuses(format!("symlink a 256-byte name in {dir}/"), Want::Err(libc::ENAMETOOLONG), || symlink(&long));
        let dir_path = under(&m, dir);
        for (flags, how) in [
            (libc::O_WRONLY, "O_WRONLY"),
            (libc::O_RDWR, "O_RDWR"),
            (libc::O_WRONLY | libc::O_TRUNC, "O_WRONLY|O_TRUNC"),
            (libc::O_WRONLY | libc::O_CREAT, "O_WRONLY|O_CREAT"),
        ] {
            b.refuses(format!("open {dir}/ {how}"), Want::Err(libc::EISDIR), || open(&dir_path, flags).map(|_| 0));
        }
        b.refuses(format!("truncate {dir}/"), Want::Err(libc::EISDIR), || truncate(&dir_path, 0));
    }
    // rename between two existing entries of one directory.
    let (zero, one) = (under(&m, format!("sem/{e}/0")), under(&m, format!("sem/{e}/1")));
    b.refuses("rename sem/ID/0 over sem/ID/1", Want::Err(libc::EPERM), || rename(&zero, &one));
    let (any, five) = (under(&m, format!("msg/{q}/any")), under(&m, format!("msg/{q}/5")));
    b.refuses("rename msg/ID/any over msg/ID/5", Want::Err(libc::EPERM), || rename(&any, &five));

    for bad in [
        "abc",
        "0x",
        "0X",
        "0x123456789",
        "0xg",
        "0x-1",
        "0x1:0",
        "0x1:-1",
        "0x1:+1",
        "0x1:01",
        "0x1:",
        ":1",
        "0x1:1:1",
        "0x1:2147483648",
        "0x1:99999999999",
        "0x1:40000",
        "private:0",
        "Private",
    ] {
        let path = under(&m, format!("sem/{bad}"));
        b.refuses(format!("mkdir sem/{bad}"), Want::Err(libc::EINVAL), || mkdir(&path));
    }
    for bad in ["abc", "0x", "0x123456789", "0xg", "0x1:1", "private:1", "PRIVATE"] {
        let path = under(&m, format!("msg/{bad}"));
        b.refuses(format!("mkdir msg/{bad}"), Want::Err(libc::EINVAL), || mkdir(&path));
    }
    for existing in [format!("sem/0x{KEY_SEM:x}"), format!("sem/0x{KEY_SEM:08X}:3"), format!("msg/0x{KEY_MSG:x}")] {
        let path = under(&m, &existing);
        b.refuses(format!("mkdir {existing} (the key exists)"), Want::Err(libc::EEXIST), || mkdir(&path));
    }

    // Removing what cannot go.
    let by_key = under(&m, format!("by-key/shm/0x{KEY_SHM:08x}"));
    b.refuses("rm a by-key link", Want::Err(libc::EPERM), || unlink(&by_key));
    for fixed in ["shm", "sem", "msg", "by-key", "by-key/shm"] {
        let path = under(&m, fixed);
        b.refuses(format!("rmdir {fixed}"), Want::Refused, || rmdir(&path));
        b.refuses(format!("unlink {fixed}"), Want::Refused, || unlink(&path));
    }
    b.refuses("rm sem/ID/0", Want::Ok(0), || unlink(&zero));
    for gone in [format!("sem/{e}/3"), format!("sem/{e}/00"), format!("shm/0{s}"), format!("msg/{q}/00")] {
        let path = under(&m, &gone);
        b.refuses(format!("rm {gone}"), Want::Err(libc::ENOENT), || unlink(&path));
    }
    for gone in [format!("sem/0{e}"), format!("msg/+{q}"), "sem/-1".into()] {
        let path = under(&m, &gone);
        b.refuses(format!("rmdir {gone}"), Want::Err(libc::ENOENT), || rmdir(&path));
    }
    for file in [format!("shm/{s}"), format!("sem/{e}/0"), format!("msg/{q}/any")] {
        let path = under(&m, &file);
        b.refuses(format!("open {file} with O_DIRECTORY"), Want::Err(libc::ENOTDIR), || {
            open(&path, libc::O_RDONLY | libc::O_DIRECTORY).map(|_| 0)
        });
        b.refuses(format!("rmdir {file}"), Want::Err(libc::ENOTDIR), || rmdir(&path));
    }
    for (file, mode, want) in [
        (format!("sem/{e}/0"), 0o666, libc::EPERM),
        (format!("sem/{e}"), 0o1640, libc::EINVAL),
        (format!("msg/{q}"), 0o4640, libc::EINVAL),
    ] {
        let path = under(&m, &file);
        b.refuses(format!("chmod {mode:o} {file}"), Want::Err(want), || chmod(&path, mode));
    }
    b.finish();
}
