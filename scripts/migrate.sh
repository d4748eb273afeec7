#!/usr/bin/env bash
set -euo pipefail
# migrate.sh SRC_SOCKET DST_SOCKET ID [DST_BUNDLE] — live-migrate container ID from the ctrd
# listening on SRC_SOCKET to the one on DST_SOCKET, under the same id:
#   1. checkpoint it with --exit on the source: CRIU's images go to <bundle>/checkpoints/<name>
#      and the container stops there;
#   2. copy the whole bundle (rootfs, config.json, checkpoints) to DST_BUNDLE, which must not
#      exist or be empty; without DST_BUNDLE, or when it is the source bundle, nothing is copied
#      (both daemons see the same file system);
#   3. restore it on the destination: ctr containers start --checkpoint <name> ID DST_BUNDLE.
# Prints one line with the time each step took. If the restore fails, the checkpoint is kept
# and the command that restores the container on the source is printed.
# The namespace is CTRD_NAMESPACE (default "default"), as for ctr. The ctr binary is $CTR, else
# `ctr` on PATH, else the repo's release or debug build of ctr (in target/, or under
# CARGO_TARGET_DIR). Installs nothing.

die() { echo "migrate.sh: error: $*" >&2; exit 1; }

(($# == 3 || $# == 4)) || die "usage: $0 SRC_SOCKET DST_SOCKET ID [DST_BUNDLE]"
src=$1 dst=$2 id=$3 dst_bundle=${4:-}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ctr=${CTR:-}
if [[ -z $ctr ]]; then
    target=$("$repo/scripts/target-dir.sh" 2>/dev/null || echo "$repo/target")
    for candidate in "$(command -v ctr || true)" "$target/release/ctr" "$target/debug/ctr"; do
        if [[ -n $candidate && -x $candidate ]]; then
            ctr=$candidate
            break
        fi
    done
fi
[[ -n $ctr && -x $ctr ]] || die "no ctr binary: set CTR=PATH or build it (cargo build --bins)"

# The source bundle, from the container's JSON state ("bundle": "<path>").
state=$("$ctr" --address "$src" containers state "$id" --format json) || exit 1
src_bundle=$(sed -n 's/^  "bundle": "\(.*\)",$/\1/p' <<<"$state")
[[ -n $src_bundle && -d $src_bundle ]] || die "cannot find the bundle of $id in: $state"
dst_bundle=${dst_bundle:-$src_bundle}
[[ $dst_bundle == /* ]] || dst_bundle=$PWD/$dst_bundle
if [[ $dst_bundle != "$src_bundle" && -e $dst_bundle ]] && [[ -n $(ls -A "$dst_bundle") ]]; then
    die "destination bundle $dst_bundle exists and is not empty"
fi

name="migrate-$(date -u +%Y%m%dT%H%M%S)-$$"
t0=$EPOCHREALTIME
"$ctr" --address "$src" checkpoints create --exit "$id" "$name" || die "checkpoint of $id on $src failed; it still runs there"
t1=$EPOCHREALTIME
if [[ $dst_bundle != "$src_bundle" ]]; then
    mkdir -p "$dst_bundle"
    cp -a "$src_bundle/." "$dst_bundle/" || die "copying $src_bundle to $dst_bundle failed; restore on the source with: $ctr --address $src containers start --checkpoint $name $id $src_bundle"
fi
t2=$EPOCHREALTIME
if ! "$ctr" --address "$dst" containers start --checkpoint "$name" "$id" "$dst_bundle"; then
    die "restore on $dst failed; restore on the source with: $ctr --address $src containers start --checkpoint $name $id $src_bundle"
fi
t3=$EPOCHREALTIME
seconds() { LC_ALL=C awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
echo "migrated $id as checkpoint $name: checkpoint $(seconds "$t0" "$t1")s, copy $(seconds "$t1" "$t2")s, restore $(seconds "$t2" "$t3")s"
