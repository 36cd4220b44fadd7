//! Micro-benchmarks of the paths whose cost grows with the number of IPC
//! objects (issue 17): parsing the /proc/sysvipc tables, and the inode table.
//!
//!     cargo bench --bench micro
//!
//! A plain `main` (no harness, no dependency): every figure is the median of
//! [`ROUNDS`] rounds after a warm-up round, the cases interleaved round by
//! round so that the machine's noise spreads over all of them. It prints
//! tables in the style of bench.py and never fails on a figure: only a wrong
//! result (a parse error, a lost inode) stops it.

use std::hint::black_box;
use std::time::Instant;

use ipcfs::fs::inode::{InodeTable, MsgIdent, Node, Reading, SemIdent, ShmIdent, Target};
use ipcfs::ipc::Key;
use ipcfs::ipc::msg::MsqId;
use ipcfs::ipc::sem::SemId;
use ipcfs::ipc::shm::ShmId;
use ipcfs::ipc::sysvipc::{parse_msg, parse_sem, parse_shm};

/// Measured rounds per figure (the median is reported), after one warm-up round.
const ROUNDS: usize = 7;

/// Rows of /proc/sysvipc text per table.
const ROW_COUNTS: [usize; 3] = [1_000, 10_000, 30_000];

/// Nodes in the inode table.
const NODE_COUNTS: [usize; 3] = [1_000, 10_000, 100_000];

/// Work per round and case: at least this many rows parsed, or inode
/// operations of each kind, so that a round of the smallest case is long
/// enough to time.
const WORK_PER_ROUND: usize = 100_000;

fn main() {
    let start = Instant::now();
    machine();
    parsing();
    inode_table();
    println!();
    println!(
        "done in {:.1} s: the growth ratios are the figures to compare across machines; none of them can fail the run.",
        start.elapsed().as_secs_f64()
    );
}

fn machine() {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "?".to_string());
    println!("machine: {cpus} CPUs ({cpu})");
    let build = if cfg!(debug_assertions) { "debug build: the figures mean little" } else { "optimized build" };
    println!("mode: {build}; medians of {ROUNDS} interleaved rounds after a warm-up round");
}

// --- 1. parsing /proc/sysvipc -------------------------------------------------------------------

/// One table: its name, the text of `rows` rows, and its parser (which
/// returns the number of objects parsed).
struct Family {
    name: &'static str,
    fixture: fn(usize) -> String,
    parse: fn(&str) -> usize,
}

const FAMILIES: [Family; 3] = [
    Family { name: "shm", fixture: shm_text, parse: |t| black_box(parse_shm(t).expect("parse_shm")).len() },
    Family { name: "sem", fixture: sem_text, parse: |t| black_box(parse_sem(t).expect("parse_sem")).len() },
    Family { name: "msg", fixture: msg_text, parse: |t| black_box(parse_msg(t).expect("parse_msg")).len() },
];

/// A key as the kernel prints it (`%10d`): a quarter private, some above
/// 0x7fffffff (negative), the rest small.
fn key(i: usize) -> i32 {
    match i % 4 {
        0 => 0,
        1 => (0x9000_0000u32 + i as u32) as i32,
        _ => 0x1000 + i as i32,
    }
}

/// An id as the kernel makes them: slot index plus a sequence number times 32768.
fn id(i: usize) -> i32 {
    (i + 32768 * (i % 7)) as i32
}

/// /proc/sysvipc/shm, in the kernel's format (ipc/shm.c, sysvipc_shm_proc_show).
fn shm_text(rows: usize) -> String {
    let mut text = String::from(
        "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n",
    );
    for i in 0..rows {
        let mode = if i % 5 == 0 { 0o1600 } else { 0o644 };
        let (pid, t) = (1000 + i % 30000, 1_700_000_000 + i);
        let size = 4096 << (i % 8);
        text += &format!(
            "{:>10} {:>10}  {:>4o} {:>21} {:>5} {:>5}  {:>5} {:>5} {:>5} {:>5} {:>5} {:>10} {:>10} {:>10} {:>21} {:>21}\n",
            key(i),
            id(i),
            mode,
            size,
            pid,
            pid + 1,
            i % 3,
            1000,
            1000,
            0,
            0,
            t + 2,
            t + 1,
            t,
            size / 2,
            0
        );
    }
    text
}

