#!/usr/bin/env bash
set -euo pipefail
# bench.sh [--count N] [--concurrency N] [--rounds N] [--probe-concurrency N] [--dir DIR]
#
# The side-by-side benchmark: ctrd against raw runc on this machine, in one run.
#   1. scripts/setup.sh (installs runc, busybox-static, python3-prometheus-client if missing),
#      a release build, a busybox `sleep` bundle, and a ctrd on a temporary state dir.
#   2. --rounds rounds (default 3) of ctrd-bench through ctrd and ctrd-bench --baseline runc,
#      back to back, alternating which goes first, each with --count containers (default 1000)
#      at --concurrency (default 10).
#   3. One ctrd-bench --probe run at --probe-concurrency (default 100).
#   4. Density through the real CLI: --count containers started with `ctr`, then 20 round
#      trips of `ctr containers list`, 10 of `ctr containers kill`, and ctrd's RSS.
#   The teardown kills all but 20 at once; those 20 are killed one at a time first, each
#   waited for ("one exit"), which is the exit-to-event latency with nothing queued before it.
#   5. A summary: the medians of each side and `throughput ratio ctrd/runc: X.XX`.
# The work dir (ctrd's state dir, the baseline's runc roots, every run's JSON) is made under
# --dir, default /dev/shm: a tmpfs, as ctrd's default state dir /run/ctrd is on a systemd host.
# On a disk, the event journal's fdatasync competes with runc's own writes (see
# bench/RESULTS.md); `--dir /tmp` measures that.
# Everything is cleaned up on exit (ctrd is stopped, which kills its containers; baseline
# containers left by a failed run are force-deleted). Every run's JSON stays in the work dir,
# whose path is printed. Needs root, like ctrd. Installs nothing beyond scripts/setup.sh.

count=1000
concurrency=10
rounds=3
probe_concurrency=100
dir=/dev/shm
while (($#)); do
    case $1 in
        --count) count=$2 ;;
        --concurrency) concurrency=$2 ;;
        --rounds) rounds=$2 ;;
        --probe-concurrency) probe_concurrency=$2 ;;
        --dir) dir=$2 ;;
        *) echo "usage: $0 [--count N] [--concurrency N] [--rounds N] [--probe-concurrency N] [--dir DIR]" >&2; exit 2 ;;
    esac
    shift 2
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
scripts/setup.sh
if ! command -v cargo >/dev/null 2>&1; then
    # shellcheck disable=SC1091
    . "${CARGO_HOME:-${HOME:-/root}/.cargo}/env" # setup.sh verified it exists
fi
cargo build --release --workspace --bins
bin=$(scripts/target-dir.sh)/release

