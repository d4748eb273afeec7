#!/usr/bin/env bash
set -euo pipefail
# test.sh [CARGO TEST ARGS...] — the full check used by CI.
# Runs scripts/setup.sh (as root; apt-installs runc, busybox-static and iptables
# if missing — the tests start real runc containers from busybox bundles — and
# CRIU 4 under /opt/ctrd-criu when the system's criu fails), then
# `cargo fmt --check`, `cargo clippy -D warnings`, a build of every binary (the
# integration tests run `ctr` beside `ctrd`, and `cargo test` builds only the
# binaries of the package under test), and `cargo test --workspace` with any
# extra arguments passed through (e.g. `-- --nocapture`).
# Works from the repo root regardless of the caller's cwd.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

scripts/setup.sh
if ! command -v cargo >/dev/null 2>&1; then
    # shellcheck disable=SC1091
    . "${CARGO_HOME:-${HOME:-/root}/.cargo}/env" # setup.sh verified it exists
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
cargo test --workspace "$@"
