#!/usr/bin/env bash
set -euo pipefail
# bench-migrate.sh [MIB] [ROUNDS] — freeze time of a live migration, stop-and-copy against
# pre-copy, for a container holding MIB MiB (default 512) that keeps rewriting ~1% of its pages
# each second. Runs two throwaway daemons (source and destination, state in a temp dir) and, for
# each mode, a fresh container:
#   - redis-server (the host's, copied in with scripts/copy-binaries.sh) filled with MIB MiB of
#     4 KiB values (DEBUG POPULATE), and a client inside the container that rewrites one byte of
#     a different value (SETRANGE, so one page) MIB*1024/4/100 times a second: ~1% of the pages;
#   - migrated with scripts/migrate.sh --tcp (the client's connection goes along), bundle
#     copied to the destination: once plain, once with --pre-copy ROUNDS (default 2);
#   - checked: DBSIZE on the destination is what was written.
# Prints migrate.sh's line for each mode. Where the kernel has no soft-dirty tracking the
# pre-copy run says so and falls back to stop-and-copy (see migrate.sh). Needs root, runc, CRIU
# and redis-server (scripts/setup.sh) and a build of ctrd and ctr (cargo build --bins).
# Installs nothing; removes its temp dir (about 3 x MIB MiB of images at the peak) at exit.

die() { echo "bench-migrate.sh: error: $*" >&2; exit 1; }

mib=${1:-512} rounds=${2:-2}
[[ $mib =~ ^[0-9]+$ && $mib -ge 16 ]] || die "MIB must be a number >= 16"
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=$("$repo/scripts/target-dir.sh")
bin=$target/release
[[ -x $bin/ctrd ]] || bin=$target/debug
[[ -x $bin/ctrd && -x $bin/ctr ]] || die "no ctrd/ctr build in $target: run cargo build --bins"
command -v redis-server >/dev/null 2>&1 || die "redis-server not installed (scripts/setup.sh)"

work=$(mktemp -d /tmp/ctrd-bench-migrate.XXXXXX)
pids=()
cleanup() {
    for sock in "$work"/{src,dst}/ctrd.sock; do
        [[ -S $sock ]] || continue
        for id in $("$bin/ctr" --address "$sock" containers list 2>/dev/null | awk 'NR > 1 { print $1 }'); do
            "$bin/ctr" --address "$sock" containers kill -s KILL "$id" 2>/dev/null || true
        done
    done
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

for side in src dst; do
    "$bin/ctrd" --state-dir "$work/$side" >"$work/$side.log" 2>&1 &
    pids+=($!)
done
# deadline DESCRIPTION COMMAND... — polls COMMAND every 50 ms for up to 60 s.
deadline() {
    local what=$1 end=$((SECONDS + 60))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < end)) || die "timed out waiting for $what"
        sleep 0.05
    done
}
for side in src dst; do deadline "ctrd ($side)" "$bin/ctr" --address "$work/$side/ctrd.sock" version; done
src=$work/src/ctrd.sock dst=$work/dst/ctrd.sock

keys=$((mib * 256))                  # 4 KiB values
per_tick=$(((keys + 999) / 1000))    # 1% a second, in ten ticks of 0.1 s
# The churn: SETRANGE one byte of every 7919th key (a prime: it walks all keys) through one
# redis-cli connection.
init="redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
--enable-debug-command yes --dir /tmp >/dev/null & \
until redis-cli ping >/dev/null 2>&1; do sleep 0.05; done; \
redis-cli DEBUG POPULATE $keys key 4096 >/dev/null; echo populated > /populated; \
i=0; while true; do n=0; while [ \$n -lt $per_tick ]; do \
echo \"SETRANGE key:\$i 0 x\"; i=\$(( (i + 7919) % $keys )); n=\$((n + 1)); done; sleep 0.1; \
done | redis-cli >/dev/null"

run() { # run MODE-NAME MIGRATE-OPTIONS...
    local mode=$1 id bundle line
    shift
    id="bench-$mode-$$"
    bundle=$work/bundles/$mode
    "$repo/scripts/make-bundle.sh" "$bundle" sh -c "$init"
    sed -i 's/"readonly": true/"readonly": false/' "$bundle/config.json"
    "$repo/scripts/copy-binaries.sh" "$bundle/rootfs" redis-server redis-cli
    "$bin/ctr" --address "$src" containers start --quiet "$id" "$bundle"
    deadline "$id to hold $mib MiB" test -e "$bundle/rootfs/populated"
    line=$(CTR=$bin/ctr "$repo/scripts/migrate.sh" "$@" "$src" "$dst" "$id" "$work/moved/$mode")
    echo "$mode: $line"
    local size
    size=$("$bin/ctr" --address "$dst" containers exec --attach --id "$id" --pid dbsize -- redis-cli DBSIZE)
    [[ $size == "$keys" ]] || die "$mode: DBSIZE $size on the destination, expected $keys"
    "$bin/ctr" --address "$dst" containers kill -s KILL "$id"
    rm -rf "$bundle" "$work/moved/$mode"
}

echo "container: redis with $mib MiB in $keys values of 4 KiB, $((per_tick * 10)) pages rewritten a second"
run stop-and-copy --tcp
run pre-copy --tcp --pre-copy "$rounds"
