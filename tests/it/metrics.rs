//! `metrics/ipc.prom` (issue 18): every object and limit as Prometheus
//! gauges, made afresh at each open. Read by the real parser
//! (python3-prometheus-client) and served by the real exporter
//! (prometheus-node-exporter's textfile collector), and checked against the
//! kernel's own calls, lsipc and ipcs; then freshness, an open file's
//! snapshot, and what the file refuses.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::common::*;
use ipcfs::ipc::msg::MsqId;
use ipcfs::ipc::sem::{self, SemId};

/// The contract's families, in its order, with the kernel field that ends
/// the HELP text of those that show one field.
const FAMILIES: [(&str, Option<&str>); 9] = [
    ("ipc_shm_size_bytes", Some("shm_segsz")),
    ("ipc_shm_attached", Some("shm_nattch")),
    ("ipc_sem_semaphores", Some("sem_nsems")),
    ("ipc_sem_waiters", None),
    ("ipc_msg_messages", Some("msg_qnum")),
    ("ipc_msg_bytes", Some("msg_cbytes")),
    ("ipc_msg_max_bytes", Some("msg_qbytes")),
    ("ipc_limit", None),
    ("ipc_limit_used", None),
];

const RESOURCES: [&str; 12] = [
    "msgmni", "msgmax", "msgmnb", "shmmni", "shmall", "shmmax", "shmmin", "semmni", "semmns", "semmsl", "semopm",
    "semvmx",
];

/// The resources whose use the kernel counts: the only `ipc_limit_used` samples.
const COUNTED: [&str; 5] = ["msgmni", "shmmni", "shmall", "semmni", "semmns"];

type Labels = BTreeMap<String, String>;

/// One sample line, its value as written.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Labels,
    value: String,
}

/// A text exposition parsed by hand, exactly (values as text).
#[derive(Debug, Default)]
struct Exposition {
    /// (name, HELP, TYPE), in the order they first appear.
    families: Vec<(String, String, String)>,
    samples: Vec<Sample>,
    /// The family each sample stands under (the last HELP or TYPE before it).
    under: Vec<String>,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut out = Exposition::default();
        for line in text.lines() {
            let comment = line.strip_prefix("# HELP ").map(|r| (r, 1)).or(line.strip_prefix("# TYPE ").map(|r| (r, 2)));
            if let Some((rest, field)) = comment {
                let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
                if out.families.last().is_none_or(|f| f.0 != name) {
                    out.families.push((name.to_string(), String::new(), String::new()));
                }
                let family = out.families.last_mut().unwrap();
                let text = text.replace("\\n", "\n").replace("\\\\", "\\");
                if field == 1 { family.1 = text } else { family.2 = text }
            } else if !line.starts_with('#') && !line.trim().is_empty() {
                out.samples.push(sample(line));
                out.under.push(out.families.last().map_or(String::new(), |f| f.0.clone()));
            }
        }
        out
    }

    /// The samples of family `name`.
    fn of<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a Sample> + use<'a, 'n> {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The value of the one sample of `name` whose label `label` is `value`.
    #[track_caller]
    fn value(&self, name: &str, label: &str, value: &str) -> &str {
        let found: Vec<&Sample> =
            self.of(name).filter(|s| s.labels.get(label).map(String::as_str) == Some(value)).collect();
        assert_eq!(found.len(), 1, "samples of {name} with {label}={value:?}: {found:?}");
        &found[0].value
    }
}

fn sample(line: &str) -> Sample {
    let (head, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("sample line {line:?}"));
    let (name, labels) = match head.split_once('{') {
        None => (head, Labels::new()),
        Some((name, rest)) => (name, label_set(rest.strip_suffix('}').unwrap_or_else(|| panic!("labels of {line:?}")))),
    };
    Sample { name: name.to_string(), labels, value: value.to_string() }
}

/// `a="x",b="y\"z"` as a map, the values unescaped.
fn label_set(text: &str) -> Labels {
    let mut labels = Labels::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let name: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "label {name:?} in {text:?}");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => value.push(match chars.next() {
                    Some('n') => '\n',
                    Some(c) => c,
                    None => panic!("escape at the end of {text:?}"),
                }),
                c => value.push(c),
            }
        }
        assert!(labels.insert(name.trim().to_string(), value).is_none(), "a label twice in {text:?}");
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    labels
}

