"""The measurements of benches/run.sh, run inside its private IPC and mount
namespace once ipcfs, the null filesystem and a tmpfs are mounted there.

Every figure is taken side by side with its yardsticks in the same run, in
interleaved rounds (ipcfs, nullfs, kernel, ipcfs, nullfs, kernel, ...), and
reported as the median of the rounds with ratios: the machine's noise cancels
in the ratios. Nothing here fails on a figure; only a broken operation (an
errno, a crash) makes the run fail.
"""

import argparse
import os
import platform
import re
import statistics
import subprocess
import time

MiB = 1 << 20


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--short", action="store_true")
    p.add_argument("--only", default="bulk,passthrough,op,concurrency,memory,list,ns",
                   help="comma-separated sections to run: bulk, passthrough, op, concurrency, memory, list, ns")
    p.add_argument("--ipcfs", required=True, help="ipcfs mount point (as it comes: passthrough where it can)")
    p.add_argument("--ipcfs-cached", required=True, help="ipcfs mounted with -o attr_timeout=1")
    p.add_argument("--ipcfs-nopt", required=True, help="ipcfs mounted with -o nopassthrough")
    p.add_argument("--ipcfs-nopt-pid", type=int, required=True)
    p.add_argument("--null", required=True, help="nullfs mount point")
    p.add_argument("--tmp", required=True, help="a tmpfs directory")
    p.add_argument("--helper", required=True, help="the compiled ipcbench")
    p.add_argument("--ipcfs-pid", type=int, required=True)
    p.add_argument("--null-pid", type=int, required=True)
    p.add_argument("--other-ns", required=True, help="another IPC namespace, under ipcfs's ns/")
    return p.parse_args()


A = None  # the arguments
SCALE = {}  # sizes and counts of this mode


CLIENT_CPUS = None  # when set, the CPUs the measuring programs run on


def on_client_cpus():
    if CLIENT_CPUS is not None:
        os.sched_setaffinity(0, CLIENT_CPUS)


