#!/usr/bin/env bash
set -euo pipefail
# bench-images.sh [--dir DIR] [--size-mb N] [--layers N] [--rounds N] [--containers N]
#
# The image store's benchmark (figures in bench/RESULTS.md):
#   1. a release build of ctrd, ctr and images-bench, and a ctrd whose state dir and --root
#      are in a work dir made under --dir (default /var/tmp: a disk, where /var/lib/ctrd lives);
#   2. images-bench: an image of --layers gzip layers, --size-mb MiB uncompressed (defaults 5
#      and 100), generated offline; --rounds (default 3) imports through ctrd's socket against
#      `tar -xzf` of the same layers on the same disk, alternating; then --containers (default
#      100) snapshots prepared and mounted, each timed.
# ctrd is stopped and the work dir removed on exit. Needs root, like ctrd. Installs nothing
# beyond what scripts/setup.sh does.

dir=/var/tmp
bench_args=()
while (($#)); do
    case $1 in
        --dir) dir=$2 ;;
        --size-mb | --layers | --rounds | --containers) bench_args+=("$1" "$2") ;;
        *) echo "usage: $0 [--dir DIR] [--size-mb N] [--layers N] [--rounds N] [--containers N]" >&2; exit 2 ;;
    esac
    shift 2
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
if ! command -v cargo >/dev/null 2>&1; then
    # shellcheck disable=SC1091
    . "${CARGO_HOME:-${HOME:-/root}/.cargo}/env"
fi
cargo build --release -p supervisor -p ctr -p bench --bin ctrd --bin ctr --bin images-bench
bin=$(scripts/target-dir.sh)/release

work=$(mktemp -d "$dir/ctrd-images-bench.XXXXXX")
sock=$work/ctrd.sock
ctrd_pid=''
cleanup() {
    if [[ -n $ctrd_pid ]] && kill -0 "$ctrd_pid" 2>/dev/null; then
        kill -TERM "$ctrd_pid"
        wait "$ctrd_pid" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

"$bin/ctrd" --state-dir "$work/state" --root "$work/root" --socket "$sock" --metrics-interval 0 >"$work/ctrd.log" 2>&1 &
ctrd_pid=$!
for _ in $(seq 100); do
    "$bin/ctr" --address "$sock" version >/dev/null 2>&1 && break
    kill -0 "$ctrd_pid" 2>/dev/null || { cat "$work/ctrd.log" >&2; exit 1; }
    sleep 0.1
done
"$bin/ctr" --address "$sock" version >/dev/null

echo "== machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== work dir $work on $(df --output=fstype "$work" | tail -1) ($(df --output=source "$work" | tail -1))"
"$bin/images-bench" --address "$sock" --work "$work/bench" "${bench_args[@]}"