fn object_labels(id: i32, key: Key, owner: u32) -> Labels {
    Labels::from([("id".into(), id.to_string()), ("key".into(), key.to_string()), ("owner".into(), owner.to_string())])
}

fn gauge(name: &str, labels: &Labels, value: impl ToString) -> Sample {
    Sample { name: name.to_string(), labels: labels.clone(), value: value.to_string() }
}

/// The object samples the file must hold for these objects (all of the
/// namespace's), in order, from the kernel's own calls.
fn object_samples(shms: &[ShmId], sets: &[SemId], queues: &[MsqId]) -> Vec<Sample> {
    let mut shms = shms.to_vec();
    let mut sets = sets.to_vec();
    let mut queues = queues.to_vec();
    shms.sort_by_key(|i| i.0);
    sets.sort_by_key(|i| i.0);
    queues.sort_by_key(|i| i.0);
    let shm: Vec<_> =
        shms.iter().map(|&i| (kstat(i), object_labels(i.0, kstat(i).perm.key, kstat(i).perm.uid))).collect();
    let sem: Vec<_> =
        sets.iter().map(|&i| (i, kstat(i), object_labels(i.0, kstat(i).perm.key, kstat(i).perm.uid))).collect();
    let msg: Vec<_> =
        queues.iter().map(|&i| (kstat(i), object_labels(i.0, kstat(i).perm.key, kstat(i).perm.uid))).collect();
    let waiters = |id: SemId, n: u64| (0..n as u16).map(|s| ncnt(id, s) + zcnt(id, s)).sum::<i32>();
    let mut out = Vec::new();
    out.extend(shm.iter().map(|(k, l)| gauge("ipc_shm_size_bytes", l, k.segsz)));
    out.extend(shm.iter().map(|(k, l)| gauge("ipc_shm_attached", l, k.nattch)));
    out.extend(sem.iter().map(|(_, k, l)| gauge("ipc_sem_semaphores", l, k.nsems)));
    out.extend(sem.iter().map(|(i, k, l)| gauge("ipc_sem_waiters", l, waiters(*i, k.nsems))));
    out.extend(msg.iter().map(|(k, l)| gauge("ipc_msg_messages", l, k.qnum)));
    out.extend(msg.iter().map(|(k, l)| gauge("ipc_msg_bytes", l, k.cbytes)));
    out.extend(msg.iter().map(|(k, l)| gauge("ipc_msg_max_bytes", l, k.qbytes)));
    out
}

fn objects_of(file: &Exposition) -> Vec<Sample> {
    file.samples.iter().filter(|s| !s.name.starts_with("ipc_limit")).cloned().collect()
}

/// The file's layout: every family of the contract once, in its order, a
/// gauge with HELP, and every sample under its own family.
#[track_caller]
fn assert_layout(file: &Exposition, text: &str) {
    let names: Vec<&str> = file.families.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(names, FAMILIES.map(|f| f.0), "the families, in the contract's order, in:\n{text}");
    for ((name, field), (_, help, kind)) in FAMILIES.iter().zip(&file.families) {
        assert_eq!(kind, "gauge", "TYPE of {name}");
        assert!(!help.trim().is_empty(), "{name} has no HELP text");
        if let Some(field) = field {
            let ends = help.trim_end_matches('.').ends_with(&format!("({field})"));
            assert!(ends, "HELP of {name} should end with ({field}): {help:?}");
        }
    }
    for (s, family) in file.samples.iter().zip(&file.under) {
        assert_eq!(&s.name, family, "a sample of {} under the HELP/TYPE of {family}", s.name);
    }
}

/// A sample as prometheus_client reads it: name, `k=v,...`, value.
type PySample = (String, String, f64);

/// prometheus_client's parser on a file: a line per family (`F name type
/// help`) and per sample (`S name k=v,... value`), labels sorted.
const PARSE: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for f in text_string_to_metric_families(open(sys.argv[1]).read()):
    print("F\t%s\t%s\t%s" % (f.name, f.type, f.documentation))
    for s in f.samples:
        print("S\t%s\t%s\t%r" % (s.name, ",".join("%s=%s" % kv for kv in sorted(s.labels.items())), s.value))
"#;

