#!/usr/bin/env bash
set -euo pipefail
# migrate.sh [--tcp] [--pre-copy [ROUNDS]] SRC_SOCKET DST_SOCKET ID [DST_BUNDLE] — live-migrate
# container ID from the ctrd listening on SRC_SOCKET to the one on DST_SOCKET, under the same id.
#
# Stop-and-copy (the default):
#   1. checkpoint it with --exit on the source: CRIU's images go to <bundle>/checkpoints/<name>
#      and the container stops there;
#   2. copy the whole bundle (rootfs, config.json, checkpoints) to DST_BUNDLE, which must not
#      exist or be empty; without DST_BUNDLE, or when it is the source bundle, nothing is copied
#      (both daemons see the same file system);
#   3. restore it on the destination: ctr containers start --checkpoint <name> ID DST_BUNDLE;
#   4. delete the stopped container the source keeps (its bundle and checkpoints stay).
# The container is frozen from step 1 to the end of step 3.
#
# --pre-copy [ROUNDS] (default 2 rounds): while the container runs, take ROUNDS pre-dumps, each
# holding only the pages written since the one before (the first: all of them), copying the
# bundle after the first and each later pre-dump as it is taken; then the final dump (--exit,
# --parent the last pre-dump) holds only the last round's changes, and only it and the rootfs
# are copied while the container is frozen. Needs the kernel's soft-dirty page tracking: where
# it is missing, says so and falls back to stop-and-copy.
#
# --tcp: dump established TCP connections too (ctr checkpoints create --tcp); the restore takes
# them back. Needed when the container holds any.
#
# Prints one line with the time each step took and the freeze time: from the start of the dump
# that stops the container to the restored container running. If the restore fails, the
# checkpoint is kept, and so is the stopped container on the source, with the command that
# restores it there.
# The namespace is CTRD_NAMESPACE (default "default"), as for ctr. The ctr binary is $CTR, else
# `ctr` on PATH, else the repo's release or debug build of ctr (in target/, or under
# CARGO_TARGET_DIR). Installs nothing.

die() { echo "migrate.sh: error: $*" >&2; exit 1; }
usage="usage: $0 [--tcp] [--pre-copy [ROUNDS]] SRC_SOCKET DST_SOCKET ID [DST_BUNDLE]"

tcp=() rounds=0
while (($#)); do
    case $1 in
    --tcp) tcp=(--tcp) ;;
    --pre-copy)
        rounds=2
        if [[ ${2:-} =~ ^[0-9]+$ ]]; then
            rounds=$2
            shift
            ((rounds >= 1)) || die "--pre-copy needs at least 1 round"
        fi
        ;;
    --*) die "unknown option $1; $usage" ;;
    *) break ;;
    esac
    shift
done
(($# == 3 || $# == 4)) || die "$usage"
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
copying() { [[ $dst_bundle != "$src_bundle" ]]; }

name="migrate-$(date -u +%Y%m%dT%H%M%S)-$$"
restore_hint="restore on the source with: $ctr --address $src containers start --checkpoint $name $id"
seconds() { LC_ALL=C awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# --- pre-copy: pre-dumps while the container runs --------------------------------------------
parent=() precopy=''
if ((rounds)); then
    p0=$EPOCHREALTIME
    for ((round = 1; round <= rounds; round++)); do
        pre="$name-pre$round"
        if ! out=$("$ctr" --address "$src" checkpoints create --pre-dump "${tcp[@]}" "${parent[@]}" "$id" "$pre" 2>&1); then
            if ((round == 1)) && [[ $out == *soft-dirty* ]]; then
                echo "migrate.sh: no pre-copy: this kernel cannot track written pages (soft-dirty bits, CONFIG_MEM_SOFT_DIRTY); falling back to stop-and-copy" >&2
                break
            fi
            die "pre-dump $pre of $id failed; it still runs on the source: $out"
        fi
        if copying; then
            if ((round == 1)); then
                mkdir -p "$dst_bundle"
                cp -a "$src_bundle/." "$dst_bundle/" || die "copying $src_bundle to $dst_bundle failed; $id still runs on the source"
            else
                cp -a "$src_bundle/checkpoints/$pre" "$dst_bundle/checkpoints/" || die "copying pre-dump $pre failed; $id still runs on the source"
            fi
        fi
        parent=(--parent "$pre")
    done
    if ((${#parent[@]})); then
        precopy=" after pre-copy ($((round - 1)) rounds, $(seconds "$p0" "$EPOCHREALTIME")s while running):"
    fi
fi

# --- the freeze: final dump, copy, restore ---------------------------------------------------
t0=$EPOCHREALTIME
"$ctr" --address "$src" checkpoints create --exit "${tcp[@]}" "${parent[@]}" "$id" "$name" \
    || die "checkpoint of $id on $src failed; it still runs there"
t1=$EPOCHREALTIME
if copying; then
    if [[ -n $precopy ]]; then
        # The pre-dumps are there already: the final dump, and the rootfs as it is now.
        cp -a "$src_bundle/checkpoints/$name" "$dst_bundle/checkpoints/" || die "copying $name failed; $restore_hint"
        rm -rf "$dst_bundle/rootfs"
        cp -a "$src_bundle/rootfs" "$dst_bundle/" || die "copying the rootfs failed; $restore_hint"
    else
        mkdir -p "$dst_bundle"
        cp -a "$src_bundle/." "$dst_bundle/" || die "copying $src_bundle to $dst_bundle failed; $restore_hint"
    fi
fi
t2=$EPOCHREALTIME
if ! "$ctr" --address "$dst" containers start --quiet --checkpoint "$name" "$id" "$dst_bundle"; then
    die "restore on $dst failed; $restore_hint"
fi
t3=$EPOCHREALTIME
"$ctr" --address "$src" containers delete "$id" || echo "migrate.sh: warning: $id runs on $dst, but its stopped copy on $src was not deleted" >&2
echo "migrated $id as checkpoint $name:$precopy checkpoint $(seconds "$t0" "$t1")s, copy $(seconds "$t1" "$t2")s, restore $(seconds "$t2" "$t3")s, freeze $(seconds "$t0" "$t3")s"