/// /proc/sysvipc/sem, in the kernel's format (ipc/sem.c, sysvipc_sem_proc_show).
fn sem_text(rows: usize) -> String {
    let mut text =
        String::from("       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n");
    for i in 0..rows {
        let t = 1_700_000_000 + i;
        text += &format!(
            "{:>10} {:>10}  {:>4o} {:>10} {:>5} {:>5} {:>5} {:>5} {:>10} {:>10}\n",
            key(i),
            id(i),
            0o600,
            1 + i % 16,
            1000,
            100,
            1000,
            100,
            if i % 2 == 0 { 0 } else { t + 1 },
            t
        );
    }
    text
}

/// /proc/sysvipc/msg, in the kernel's format (ipc/msg.c, sysvipc_msg_proc_show).
fn msg_text(rows: usize) -> String {
    let mut text = String::from(
        "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n",
    );
    for i in 0..rows {
        let (pid, t) = (1000 + i % 30000, 1_700_000_000 + i);
        text += &format!(
            "{:>10} {:>10}  {:>4o}  {:>10} {:>10} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>10} {:>10} {:>10}\n",
            key(i),
            id(i),
            0o620,
            64 * (i % 10),
            i % 10,
            pid,
            pid + 1,
            0,
            0,
            0,
            0,
            t + 1,
            t + 2,
            t
        );
    }
    text
}

/// One table at one row count: its text, the calls per round, and the µs
/// per call of each round.
struct ParseCase {
    family: &'static Family,
    rows: usize,
    text: String,
    calls: usize,
    us: Vec<f64>,
}

fn parsing() {
    let mut cases = Vec::new();
    for family in &FAMILIES {
        for rows in ROW_COUNTS {
            let text = (family.fixture)(rows);
            assert_eq!((family.parse)(&text), rows, "{}: every row parsed", family.name);
            cases.push(ParseCase { family, rows, text, calls: WORK_PER_ROUND.div_ceil(rows), us: Vec::new() });
        }
    }
    for round in 0..=ROUNDS {
        for case in &mut cases {
            let start = Instant::now();
            for _ in 0..case.calls {
                assert_eq!((case.family.parse)(black_box(&case.text)), case.rows);
            }
            if round > 0 {
                case.us.push(start.elapsed().as_secs_f64() * 1e6 / case.calls as f64);
            }
        }
    }
    let mut table_rows = Vec::new();
    let mut previous = f64::NAN;
    for case in &mut cases {
        let us = median(&mut case.us);
        let growth = if case.rows == ROW_COUNTS[0] { f64::NAN } else { us / previous };
        previous = us;
        table_rows.push(vec![
            format!("{} x{}", case.family.name, thousands(case.rows)),
            fmt(case.text.len() as f64 / 1024.0),
            fmt(us),
            fmt(us * 1000.0 / case.rows as f64),
            fmt(growth),
        ]);
    }
    table(
        "1. parsing /proc/sysvipc: µs per call of ipc::sysvipc::parse_shm/parse_sem/parse_msg (lower is better)",
        &["table", "KiB", "µs/call", "ns/row", "growth"],
        &table_rows,
        "Text in the kernel's own format, parsed from memory (no read of /proc). growth: µs/call at this\n\
         row count / at the one above (linear = 10 from 1,000 to 10,000, then 3 to 30,000).",
    );
}

// --- 2. the inode table -------------------------------------------------------------------------

/// The `i`th of a set of distinct nodes: segments, semaphore sets,
/// semaphores and queue files in turn.
fn node(i: usize) -> Node {
    let (id, key, cuid, cgid) = (i as i32, Key(key(i)), 1000, 100);
    match i % 4 {
        0 => Node::Segment(ShmIdent { id: ShmId(id), key, cuid, cgid, cpid: 1000 + id, segsz: 4096 }),
        1 => Node::SemSet(SemIdent { id: SemId(id), key, cuid, cgid, nsems: 4 }),
        2 => Node::Semaphore(SemIdent { id: SemId(id), key, cuid, cgid, nsems: 4 }, (i % 4) as u16),
        _ => Node::QueueFile { ident: MsgIdent { id: MsqId(id), key, cuid, cgid }, mtype: 0, reading: Reading::Browse },
    }
}

const INODE_OPS: [&str; 4] = ["remember (new)", "remember (again)", "get", "forget"];

