#!/usr/bin/env bash
set -euo pipefail
# install-criu.sh [PREFIX] — make a working CRIU available for checkpoint/restore.
# Called by scripts/setup.sh (as root). Does nothing when the system's `criu check`
# passes, or when PREFIX (default /opt/ctrd-criu) already holds a working install.
#
# Why: Debian bookworm's CRIU 3.17 fails on this kernel ("vdso: Unexpected rt vDSO
# area bounds"); CRIU 4.1 from Debian trixie works. Installing trixie packages into
# the system would mix suites, so instead:
#   - a private apt setup (sources list naming the system's own Debian mirror with
#     suite trixie, empty dpkg status file, private state and cache directories) is
#     passed to apt-get with -o options; the system's apt sources and dpkg database
#     are never touched;
#   - `apt-get install --download-only criu` fetches criu's whole dependency closure
#     (about 35 MB, glibc included) and `dpkg -x` unpacks each .deb into PREFIX;
#   - PREFIX/criu is a wrapper that runs PREFIX's own dynamic loader with
#     --library-path PREFIX's library directories, so the trixie criu never sees
#     the system's older libraries. ctrd uses PREFIX/criu by default when present.
# The install is built in PREFIX.new and renamed into place, so an interrupted run
# leaves no half-made PREFIX. Prints one line when it installs; silent otherwise.
# The mirror can be forced with CTRD_DEBIAN_MIRROR=URI.

die() { echo "install-criu.sh: error: $*" >&2; exit 1; }

prefix=${1:-/opt/ctrd-criu}
wrapper=$prefix/criu
suite=trixie
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

# criu_ok CRIU — true when `CRIU check` passes ("Looks good.").
criu_ok() { "$1" check >/dev/null 2>&1; }

if command -v criu >/dev/null 2>&1 && criu_ok criu; then
    exit 0
fi
if [[ -x $wrapper ]] && criu_ok "$wrapper"; then
    exit 0
fi

[[ $(id -u) -eq 0 ]] || die "must run as root to install under $prefix"
# Concurrent runs (parallel CI jobs) install once: the others wait, then find it done.
mkdir -p "$(dirname "$prefix")"
exec 9>"$prefix.lock"
flock 9
if [[ -x $wrapper ]] && criu_ok "$wrapper"; then
    exit 0
fi
command -v apt-get >/dev/null 2>&1 || die "apt-get is not available; install CRIU >= 4 by hand"
command -v dpkg >/dev/null 2>&1 || die "dpkg is not available; install CRIU >= 4 by hand"
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
new=$prefix.new
trap 'rm -rf "$work" "$new"' EXIT
mkdir -p "$work"/{state/lists/partial,cache/archives/partial,etc}
: >"$work/status"
echo "deb [signed-by=$keyring] $mirror $suite main" >"$work/etc/sources.list"
apt_opts=(
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
log=$work/apt.log
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get "${apt_opts[@]}" update -q &&
    apt-get "${apt_opts[@]}" install -y -q --download-only criu; } >"$log" 2>&1; then
    cp "$log" /tmp/ctrd-criu-apt.log
    cat "$log" >&2
    die "apt-get failed fetching criu from $mirror $suite (log: /tmp/ctrd-criu-apt.log)"
fi

rm -rf "$new"
mkdir -p "$new"
debs=("$work"/cache/archives/*.deb)
[[ -e ${debs[0]} ]] || die "apt-get fetched no packages for criu"
for deb in "${debs[@]}"; do
    dpkg -x "$deb" "$new" || die "dpkg -x $deb failed"
done

multiarch=$(uname -m)-linux-gnu
loaders=("$new"/usr/lib/"$multiarch"/ld-linux*.so.* "$new"/lib/"$multiarch"/ld-linux*.so.*)
loader=''
for l in "${loaders[@]}"; do
    if [[ -e $l ]]; then
        loader=$l
        break
    fi
done
[[ -n $loader ]] || die "no dynamic loader in the unpacked packages (looked in usr/lib/$multiarch)"
[[ -x $new/usr/sbin/criu ]] || die "no usr/sbin/criu in the unpacked packages"
loader=$prefix/${loader#"$new/"}
cat >"$new/criu" <<EOF
#!/bin/sh
# CRIU $suite from Debian, unpacked by ctrd's scripts/install-criu.sh: run it with
# its own loader and libraries, not the system's.
exec $loader --library-path $prefix/usr/lib/$multiarch:$prefix/lib/$multiarch $prefix/usr/sbin/criu "\$@"
EOF
chmod 755 "$new/criu"

rm -rf "$prefix"
mv -T "$new" "$prefix"
if ! out=$("$wrapper" check 2>&1); then
    echo "$out" >&2
    die "$wrapper check failed after install"
fi
echo "install-criu.sh: installed CRIU $("$wrapper" --version | sed -n 's/^Version: //p') under $prefix"
