//! Read-only and writable opens mix, and reads of a read-only open are the
//! kernel's alone.

use super::*;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};

// ---- 4. opens mix ----

#[test]
fn read_only_and_writable_opens_mix_in_any_order() {
    let m = Mounted::new();
    let size = 2 * PAGE;

    // A read-only open first, then writable ones.
    let (id, mut expected) = filled_segment(0x7401, size, 6);
    let path = m.shm(id);
    let reader = open_read_only(&path);
    assert!(pread(&reader, 0, size) == expected);
    let writer = open_write_only(&path);
    let both = open_read_write(&path);
    assert_eq!(writer.write_at(b"wronly", 0).unwrap(), 6);
    assert_eq!(both.write_at(b"rdwr", 100).unwrap(), 4);
    expected[..6].copy_from_slice(b"wronly");
    expected[100..104].copy_from_slice(b"rdwr");
    assert!(segment_bytes(id) == expected, "both writable opens wrote the segment");
    assert!(pread(&reader, 0, size) == expected, "the read-only open reads what they wrote");
    assert!(pread(&both, 0, size) == expected);
    drop((reader, writer, both));

    // A writable open first, then read-only ones.
    let (id, mut expected) = filled_segment(0x7402, size, 7);
    let path = m.shm(id);
    let both = open_read_write(&path);
    assert_eq!(both.write_at(b"first", PAGE as u64).unwrap(), 5);
    expected[PAGE..PAGE + 5].copy_from_slice(b"first");
    let readers: Vec<File> = (0..3).map(|_| open_read_only(&path)).collect();
    for reader in &readers {
        assert!(pread(reader, 0, size) == expected, "a later read-only open reads what was written");
    }
    assert_eq!(both.write_at(b"second", PAGE as u64 + 10).unwrap(), 6);
    expected[PAGE + 10..PAGE + 16].copy_from_slice(b"second");
    for reader in &readers {
        assert!(pread(reader, 0, size) == expected, "and what is written while it is open");
    }
    let writer = open_write_only(&path);
    assert_eq!(writer.write_at(b"third", 0).unwrap(), 5);
    expected[..5].copy_from_slice(b"third");
    assert!(pread(&readers[0], 0, size) == expected);
    assert!(segment_bytes(id) == expected);
    drop((both, readers, writer));

    // Twenty opens of one file at once, made concurrently: O_RDONLY (i % 3
    // == 0), O_WRONLY (1) and O_RDWR (2). Each writable one writes its own
    // slot while all are open, and every readable one then reads them all.
    let threads = 20;
    let (id, data) = filled_segment(0x7403, size, 8);
    let path = m.shm(id);
    let slot = |i: usize| format!("open {i:02} was here;").into_bytes();
    let opened = std::sync::Barrier::new(threads);
    let written = std::sync::Barrier::new(threads);
    let mut expected = data.clone();
    for i in (0..threads).filter(|i| i % 3 != 0) {
        let s = slot(i);
        expected[i * 64..i * 64 + s.len()].copy_from_slice(&s);
    }
    let expected = &expected;
    std::thread::scope(|scope| {
        for i in 0..threads {
            let (path, opened, written) = (&path, &opened, &written);
            scope.spawn(move || {
                // Nothing may panic before the last barrier, or the other
                // threads would wait there for ever: results are kept and
                // checked after it.
                let mut options = OpenOptions::new();
                options.read(i % 3 != 1).write(i % 3 != 0);
                let file = options.open(path);
                opened.wait();
                let wrote = match &file {
                    Ok(file) if i % 3 != 0 => Some(file.write_at(&slot(i), (i * 64) as u64)),
                    _ => None,
                };
                written.wait();
                let file = file.unwrap_or_else(|e| panic!("open {i} (mode {}): {e}", i % 3));
                if let Some(wrote) = wrote {
                    assert_eq!(wrote.unwrap(), slot(i).len(), "open {i} writes its slot");
                }
                if i % 3 != 1 {
                    assert!(pread(&file, 0, size) == *expected, "open {i} reads every write");
                }
            });
        }
    });
    assert!(segment_bytes(id) == *expected);
}

// ---- 5. reads of a read-only open are the kernel's ----

// How "the daemon sees no read" is measured: /proc/<daemon>/io. Serving a
// read, the daemon would pread the bytes from the segment (rchar) and write
// them to /dev/fuse (wchar), so 64 MiB served moves the counters by at least
// 64 MiB, while an open, a few lookups and a release move them by a few KiB.
// That is exact under any load. CPU time is not: a daemon serving 64 MiB
// from page cache spends only some tens of milliseconds, a handful of 10 ms
// ticks, which a busy machine's noise can match, so the ticks are printed
// but not asserted. The control (an O_RDWR open, whose reads the daemon
// serves) shows that the counters do see reads that reach the daemon.
#[test]
fn reads_of_a_read_only_open_never_reach_the_daemon() {
    let m = Mounted::new();
    let size = 64 << 20;
    let (id, data) = filled_segment(0x7501, size, 9);
    let path = m.shm(id);
    let pid = m.daemon_pid().unwrap();

    let (rchar, wchar) = proc_io(pid);
    let ticks = cpu_ticks(pid);
    let started = std::time::Instant::now();
    let out = Command::new("dd")
        .arg(format!("if={}", path.display()))
        .args(["bs=1M", "status=none"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(out.status.success(), "dd bs=1M of the segment file failed ({}): {}", out.status, stderr_of(&out));
    assert_eq!(out.stdout.len(), size, "dd read the whole segment");
    assert!(out.stdout == data, "dd read the segment's bytes");
    let (rchar_after, wchar_after) = proc_io(pid);
    let ticks_after = cpu_ticks(pid);
    let (moved_r, moved_w) = (rchar_after - rchar, wchar_after - wchar);
    println!(
        "read-only open, 64 MiB by dd bs=1M in {took:?}: daemon rchar +{moved_r}, wchar +{moved_w}, cpu ticks +{}",
        ticks_after - ticks
    );
    assert!(
        moved_r < 64 << 10 && moved_w < 64 << 10,
        "the daemon moved {moved_r} bytes in and {moved_w} out while 64 MiB were read through a read-only open"
    );

    // The control: reads of an O_RDWR open are the daemon's.
    let (rchar, wchar) = proc_io(pid);
    let ticks = cpu_ticks(pid);
    let started = std::time::Instant::now();
    let file = open_read_write(&path);
    let chunk_size = 1 << 20;
    let mut buf = vec![0u8; chunk_size];
    for chunk in 0..size / chunk_size {
        file.read_exact_at(&mut buf, (chunk * chunk_size) as u64).unwrap();
        assert!(buf[..] == data[chunk * chunk_size..(chunk + 1) * chunk_size], "chunk {chunk}");
    }
    drop(file);
    let took = started.elapsed();
    let (rchar_after, wchar_after) = proc_io(pid);
    let (moved_r, moved_w) = (rchar_after - rchar, wchar_after - wchar);
    println!(
        "control, O_RDWR open, 64 MiB by pread 1 MiB in {took:?}: daemon rchar +{moved_r}, wchar +{moved_w}, cpu ticks +{}",
        cpu_ticks(pid) - ticks
    );
    assert!(moved_w >= size as u64, "the daemon wrote only {moved_w} bytes while serving 64 MiB");
}
