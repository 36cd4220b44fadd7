#!/usr/bin/env bash
# Runs every test of ipcfs: unit tests, and mounted tests that start the real
# binary in IPC and mount namespaces of their own (so whatever the host has
# mounted, /mnt/ipc included, changes nothing): the library's unit tests,
# then tests/it, one binary with a module per area. Every test runs even when
# one fails; the last line sums them all up.
#
# Needs root (mounts, namespaces, acting as other users) and /dev/fuse. The
# tests drive the tools users use; any that are missing are installed here.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v getfattr >/dev/null || missing+=(attr)
# One test counts the system calls ls -l makes.
command -v strace >/dev/null || missing+=(strace)
# The access tests run Python as other users: it must be the system's.
[[ -x /usr/bin/python3 ]] || missing+=(python3)
# The metrics tests read metrics/ipc.prom with the real Prometheus parser and
# serve it with the real node_exporter.
/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null || missing+=(python3-prometheus-client)
command -v prometheus-node-exporter >/dev/null || missing+=(prometheus-node-exporter)
for tool in ipcs ipcmk ipcrm lsipc unshare setpriv fallocate prlimit; do
    command -v "$tool" >/dev/null || { missing+=(util-linux); break; }
done
if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "tests/run.sh: installing ${missing[*]}" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "tests/run.sh: the tests need ${missing[*]}; please install them" >&2
        exit 1
    fi
fi
if [[ $(id -u) != 0 ]]; then
    echo "tests/run.sh: the mounted tests need root (mounts, namespaces, other users)" >&2
    exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The segment tests again, on the daemon's path (what a kernel without FUSE
# passthrough, or a daemon without CAP_SYS_ADMIN, gets): the test binary
# tests/it filtered to their modules.
if (($# == 0)); then
    echo "tests/run.sh: the segment tests again with -o nopassthrough"
    IPCFS_TEST_OPTIONS="-o nopassthrough" cargo test --no-fail-fast --test it -- shm_io:: shm_meta:: names:: 2>&1 |
        tee -a "$log"
    ((PIPESTATUS[0] == 0)) || status=1
fi
set -e
awk -v status="$status" '
    /^test result:/ { binaries++; passed += $4; failed += $6; ignored += $8 }
    END {
        verdict = (status == 0) ? "all passed" : "FAILED"
        printf "tests/run.sh: %s: %d passed, %d failed, %d ignored, in %d test binaries\n", verdict, passed, failed, ignored, binaries
    }' "$log"
exit "$status"