/// What prometheus_client's parser makes of the file: families (name, type,
/// help) and samples (name, labels, value).
fn python_parse(path: &Path) -> (Vec<[String; 3]>, Vec<PySample>) {
    let out = Command::new(PYTHON).args(["-c", PARSE]).arg(path).stdin(Stdio::null()).output().unwrap();
    let text = assert_ok(&out, "prometheus_client.parser.text_string_to_metric_families");
    let (mut families, mut samples) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f[..] {
            ["F", name, kind, help] => families.push([name, kind, help].map(String::from)),
            ["S", name, labels, value] => samples.push((name.into(), labels.into(), value.parse().unwrap())),
            _ => panic!("parser output line {line:?}"),
        }
    }
    (families, samples)
}

/// lsipc --global --json, by resource (upper case): its columns.
fn lsipc_global() -> HashMap<String, HashMap<String, String>> {
    parse_lsipc_json(&sh_ok("lsipc --global --json --bytes")).into_iter().map(|r| (r["resource"].clone(), r)).collect()
}

/// A count from `ipcs -u`, the kernel's own (as tests/it/limits.rs compares).
fn ipcs_u(label: &str) -> String {
    let out = sh_ok("LC_ALL=C ipcs -u");
    let line = out.lines().find(|l| l.trim_start().starts_with(label)).unwrap_or_else(|| panic!("ipcs -u: {label}"));
    line.split_whitespace().last().unwrap().to_string()
}

/// A child process, killed and reaped on drop, also when the test fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One semop of `op` on semaphore `num`, made by a child process through
/// the kernel (it blocks there until it can go on, or is killed).
fn semop_child(id: SemId, num: u16, op: i16) -> Killed {
    const SEMOP: &str = r#"
import ctypes, sys
class Sembuf(ctypes.Structure):
    _fields_ = [("num", ctypes.c_ushort), ("op", ctypes.c_short), ("flg", ctypes.c_short)]
op = Sembuf(int(sys.argv[2]), int(sys.argv[3]), 0)
sys.exit(ctypes.CDLL(None).semop(int(sys.argv[1]), ctypes.byref(op), 1))
"#;
    let args = [id.0.to_string(), num.to_string(), op.to_string()];
    Killed(Command::new(PYTHON).args(["-c", SEMOP]).args(args).stdin(Stdio::null()).spawn().expect("python3"))
}

/// A segment with a key (attached once), a private one owned by someone
/// else, a set of 3 semaphores with a P waiting on semaphore 1 and a wait
/// for zero on 2, and a queue of 2 messages (11 bytes); the waiters live
/// as long as the returned guards.
fn known_objects() -> ([ShmId; 2], SemId, MsqId, Vec<Killed>, shm::Attachment) {
    let keyed = create_segment(0x1234, 4096, 0o600);
    let private = create_segment(0, 100, 0o640);
    shm::set(private, NOBODY_UID, NOBODY_GID, 0o640).unwrap();
    let attachment = attach(keyed);
    let set = create_set(0x5678, 3, 0o600);
    sem::set_value(set, 2, 1).unwrap();
    let waiters = vec![semop_child(set, 1, -1), semop_child(set, 2, 0)];
    wait_for("a P on semaphore 1 and a wait for zero on 2", || ncnt(set, 1) == 1 && zcnt(set, 2) == 1);
    let queue = create_queue(0x9abc, 0o600);
    send(queue, 1, "hello");
    send(queue, 2, "world!");
    ([keyed, private], set, queue, waiters, attachment)
}

// ---- 1. what the file says ----

