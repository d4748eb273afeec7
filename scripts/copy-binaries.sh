#!/usr/bin/env bash
set -euo pipefail
# copy-binaries.sh ROOTFS BINARY... — put host binaries into a bundle's rootfs with the shared
# libraries they load, so a real program (the checkpoint tests' redis-server and redis-cli, from
# the host's Debian packages) runs in a busybox rootfs made by scripts/make-bundle.sh:
#   - each BINARY (a path, or a name looked up on PATH) goes to ROOTFS/usr/bin/<name>;
#   - each library `ldd` names, and the dynamic loader, goes to the same path under ROOTFS as on
#     the host (e.g. ROOTFS/lib/x86_64-linux-gnu/libc.so.6), symlinks resolved.
# Files are copied, never linked: make-bundle.sh's rootfs shares its busybox applets with a cache
# through hard links, and nothing here may write through them. Installs nothing.

die() { echo "copy-binaries.sh: error: $*" >&2; exit 1; }

(($# >= 2)) || die "usage: $0 ROOTFS BINARY..."
rootfs=$1
shift
[[ -d $rootfs ]] || die "$rootfs is not a directory"
command -v ldd >/dev/null 2>&1 || die "ldd not found (package libc-bin)"

# copy SRC DEST — SRC's content (symlinks resolved) at DEST, mode kept.
copy() {
    mkdir -p "$(dirname "$2")"
    cp -L --preserve=mode "$1" "$2"
}

libs=()
for binary in "$@"; do
    path=$(command -v "$binary") || die "$binary not found on PATH"
    copy "$path" "$rootfs/usr/bin/$(basename "$path")"
    # ldd's lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" for a library,
    # "/lib64/ld-linux-x86-64.so.2 (0x...)" for the loader, "linux-vdso.so.1 (0x...)" (no file).
    out=$(ldd "$path") || die "ldd $path failed: is it a dynamic executable?"
    while read -r first arrow target _; do
        if [[ $arrow == '=>' && $target == /* ]]; then
            libs+=("$target")
        elif [[ $first == /* ]]; then
            libs+=("$first")
        elif [[ $arrow == '=>' && $target == 'not' ]]; then
            die "$path needs $first, which ldd cannot find"
        fi
    done <<<"$out"
done
for lib in "${libs[@]}"; do
    [[ -e $rootfs$lib ]] || copy "$lib" "$rootfs$lib"
done
