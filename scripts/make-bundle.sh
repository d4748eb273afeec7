#!/usr/bin/env bash
set -euo pipefail
# make-bundle.sh DIR CMD [ARGS...] — create an OCI bundle at DIR for runc:
#   DIR/rootfs       busybox-static rootfs: bin/busybox + one symlink per applet
#                    (`busybox --list`), dirs proc sys dev tmp etc root, and a
#                    minimal etc/passwd + etc/group with root. Replaced if present.
#   DIR/config.json  `runc spec` output, edited so process.terminal is false and
#                    process.args is exactly [CMD, ARGS...] (JSON-escaped).
# root.readonly stays true (runc's default) so many containers can share DIR.
# The finished rootfs is cached (default ~/.cache/ctrd-make-bundle, override
# with CTRD_BUNDLE_CACHE) so repeat calls take ~0.03 s instead of ~0.3 s.
# Installs nothing; needs runc and /bin/busybox from busybox-static (see
# scripts/setup.sh). Pure bash JSON handling: no python3 or jq required.

die() { echo "make-bundle.sh: error: $*" >&2; exit 1; }

(($# >= 2)) || die "usage: $0 DIR CMD [ARGS...]"
dir=$1
shift

busybox=/bin/busybox
[[ -x $busybox ]] || die "$busybox not found; install busybox-static (scripts/setup.sh)"
command -v runc >/dev/null 2>&1 || die "runc not found on PATH"

# json_str S — set $json to S as a JSON string literal (with quotes).
json_str() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\t'/\\t}
    s=${s//$'\r'/\\r}
    s=${s//$'\b'/\\b}
    s=${s//$'\f'/\\f}
    # Remaining control characters (rare): escape byte by byte as \u00XX.
    if [[ $s == *[$'\x01'-$'\x1f']* ]]; then
        local LC_ALL=C out='' c i
        for ((i = 0; i < ${#s}; i++)); do
            c=${s:i:1}
            if [[ $c == [$'\x01'-$'\x1f'] ]]; then
                printf -v c '\\u%04x' "'$c"
            fi
            out+=$c
        done
        s=$out
    fi
    json="\"$s\""
}

args_json=''
for a in "$@"; do
    json_str "$a"
    args_json+="${args_json:+, }$json"
done

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# Serialize concurrent calls on the same DIR (lock on the directory itself).
exec 9<"$dir"
flock 9

# --- rootfs ----------------------------------------------------------------
# Creating ~270 applet symlinks costs ~0.3 s (one `ln` each; symlinkat alone
# is ~0.5 ms on this ext4), so a finished rootfs is cached per busybox binary
# (keyed on its device/inode/size/mtime) and each bundle gets a hard-linked
# copy of it (`cp -al`, ~15 ms). Override the cache location with
# CTRD_BUNDLE_CACHE.
layout=1 # bump when the rootfs layout below changes
build_rootfs() { # build_rootfs DEST (DEST must not exist)
    local d=$1 applet
    mkdir -p "$d"/{bin,proc,sys,dev,tmp,etc,root}
    chmod 1777 "$d/tmp"
    chmod 700 "$d/root"
    cp "$busybox" "$d/bin/busybox"
    for applet in $("$busybox" --list); do
        [[ $applet == busybox || $applet == */* ]] || ln -s busybox "$d/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$d/etc/passwd"
    printf 'root:x:0:\n' >"$d/etc/group"
}

new="$dir/.rootfs.new.$$"
cache_tmp=''
spec="$dir/.spec.$$"
tmp="$dir/.config.json.$$"
trap 'rm -rf "$new" "$spec" "$tmp" ${cache_tmp:+"$cache_tmp"}' EXIT
rm -rf "$new"
cache_dir=${CTRD_BUNDLE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/ctrd-make-bundle}
cache="$cache_dir/rootfs-v$layout-$(stat -L -c '%d-%i-%s-%Y' "$busybox")"
if [[ ! -d $cache ]] && mkdir -p "$cache_dir" 2>/dev/null; then
    cache_tmp="$cache.tmp.$$"
    rm -rf "$cache_tmp"
    build_rootfs "$cache_tmp"
    # Atomic publish; if a concurrent run won the race, keep theirs.
    mv -T "$cache_tmp" "$cache" 2>/dev/null || rm -rf "$cache_tmp"
    cache_tmp=''
fi
if [[ -d $cache ]] && cp -al "$cache" "$new" 2>/dev/null; then
    # Hard links: the applet symlinks are shared with the cache (symlinks are
    # immutable, so that's safe); busybox itself gets a private copy.
    cp --remove-destination "$busybox" "$new/bin/busybox"
elif [[ -d $cache ]]; then
    rm -rf "$new" # cp -al failed: other filesystem (EXDEV) or link limit
    cp -a "$cache" "$new"
else
    build_rootfs "$new" # cache unusable (e.g. read-only HOME): build directly
fi
rm -rf "$dir/rootfs"
mv -T "$new" "$dir/rootfs"

# --- config.json: runc's default spec, edited, then atomically replaced -----
rm -rf "$spec" "$tmp"
mkdir "$spec"
runc spec --bundle "$spec" || die "runc spec failed"
done_args=0 done_term=0 skipping=0
{
    while IFS= read -r line || [[ -n $line ]]; do
        trimmed=${line#"${line%%[![:space:]]*}"}
        if ((skipping)); then
            # Drop the old args elements up to and including the closing "]".
            if [[ $trimmed == ']'* ]]; then
                skipping=0
                printf '%s"args": [%s]%s\n' "$indent" "$args_json" "${trimmed#]}"
            fi
            continue
        fi
        if ((!done_args)) && [[ $trimmed == '"args": ['* ]]; then
            indent=${line%%\"*}
            done_args=1
            rest=${trimmed#'"args": ['}
            if [[ $rest == *']'* ]]; then # one-line form: "args": ["sh"],
                printf '%s"args": [%s]%s\n' "$indent" "$args_json" "${rest##*]}"
            else
                skipping=1
            fi
            continue
        fi
        if ((!done_term)) && [[ $trimmed == '"terminal": true'* ]]; then
            line=${line/'"terminal": true'/'"terminal": false'}
            done_term=1
        fi
        printf '%s\n' "$line"
    done <"$spec/config.json"
} >"$tmp"
((done_args && done_term && !skipping)) || {
    die "unexpected 'runc spec' output format (args=$done_args terminal=$done_term); cannot edit config.json"
}
mv "$tmp" "$dir/config.json"
