#!/usr/bin/env bash
set -euo pipefail
# bench-ab.sh A_BIN_DIR B_BIN_DIR [--count N] [--pairs N]
#
# Start throughput of two ctrd builds, interleaved: each pair runs `ctrd-bench --count N` (at
# concurrency 10) through a fresh ctrd of each build on tmpfs, alternating which goes first, so
# that the load of a shared host falls on both alike. A_BIN_DIR and B_BIN_DIR each hold a
# release build's ctrd, ctr and ctrd-bench (e.g. a worktree of the older commit's
# target/release). Prints one line per run and each side's median. Needs root; run
# scripts/setup.sh first.

count=500
pairs=4
(($# >= 2)) || { echo "usage: $0 A_BIN_DIR B_BIN_DIR [--count N] [--pairs N]" >&2; exit 2; }
a=$(realpath "$1")
b=$(realpath "$2")
shift 2
while (($#)); do
    case $1 in
        --count) count=$2 ;;
        --pairs) pairs=$2 ;;
        *) echo "usage: $0 A_BIN_DIR B_BIN_DIR [--count N] [--pairs N]" >&2; exit 2 ;;
    esac
    shift 2
done
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d /dev/shm/ctrd-ab.XXXXXX)
pid=''
cleanup() {
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        wait "$pid" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
"$repo/scripts/make-bundle.sh" "$work/bundle" sleep 1000000 >/dev/null

run() { # run LABEL BIN_DIR: one ctrd-bench run through a fresh ctrd of that build
    local dir
    dir=$(mktemp -d "$work/$1.XXXXXX")
    # Builds with an image store get a root of their own, not /var/lib/ctrd.
    local root=()
    if "$2/ctrd" --help | grep -q -- '--root'; then root=(--root "$dir/root"); fi
    "$2/ctrd" --state-dir "$dir/state" "${root[@]}" --socket "$dir/ctrd.sock" --metrics-interval 0 >"$dir/ctrd.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        "$2/ctr" --address "$dir/ctrd.sock" version >/dev/null 2>&1 && break
        sleep 0.1
    done
    "$2/ctrd-bench" --address "$dir/ctrd.sock" --bundle "$work/bundle" --count "$count" \
        --concurrency 10 --format json >"$dir/result.json"
    kill -TERM "$pid"
    wait "$pid" || true
    pid=''
    python3 -c 'import json, sys; print(sys.argv[1], round(json.load(open(sys.argv[2]))["start"]["rate"], 2))' \
        "$1" "$dir/result.json" | tee -a "$work/rates"
}

for i in $(seq "$pairs"); do
    if ((i % 2)); then run A "$a"; run B "$b"; else run B "$b"; run A "$a"; fi
done
python3 - "$work/rates" <<'PY'
import statistics, sys
rates = {}
for line in open(sys.argv[1]):
    side, rate = line.split()
    rates.setdefault(side, []).append(float(rate))
a, b = statistics.median(rates["A"]), statistics.median(rates["B"])
print(f"median start throughput: A {a:.2f}/s, B {b:.2f}/s; B/A {b / a:.3f}")
PY
