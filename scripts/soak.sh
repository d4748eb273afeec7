#!/usr/bin/env bash
set -euo pipefail
# soak.sh [SECONDS] — the soak test at length (default 600 s; the test suite runs 15 s):
# 16 clients doing a random mix of start, exec, kill, pause/resume, list, state, stats and
# subscriptions against up to 200 live containers, then checks that every process reported
# exactly one exit with its true status and that neither the daemon nor its keeper leaked fds,
# threads or memory (each measured on its own pid; both are printed before and after). Runs
# scripts/setup.sh first (root; installs runc and busybox-static when missing).
# SOAK_SEED=N replays a run: each run prints its seed.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
scripts/setup.sh
cargo build --workspace --bins
SOAK_SECONDS=${1:-600} cargo test -p supervisor --test soak -- --nocapture