#[test]
fn every_family_parses_and_every_sample_equals_the_kernel_lsipc_and_limits() {
    let m = Mounted::new();
    let ([keyed, private], set, queue, _waiters, _attachment) = known_objects();
    let path = m.path("metrics/ipc.prom");
    let text = fs::read_to_string(&path).unwrap();
    let file = Exposition::parse(&text);
    assert_layout(&file, &text);

    // The objects: exactly these samples, in order, as the kernel says.
    assert_eq!(objects_of(&file), object_samples(&[keyed, private], &[set], &[queue]), "in:\n{text}");
    let (k, p, s, q) = (keyed.0.to_string(), private.0.to_string(), set.0.to_string(), queue.0.to_string());
    let labels = |n: &str, id: &str| file.of(n).find(|x| x.labels["id"] == id).unwrap().labels.clone();
    let keyed_labels = object_labels(keyed.0, Key(0x1234), 0);
    assert_eq!(labels("ipc_shm_size_bytes", &k), keyed_labels);
    assert_eq!(labels("ipc_shm_attached", &p), object_labels(private.0, Key(0), NOBODY_UID));
    assert_eq!(labels("ipc_shm_attached", &p)["key"], "0x00000000");
    assert_eq!(labels("ipc_sem_waiters", &s), object_labels(set.0, Key(0x5678), 0));
    assert_eq!(labels("ipc_msg_bytes", &q)["key"], "0x00009abc");
    let known = [
        ("ipc_shm_size_bytes", &k, "4096"),
        ("ipc_shm_size_bytes", &p, "100"),
        ("ipc_shm_attached", &k, "1"),
        ("ipc_shm_attached", &p, "0"),
        ("ipc_sem_semaphores", &s, "3"),
        ("ipc_sem_waiters", &s, "2"),
        ("ipc_msg_messages", &q, "2"),
        ("ipc_msg_bytes", &q, "11"),
    ];
    for (name, id, want) in known {
        assert_eq!(file.value(name, "id", id), want, "{name} of {id}");
    }
    assert_eq!(file.value("ipc_msg_max_bytes", "id", &q), kernel_msgmnb().to_string());

    // The same objects as lsipc shows them.
    // lsipc's options and columns, and the (family, column) pairs compared.
    type Compared<'a> = &'a [(&'a str, &'a str)];
    let families: [(&str, &str, Compared); 3] = [
        ("-m --bytes", "KEY,ID,UID,SIZE,NATTCH", &[("ipc_shm_size_bytes", "size"), ("ipc_shm_attached", "nattch")]),
        ("-s", "KEY,ID,UID,NSEMS", &[("ipc_sem_semaphores", "nsems")]),
        ("-q --bytes", "KEY,ID,UID,USEDBYTES,MSGS", &[("ipc_msg_bytes", "usedbytes"), ("ipc_msg_messages", "msgs")]),
    ];
    for (options, columns, compared) in families {
        let rows = lsipc_rows(options, columns);
        assert_eq!(rows.len(), file.of(compared[0].0).count(), "lsipc {options}: {rows:?}");
        for row in rows {
            for &(name, column) in compared {
                let s = file.of(name).find(|s| s.labels["id"] == row["id"]).unwrap_or_else(|| panic!("{name} {row:?}"));
                assert_eq!((&s.labels["key"], &s.labels["owner"], &s.value), (&row["key"], &row["uid"], &row[column]));
            }
        }
    }

    // The same as prometheus_client's parser reads it.
    let (py_families, py_samples) = python_parse(&path);
    let want_families: Vec<[String; 3]> =
        file.families.iter().map(|(n, h, t)| [n.clone(), t.clone(), h.clone()]).collect();
    assert_eq!(py_families, want_families, "families as prometheus_client reads them");
    let want_samples: Vec<PySample> = file
        .samples
        .iter()
        .map(|s| {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            (s.name.clone(), labels.join(","), s.value.parse().unwrap())
        })
        .collect();
    assert_eq!(py_samples, want_samples, "samples as prometheus_client reads them");

    // The limits: each as limits/ shows it; the use where the kernel counts it.
    let limits: Vec<&Sample> = file.of("ipc_limit").collect();
    assert_eq!(limits.len(), RESOURCES.len(), "{limits:?}");
    for r in RESOURCES {
        let shown = fs::read_to_string(m.path(format!("limits/{r}"))).unwrap();
        assert_eq!(file.value("ipc_limit", "resource", r), shown.trim(), "ipc_limit of {r} against limits/{r}");
    }
    let mut used: Vec<&str> = file.of("ipc_limit_used").map(|s| s.labels["resource"].as_str()).collect();
    used.sort();
    let mut counted = COUNTED.to_vec();
    counted.sort();
    assert_eq!(used, counted, "the resources with ipc_limit_used");
    assert!(file.samples.iter().filter(|s| s.name.starts_with("ipc_limit")).all(|s| s.labels.len() == 1));
    let lsipc = lsipc_global();
    for r in COUNTED {
        let value = file.value("ipc_limit_used", "resource", r);
        let by_tool = match r {
            "shmall" => ipcs_u("pages allocated"),
            "semmns" => ipcs_u("allocated semaphores"),
            _ => lsipc[&r.to_ascii_uppercase()]["used"].clone(),
        };
        assert_eq!(value, by_tool, "ipc_limit_used of {r} against lsipc --global / ipcs -u");
        let xattr_used = xattr(&m.path(format!("limits/{r}")), "user.ipc.used").unwrap();
        assert_eq!(value, xattr_used, "ipc_limit_used of {r} against limits/{r}'s user.ipc.used");
    }
    let counts = ["shmmni", "semmni", "semmns", "msgmni"].map(|r| file.value("ipc_limit_used", "resource", r));
    assert_eq!(counts, ["2", "1", "3", "1"]);
}

