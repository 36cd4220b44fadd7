//! Tables of hostile writes: semaphore text that is not one command, segment
//! offsets and sizes beyond the end and enormous writes, queue writes larger
//! than msgmax and reads too small for a message. Each goes through a
//! [`Bench`], as in [`super::tables`].

use super::calls::*;
use super::*;

use std::io::Write;
use std::path::Path;

use nix::fcntl::{FallocateFlags, fallocate};

#[test]
fn semaphore_text_that_is_not_one_command_is_einval_or_erange_and_changes_nothing() {
    let m = Mounted::new();
    let w = World::new();
    let mut b = Bench::new(&m);
    let e = w.set.0;
    let seven = under(&m, format!("sem/{e}/0"));
    let full = under(&m, format!("sem/{e}/2"));
    let write = |path: &Path, data: &[u8]| write_once(path, libc::O_NONBLOCK, data);

    let einval: &[&[u8]] = &[
        b"-0",
        b"+0",
        b"-00",
        b"+",
        b"-",
        b"=",
        b"=5",
        b"=+0",
        b"=-0",
        b"1 2",
        b"1\n2\n",
        b"7\n\n5",
        b"+1+1",
        b"++1",
        b"--1",
        b"+-1",
        b"5 +1",
        b"+1 -1",
        b"+1\n-1\n",
        b"=0 =0",
        b"0x10",
        b"1e3",
        b"1.5",
        b"abc",
        b"seven",
        b"\xff\xfe",
        b"7\xff",
        b"5\0",
        b"\0",
        "٧".as_bytes(),
        "７".as_bytes(),
        b"+ 1",
        b"- 1",
        b"= 0",
    ];
    for &data in einval {
        b.refuses(format!("write {:?}", text(data)), Want::Err(libc::EINVAL), || write(&seven, data));
    }
    let erange: &[&[u8]] = &[
        b"+99999999999999999999",
        b"99999999999999999999",
        b"-99999999999999999999",
        b"99999999999999999999999999999999999999999",
        b"32768",
        b"+32768",
        b"-32768",
        b"65543",
        b"4294967303",
        b"+65536",
        b"+4294967297",
        b"-65537",
        // 7 + 32767 is beyond SEMVMX.
        b"+32767",
    ];
    for &data in erange {
        b.refuses(format!("write {:?}", text(data)), Want::Err(libc::ERANGE), || write(&seven, data));
    }
    b.refuses("write +1 to a semaphore at 32767", Want::Err(libc::ERANGE), || write(&full, b"+1"));
    b.refuses("write =99999999999999999999", Want::OneOf(&[libc::EINVAL, libc::ERANGE]), || {
        write(&seven, b"=99999999999999999999")
    });
    // What would wait, on a non-blocking file.
    for data in [&b"-8"[..], b"-32767", b"=0"] {
        b.refuses(format!("write {:?} with O_NONBLOCK", text(data)), Want::Err(libc::EAGAIN), || write(&seven, data));
    }
    // Enormous writes: no command is longer than the file (4096 bytes).
    for fill in [b'9', b' ', b'+', 0] {
        let data = vec![fill; HUGE];
        b.refuses(format!("write 64 MiB of {:?}", text([fill])), Want::Err(libc::EINVAL), || write(&seven, &data));
    }
    let mut padded = b"7".to_vec();
    padded.resize(100 << 10, b' ');
    padded.push(b'\n');
    b.refuses("write 7 followed by 100 KiB of spaces", Want::Err(libc::EINVAL), || write(&seven, &padded));
    // Controls: one command with trailing white space up to the file's size is fine (and 7 is 7).
    let mut padded = b"7".to_vec();
    padded.resize(4095, b' ');
    padded.push(b'\n');
    b.refuses("write 7 followed by 4 KiB of spaces", Want::Ok(padded.len() as u64), || write(&seven, &padded));
    b.refuses("an empty write", Want::Ok(0), || write(&seven, b""));
    b.refuses("read with a 64 MiB buffer", Want::Ok(2), || count(read_once(&seven, 0, HUGE)));
    // Truncating is accepted and ignored (`echo N > file` truncates first).
    for len in [0, 5, 4096, 1 << 40, i64::MAX] {
        b.refuses(format!("truncate to {len}"), Want::Ok(0), || truncate(&seven, len));
    }
    b.refuses("open with O_TRUNC and close", Want::Ok(0), || open(&seven, libc::O_WRONLY | libc::O_TRUNC).map(|_| 0));
    b.refuses("truncate to -1", Want::Refused, || truncate(&seven, -1));
    b.finish();
}

