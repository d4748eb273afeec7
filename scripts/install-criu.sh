#!/usr/bin/env bash
set -euo pipefail
# install-criu.sh [PREFIX] — make a CRIU available that can checkpoint ctrd's containers on the
# running kernel. Called by scripts/setup.sh (as root). Does nothing when the system's criu, or
# the one PREFIX (default /opt/ctrd-criu) already holds, passes the probe below.
#
# The probe: `criu check`, then a real dump (--leave-running) of a tiny process holding a
# listening TCP socket on 127.0.0.1 (python3, which setup.sh installs). `criu check` alone is
# not enough: CRIU 4.1 passes it on Linux 6.16+ yet fails every dump of a TCP or UDP socket
# ("sockets: Can't get 1:16 opt: Operation not supported": 6.16 restricted SO_PASSCRED and
# SO_PASSSEC to unix and netlink sockets; CRIU 4.2 copes).
#
# Why a private install: Debian bookworm's CRIU 3.17 fails on this kernel ("vdso: Unexpected rt
# vDSO area bounds"), trixie's 4.1 fails on sockets as above, sid's 4.2 works. Installing a newer
# suite's packages into the system would mix suites, so instead, for each suite in turn (trixie,
# then sid; the first whose criu passes the probe is installed):
#   - a private apt setup (sources list naming the system's own Debian mirror with that suite,
#     empty dpkg status file, private state and cache directories) is passed to apt-get with -o
#     options; the system's apt sources and dpkg database are never touched;
#   - `apt-get install --download-only criu` fetches criu's whole dependency closure (about
#     35 MB, glibc included) and `dpkg -x` unpacks each .deb into PREFIX.new;
#   - PREFIX/criu is a wrapper that runs the unpacked dynamic loader with --library-path the
#     unpacked library directories, both found beside the wrapper, so the unpacked criu never
#     sees the system's older libraries. ctrd uses PREFIX/criu by default when present.
# Each candidate is probed in PREFIX.new and only a working one is renamed into place, so an
# interrupted or failed run leaves the previous PREFIX as it was. Prints one line when it
# installs; silent otherwise. The mirror can be forced with CTRD_DEBIAN_MIRROR=URI, the suites
# tried with CTRD_CRIU_SUITES="SUITE...".

die() { echo "install-criu.sh: error: $*" >&2; exit 1; }

prefix=${1:-/opt/ctrd-criu}
wrapper=$prefix/criu
new=$prefix.new
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
read -r -a try_suites <<<"${CTRD_CRIU_SUITES:-trixie sid}"
probe_log=/tmp/ctrd-criu-probe.log

# The probe's process: listens on an ephemeral port of 127.0.0.1, then writes its pid to argv[1]
# (by rename, so the file is never seen half-written) and waits to be dumped and killed.
listener='
import os, socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(60)
'

# criu_works CRIU — true when CRIU passes `check` and dumps a process holding a listening TCP
# socket (see the header). After a failed dump, CRIU's log is in $probe_log.
criu_works() {
    local criu=$1 dir pid='' child rc=0 deadline
    "$criu" check >/dev/null 2>&1 || return 1
    command -v python3 >/dev/null 2>&1 || die "python3 is needed to probe CRIU (scripts/setup.sh installs it)"
    dir=$(mktemp -d /tmp/ctrd-criu-probe.XXXXXX)
    # Its own session, stdio on /dev/null and not our lock (fd 9): a tree CRIU dumps without
    # --shell-job or --file-locks.
    setsid python3 -c "$listener" "$dir/pid" </dev/null >/dev/null 2>&1 9>&- &
    child=$!
    deadline=$((SECONDS + 10))
    while [[ ! -s $dir/pid ]] && ((SECONDS < deadline)); do sleep 0.05; done
    [[ -s $dir/pid ]] && pid=$(<"$dir/pid")
    if [[ -z $pid ]]; then
        rc=1
        echo "the probe's python3 did not listen within 10 s" >"$probe_log"
    else
        mkdir "$dir/images"
        if ! "$criu" dump -t "$pid" -D "$dir/images" -o dump.log --leave-running >/dev/null 2>&1; then
            rc=1
            cp "$dir/images/dump.log" "$probe_log" 2>/dev/null || true
        fi
    fi
    kill "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
    rm -rf "$dir"
    return "$rc"
}

if command -v criu >/dev/null 2>&1 && criu_works criu; then
    exit 0
fi
if [[ -x $wrapper ]] && criu_works "$wrapper"; then
    exit 0
fi

[[ $(id -u) -eq 0 ]] || die "must run as root to install under $prefix"
# Concurrent runs (parallel CI jobs) install once: the others wait, then find it done.
mkdir -p "$(dirname "$prefix")"
exec 9>"$prefix.lock"
flock 9
if [[ -x $wrapper ]] && criu_works "$wrapper"; then
    exit 0
fi
command -v apt-get >/dev/null 2>&1 || die "apt-get is not available; install CRIU >= 4.2 by hand"
command -v dpkg >/dev/null 2>&1 || die "dpkg is not available; install CRIU >= 4.2 by hand"
[[ -r $keyring ]] || die "$keyring missing (package debian-archive-keyring)"

# system_codename — the system's Debian suite name, e.g. bookworm.
system_codename() {
    local VERSION_CODENAME=''
    # shellcheck disable=SC1091
    [[ -r /etc/os-release ]] && . /etc/os-release
    echo "$VERSION_CODENAME"
}

# stanza_match — with debian_mirror's variables set from one deb822 stanza: when it
# is an enabled `deb` source of the system's suite, print its first URI.
stanza_match() {
    [[ $enabled == yes && " $types " == *' deb '* && " $suites " == *" $codename "* && -n $uris ]] || return 1
    echo "${uris%% *}"
}