def sh(*cmd, env=None):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, preexec_fn=on_client_cpus)
    if r.returncode != 0:
        raise SystemExit(f"bench: {' '.join(map(str, cmd))} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def helper(*args):
    return sh(A.helper, *args).strip()


def daemon_cpu_ns(pid):
    """CPU time of every live thread of a process, in ns (schedstat)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_stat_s(pid):
    """utime + stime of a process (all its threads, live and gone) from
    /proc/PID/stat, in seconds: whole clock ticks (10 ms at USER_HZ 100)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # fields[0] is field 3, the state
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


SEGMENT_IO = "user.ipcfs.segment_io"


def segment_io(mount):
    """How the mount serves segment files: passthrough or daemon."""
    try:
        return os.getxattr(mount, SEGMENT_IO).decode()
    except OSError as e:
        return f"? ({e.strerror})"


def rotated(xs, n):
    """xs, starting at its n-th element: each round starts with another target."""
    n %= len(xs)
    return xs[n:] + xs[:n]


def memory(pid):
    """RssAnon (the daemon's own memory), RssShmem (segments it has attached
    and touched, which are not its own) and VmHWM (peak of both), in KiB."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssShmem", "VmHWM"):
                fields[key] = int(value.split()[0])
    return fields["RssAnon"], fields["RssShmem"], fields["VmHWM"]


def pin_daemons(cpus):
    """Moves every thread of the daemons to `cpus`."""
    for pid in (A.ipcfs_pid, A.ipcfs_nopt_pid, A.null_pid):
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                os.sched_setaffinity(int(tid), cpus)
            except (ProcessLookupError, OSError):
                pass


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def ratio(a, b):
    return a / b if a and b and a == a and b == b else float("nan")


def table(title, header, rows, note=None):
    print()
    print(f"== {title}")
    if note:
        for line in note.strip().splitlines():
            print(f"   {line}")
    cells = [header] + [[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        print("   " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            print("   " + "  ".join("-" * w for w in widths))


def fmt(x):
    if x != x:
        return "-"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def mk(kind, count, size=None):
    args = ["mk", kind, count] + ([size] if size else [])
    return int(helper(*args))


def rm(kind, ident):
    helper("rm", kind, ident)


# --- 0. the machine ---------------------------------------------------------------------------


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    try:
        with open("/proc/sys/fs/fuse/max_pages_limit") as f:
            max_pages = f.read().strip()
    except FileNotFoundError:
        max_pages = "?"
    print(f"machine: {os.cpu_count()} CPUs ({cpu}), {mem} MiB, Linux {platform.release()}, "
          f"fuse max_pages_limit {max_pages}")
    print(f"mode: {'short (figures are only a smoke test)' if A.short else 'full'}; "
          f"medians of {SCALE['rounds']} interleaved rounds")


# --- 1. bulk I/O ------------------------------------------------------------------------------


def dd(src, dst, count, notrunc=False):
    cmd = ["dd", f"if={src}", f"of={dst}", "bs=1M", f"count={count}"] + (["conv=notrunc"] if notrunc else [])
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    if r.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed: {r.stderr.strip()}")
    m = re.search(r"(\d+) bytes .* copied, ([0-9.e+-]+) s", r.stderr)
    if not m:
        raise SystemExit(f"bench: cannot read dd's report: {r.stderr!r}")
    nbytes, seconds = int(m.group(1)), float(m.group(2))
    if nbytes != count * MiB:
        raise SystemExit(f"bench: {' '.join(cmd)} copied {nbytes} bytes, not {count * MiB}")
    return nbytes / seconds / 1e9 if seconds > 0 else float("nan")


def bulk():
    count = SCALE["bulk_mib"]
    seg = mk("shm", 1, count * MiB)
    targets = {
        "ipcfs shm/ID": f"{A.ipcfs}/shm/{seg}",
        "ipcfs nopassthrough": f"{A.ipcfs_nopt}/shm/{seg}",
        "nullfs": f"{A.null}/zero",
        "tmpfs": f"{A.tmp}/bulk",
    }
    dd("/dev/zero", targets["tmpfs"], count)
    write = {t: [] for t in targets}
    read = {t: [] for t in targets}
    for _ in range(SCALE["rounds"]):
        for t, path in targets.items():
            write[t].append(dd("/dev/zero", path, count, notrunc=True))
    for _ in range(SCALE["rounds"]):
        for t, path in targets.items():
            read[t].append(dd(path, "/dev/null", count))
    # One open file, several passes: the first pays the daemon's page faults
    # on its fresh attachment, the later ones do not.
    passes = {t: [] for t in targets}
    for _ in range(SCALE["rounds"]):
        for t, path in targets.items():
            passes[t].append([float(x) / 1e9 for x in helper("readfile", path, MiB, 3).split()])
    w = {t: median(v) for t, v in write.items()}
    r = {t: median(v) for t, v in read.items()}
    first = {t: median([p[0] for p in v]) for t, v in passes.items()}
    warm = {t: median([p[-1] for p in v]) for t, v in passes.items()}
    rows = []
    for t in targets:
        rows.append([t, w[t], ratio(w[t], w["tmpfs"]), ratio(w[t], w["nullfs"]),
                     r[t], ratio(r[t], r["tmpfs"]), ratio(r[t], r["nullfs"]), first[t], warm[t]])
    table(f"1. bulk I/O: dd bs=1M of {count} MiB (GB/s, higher is better)",
          ["target", "write", "/tmpfs", "/nullfs", "read", "/tmpfs", "/nullfs", "pass 1", "pass 3"], rows,
          note="write: dd if=/dev/zero of=FILE conv=notrunc; read: dd if=FILE of=/dev/null.\n"
               "pass 1 / pass 3: 1 MiB preads over the whole file, three passes on one open file\n"
               "(through the daemon, pass 1 is on a fresh attachment, pass 3 on a populated one).\n"
               f"ipcfs shm/ID: the mount as it comes ({SEGMENT_IO}: {segment_io(A.ipcfs)}: a read-only\n"
               "open is read by the kernel, writes go through the daemon); ipcfs nopassthrough: the same\n"
               f"segment through a mount with -o nopassthrough ({segment_io(A.ipcfs_nopt)}).")
    rm("shm", seg)
    os.unlink(targets["tmpfs"])
    return {"read_ratio_null": ratio(r["ipcfs shm/ID"], r["nullfs"]),
            "write_ratio_null": ratio(w["ipcfs shm/ID"], w["nullfs"])}


# --- 7. segments through FUSE passthrough (issue 16) ------------------------------------------


def segments_passthrough():
    """A segment read and written with dd and copied through a mapping, on
    the mount as it comes (passthrough) and on the one with -o nopassthrough,
    against tmpfs, nullfs and shmat, with the daemon's CPU time."""
    mib = SCALE["pt_mib"]
    size = mib * MiB
    rounds = SCALE["pt_rounds"]
    seg = mk("shm", 1, size)
    pt, nopt, tmp = f"{A.ipcfs}/shm/{seg}", f"{A.ipcfs_nopt}/shm/{seg}", f"{A.tmp}/segment"
    # Every page of both exists before anything is timed (a hole of a shmem
    # file reads as the shared zero page, faster than memory).
    dd("/dev/zero", tmp, mib)
    dd("/dev/zero", nopt, mib, notrunc=True)
    with open(pt, "rb"):
        pass  # the first open of a segment tells the daemon whether the kernel lets it pass through
    mode, mode_nopt = segment_io(A.ipcfs), segment_io(A.ipcfs_nopt)
    passing = mode == "passthrough"
    PT, NOPT = f"ipcfs ({mode})", f"ipcfs -o nopassthrough ({mode_nopt})"

    def measured(pid, run):
        """run()'s result, and the daemon's CPU seconds meanwhile: from
        /proc/PID/stat (ticks) and from schedstat (ns, live threads)."""
        if pid is None:
            return run(), float("nan"), float("nan")
        s0, n0 = cpu_stat_s(pid), daemon_cpu_ns(pid)
        out = run()
        return out, cpu_stat_s(pid) - s0, (daemon_cpu_ns(pid) - n0) / 1e9

    def dd_rounds(targets, read):
        speed = {t: [] for t, _, _ in targets}
        stat_cpu = {t: [] for t, _, _ in targets}
        sched_cpu = {t: [] for t, _, _ in targets}
        for n in range(rounds):
            for t, path, pid in rotated(targets, n):
                run = (lambda: dd(path, "/dev/null", mib)) if read else (lambda: dd("/dev/zero", path, mib, notrunc=True))
                v, c1, c2 = measured(pid, run)
                speed[t].append(v)
                stat_cpu[t].append(c1)
                sched_cpu[t].append(c2)
        return ({t: median(v) for t, v in speed.items()},
                {t: statistics.mean(v) * 1000 for t, v in stat_cpu.items()},
                {t: median(v) * 1000 for t, v in sched_cpu.items()})

    # 7a. reads. The segment's own shmem file read without FUSE (through a
    # holder's /proc/PID/map_files) is the same pages: on a virtual machine,
    # two shmem files can read at speeds 20-30 % apart wherever the host put
    # their memory, and that row tells such luck from FUSE's cost.
    holder = subprocess.Popen([A.helper, "hold", str(seg)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        direct = holder.stdout.readline().strip()
        if not direct:
            raise SystemExit(f"bench: ipcbench hold {seg} failed")
        readers = [(PT, pt, A.ipcfs_pid), (NOPT, nopt, A.ipcfs_nopt_pid), ("shmem file, no FUSE", direct, None),
                   ("tmpfs", tmp, None)]
        r, r_stat, r_sched = dd_rounds(readers, read=True)
    finally:
        holder.stdin.close()
        holder.wait()
    read_ms = {t: mib * MiB / r[t] / 1e6 for t in r}
    table(f"7a. segments through FUSE passthrough: dd bs=1M read of a {mib} MiB segment (GB/s, higher is better)",
          ["target", "read", "/tmpfs", "/no FUSE", "time ms", "daemon CPU ms (stat)", "(schedstat)", "CPU/time"],
          [[t, r[t], ratio(r[t], r["tmpfs"]), ratio(r[t], r["shmem file, no FUSE"]), read_ms[t], r_stat[t],
            r_sched[t], ratio(r_sched[t], read_ms[t])] for t, _, _ in readers],
          note="dd if=shm/ID of=/dev/null bs=1M: a read-only open. shmem file, no FUSE: the same segment's\n"
               "pages read from its shmem file (/proc/PID/map_files of a process that has it attached).\n"
               "daemon CPU: of the daemon serving the file, per read: utime+stime from /proc/PID/stat (whole\n"
               "10 ms ticks: mean of the rounds) and the threads' schedstat (ns: median); CPU/time: schedstat\n"
               "CPU / the read's time.")

    # 7b. writes
    writers = [(PT, pt, A.ipcfs_pid), (NOPT, nopt, A.ipcfs_nopt_pid), ("nullfs", f"{A.null}/zero", A.null_pid),
               ("tmpfs", tmp, None)]
    w, w_stat, w_sched = dd_rounds(writers, read=False)
    ceiling = 1 / (1 / w["nullfs"] + 1 / w["tmpfs"])
    nan = float("nan")
    rows = [[t, w[t], ratio(w[t], ceiling), ratio(w[t], w["tmpfs"]), ratio(w[t], w["nullfs"]), w_stat[t], w_sched[t]]
            for t, _, _ in writers]
    rows.append(["copying ceiling", ceiling, 1.0, ratio(ceiling, w["tmpfs"]), ratio(ceiling, w["nullfs"]), nan, nan])
    table(f"7b. segments through FUSE passthrough: dd bs=1M conv=notrunc write of {mib} MiB (GB/s, higher is better)",
          ["target", "write", "/ceiling", "/tmpfs", "/nullfs", "daemon CPU ms (stat)", "(schedstat)"], rows,
          note="A writable open keeps FOPEN_DIRECT_IO: every write goes through the daemon, which copies it\n"
               "into the segment. copying ceiling = 1 / (1/nullfs + 1/tmpfs): the time of the same write on\n"
               "nullfs (FUSE carrying the bytes) plus that on tmpfs (the copy into shmem), nothing overlapped.")

    # 7c. memcpy through a mapping
    m = {}
    if passing:
        mappers = [("mmap of shm/ID", pt, A.ipcfs_pid), ("shmat", f"shm:{seg}", None)]
        got = {t: [] for t, _, _ in mappers}
        cpu = {t: [] for t, _, _ in mappers}
        for n in range(rounds):
            for t, target, pid in rotated(mappers, n):
                v, _, c = measured(pid, lambda: [float(x) for x in helper("mapcopy", target, size).split()])
                got[t].append(v)
                cpu[t].append(c)
        kinds = ["into a fresh mapping", "out of a fresh mapping", "into a mapped one", "out of a mapped one"]
        m = {(t, k): median([v[i] / 1e9 for v in got[t]]) for t, _, _ in mappers for i, k in enumerate(kinds)}
        pages = size // os.sysconf("SC_PAGE_SIZE")
        faulted = {(t, k): median([v[4 + i] for v in got[t]]) / pages for t, _, _ in mappers
                   for i, k in enumerate(kinds[:2])}
        table(f"7c. segments through FUSE passthrough: memcpy of {mib} MiB through a MAP_SHARED mapping (GB/s)",
              ["memcpy", "mmap of shm/ID", "shmat", "mmap/shmat", "faults/page mmap", "shmat"],
              [[k, m[("mmap of shm/ID", k)], m[("shmat", k)], ratio(m[("mmap of shm/ID", k)], m[("shmat", k)]),
                faulted.get(("mmap of shm/ID", k), nan), faulted.get(("shmat", k), nan)]
               for k in kinds],
              note="mmap of shm/ID: the segment file opened O_RDWR on the passthrough mount, mmap(MAP_SHARED);\n"
                   "shmat: the same segment attached. Per round each maps twice: into then out of a fresh\n"
                   "mapping, then out of then into another (on a mapped one: the median of 3 copies);\n"
                   "faults/page: page faults taken by the copy (getrusage) per page of the segment.\n"
                   f"daemon CPU per mmap round (schedstat, median): {median(cpu['mmap of shm/ID']) * 1000:.2f} ms.")
    else:
        print()
        print(f"== 7c. memcpy through a mapping of a segment file: skipped ({SEGMENT_IO}: {mode}; without\n"
              "   passthrough a segment file cannot be mapped)")

    # the targets
    def met(x, want):
        return "-" if x != x else ("yes" if x >= want else "no")

    read_ratio = ratio(r[PT], r["tmpfs"])
    near_zero = r_sched[PT] <= 0.01 * read_ms[PT]
    rows = [[f"read {mib} MiB", f"{fmt(r[PT])} GB/s", f"tmpfs {fmt(r['tmpfs'])}", f"{read_ratio:.2f}", ">= 0.9",
             met(read_ratio, 0.9)],
            [" the same pages without FUSE", "", f"{fmt(r['shmem file, no FUSE'])} GB/s",
             f"{ratio(r[PT], r['shmem file, no FUSE']):.2f}", "", ""],
            [" daemon CPU during it", f"{r_stat[PT]:.1f} ms (stat), {r_sched[PT]:.2f} (schedstat)",
             f"nopassthrough {r_stat[NOPT]:.1f} ms, {r_sched[NOPT]:.1f}",
             f"{ratio(r_sched[PT], read_ms[PT]):.3f} of the read", "near 0 (< 0.01)", "yes" if near_zero else "no"],
            [f"write {mib} MiB", f"{fmt(w[PT])} GB/s", f"ceiling {fmt(ceiling)}", f"{ratio(w[PT], ceiling):.2f}",
             ">= 0.9", met(ratio(w[PT], ceiling), 0.9)]]
    for k in ("into a fresh mapping", "out of a fresh mapping", "into a mapped one", "out of a mapped one"):
        if m:
            x = ratio(m[("mmap of shm/ID", k)], m[("shmat", k)])
            rows.append([f"memcpy {k}", f"{fmt(m[('mmap of shm/ID', k)])} GB/s", f"shmat {fmt(m[('shmat', k)])}",
                         f"{x:.2f}", ">= 0.95", met(x, 0.95)])
    table("7. segments through FUSE passthrough: the targets of issue 16", ["what", "ipcfs", "yardstick", "ratio",
          "target", "met?"], rows, note=f"{SEGMENT_IO}: {mode} (the mount as it comes), {mode_nopt} (-o nopassthrough).")
    rm("shm", seg)
    os.unlink(tmp)


# --- 2. per-operation cost --------------------------------------------------------------------


def per_op(placement):
    n = SCALE["ops"]
    seg = mk("shm", 1, 4096)
    sem = mk("sem", 1)
    msq = mk("msg", 1)
    small = f"{A.tmp}/small"
    with open(small, "wb") as f:
        f.write(b"\0" * 4096)
    shm_path = f"{A.ipcfs}/shm/{seg}"
    # (operation, {target: helper arguments}); the kernel yardstick is the raw
    # System V call where there is one, else the same operation on tmpfs.
    ops = [
        ("stat of a file (path)", {
            "ipcfs": ["stat", shm_path, n], "nullfs": ["stat", f"{A.null}/small", n],
            "tmpfs": ["stat", small, n], "syscall": ["shmstat", seg, n]}),
        ("fstat of an open file", {
            "ipcfs": ["fstat", shm_path, n], "nullfs": ["fstat", f"{A.null}/small", n],
            "tmpfs": ["fstat", small, n], "syscall": ["shmstat", seg, n]}),
        ("open+close", {
            "ipcfs": ["openclose", shm_path, n], "nullfs": ["openclose", f"{A.null}/small", n],
            "tmpfs": ["openclose", small, n]}),
        ("pread 64 B", {
            "ipcfs": ["pread", shm_path, n, 64], "nullfs": ["pread", f"{A.null}/small", n, 64],
            "tmpfs": ["pread", small, n, 64]}),
        ("pread 64 B, nopassthrough", {
            "ipcfs": ["pread", f"{A.ipcfs_nopt}/shm/{seg}", n, 64], "nullfs": ["pread", f"{A.null}/small", n, 64],
            "tmpfs": ["pread", small, n, 64]}),
        ("semaphore V (write +1)", {
            "ipcfs": ["semv", f"{A.ipcfs}/sem/{sem}/0", n, sem], "nullfs": ["semv", f"{A.null}/stream", n, -1],
            "syscall": ["semop", sem, n]}),
        ("message 64 B sent+received", {
            "ipcfs": ["sendrecv", f"{A.ipcfs}/msg/{msq}/.recv/any", n, 64],
            "nullfs": ["sendrecv", f"{A.null}/stream", n, 64],
            "syscall": ["msg", msq, n, 64]}),
    ]
    pids = {"ipcfs": A.ipcfs_pid, "nullfs": A.null_pid}

    def pid_of(op, t):  # the daemon that serves target t of operation op
        return A.ipcfs_nopt_pid if t == "ipcfs" and "nopassthrough" in op else pids[t]

    times = {(op, t): [] for op, targets in ops for t in targets}
    cpu = {(op, t): [] for op, targets in ops for t in targets if t in pids}
    for _ in range(SCALE["per_op_rounds"]):
        for op, targets in ops:
            for t, args in targets.items():
                before = daemon_cpu_ns(pid_of(op, t)) if t in pids else 0
                times[(op, t)].append(float(helper(*args)) / 1000)
                if t in pids:
                    cpu[(op, t)].append((daemon_cpu_ns(pid_of(op, t)) - before) / (n * 1.1) / 1000)
    rows = []
    result = {}
    for op, targets in ops:
        m = {t: median(times[(op, t)]) for t in targets}
        c = {t: median(cpu[(op, t)]) for t in targets if t in pids}
        kernel = m.get("syscall", m.get("tmpfs"))
        rows.append([op, m["ipcfs"], m["nullfs"], m.get("tmpfs", float("nan")), m.get("syscall", float("nan")),
                     ratio(m["ipcfs"], m["nullfs"]), ratio(m["ipcfs"], kernel), ratio(m["nullfs"], kernel),
                     c["ipcfs"], c["nullfs"]])
        result[op] = ratio(m["ipcfs"], m["nullfs"])
    table(f"2. per-operation cost, {placement}: µs per operation (lower is better), {n} operations per round",
          ["operation", "ipcfs", "nullfs", "tmpfs", "syscall", "ipcfs/null", "ipcfs/kern", "null/kern",
           "daemon CPU ipcfs", "nullfs"], rows,
          note="syscall: shmctl(IPC_STAT), semop(+1), msgsnd+msgrcv; kern = syscall where there is one, else tmpfs.\n"
               "daemon CPU: µs of the daemon's threads' CPU time per operation (schedstat).\n"
               "nullfs semaphore/message rows: write \"+1\" / write 64 B + read on a stream file.\n"
               f"ipcfs: the mount as it comes ({SEGMENT_IO}: {segment_io(A.ipcfs)}; a read-only open of a\n"
               "segment passes through, its preads never reach the daemon); nopassthrough: the same segment\n"
               f"through the mount with -o nopassthrough ({segment_io(A.ipcfs_nopt)}).")
    rm("shm", seg)
    rm("sem", sem)
    rm("msg", msq)
    os.unlink(small)
    return result


# --- 6. another namespace -------------------------------------------------------------------


def other_namespace(placement):
    """The same operations on the root's tree and on another namespace's
    (ns/<inode>/, served by a thread that joined it): what the hand-over to
    that thread costs."""
    n = SCALE["ops"]
    trees = {"root": A.ipcfs, "other": f"{A.ipcfs}/ns/{A.other_ns}"}
    made = {}
    for tree, path in trees.items():
        fd = os.open(f"{path}/shm/0x0b5e0001", os.O_CREAT | os.O_RDWR, 0o600)
        os.ftruncate(fd, 4096)
        os.close(fd)
        os.mkdir(f"{path}/sem/0x0b5e0002:1")
        os.mkdir(f"{path}/msg/0x0b5e0003")
        made[tree] = {kind: os.readlink(f"{path}/by-key/{kind}/0x0b5e000{i}").rsplit("/", 1)[1]
                      for i, kind in ((1, "shm"), (2, "sem"), (3, "msg"))}
    ops = [
        ("stat of a file (path)", lambda t: ["stat", f"{trees[t]}/shm/{made[t]['shm']}", n]),
        ("fstat of an open file", lambda t: ["fstat", f"{trees[t]}/shm/{made[t]['shm']}", n]),
        ("pread 64 B", lambda t: ["pread", f"{trees[t]}/shm/{made[t]['shm']}", n, 64]),
        ("semaphore V (write +1)", lambda t: ["semv", f"{trees[t]}/sem/{made[t]['sem']}/0", n, -1]),
        ("message 64 B sent+received", lambda t: ["sendrecv", f"{trees[t]}/msg/{made[t]['msg']}/.recv/any", n, 64]),
    ]
    times = {(op, t): [] for op, _ in ops for t in trees}
    for _ in range(SCALE["per_op_rounds"]):
        for op, args in ops:
            for t in trees:
                with open(f"{trees[t]}/sem/{made[t]['sem']}/0", "w") as f:
                    f.write("0")  # SETVAL: room for this round's V operations
                times[(op, t)].append(float(helper(*args(t))) / 1000)
    rows = [[op, median(times[(op, "root")]), median(times[(op, "other")]),
             ratio(median(times[(op, "other")]), median(times[(op, "root")]))] for op, _ in ops]
    table(f"6. another namespace, {placement}: µs per operation (lower is better), {n} operations per round",
          ["operation", "root tree", "ns/<other>", "other/root"], rows,
          note="ns/<other>: the same objects in another IPC namespace, through the same mount (-A).")
    for tree, path in trees.items():
        os.unlink(f"{path}/shm/{made[tree]['shm']}")
        os.rmdir(f"{path}/sem/{made[tree]['sem']}")
        os.rmdir(f"{path}/msg/{made[tree]['msg']}")


# --- 5. concurrency ---------------------------------------------------------------------------


def concurrency():
    size = SCALE["par_mib"] * MiB
    segs = [mk("shm", 1, size) for _ in range(4)]
    ipc = [f"{A.ipcfs}/shm/{s}" for s in segs]
    tmp = [f"{A.tmp}/par{i}" for i in range(4)]
    for path in ipc + tmp:
        dd("/dev/zero", path, SCALE["par_mib"], notrunc=True)
    # nullfs: its file is 256 MiB; four readers of it (reads share no lock).
    targets = {"ipcfs": ipc, "nullfs": [f"{A.null}/zero"] * 4, "tmpfs": tmp}
    one = {t: [] for t in targets}
    four = {t: [] for t in targets}
    for _ in range(SCALE["rounds"]):
        for t, paths in targets.items():
            one[t].append(float(helper("par", MiB, paths[0])) / 1e9)
            four[t].append(float(helper("par", MiB, *paths)) / 1e9)
    rows = []
    for t in targets:
        o, f = median(one[t]), median(four[t])
        rows.append([t, o, f, ratio(f, o)])
    table("5. concurrency: 1 MiB preads of whole files, 1 reader vs 4 readers of 4 files (GB/s in total)",
          ["target", "1 reader", "4 readers", "4/1"], rows,
          note=f"ipcfs and tmpfs files: {SCALE['par_mib']} MiB each; nullfs: 4 readers of its 256 MiB file.\n"
               f"ipcfs: {SEGMENT_IO}: {segment_io(A.ipcfs)} (with passthrough the daemon serves no read).\n"
               f"{os.cpu_count()} CPUs; ipcfs and nullfs serve on 2 event-loop threads.")
    for s in segs:
        rm("shm", s)
    for path in tmp:
        os.unlink(path)


# --- 4. memory across operations --------------------------------------------------------------


def memory_ops():
    total = SCALE["mem_ops"]
    n = total // 4
    seg = mk("shm", 1, 4096)
    sem = mk("sem", 1)
    msq = mk("msg", 1)
    before = memory(A.ipcfs_pid)
    t0 = time.monotonic()
    helper("stat", f"{A.ipcfs}/shm/{seg}", n)
    helper("pread", f"{A.ipcfs}/shm/{seg}", n, 64)
    helper("semv", f"{A.ipcfs}/sem/{sem}/0", n, sem)
    helper("sendrecv", f"{A.ipcfs}/msg/{msq}/.recv/any", n, 64)
    seconds = time.monotonic() - t0
    after = memory(A.ipcfs_pid)
    for kind, ident in (("shm", seg), ("sem", sem), ("msg", msq)):
        rm(kind, ident)
    return before, after, 4 * n * 1.1, seconds


# --- 3. listings (and 4. memory with objects listed) -------------------------------------------


def timed(cmd):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=on_client_cpus)
    t = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed: {r.stderr.strip()}")
    return t


def read_calls(pid):
    """read(2)-like calls made by every thread of `pid` so far."""
    with open(f"/proc/{pid}/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("syscr:"))


def pinned(run):
    """Runs `run` with the measuring programs and the daemons on one CPU."""
    global CLIENT_CPUS
    every = os.sched_getaffinity(0)
    CLIENT_CPUS = {min(every)}
    pin_daemons(CLIENT_CPUS)
    try:
        return run()
    finally:
        CLIENT_CPUS = None
        pin_daemons(every)


def existing(kind):
    with open(f"/proc/sysvipc/{kind}") as f:
        return sum(1 for _ in f) - 1


def listings():
    counts = SCALE["list_counts"]
    kinds = [("shm", "-m"), ("sem", "-s"), ("msg", "-q")]
    tmpdir = f"{A.tmp}/list"
    os.mkdir(tmpdir)
    made = 0
    rows = []
    per = {}
    for count in counts:
        for i in range(made, count):
            open(f"{tmpdir}/{i}", "w").close()
        made = count
        for kind, flag in kinds:
            if existing(kind) < count:
                mk(kind, count - existing(kind))
            d, cached = f"{A.ipcfs}/{kind}", f"{A.ipcfs_cached}/{kind}"
            ls_l, ls_f, ls_c, ipcs, tmp, ls_p, ipcs_p, reads = [], [], [], [], [], [], [], []
            for _ in range(SCALE["list_rounds"]):
                ls_l.append(timed(["ls", "-l", d]))
                ls_f.append(timed(["ls", "-f", d]))
                ls_c.append(timed(["ls", "-l", cached]))
                ipcs.append(timed(["ipcs", flag]))
                tmp.append(timed(["ls", "-l", tmpdir]))
                before = read_calls(A.ipcfs_pid)
                ls_p.append(pinned(lambda: timed(["ls", "-l", d])))
                reads.append((read_calls(A.ipcfs_pid) - before) / count)
                ipcs_p.append(pinned(lambda: timed(["ipcs", flag])))
            m = [median(x) * 1000 for x in (ls_l, ls_f, ls_c, ipcs, tmp, ls_p, ipcs_p)]
            per[(kind, count)] = m
            rows.append([f"{kind}/ x{count}", *m[:5], ratio(m[0], m[3]), ratio(m[2], m[3]), ratio(m[0], m[4]),
                         m[0] * 1000 / count, m[5], ratio(m[5], m[6]), median(reads)])
    nan = float("nan")
    for kind, _ in kinds:
        lo, hi = per[(kind, counts[0])], per[(kind, counts[-1])]
        rows.append([f"{kind}/ growth x{counts[-1] // counts[0]}", *(ratio(h, l) for h, l in zip(hi[:5], lo[:5])),
                     nan, nan, nan, nan, ratio(hi[5], lo[5]), nan, nan])
    table("3. listings: ms per command (lower is better)",
          ["directory", "ls -l", "ls -f", "ls -l cached", "ipcs", "tmpfs ls -l", "ls-l/ipcs", "cached/ipcs",
           "ls-l/tmpfs", "µs/entry", "ls -l pinned", "pinned/ipcs", "requests/entry"], rows,
          note="ls -f: names only (readdir, no stat, no sort); ls -l cached: a second ipcfs mount with\n"
               "-o attr_timeout=1, where the kernel keeps what the listing gave; ipcs -m/-s/-q for the same\n"
               "objects; tmpfs ls -l: a tmpfs directory with as many empty files. growth rows: figure at the\n"
               "largest count / figure at the smallest (10 = linear). pinned: ls -l with it and the daemons\n"
               "on one CPU, against ipcs on that CPU (the software's own cost: unpinned, each round trip may\n"
               "wake the other CPU, which on a virtual machine costs more than the work, and the placement\n"
               "changes from run to run). requests/entry: the daemon's read(2) calls (/proc/PID/io syscr,\n"
               "one per FUSE request) during the pinned ls -l, per entry: its round trips per entry.")
    listed = memory(A.ipcfs_pid)
    for i in range(made):
        os.unlink(f"{tmpdir}/{i}")
    os.rmdir(tmpdir)
    return listed, 3 * counts[-1]


def main():
    global A
    A = parse_args()
    if A.short:
        SCALE.update(rounds=2, per_op_rounds=2, bulk_mib=16, ops=300, par_mib=4, mem_ops=4000,
                     list_counts=[100, 1000], list_rounds=1, pt_mib=32, pt_rounds=3)
    else:
        SCALE.update(rounds=5, per_op_rounds=5, bulk_mib=256, ops=20000, par_mib=64, mem_ops=1_000_000,
                     list_counts=[1000, 10000], list_rounds=3, pt_mib=256, pt_rounds=9)
    machine()
    only = set(A.only.split(","))
    start_ipcfs, start_null = memory(A.ipcfs_pid), memory(A.null_pid)
    if "bulk" in only:
        bulk()
    if "passthrough" in only:
        segments_passthrough()
    # The cost of a FUSE round trip depends above all on where the client and
    # the daemon run: on one CPU it is two context switches; across CPUs it is
    # a wake-up of another CPU, which on a virtual machine can cost several
    # times more, and the scheduler changes its mind from run to run. So the
    # per-operation figures are taken twice: pinned to one CPU (steady: the
    # software's own cost) and as the scheduler places them.
    global CLIENT_CPUS
    every = os.sched_getaffinity(0)
    one = {min(every)}
    if "op" in only:
        CLIENT_CPUS = one
        pin_daemons(one)
        try:
            per_op(f"client and daemons pinned to CPU {min(every)}")
        finally:
            CLIENT_CPUS = None
            pin_daemons(every)
        if len(every) > 1:
            per_op("as the scheduler places them (noisier)")
    if "ns" in only:
        other_namespace("as the scheduler places them")
    if "concurrency" in only:
        concurrency()
    if "memory" not in only and "list" in only:
        listings()
    if "memory" not in only:
        return
    before, after, ops, seconds = memory_ops()
    listed, objects = listings()
    end_null = memory(A.null_pid)
    nan = float("nan")
    mib = lambda m: [m[0] / 1024, m[1] / 1024, m[2] / 1024]  # noqa: E731
    table("4. memory: the daemons' resident sets (MiB)",
          ["when", "ipcfs anon", "shm mapped", "peak (VmHWM)", "nullfs anon", "nullfs peak"],
          [["mounted, before any benchmark", *mib(start_ipcfs), start_null[0] / 1024, start_null[2] / 1024],
           [f"before {ops:.0f} operations", *mib(before), nan, nan],
           [f"after them ({seconds:.0f} s)", *mib(after), nan, nan],
           [f"after listing {objects} objects (ls -l)", *mib(listed), end_null[0] / 1024, end_null[2] / 1024]],
          note="anon: RssAnon, the daemon's own memory. shm mapped: RssShmem, pages of attached segments\n"
               "(the segments' memory, counted once by the kernel whoever maps it); the peak includes them.\n"
               "operations: stat of a segment, 64 B pread, semaphore V, message sent+received, a quarter each\n"
               f"(plus 10% warm-up; {SEGMENT_IO}: {segment_io(A.ipcfs)}: with passthrough the preads never\n"
               "reach the daemon). growth of anon across them: "
               f"{(after[0] - before[0]):+d} KiB ({(after[0] - before[0]) * 1024 / ops:+.2f} bytes per operation).")
    print()
    print("done: the ratios are the figures to compare across machines; none of them can fail the run.")


if __name__ == "__main__":
    main()
