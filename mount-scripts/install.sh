#!/bin/sh
# install.sh: builds ipcfs, installs it with its mount(8) helper, systemd unit
# and man pages, and uninstalls them. See usage() and docs/install.md.
set -eu

me=install.sh
root=$(cd -- "$(dirname -- "$0")/.." && pwd)

usage() {
    cat <<'EOF'
usage: mount-scripts/install.sh build|install|uninstall|--help

  build      cargo build --release (as the user who builds, not root)
  install    install what `build` built (as root)
  uninstall  remove exactly the files `install` installed, given the same
             variables (directories stay)

Environment variables (defaults in brackets):
  DESTDIR  staging root prepended to every path below  []
  PREFIX   [/usr/local]
  SBINDIR  for mount.ipcfs and mount.fuse.ipcfs; mount(8) looks in /sbin,
           /sbin/fs.d and /sbin/fs
           [/usr/sbin if /sbin is a link to it (merged /usr), else /sbin]
  UNITDIR  for mnt-ipc.mount  [$PREFIX/lib/systemd/system]
  BINARY   the ipcfs binary to install  [target/release/ipcfs]

Files: $PREFIX/bin/ipcfs (0755), $SBINDIR/mount.ipcfs (0755),
$SBINDIR/mount.fuse.ipcfs (a symbolic link to mount.ipcfs, for
`mount -t fuse.ipcfs`), $UNITDIR/mnt-ipc.mount (0644),
$PREFIX/share/man/man8/ipcfs.8 and $PREFIX/share/man/man5/ipcfs.5 (0644,
from docs/, if there).
EOF
}

die() {
    echo "$me: $*" >&2
    exit 1
}

# The directory mount(8) finds helpers in, as this system lays it out.
default_sbindir() {
    if [ "$(readlink -f /sbin)" = /usr/sbin ]; then
        echo /usr/sbin
    else
        echo /sbin
    fi
}

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
SBINDIR=${SBINDIR:-$(default_sbindir)}
UNITDIR=${UNITDIR:-$PREFIX/lib/systemd/system}
BINARY=${BINARY:-}

for dir in "$PREFIX" "$SBINDIR" "$UNITDIR"; do
    case $dir in
        /*) ;;
        *) die "'$dir': PREFIX, SBINDIR and UNITDIR must be absolute paths" ;;
    esac
done
# PREFIX goes into the installed helper as a quoted shell word, through sed.
case $PREFIX in
    *[\'\\\|\&]* | *'
'*) die "PREFIX '$PREFIX' holds a character this installer does not quote (' \\ | & or newline)" ;;
esac

bin=$DESTDIR$PREFIX/bin/ipcfs
helper=$DESTDIR$SBINDIR/mount.ipcfs
# mount(8) runs mount.TYPE: mount.fuse.ipcfs for the type the mount table
# shows (fuse.ipcfs), which fstab lines and `mount -t` may name as well.
fuse_helper=$DESTDIR$SBINDIR/mount.fuse.ipcfs
unit=$DESTDIR$UNITDIR/mnt-ipc.mount
man8=$DESTDIR$PREFIX/share/man/man8/ipcfs.8
man5=$DESTDIR$PREFIX/share/man/man5/ipcfs.5

# The binary to install, on stdout: BINARY, or the release build if it is
# newer than every source file.
binary() {
    if [ -n "$BINARY" ]; then
        if [ ! -f "$BINARY" ] || [ ! -x "$BINARY" ]; then
            die "BINARY=$BINARY is not an executable file"
        fi
        echo "$BINARY"
        return
    fi
    release=$root/target/release/ipcfs
    [ -x "$release" ] || die "$release is missing: run '$0 build' first"
    newer=$(find "$root/src" "$root/Cargo.toml" "$root/Cargo.lock" -newer "$release" -print | head -n 1)
    [ -z "$newer" ] || die "$release is older than $newer: run '$0 build' first"
    echo "$release"
}

# install MODE SOURCE TARGET, creating missing directories 0755 and leaving
# existing ones as they are.
put() {
    (umask 022 && mkdir -p -- "$(dirname -- "$3")")
    install -m "$1" "$2" "$3"
    echo "installed $3"
}

do_install() {
    source_bin=$(binary) || exit
    searched=false
    for dir in /sbin /sbin/fs.d /sbin/fs; do
        [ "$(readlink -m "$dir")" != "$(readlink -m "$SBINDIR")" ] || searched=true
    done
    $searched || echo "$me: warning: mount(8) looks for helpers in /sbin, /sbin/fs.d and /sbin/fs, not $SBINDIR" >&2
    put 0755 "$source_bin" "$bin"
    # The release profile keeps debug info for profiling: most of the
    # binary's size, and of no use installed.
    if command -v strip >/dev/null; then
        strip --strip-debug "$bin"
    else
        echo "$me: warning: strip is missing: $bin keeps its debug info" >&2
    fi
    staged=$(mktemp)
    trap 'rm -f "$staged"' EXIT
    sed "s|^installed_bin=\$|installed_bin='$PREFIX/bin/ipcfs'|" "$root/mount-scripts/mount.ipcfs" >"$staged"
    grep -q "^installed_bin='" "$staged" || die "mount-scripts/mount.ipcfs has no 'installed_bin=' line to fill in"
    put 0755 "$staged" "$helper"
    ln -sfn mount.ipcfs "$fuse_helper"
    echo "installed $fuse_helper -> mount.ipcfs"
    put 0644 "$root/mount-scripts/mnt-ipc.mount" "$unit"
    for section in 8 5; do
        page=$root/docs/ipcfs.$section
        if [ -f "$page" ]; then
            put 0644 "$page" "$DESTDIR$PREFIX/share/man/man$section/ipcfs.$section"
        else
            echo "$me: warning: $page is missing; not installed" >&2
        fi
    done
    if [ -z "$DESTDIR" ]; then
        echo "next: mkdir -p /mnt/ipc && mount -t ipcfs ipcfs /mnt/ipc (or -t fuse.ipcfs), or an fstab line,"
        echo "or: systemctl daemon-reload && systemctl enable --now mnt-ipc.mount"
    fi
}

do_uninstall() {
    # mount.fuse.ipcfs only if it is the link install made.
    if [ -L "$fuse_helper" ] && [ "$(readlink -- "$fuse_helper")" = mount.ipcfs ]; then
        rm -f -- "$fuse_helper"
        echo "removed $fuse_helper"
    elif [ -e "$fuse_helper" ] || [ -L "$fuse_helper" ]; then
        echo "$me: warning: $fuse_helper is not the link to mount.ipcfs install made; left as it is" >&2
    fi
    for file in "$bin" "$helper" "$unit" "$man8" "$man5"; do
        if [ -e "$file" ] || [ -L "$file" ]; then
            rm -f -- "$file"
            echo "removed $file"
        fi
    done
}

[ $# -eq 1 ] || {
    usage >&2
    exit 2
}
case $1 in
    build) cd "$root" && exec cargo build --release ;;
    install) do_install ;;
    uninstall) do_uninstall ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
esac
