#!/usr/bin/env bash
set -euo pipefail
# run.sh [CTRD ARGS...] — prepare the host, build, and run the ctrd daemon.
# Runs scripts/setup.sh (as root; apt-installs runc and busybox-static if
# missing), `cargo build --release`, then execs the ctrd it built (in
# target/release, or under CARGO_TARGET_DIR when set) with the given arguments. With no arguments ctrd uses its defaults (state dir
# /run/ctrd). Works from the repo root regardless of the caller's cwd.
# Installs nothing itself beyond what setup.sh installs.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

scripts/setup.sh
if ! command -v cargo >/dev/null 2>&1; then
    # shellcheck disable=SC1091
    . "${CARGO_HOME:-${HOME:-/root}/.cargo}/env" # setup.sh verified it exists
fi

cargo build --release
exec "$(scripts/target-dir.sh)/release/ctrd" "$@"