// ---- 2. fresh at each open, a snapshot while open ----

#[test]
fn each_open_is_fresh_and_an_open_file_keeps_its_snapshot() {
    let m = Mounted::new();
    let path = m.path("metrics/ipc.prom");
    let read = || fs::read_to_string(&path).unwrap();
    // No objects: every family still has its HELP and TYPE.
    let empty = read();
    assert_layout(&Exposition::parse(&empty), &empty);
    assert_eq!(objects_of(&Exposition::parse(&empty)), []);

    // Enough segments that the file is far larger than one read.
    let segments: Vec<ShmId> = (0..1500).map(|_| create_segment(0, 1, 0o600)).collect();
    let queue = create_queue(0x2002, 0o600);
    let before = read();
    let file = Exposition::parse(&before);
    assert_layout(&file, &before);
    assert_eq!(objects_of(&file), object_samples(&segments, &[], &[queue]), "after creating 1500 segments");
    let ids: Vec<i64> = file.of("ipc_shm_size_bytes").map(|s| s.labels["id"].parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "segment samples by id ascending: {ids:?}");
    assert!(before.len() > 150_000, "{} bytes", before.len());
    assert_eq!(fs::metadata(&path).unwrap().len(), before.len() as u64, "st_size is a snapshot's length");

    // An open file keeps the snapshot of its open.
    let mut open = open_read_only(&path);
    let mut head = vec![0; 100];
    open.read_exact(&mut head).unwrap();
    for &id in &segments {
        shm::remove(id).unwrap();
    }
    send(queue, 7, "after the open");
    let later = create_set(0x2003, 4, 0o600);
    let mut rest = Vec::new();
    open.read_to_end(&mut rest).unwrap();
    head.extend(rest);
    assert!(head == before.as_bytes(), "the open file read {} bytes, not its open's snapshot", head.len());
    let mut again = vec![0; 4096];
    assert_eq!(open.read_at(&mut again, 50_000).unwrap(), 4096, "pread in the snapshot");
    assert!(again == before.as_bytes()[50_000..54_096], "pread at 50000 reads the snapshot");
    drop(open);

    // A new open sees the change.
    let after = read();
    let file = Exposition::parse(&after);
    assert_eq!(objects_of(&file), object_samples(&[], &[later], &[queue]), "after the change:\n{after}");
    assert_eq!(file.value("ipc_msg_messages", "id", &queue.0.to_string()), "1");
    assert_eq!(file.value("ipc_sem_semaphores", "id", &later.0.to_string()), "4");
    assert_eq!(file.value("ipc_limit_used", "resource", "shmmni"), "0");
    assert_eq!(fs::metadata(&path).unwrap().len(), after.len() as u64);
}

// ---- 3. served unchanged by node_exporter ----

/// `GET /metrics` over HTTP/1.0: the reply, head and body.
fn http_get(port: u16) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(LIMIT))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