work=$(mktemp -d "$dir/ctrd-bench-run.XXXXXX")
export TMPDIR=$work # ctrd-bench's own temp dirs (the baseline's runc roots) live here too
sock=$work/ctrd.sock
ctrd_pid=''
cleanup() {
    if [[ -n $ctrd_pid ]] && kill -0 "$ctrd_pid" 2>/dev/null; then
        kill -TERM "$ctrd_pid"
        wait "$ctrd_pid" || true
    fi
    local root id
    for root in "$work"/ctrd-bench-*/runc/*; do # the baseline's state dirs, laid out as ctrd's
        [[ -d $root ]] || continue
        for id in $(ls "$root"); do
            runc --root "$root" delete --force "$id" >/dev/null 2>&1 || true
        done
    done
}
trap cleanup EXIT

scripts/make-bundle.sh "$work/bundle" sleep 1000000
"$bin/ctrd" --state-dir "$work/state" --root "$work/root" --socket "$sock" --metrics-interval 0 >"$work/ctrd.log" 2>&1 &
ctrd_pid=$!
for _ in $(seq 100); do
    "$bin/ctr" --address "$sock" version >/dev/null 2>&1 && break
    kill -0 "$ctrd_pid" 2>/dev/null || { cat "$work/ctrd.log" >&2; exit 1; }
    sleep 0.1
done
"$bin/ctr" --address "$sock" version >/dev/null

echo "== machine: $(nproc) cores, kernel $(uname -r), $(runc --version | head -1), ulimit -n $(ulimit -n), pid_max $(cat /proc/sys/kernel/pid_max)"
echo "== $rounds rounds of $count containers at concurrency $concurrency; results in $work"

bench() { # bench NAME ARGS... — one run, its JSON kept as $work/NAME.json, its table shown
    local name=$1
    shift
    "$bin/ctrd-bench" --address "$sock" --bundle "$work/bundle" --format json "$@" >"$work/$name.json"
    python3 - "$work/$name.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
def row(name, phase):
    d = phase["latency"]
    print(f"  {name:<9} {phase['rate']:8.1f}/s  p50 {d['median_ms']:8.2f}ms  p99 {d['p99_ms']:8.2f}ms  max {d['max_ms']:8.2f}ms")
print(f"{r['mode']}: {r['count']} containers at concurrency {r['concurrency']}")
row("start", r["start"])
row("teardown", r["teardown"])
d = r["single_exit"]
print(f"  one exit  {d['count']:>6} alone  p50 {d['median_ms']:8.2f}ms  p99 {d['p99_ms']:8.2f}ms  max {d['max_ms']:8.2f}ms")
if r.get("probe"):
    p = r["probe"]
    print(f"  probe     {p['count']} requests  p50 {p['median_ms']:.2f}ms  p99 {p['p99_ms']:.2f}ms  max {p['max_ms']:.2f}ms")
EOF
}

for round in $(seq "$rounds"); do
    echo "-- round $round"
    if ((round % 2)); then
        bench "ctrd-$round" --count "$count" --concurrency "$concurrency"
        bench "runc-$round" --count "$count" --concurrency "$concurrency" --baseline runc
    else
        bench "runc-$round" --count "$count" --concurrency "$concurrency" --baseline runc
        bench "ctrd-$round" --count "$count" --concurrency "$concurrency"
    fi
done

echo "-- probe: $count containers at concurrency $probe_concurrency"
bench probe --count "$count" --concurrency "$probe_concurrency" --probe

echo "-- density through the CLI: $count containers started with ctr"
ctr() { "$bin/ctr" --address "$sock" -n density "$@"; }
export -f ctr
export bin sock
seq "$count" | sed "s/^/dense-$$-/" \
    | xargs -P "$concurrency" -I{} bash -c 'ctr containers start --quiet {} "$1"' _ "$work/bundle"
now_ns() { date +%s%N; }
list_us=()
for _ in $(seq 20); do
    t0=$(now_ns)
    listed=$(ctr containers list | tail -n +2 | wc -l)
    list_us+=("$(( ($(now_ns) - t0) / 1000 ))")
done
# $ctrd_pid is the keeper; the daemon is its child, named by `ctr info`.
daemon_pid=$(ctr info --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["pid"])')
rss_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$daemon_pid/status")
keeper_rss_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$ctrd_pid/status")
kill_us=()
for n in $(seq "$((count < 10 ? count : 10))"); do
    t0=$(now_ns)
    ctr containers kill --signal KILL "dense-$$-$n"
    kill_us+=("$(( ($(now_ns) - t0) / 1000 ))")
done
seq 11 "$count" | sed "s/^/dense-$$-/" \
    | xargs -P "$concurrency" -I{} bash -c 'ctr containers kill --signal KILL {}'
for _ in $(seq 600); do
    [[ $(ctr containers list --format json) == '[]' ]] && break
    sleep 0.1
done
python3 - "$work" "$rounds" "$listed" "$rss_kib" "$keeper_rss_kib" "${kill_us[*]}" "${list_us[@]}" <<'EOF' | tee "$work/summary.txt"
import json, statistics, sys
work, rounds, listed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rss_kib, keeper_rss_kib = int(sys.argv[4]), int(sys.argv[5])
kill_us = sorted(int(v) for v in sys.argv[6].split())
list_us = sorted(int(v) for v in sys.argv[7:])
load = lambda name: json.load(open(f"{work}/{name}.json"))
ctrd = [load(f"ctrd-{n}") for n in range(1, rounds + 1)]
runc = [load(f"runc-{n}") for n in range(1, rounds + 1)]
med = lambda runs, f: statistics.median(f(r) for r in runs)
print(f"== summary: medians of {rounds} rounds")
print(f"{'':28}{'ctrd':>12}{'runc':>12}")
rows = [
    ("start throughput (/s)", lambda r: r["start"]["rate"]),
    ("start p50 (ms)", lambda r: r["start"]["latency"]["median_ms"]),
    ("start p99 (ms)", lambda r: r["start"]["latency"]["p99_ms"]),
    ("teardown rate (/s)", lambda r: r["teardown"]["rate"]),
    ("exit-to-event p50 (ms)", lambda r: r["teardown"]["latency"]["median_ms"]),
    ("exit-to-event p99 (ms)", lambda r: r["teardown"]["latency"]["p99_ms"]),
    ("one exit-to-event p50 (ms)", lambda r: r["single_exit"]["median_ms"]),
    ("one exit-to-event p99 (ms)", lambda r: r["single_exit"]["p99_ms"]),
]
for name, f in rows:
    print(f"{name:<28}{med(ctrd, f):>12.2f}{med(runc, f):>12.2f}")
d = lambda f: med(ctrd, lambda r: f(r["daemon"]))
print(f"ctrd RSS, {ctrd[0]['count']} running (MiB)  {d(lambda x: x['rss_bytes']) / 2**20:.1f}")
print(f"list round trip p50/p99 (ms) {d(lambda x: x['list']['median_ms']):.2f} / {d(lambda x: x['list']['p99_ms']):.2f}")
print(f"kill round trip p50/p99 (ms) {d(lambda x: x['kill']['median_ms']):.2f} / {d(lambda x: x['kill']['p99_ms']):.2f}")
probe = load("probe")
print(f"probe at concurrency {probe['concurrency']}: p50 {probe['probe']['median_ms']:.2f}ms p99 {probe['probe']['p99_ms']:.2f}ms max {probe['probe']['max_ms']:.2f}ms; start {probe['start']['rate']:.1f}/s")
print(f"CLI, {listed} running: `ctr containers list` median {statistics.median(list_us) / 1000:.2f}ms max {list_us[-1] / 1000:.2f}ms; "
      f"`ctr containers kill` median {statistics.median(kill_us) / 1000:.2f}ms max {kill_us[-1] / 1000:.2f}ms; "
      f"ctrd RSS {rss_kib / 1024:.1f} MiB, its keeper's {keeper_rss_kib / 1024:.1f} MiB")
print(f"start p99 ratio ctrd/runc: {med(ctrd, rows[2][1]) / med(runc, rows[2][1]):.2f}")
print(f"throughput ratio ctrd/runc: {med(ctrd, rows[0][1]) / med(runc, rows[0][1]):.2f}")
EOF
