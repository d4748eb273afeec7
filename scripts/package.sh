#!/usr/bin/env bash
set -euo pipefail
# package.sh [--profile PROFILE | --bin-dir DIR] [--out DIR] — build the Debian package
# ctrd_<version>_<arch>.deb and its debug symbols ctrd-dbgsym_<version>_<arch>.deb with dpkg-deb
# (part of dpkg, on every Debian system; nothing is installed), and print their paths, one a
# line, ctrd's first. ctrd holds:
#   /usr/bin/ctrd, /usr/bin/ctr, /usr/bin/ctrd-bench (when that binary has been built),
#                                             stripped as dh_strip does; their debug info
#                                             is in ctrd-dbgsym, /usr/lib/debug/.build-id/
#   /lib/systemd/system/ctrd.service          from supervisor/packaging/ (and its postinst,
#                                             which reloads systemd; nothing is started)
#   /etc/ctrd/config.toml                     `ctrd config default`, a conffile
#   bash, zsh and fish completions            `ctr completion SHELL`
#   /usr/share/man/man1/*.1.gz                scripts/man.sh
# depends on runc, and conflicts with containerd (see the control file below). The generated
# files come from the packaged binaries themselves, so they match them.
#   --profile PROFILE  cargo profile to build and package: release (default) or dev
#   --bin-dir DIR      package the binaries already in DIR and build nothing (the tests do
#                      this: cargo holds its build lock while tests run)
#   --out DIR          where the .deb goes (default debian/ in cargo's target directory:
#                      target/, or CARGO_TARGET_DIR when set); its path is printed
#   --compression TYPE dpkg-deb's -Z: xz (default), gzip, zstd or none (the tests use none:
#                      debug binaries are large and compressing them is most of the time)

