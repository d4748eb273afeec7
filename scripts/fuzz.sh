#!/usr/bin/env bash
set -euo pipefail
# fuzz.sh [RUNS] — fuzzes frame decoding and the daemon's first checks on requests with
# cargo-fuzz (libFuzzer), RUNS executions per target (default 1000000), then minimises the
# corpus kept in protocol/fuzz/corpus. Not part of CI: it installs cargo-fuzz from crates.io
# when missing and builds in release mode. Runs on the stable toolchain (no sanitizer: `-s none`).
# A crash leaves its input in protocol/fuzz/artifacts/<target>/: turn it into a regression test.

runs=${1:-1000000}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo/protocol"

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked

for target in frame request; do
    mkdir -p "fuzz/corpus/$target"
    cargo fuzz run -s none "$target" -- -runs="$runs" -max_len=4096
    cargo fuzz cmin -s none "$target"
done