/// One round at `n` nodes, repeated `reps` times on a fresh table: ns per
/// operation of each kind in [`INODE_OPS`].
fn inode_round(nodes: &[Node], reps: usize, inos: &mut Vec<u64>) -> [f64; 4] {
    let mut ns = [0.0; 4];
    for _ in 0..reps {
        let mut table = InodeTable::<()>::new();
        inos.clear();
        let start = Instant::now();
        for node in nodes {
            inos.push(table.remember(black_box(node)));
        }
        ns[0] += start.elapsed().as_secs_f64();
        let start = Instant::now();
        for (node, &ino) in nodes.iter().zip(inos.iter()) {
            assert_eq!(table.remember(black_box(node)), ino, "a node keeps its inode");
        }
        ns[1] += start.elapsed().as_secs_f64();
        let start = Instant::now();
        for &ino in inos.iter() {
            assert!(matches!(black_box(table.get(black_box(ino))), Some(Target::Node(_))), "inode {ino} lost");
        }
        ns[2] += start.elapsed().as_secs_f64();
        let start = Instant::now();
        for &ino in inos.iter() {
            table.forget(black_box(ino), 2);
        }
        ns[3] += start.elapsed().as_secs_f64();
        assert!(table.is_empty(), "every inode forgotten");
    }
    ns.map(|seconds| seconds * 1e9 / (reps * nodes.len()) as f64)
}

/// One table size: its nodes, the repetitions per round, and the ns per
/// operation of each kind in [`INODE_OPS`] and each round.
struct InodeCase {
    n: usize,
    nodes: Vec<Node>,
    reps: usize,
    ns: [Vec<f64>; 4],
}

fn inode_table() {
    let mut cases: Vec<InodeCase> = NODE_COUNTS
        .iter()
        .map(|&n| InodeCase {
            n,
            nodes: (0..n).map(node).collect(),
            reps: WORK_PER_ROUND.div_ceil(n),
            ns: Default::default(),
        })
        .collect();
    let mut inos = Vec::with_capacity(NODE_COUNTS[NODE_COUNTS.len() - 1]);
    for round in 0..=ROUNDS {
        for case in &mut cases {
            let figures = inode_round(&case.nodes, case.reps, &mut inos);
            if round > 0 {
                for (all, figure) in case.ns.iter_mut().zip(figures) {
                    all.push(figure);
                }
            }
        }
    }
    let mut table_rows = Vec::new();
    for (op, name) in INODE_OPS.iter().enumerate() {
        let mut previous = f64::NAN;
        for case in &mut cases {
            let ns = median(&mut case.ns[op]);
            let growth = if case.n == NODE_COUNTS[0] { f64::NAN } else { ns / previous };
            previous = ns;
            table_rows.push(vec![format!("{name} x{}", thousands(case.n)), fmt(ns), fmt(growth)]);
        }
    }
    table(
        "2. the inode table: ns per operation of fs::inode::InodeTable with N nodes (lower is better)",
        &["operation", "ns/op", "growth"],
        &table_rows,
        "remember (new): N distinct nodes (segments, semaphore sets, semaphores, queue files) into an\n\
         empty table; remember (again): each looked up again (same inode); get: each inode resolved;\n\
         forget: each dropped (forget(ino, 2)), which empties the table. growth: ns/op at this N / at the\n\
         N above: 1 = flat (O(1) per operation); 10 would be O(n). A rise of 2-4 at 100,000 is the hash\n\
         tables outgrowing the CPU's caches (a plain std HashMap<u64, _> rises about as much).",
    );
}

// --- output -------------------------------------------------------------------------------------

/// The median of `xs` (NaN if empty).
fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    if xs.len() % 2 == 1 { xs[mid] } else { (xs[mid - 1] + xs[mid]) / 2.0 }
}

/// A figure as bench.py prints it: 3 significant digits or so, `-` for none.
fn fmt(x: f64) -> String {
    if x.is_nan() {
        "-".to_string()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// 30000 as "30,000".
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A table as bench.py prints it: the title, the note, then aligned columns
/// (the first left-justified, the others right-justified).
fn table(title: &str, header: &[&str], rows: &[Vec<String>], note: &str) {
    println!();
    println!("== {title}");
    for line in note.lines() {
        println!("   {line}");
    }
    let cells: Vec<Vec<String>> =
        std::iter::once(header.iter().map(|h| h.to_string()).collect()).chain(rows.iter().cloned()).collect();
    let widths: Vec<usize> =
        (0..header.len()).map(|i| cells.iter().map(|row| row[i].chars().count()).max().unwrap_or(0)).collect();
    for (n, row) in cells.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, &w))| if i == 0 { format!("{cell:<w$}") } else { format!("{cell:>w$}") })
            .collect();
        println!("   {}", line.join("  "));
        if n == 0 {
            println!("   {}", widths.iter().map(|&w| "-".repeat(w)).collect::<Vec<_>>().join("  "));
        }
    }
}