die() { echo "package.sh: error: $*" >&2; exit 1; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
profile=release bin_dir='' out='' compression=xz
while (($#)); do
    case $1 in
        --profile) (($# >= 2)) || die "--profile needs a name"; profile=$2; shift 2 ;;
        --bin-dir) (($# >= 2)) || die "--bin-dir needs a directory"; bin_dir=$2; shift 2 ;;
        --out) (($# >= 2)) || die "--out needs a directory"; out=$2; shift 2 ;;
        --compression) (($# >= 2)) || die "--compression needs a type"; compression=$2; shift 2 ;;
        *) die "unknown argument $1 (usage: $0 [--profile PROFILE | --bin-dir DIR] [--out DIR] [--compression TYPE])" ;;
    esac
done
command -v dpkg-deb >/dev/null 2>&1 || die "dpkg-deb not found (it comes with dpkg)"
for tool in objcopy strip readelf; do
    command -v $tool >/dev/null 2>&1 || die "$tool not found (it comes with binutils)"
done

if [[ -z $bin_dir ]]; then
    if ! command -v cargo >/dev/null 2>&1; then
        # shellcheck disable=SC1091
        . "${CARGO_HOME:-${HOME:-/root}/.cargo}/env"
    fi
    (cd "$repo" && cargo build --profile "$profile" --bins)
    target=$("$repo/scripts/target-dir.sh")
    case $profile in
        dev | test) bin_dir="$target/debug" ;;
        *) bin_dir="$target/$profile" ;;
    esac
fi
[[ -n $out ]] || out="$("$repo/scripts/target-dir.sh")/debian"
for bin in ctrd ctr; do
    [[ -x $bin_dir/$bin ]] || die "$bin_dir/$bin is missing; build it first"
done

version=$("$bin_dir/ctrd" --version | awk '{print $2}')
[[ -n $version ]] || die "cannot read the version from $bin_dir/ctrd --version"
arch=$(dpkg --print-architecture)
mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$(mktemp -d "${TMPDIR:-/tmp}/ctrd-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root="$stage/ctrd_${version}_$arch"
dbg_root="$stage/ctrd-dbgsym_${version}_$arch"
build_ids=()

# strip_binary FILE: what dh_strip does to an executable. Its debug info goes, compressed, to
# ctrd-dbgsym as /usr/lib/debug/.build-id/<first 2 hex digits>/<the rest>.debug, where gdb and
# debuginfod clients look it up by the build id the stripped binary keeps; the binary also names
# that file in its .gnu_debuglink (with a checksum, so a mismatched file is never used).
strip_binary() {
    local bin=$1 id debug
    id=$(readelf -n "$bin" | awk '/Build ID:/ { print $3; exit }')
    [[ -n $id ]] || die "$bin has no GNU build id, so its debug symbols could not be found by it"
    debug="$dbg_root/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug"
    install -d -m 0755 "${debug%/*}"
    objcopy --only-keep-debug --compress-debug-sections "$bin" "$debug"
    chmod 0644 "$debug"
    strip --remove-section=.comment --remove-section=.note "$bin"
    objcopy --add-gnu-debuglink="$debug" "$bin"
    build_ids+=("$id")
}

install -d -m 0755 "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/ctrd" \
    "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
    "$root/usr/share/fish/vendor_completions.d" "$root/usr/share/man/man1" \
    "$root/usr/share/doc/ctrd" "$root/DEBIAN"
for bin in ctrd ctr ctrd-bench; do
    if [[ -x $bin_dir/$bin ]]; then
        install -m 0755 "$bin_dir/$bin" "$root/usr/bin/$bin"
        strip_binary "$root/usr/bin/$bin"
    fi
done
install -m 0644 "$repo/supervisor/packaging/ctrd.service" "$root/lib/systemd/system/ctrd.service"
"$bin_dir/ctrd" config default >"$root/etc/ctrd/config.toml"
"$bin_dir/ctr" completion bash >"$root/usr/share/bash-completion/completions/ctr"
"$bin_dir/ctr" completion zsh >"$root/usr/share/zsh/vendor-completions/_ctr"
"$bin_dir/ctr" completion fish >"$root/usr/share/fish/vendor_completions.d/ctr.fish"
"$repo/scripts/man.sh" --bin-dir "$bin_dir" --out "$stage/man" >/dev/null
for page in "$stage"/man/man1/*.1; do
    gzipped="$root/usr/share/man/man1/${page##*/}.gz"
    gzip -9n <"$page" >"$gzipped"
done
install -m 0644 "$repo/LICENSE" "$root/usr/share/doc/ctrd/copyright"
find "$root" -path "$root/DEBIAN" -prune -o -type f ! -path "$root/usr/bin/*" -exec chmod 0644 {} +

install -m 0755 "$repo/supervisor/packaging/postinst" "$root/DEBIAN/postinst"
# dpkg keeps an operator's edits to a conffile across upgrades.
echo /etc/ctrd/config.toml >"$root/DEBIAN/conffiles"
# Conflicts: containerd's packages (Debian's containerd, Docker's containerd.io) install their
# own, different /usr/bin/ctr. Without this, dpkg starts unpacking, stops at that file and leaves
# ctrd half-installed; with it, dpkg and apt refuse before touching anything and say why. Not
# Replaces: that would let dpkg overwrite containerd's ctr (and apt remove containerd, and Docker
# with it) to make room; ctrd does not supersede containerd.
cat >"$root/DEBIAN/control" <<CONTROL
Package: ctrd
Version: $version
Architecture: $arch
Maintainer: ctrd developers <ctrd@localhost>
Depends: runc, libc6
Conflicts: containerd, containerd.io
Section: admin
Priority: optional
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Description: container supervisor daemon driving runc, and its CLI ctr
 ctrd starts and supervises OCI containers through runc: one supervisor owns
 every container and reports each exit exactly once. It runs as the systemd
 service ctrd.service, configured in /etc/ctrd/config.toml. ctr is its command
 line, with bash, zsh and fish completions.
CONTROL

install -d -m 0755 "$dbg_root/DEBIAN"
cat >"$dbg_root/DEBIAN/control" <<CONTROL
Package: ctrd-dbgsym
Source: ctrd
Version: $version
Architecture: $arch
Maintainer: ctrd developers <ctrd@localhost>
Depends: ctrd (= $version)
Section: debug
Priority: optional
Auto-Built-Package: debug-symbols
Build-Ids: ${build_ids[*]}
Installed-Size: $(du -sk --exclude=DEBIAN "$dbg_root" | cut -f1)
Description: debug symbols for ctrd
 The debug info of ctrd, ctr and ctrd-bench, split off the binaries of the ctrd package when it
 was built; gdb finds it by build id.
CONTROL

deb="$out/ctrd_${version}_$arch.deb"
dbgsym="$out/ctrd-dbgsym_${version}_$arch.deb"
dpkg-deb --root-owner-group "-Z$compression" --build "$root" "$deb" >/dev/null
dpkg-deb --root-owner-group "-Z$compression" --build "$dbg_root" "$dbgsym" >/dev/null
echo "$deb"
echo "$dbgsym"
