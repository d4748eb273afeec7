#!/usr/bin/env bash
set -euo pipefail
# target-dir.sh — print the directory cargo builds this workspace into: target/ beside the
# workspace unless CARGO_TARGET_DIR, a .cargo/config.toml or --target-dir say otherwise. The
# other scripts build with cargo and then run or package the binaries; they ask here instead
# of assuming target/. Reads `cargo metadata --no-deps` (offline: it resolves nothing).
# Installs nothing.

die() { echo "target-dir.sh: error: $*" >&2; exit 1; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if ! command -v cargo >/dev/null 2>&1; then
    # shellcheck disable=SC1091
    . "${CARGO_HOME:-${HOME:-/root}/.cargo}/env"
fi
metadata=$(cd "$repo" && cargo metadata --format-version 1 --no-deps --offline)
# The one field, as a JSON string with no escapes in it (a path holding `"` or `\` is refused
# rather than misread).
dir=$(sed -n 's/.*"target_directory":"\([^"\\]*\)".*/\1/p' <<<"$metadata")
[[ -n $dir ]] || die "cannot read target_directory from cargo metadata (a path with quotes or backslashes?)"
echo "$dir"