#[test]
fn segment_offsets_and_sizes_beyond_the_end_are_refused_and_enormous_writes_write_what_fits() {
    let m = Mounted::new();
    let w = World::new();
    let mut b = Bench::new(&m);
    let seg = w.seg;
    let path = under(&m, format!("shm/{}", seg.0));
    let end = SEG_SIZE;

    for offset in [end, end + 1, 2 * end, 1 << 32, 1 << 40, 1 << 62, u64::MAX / 2 - 1, u64::MAX / 2 - 100] {
        b.refuses(format!("write 1 byte at {offset}"), Want::Err(libc::ENOSPC), || pwrite_once(&path, b"x", offset));
        b.refuses(format!("read at {offset}"), Want::Ok(0), || count(pread_once(&path, 1, offset)));
    }
    for offset in [end, 1 << 40] {
        b.refuses(format!("write 64 MiB at {offset}"), Want::Err(libc::ENOSPC), || {
            pwrite_once(&path, huge_buffer(), offset)
        });
    }
    // offset + count beyond i64::MAX: the kernel refuses before ipcfs sees it.
    b.refuses("write at u64::MAX/2 (= i64::MAX)", Want::Refused, || pwrite_once(&path, b"x", u64::MAX / 2));
    b.refuses("read 4 bytes at i64::MAX - 1", Want::Refused, || count(pread_once(&path, 4, i64::MAX as u64 - 1)));
    b.refuses("append", Want::Err(libc::ENOSPC), || write_once(&path, libc::O_APPEND, b"x"));
    b.refuses("read with a 64 MiB buffer", Want::Ok(end), || count(read_once(&path, 0, HUGE)));

    for len in [end as i64 + 1, 1 << 40, i64::MAX] {
        b.refuses(format!("truncate to {len}"), Want::Err(libc::EFBIG), || truncate(&path, len));
    }
    b.refuses("truncate to its own size", Want::Ok(0), || truncate(&path, end as i64));
    b.refuses("truncate to -1", Want::Refused, || truncate(&path, -1));
    let fallocated = |mode: FallocateFlags, offset: i64, len: i64| {
        let file = open(&path, libc::O_RDWR)?;
        nix_done(fallocate(&file, mode, offset, len))
    };
    b.refuses("fallocate beyond the end", Want::Refused, || fallocated(FallocateFlags::empty(), 0, 2 * end as i64));
    b.refuses("fallocate up to i64::MAX", Want::Refused, || fallocated(FallocateFlags::empty(), i64::MAX - 1, 1));
    b.refuses("punch a hole", Want::Refused, || {
        fallocated(FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE, 0, end as i64)
    });
    b.refuses("zero a range", Want::Refused, || fallocated(FallocateFlags::FALLOC_FL_ZERO_RANGE, 0, 16));
    for mode in [0o4640, 0o2640, 0o1640] {
        b.refuses(format!("chmod {mode:o}"), Want::Err(libc::EINVAL), || chmod(&path, mode));
    }

    // Creating: the key exists, the name is no key, no size yet, a size the
    // kernel cannot give.
    let create = |name: &str| {
        let path = m.path(name);
        move || open(&path, libc::O_WRONLY | libc::O_CREAT).map(|_| 0)
    };
    b.refuses("create the existing id exclusively", Want::Err(libc::EEXIST), || {
        open(&path, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL).map(|_| 0)
    });
    b.refuses("create by an existing key", Want::Err(libc::EEXIST), create(&format!("shm/0x{KEY_SHM:x}")));
    for bad in ["bogus", "0x", "0x123456789", "0xg", "-1", "0x-1", "0x 1", "Private", "private:1", "0x1:1"] {
        // No key: no such file, as `echo x > shm/23` after the segment went.
        b.refuses(format!("create shm/{bad}"), Want::Err(libc::ENOENT), create(&format!("shm/{bad}")));
    }
    let pending = m.path(format!("shm/0x{KEY_FREE:x}"));
    b.refuses("write into a segment not given a size yet", Want::Err(libc::ENOSPC), || {
        let mut file = open(&pending, libc::O_RDWR | libc::O_CREAT)?;
        or_errno(file.write(b"x")).map(|n| n as u64)
    });
    for size in [1u64 << 46, 1 << 62, i64::MAX as u64] {
        // The kernel's limits: shmmax (EINVAL), shmall (ENOSPC), or memory
        // it will not commit (ENOMEM, shmget's own answer).
        b.refuses(
            format!("create with size {size}"),
            Want::OneOf(&[libc::EINVAL, libc::ENOSPC, libc::ENOMEM, libc::EFBIG]),
            || {
                let file = open(&pending, libc::O_RDWR | libc::O_CREAT)?;
                or_errno(file.set_len(size)).map(|()| 0)
            },
        );
    }
    b.refuses("fallocate an uncreated segment at i64::MAX", Want::Refused, || {
        let file = open(&pending, libc::O_RDWR | libc::O_CREAT)?;
        nix_done(fallocate(&file, FallocateFlags::empty(), i64::MAX - 1, 1))
    });

    // Enormous writes into the small segment write what fits.
    let big = huge_buffer();
    b.changes(
        "write 64 MiB at 0",
        Want::Ok(end),
        || pwrite_once(&path, big, 0),
        |k| {
            k.bytes(seg).copy_from_slice(&big[..end as usize]);
        },
    );
    b.changes(
        "write 64 MiB at end - 96",
        Want::Ok(96),
        || pwrite_once(&path, &big[1..], end - 96),
        |k| k.bytes(seg)[end as usize - 96..].copy_from_slice(&big[1..97]),
    );
    b.finish();
}