# debian_mirror — the URI of the system's configured Debian archive: the first
# enabled `deb` source carrying the system's own suite, from sources.list
# (one-line format) or sources.list.d/*.sources (deb822) and *.list.
debian_mirror() {
    local codename f line uris suites types enabled word
    codename=$(system_codename)
    [[ -n $codename ]] || return 1
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r $f ]] || continue
        while read -r -a word; do
            [[ ${word[0]:-} == deb ]] || continue
            word=("${word[@]:1}")
            if [[ ${word[0]:-} == '['* ]]; then # skip an [options] block
                while ((${#word[@]})) && [[ ${word[0]} != *']' ]]; do word=("${word[@]:1}"); done
                word=("${word[@]:1}")
            fi
            if ((${#word[@]} >= 2)) && [[ ${word[1]} == "$codename" ]]; then
                echo "${word[0]}"
                return 0
            fi
        done <"$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -r $f ]] || continue
        uris='' suites='' types='' enabled=yes
        while IFS= read -r line || [[ -n $line ]]; do
            if [[ -z ${line//[[:space:]]/} ]]; then # end of a stanza
                stanza_match && return 0
                uris='' suites='' types='' enabled=yes
                continue
            fi
            read -r -a word <<<"${line#*:}"
            case $line in
            URIs:*) uris=${word[*]} ;;
            Suites:*) suites=${word[*]} ;;
            Types:*) types=${word[*]} ;;
            Enabled:*) enabled=${word[*]} ;;
            esac
        done <"$f"
        stanza_match && return 0
    done
    return 1
}


mirror=${CTRD_DEBIAN_MIRROR:-$(debian_mirror)} \
    || die "no Debian mirror found in /etc/apt/sources.list{,.d}; set CTRD_DEBIAN_MIRROR=URI"

work=$(mktemp -d /tmp/ctrd-criu-apt.XXXXXX)
trap 'rm -rf "$work" "$new"' EXIT
multiarch=$(uname -m)-linux-gnu

# unpack SUITE — fetch criu's dependency closure from SUITE and unpack it into $new, with the
# wrapper $new/criu.
unpack() {
    local suite=$1 log=$work/apt.log deb loader='' l
    rm -rf "$work"/{state,cache,etc} "$new"
    mkdir -p "$work"/{state/lists/partial,cache/archives/partial,etc} "$new"
    : >"$work/status"
    echo "deb [signed-by=$keyring] $mirror $suite main" >"$work/etc/sources.list"
    local apt_opts=(
        -o "Dir::Etc::SourceList=$work/etc/sources.list"
        -o Dir::Etc::SourceParts=/dev/null
        -o Dir::Etc::Preferences=/dev/null
        -o Dir::Etc::PreferencesParts=/dev/null
        -o "Dir::State=$work/state"
        -o "Dir::State::status=$work/status"
        -o "Dir::Cache=$work/cache"
        -o APT::Install-Recommends=false
        -o APT::Get::AllowUnauthenticated=false
    )
    if ! { apt-get "${apt_opts[@]}" update -q &&
        apt-get "${apt_opts[@]}" install -y -q --download-only criu; } >"$log" 2>&1; then
        cp "$log" /tmp/ctrd-criu-apt.log
        cat "$log" >&2
        die "apt-get failed fetching criu from $mirror $suite (log: /tmp/ctrd-criu-apt.log)"
    fi
    local debs=("$work"/cache/archives/*.deb)
    [[ -e ${debs[0]} ]] || die "apt-get fetched no packages for criu from $suite"
    for deb in "${debs[@]}"; do
        dpkg -x "$deb" "$new" || die "dpkg -x $deb failed"
    done
    for l in "$new"/usr/lib/"$multiarch"/ld-linux*.so.* "$new"/lib/"$multiarch"/ld-linux*.so.*; do
        if [[ -e $l ]]; then
            loader=${l#"$new/"}
            break
        fi
    done
    [[ -n $loader ]] || die "no dynamic loader in the packages from $suite (looked in usr/lib/$multiarch)"
    [[ -x $new/usr/sbin/criu ]] || die "no usr/sbin/criu in the packages from $suite"
    # Paths relative to the wrapper, so the install can be probed in $new and renamed.
    cat >"$new/criu" <<WRAPPER
#!/bin/sh
# CRIU from Debian $suite, unpacked by ctrd's scripts/install-criu.sh: run it with
# its own loader and libraries, not the system's.
here=\$(dirname "\$(readlink -f "\$0")")
exec "\$here/$loader" --library-path "\$here/usr/lib/$multiarch:\$here/lib/$multiarch" "\$here/usr/sbin/criu" "\$@"
WRAPPER
    chmod 755 "$new/criu"
}

export DEBIAN_FRONTEND=noninteractive
failed=()
for suite in "${try_suites[@]}"; do
    unpack "$suite"
    version=$("$new/criu" --version 2>/dev/null | sed -n 's/^Version: //p')
    if criu_works "$new/criu"; then
        rm -rf "$prefix"
        mv -T "$new" "$prefix"
        rm -f "$probe_log" # an earlier suite's failure, no longer of interest
        echo "install-criu.sh: installed CRIU $version (Debian $suite) under $prefix"
        exit 0
    fi
    failed+=("CRIU ${version:-?} from $suite")
done
if [[ -s $probe_log ]]; then grep -F 'Error (' "$probe_log" >&2 || true; fi
die "no CRIU passed the probe on kernel $(uname -r): tried $(IFS=,; echo "${failed[*]}"); CRIU's log: $probe_log"
