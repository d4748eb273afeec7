#!/usr/bin/env bash
set -euo pipefail
# setup.sh — idempotent host preparation for building and testing ctrd/ctr.
# Must run as root. Installs with apt-get, only when missing:
#   runc            the OCI runtime ctrd drives (tests start real containers)
#   busybox-static  /bin/busybox as a *static* binary; scripts/make-bundle.sh
#                   copies it alone into test rootfs dirs, so the dynamic
#                   `busybox` package (needs libc in the rootfs) won't do
#   iptables        CRIU calls it to lock the network while it dumps a container
#   python3-prometheus-client  the reference parser of the Prometheus text
#                   format, with /usr/bin/python3; the metrics tests check
#                   ctrd's /metrics with it
#   systemd         for systemd-analyze, which checks ctrd.service in the service tests.
#                   Harmless on a host whose init is not systemd: the package installs the
#                   tools and units and starts nothing; the init stays whatever boots the host
#   man-db          `man`, so that check also resolves the unit's Documentation= man page
#   umoci, skopeo   third-party writers and readers of OCI image layouts and
#                   docker archives; the image store's tests import what they
#                   write, so the importer is not checked against our own
#                   writer alone
#   redis-server    a real network server for the checkpoint tests: they copy
#                   redis-server, redis-cli and the libraries ldd names into a
#                   bundle. The host's redis service is neither started nor
#                   needed: a policy-rc.d that refuses every start is in place
#                   while apt-get runs (unless the host has its own), and
#                   nothing is enabled to start later
#   binutils, gdb   package.sh strips the packaged binaries (objcopy, strip, readelf) as
#                   Debian does; the packaging test finds their symbols again with gdb
# Then runs scripts/install-criu.sh: when the system's `criu check` fails (Debian
# bookworm's CRIU 3.17 does on this kernel), it unpacks CRIU 4 from Debian trixie
# under /opt/ctrd-criu without touching the system's apt sources or dpkg database.
# The packaging tests also use dpkg-deb and dpkg (part of dpkg, on every Debian system).
# A test that finds a tool missing fails and names it (CTRD_ALLOW_SKIP=NAME lets it skip).
# Does not install Rust: fails with a clear message if `cargo` is not on PATH
# (after sourcing ~/.cargo/env when present).
# Prints one line per package it installed; silent otherwise.

die() { echo "setup.sh: error: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (ctrd and its tests drive runc as root); try: sudo $0"

missing=()
command -v runc >/dev/null 2>&1 || missing+=(runc)
if ! dpkg -s busybox-static >/dev/null 2>&1 || [[ ! -x /bin/busybox ]]; then
    missing+=(busybox-static)
fi
command -v iptables >/dev/null 2>&1 || [[ -x /usr/sbin/iptables ]] || missing+=(iptables)
if ! dpkg -s python3-prometheus-client >/dev/null 2>&1; then
    missing+=(python3-prometheus-client)
fi
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v man >/dev/null 2>&1 || missing+=(man-db)
command -v umoci >/dev/null 2>&1 || missing+=(umoci)
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 || missing+=(redis-server)
command -v objcopy >/dev/null 2>&1 || missing+=(binutils)
command -v gdb >/dev/null 2>&1 || missing+=(gdb)

if ((${#missing[@]})); then
    command -v apt-get >/dev/null 2>&1 \
        || die "missing ${missing[*]} and apt-get is not available; install them by hand"
    log=$(mktemp /tmp/ctrd-setup.XXXXXX.log)
    export DEBIAN_FRONTEND=noninteractive
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
        # Exit status 101: "action forbidden", so invoke-rc.d starts no service we install.
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2
        die "apt-get failed installing: ${missing[*]} (log: $log)"
    fi
    rm -f "$log"
    for p in "${missing[@]}"; do echo "setup.sh: installed $p"; done
fi

# Final sanity checks, so failures show up here and not as odd test errors.
command -v runc >/dev/null 2>&1 || die "runc still not on PATH after install"
[[ -x /bin/busybox ]] || die "/bin/busybox missing after installing busybox-static"
"$(dirname "${BASH_SOURCE[0]}")/install-criu.sh" || die "no working CRIU (scripts/install-criu.sh failed)"
/usr/bin/python3 -c 'import prometheus_client.parser' 2>/dev/null \
    || die "/usr/bin/python3 cannot import prometheus_client after installing python3-prometheus-client"
command -v systemd-analyze >/dev/null 2>&1 || die "systemd-analyze still not on PATH after installing systemd"
command -v man >/dev/null 2>&1 || die "man still not on PATH after installing man-db"
command -v umoci >/dev/null 2>&1 || die "umoci still not on PATH after install"
command -v skopeo >/dev/null 2>&1 || die "skopeo still not on PATH after install"
command -v redis-server >/dev/null 2>&1 || die "redis-server still not on PATH after install"
command -v redis-cli >/dev/null 2>&1 || die "redis-cli still not on PATH after install"

if ! command -v cargo >/dev/null 2>&1; then
    env_file="${CARGO_HOME:-$HOME/.cargo}/env"
    # shellcheck disable=SC1090
    [[ -f $env_file ]] && . "$env_file"
fi
command -v cargo >/dev/null 2>&1 \
    || die "cargo not found on PATH (nor via ~/.cargo/env); install a Rust toolchain (e.g. https://rustup.rs) — this script does not install Rust"
