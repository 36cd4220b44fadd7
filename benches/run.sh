#!/usr/bin/env bash
# Benchmarks of ipcfs, side by side with its yardsticks, in one command:
#
#   bash benches/run.sh            # full: a few minutes
#   bash benches/run.sh --short    # tiny sizes and counts, a smoke test for CI (< 30 s after the build)
#   bash benches/run.sh --only=bulk,op   # some sections: bulk, passthrough, op, concurrency, memory, list, ns
#
# Builds the release binaries (ipcfs and examples/nullfs.rs, a fuser
# filesystem that does nothing but answer), then in a private IPC and mount
# namespace of its own mounts ipcfs (as it comes: segment files by FUSE
# passthrough where the kernel allows; and again with -o nopassthrough),
# nullfs and a tmpfs and measures:
#   1. bulk I/O: dd bs=1M of a 256 MiB segment vs the same on tmpfs and nullfs
#   2. per-operation cost: stat, 64-byte pread, semaphore V, message sent and
#      received, vs nullfs, tmpfs and the raw System V call (benches/ipcbench.c)
#   3. listings: ls -l of 1,000 and 10,000 segments, sets, queues vs ipcs
#   4. memory: the daemon's RSS across 1,000,000 operations and with 30,000 objects listed
#   5. concurrency: four readers of four segments vs one
#   6. another namespace: the same operations through ns/<inode>/ (-A)
#   7. segments through FUSE passthrough: dd read of a 256 MiB segment vs
#      tmpfs, with the daemon's CPU time; dd write vs the copying ceiling;
#      memcpy through mmap(MAP_SHARED) of the segment file vs through shmat
# Every figure is a median of interleaved rounds and is printed with its
# ratios; no figure ever fails the run (only a broken operation does).
#
# Needs root (namespaces, mounts), /dev/fuse, gcc, python3, util-linux and coreutils.
# Nothing outside the namespace is touched but a scratch directory from
# mktemp, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

short= only=()
for arg in "$@"; do
    case $arg in
        --short) short=--short ;;
        --only=*) only=("$arg") ;;
        -h | --help) sed -n '2,30s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "usage: bash benches/run.sh [--short] [--only=bulk,passthrough,op,concurrency,memory,list,ns]" >&2; exit 2 ;;
    esac
done

python=/usr/bin/python3
[[ -x $python ]] || python=$(command -v python3)
target=${CARGO_TARGET_DIR:-target}/release

if [[ ${IPCFS_BENCH_INNER:-} != 1 ]]; then
    if [[ $(id -u) != 0 ]]; then
        echo "benches/run.sh: needs root (IPC and mount namespaces, mounts)" >&2
        exit 1
    fi
    for tool in unshare setpriv mountpoint ipcs gcc dd ls; do
        command -v "$tool" >/dev/null || { echo "benches/run.sh: needs $tool" >&2; exit 1; }
    done
    [[ -c /dev/fuse ]] || { echo "benches/run.sh: needs /dev/fuse" >&2; exit 1; }
    echo "building (cargo build --release --bin ipcfs --example nullfs) ..." >&2
    cargo build --release --quiet --bin ipcfs --example nullfs
    exec env IPCFS_BENCH_INNER=1 unshare --ipc --mount --propagation private bash "$0" "$@"
fi

# From here on: inside the benchmark's own IPC and mount namespaces.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/ipcfs-bench.XXXXXX")
ipcfs_pid= cached_pid= nopt_pid= null_pid= holder_pid=

stop() { # pid mountpoint: SIGTERM unmounts; then make sure, whatever happened
    local pid=$1 dir=$2
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    if mountpoint -q "$dir"; then umount "$dir" 2>/dev/null || umount -l "$dir" || true; fi
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop "$ipcfs_pid" "$scratch/ipc"
    stop "$cached_pid" "$scratch/ipc-cached"
    stop "$nopt_pid" "$scratch/ipc-nopt"
    stop "$null_pid" "$scratch/null"
    if [[ -n $holder_pid ]]; then kill -KILL "$holder_pid" 2>/dev/null || true; wait "$holder_pid" 2>/dev/null || true; fi
    if mountpoint -q "$scratch/tmp"; then umount "$scratch/tmp" || umount -l "$scratch/tmp" || true; fi
    rm -f "$scratch/ipcbench"
    rmdir "$scratch/ipc" "$scratch/ipc-cached" "$scratch/ipc-nopt" "$scratch/null" "$scratch/tmp" "$scratch" 2>/dev/null || true
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir "$scratch/ipc" "$scratch/ipc-cached" "$scratch/ipc-nopt" "$scratch/null" "$scratch/tmp"
mount -t tmpfs -o size=4g,mode=0700 bench-tmpfs "$scratch/tmp"
gcc -O2 -Wall -o "$scratch/ipcbench" benches/ipcbench.c

# Room for 10,000 objects of each kind, in this namespace only.
echo 32768 > /proc/sys/kernel/shmmni
echo 32768 > /proc/sys/kernel/msgmni
echo "32000 1024000000 500 32768" > /proc/sys/kernel/sem

wait_mounted() { # pid dir
    for _ in $(seq 400); do
        mountpoint -q "$2" && return 0
        kill -0 "$1" 2>/dev/null || { echo "benches/run.sh: the daemon for $2 died" >&2; return 1; }
        sleep 0.05
    done
    echo "benches/run.sh: $2 was not mounted within 20 s" >&2
    return 1
}

# Another IPC namespace, for the "ns" section: the main mount shows it under ns/.
setpriv --pdeathsig KILL -- unshare --ipc sleep 100000 </dev/null &
holder_pid=$!
own_ns=$(readlink /proc/self/ns/ipc)
for _ in $(seq 400); do
    other_ns=$(readlink "/proc/$holder_pid/ns/ipc") && [[ $other_ns != "$own_ns" ]] && break
    sleep 0.05
done
[[ $other_ns != "$own_ns" ]] || { echo "benches/run.sh: unshare --ipc did not start" >&2; exit 1; }
other_ns=${other_ns//[^0-9]/}

setpriv --pdeathsig KILL -- "$target/ipcfs" --foreground -A "$scratch/ipc" </dev/null &
ipcfs_pid=$!
setpriv --pdeathsig KILL -- "$target/ipcfs" --foreground -o attr_timeout=1 "$scratch/ipc-cached" </dev/null &
cached_pid=$!
setpriv --pdeathsig KILL -- "$target/ipcfs" --foreground -o nopassthrough "$scratch/ipc-nopt" </dev/null &
nopt_pid=$!
setpriv --pdeathsig KILL -- "$target/examples/nullfs" "$scratch/null" </dev/null &
null_pid=$!
wait_mounted "$ipcfs_pid" "$scratch/ipc"
wait_mounted "$cached_pid" "$scratch/ipc-cached"
wait_mounted "$nopt_pid" "$scratch/ipc-nopt"
wait_mounted "$null_pid" "$scratch/null"

"$python" benches/bench.py $short "${only[@]}" --ipcfs "$scratch/ipc" --ipcfs-cached "$scratch/ipc-cached" \
    --ipcfs-nopt "$scratch/ipc-nopt" --ipcfs-nopt-pid "$nopt_pid" --null "$scratch/null" --tmp "$scratch/tmp" \
    --helper "$scratch/ipcbench" --ipcfs-pid "$ipcfs_pid" --null-pid "$null_pid" --other-ns "$other_ns"