#[test]
fn queue_writes_larger_than_msgmax_send_nothing_and_reads_too_small_take_nothing() {
    let m = Mounted::new();
    let w = World::new();
    let mut b = Bench::new(&m);
    let q = w.queue;
    let file = |name: &str| under(&m, format!("msg/{}/{name}", q.0));
    let (any, five, two, biggest) = (file("any"), file("5"), file("2"), file("9223372036854775807"));
    // Receiving is reading under .recv/.
    let recv = |name: &str| file(&format!(".recv/{name}"));
    assert_eq!(kernel_msgmax(), MSGMAX);

    let big = huge_buffer();
    for (path, name) in [(&any, "any"), (&five, "5"), (&biggest, "9223372036854775807")] {
        b.refuses(format!("write 64 MiB to {name}"), Want::Err(libc::EINVAL), || write_once(path, 0, big));
        b.refuses(format!("write msgmax + 1 bytes to {name}"), Want::Err(libc::EINVAL), || {
            write_once(path, libc::O_NONBLOCK, &big[..MSGMAX + 1])
        });
    }
    b.refuses("write msgmax + 1 bytes to .recv/any", Want::Err(libc::EINVAL), || {
        write_once(&recv("any"), libc::O_NONBLOCK, &big[..MSGMAX + 1])
    });
    // Messages: any "one", 5 "five", 2 "two-two", 5 "5b".
    for (name, room) in [("any", 1), ("any", 2), ("5", 3), ("2", 6)] {
        b.refuses(format!("read .recv/{name} with a {room}-byte buffer"), Want::Err(libc::E2BIG), || {
            count(read_once(&recv(name), 0, room))
        });
    }
    let wait_any = file(".wait/any");
    b.refuses("read .wait/any with a 1-byte buffer", Want::Err(libc::E2BIG), || {
        count(read_once(&wait_any, libc::O_NONBLOCK, 1))
    });
    b.refuses("read .wait/3 with O_NONBLOCK", Want::Err(libc::EAGAIN), || {
        count(read_once(&file(".wait/3"), libc::O_NONBLOCK, 100))
    });
    b.refuses("read .recv/3, nothing queued", Want::Ok(0), || count(read_once(&recv("3"), 0, 100)));
    b.refuses("read .recv/ of the largest type", Want::Ok(0), || {
        count(read_once(&recv("9223372036854775807"), 0, 100))
    });
    b.refuses("read .recv/any with a 0-byte buffer", Want::Ok(0), || count(read_once(&recv("any"), 0, 0)));
    // Reading a listed file takes nothing, whatever the buffer.
    for (path, name, room, want) in
        [(&any, "any", 100, 3), (&five, "5", 100, 4), (&two, "2", 6, 6), (&biggest, "9223372036854775807", 100, 0)]
    {
        b.refuses(format!("read {name} with a {room}-byte buffer"), Want::Ok(want), || count(read_once(path, 0, room)));
    }
    for len in [0, 5, 1 << 40, i64::MAX] {
        b.refuses(format!("truncate any to {len}"), Want::Ok(0), || truncate(&any, len));
        b.refuses(format!("truncate 5 to {len}"), Want::Ok(0), || truncate(&five, len));
    }
    b.refuses("open 5 with O_TRUNC and close", Want::Ok(0), || open(&five, libc::O_WRONLY | libc::O_TRUNC).map(|_| 0));
    b.refuses("discard a type with nothing queued", Want::Ok(0), || unlink(&file("3")));
    b.refuses("discard type 0", Want::Err(libc::ENOENT), || unlink(&file("0")));
    b.refuses("discard type -1", Want::Err(libc::ENOENT), || unlink(&file("-1")));
    b.refuses("unlink .wait", Want::Err(libc::EISDIR), || unlink(&file(".wait")));
    b.refuses("rmdir .wait", Want::Anything, || rmdir(&file(".wait")));
    b.refuses("write to .wait", Want::Err(libc::EISDIR), || write_once(&file(".wait"), 0, b"x"));
    b.refuses("unlink .recv", Want::Err(libc::EISDIR), || unlink(&file(".recv")));
    b.refuses("rmdir .recv", Want::Anything, || rmdir(&file(".recv")));
    b.refuses("write to .recv", Want::Err(libc::EISDIR), || write_once(&file(".recv"), 0, b"x"));

    // Controls: exactly msgmax bytes, and the largest type, go and come back.
    let body = pseudo_random(MSGMAX, 5);
    b.changes(
        "write msgmax bytes to 7",
        Want::Ok(MSGMAX as u64),
        || write_once(&file("7"), libc::O_NONBLOCK, &body),
        |k| k.messages(q).push((7, Text(body.clone()))),
    );
    b.refuses("read 7 with a msgmax buffer", Want::Ok(MSGMAX as u64), || count(read_once(&file("7"), 0, MSGMAX)));
    b.changes(
        "read .recv/7 with a msgmax buffer",
        Want::Ok(MSGMAX as u64),
        || count(read_once(&recv("7"), 0, MSGMAX)),
        |k| {
            k.messages(q).pop();
        },
    );
    b.changes(
        "write to the largest type",
        Want::Ok(3),
        || write_once(&biggest, libc::O_NONBLOCK, b"max"),
        |k| k.messages(q).push((i64::MAX, text("max"))),
    );
    b.refuses("read the largest type", Want::Ok(3), || count(read_once(&biggest, 0, 100)));
    b.changes(
        "read .recv/ of the largest type",
        Want::Ok(3),
        || count(read_once(&recv("9223372036854775807"), 0, 100)),
        |k| {
            k.messages(q).pop();
        },
    );
    b.finish();
}