#[test]
fn node_exporter_serves_every_sample_unchanged() {
    let m = Mounted::new();
    let ([keyed, _], set, queue, _waiters, _attachment) = known_objects();
    sem::set_value(set, 0, 5).unwrap();
    let text = fs::read_to_string(m.path("metrics/ipc.prom")).unwrap();
    let file = Exposition::parse(&text);
    assert_eq!(file.value("ipc_shm_attached", "id", &keyed.0.to_string()), "1");
    assert_eq!(file.value("ipc_msg_messages", "id", &queue.0.to_string()), "2");

    let scratch = Scratch::new("exporter");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = fs::File::create(scratch.path("exporter.log")).unwrap();
    // A child of the test thread: in its mount namespace, where the mount is.
    let mut exporter = Killed(
        Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--", "/usr/bin/prometheus-node-exporter"])
            .arg(format!("--collector.textfile.directory={}", m.path("metrics").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(["--collector.disable-defaults", "--collector.textfile"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus-node-exporter"),
    );
    let mut reply = String::new();
    wait_for("node_exporter answers on /metrics", || {
        if let Some(status) = exporter.0.try_wait().unwrap() {
            panic!("node_exporter exited ({status}): {}", fs::read_to_string(scratch.path("exporter.log")).unwrap());
        }
        reply = http_get(port).unwrap_or_default();
        reply.lines().next().is_some_and(|l| l.contains(" 200 "))
    });
    let body = reply.split_once("\r\n\r\n").expect("an HTTP head and body").1;
    let served = Exposition::parse(body);

    let scrape_error = served.of("node_textfile_scrape_error").next().map(|s| s.value.as_str());
    assert_eq!(scrape_error, Some("0"), "node_textfile_scrape_error, in:\n{body}");
    let ours: Vec<&Sample> = served.samples.iter().filter(|s| s.name.starts_with("ipc_")).collect();
    assert_eq!(ours.len(), file.samples.len(), "ipc_* samples served, in:\n{body}");
    for s in &file.samples {
        let found = ours.iter().find(|o| o.name == s.name && o.labels == s.labels);
        let found = found.unwrap_or_else(|| panic!("{s:?} not served, in:\n{body}"));
        let (want, got): (f64, f64) = (s.value.parse().unwrap(), found.value.parse().unwrap());
        assert_eq!(got, want, "{} {:?}", s.name, s.labels);
    }
    for (name, help, _) in &file.families {
        if let Some((_, served_help, kind)) = served.families.iter().find(|f| &f.0 == name) {
            assert_eq!((served_help, kind.as_str()), (help, "gauge"), "{name} as served");
        }
    }
    assert!(served.families.iter().any(|f| f.0 == "ipc_limit"));
    drop(exporter);
}

// ---- 4. what the file refuses, and the tools that copy it ----

#[test]
fn writing_is_refused_and_ls_cp_and_tar_see_one_read_only_file() {
    let m = Mounted::new();
    create_segment(0x4001, 4096, 0o600);
    let queue = create_queue(0x4002, 0o600);
    send(queue, 1, "x");
    let dir = m.path("metrics");
    let path = m.path("metrics/ipc.prom");

    // As root too, as limits/usage: EACCES at the open for write.
    assert_eq!(errno(OpenOptions::new().write(true).open(&path)), libc::EACCES, "O_WRONLY as root");
    assert_eq!(errno(OpenOptions::new().read(true).write(true).open(&path)), libc::EACCES, "O_RDWR as root");
    assert_eq!(errno(OpenOptions::new().append(true).open(&path)), libc::EACCES, "O_APPEND as root");
    let out = sh_as(USER, USER_GID, &[], &format!("LC_ALL=C; echo 1 > {}", q(&path)));
    assert_refused(&out, "Permission denied", "a user writing metrics/ipc.prom");

    assert_eq!(list(&dir), ["ipc.prom"]);
    assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o7777, 0o555, "metrics/ is 0555");
    let content = fs::read(&path).unwrap();
    let listing = ls_long(&dir, "-l");
    assert_eq!(listing.len(), 1, "{listing:?}");
    let row = &listing["ipc.prom"];
    assert_eq!(row[0], "-r--r--r--", "ls -l metrics/: {row:?}");
    assert_eq!(row[3], content.len().to_string(), "ls -l size: {row:?}");

    let scratch = Scratch::new("metrics-copy");
    sh_ok(&format!("cp {} {}", q(&path), q(&scratch.path("copy.prom"))));
    assert!(fs::read(scratch.path("copy.prom")).unwrap() == content, "cp copies exactly the content");
    let out = sh(&format!("tar -C {} -cf {} metrics", q(m.root()), q(&scratch.path("m.tar"))));
    assert_ok(&out, "tar -cf of metrics/");
    assert_eq!(stderr_of(&out), "", "tar said something");
    fs::create_dir(scratch.path("out")).unwrap();
    sh_ok(&format!("tar -C {} -xf {}", q(&scratch.path("out")), q(&scratch.path("m.tar"))));
    assert!(fs::read(scratch.path("out/metrics/ipc.prom")).unwrap() == content, "tar holds exactly the content");
}

#[test]
fn a_read_only_mount_refuses_writing_with_erofs() {
    let m = Mounted::with_options(&["-o", "ro"]);
    let path = m.path("metrics/ipc.prom");
    assert_eq!(errno(OpenOptions::new().write(true).open(&path)), libc::EROFS);
    let text = fs::read_to_string(&path).unwrap();
    assert_layout(&Exposition::parse(&text), &text);
}
