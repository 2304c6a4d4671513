#!/usr/bin/env bash
# Gets the kernel of the cgroup v2 lane (`make test-cgroup2`): Debian's user-mode-linux package
# (linux.uml, a kernel that runs as an ordinary process, and its modules), fetched with
# `apt-get download` and unpacked with `dpkg-deb -x` into $UML_DIR. Nothing is installed and no
# host cgroup is touched. Then builds $UML_DIR/uml-xstate.so from hack/cgroup2/uml-xstate.c
# (gcc): the LD_PRELOAD that run.sh starts the kernel with, without which this UML 6.1 cannot run
# a guest process on a host with a large XSAVE area (AVX-512 and AMX, as here; see the .c file).
# Idempotent: downloads nothing when $UML_DIR holds the kernel, rebuilds the library only when
# its source is newer.
#
# Environment:
#   UML_DIR   where the package is unpacked (default _output/cgroup2/uml): the kernel is
#             $UML_DIR/usr/bin/linux.uml, its modules $UML_DIR/usr/lib/uml/modules/<release>
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
UML_DIR=${UML_DIR:-$repo/_output/cgroup2/uml}
PACKAGE=user-mode-linux
# apt waits this long for another apt or dpkg (unattended upgrades at boot) to let go of its lock.
LOCK_TIMEOUT=${APT_LOCK_TIMEOUT:-600}

log() { printf '[cgroup2-kernel] %s\n' "$*"; }
die() { printf '[cgroup2-kernel] error: %s\n' "$*" >&2; exit 1; }

# build_preload: the LD_PRELOAD for the host's XSAVE size, rebuilt when its source changes.
build_preload() {
	local src=$repo/hack/cgroup2/uml-xstate.c so=$UML_DIR/uml-xstate.so
	if [ -f "$so" ] && [ "$so" -nt "$src" ]; then
		return
	fi
	command -v gcc >/dev/null 2>&1 || die "gcc not found (make deps installs it)"
	log "building $so"
	gcc -O2 -Wall -Wextra -Werror -shared -fPIC -o "$so.tmp" "$src" -ldl
	mv "$so.tmp" "$so"
}

if [ -x "$UML_DIR/usr/bin/linux.uml" ]; then
	log "have $(cat "$UML_DIR/VERSION" 2>/dev/null || echo "$PACKAGE") in $UML_DIR"
	build_preload
	exit 0
fi
command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script targets Debian 12"

mkdir -p "$(dirname "$UML_DIR")"
work=$(mktemp -d "$UML_DIR.download.XXXXXX")
trap 'rm -rf "$work"' EXIT
# apt's downloader drops to the _apt user: let it write here (otherwise it warns and downloads as root).
if id _apt >/dev/null 2>&1; then chown _apt "$work"; fi

apt_get() {
	log "apt-get $* (waits up to ${LOCK_TIMEOUT}s for the dpkg/apt lock if another apt holds it)"
	(cd "$work" && apt-get -o DPkg::Lock::Timeout="$LOCK_TIMEOUT" "$@")
}

if ! apt_get download "$PACKAGE"; then
	log "$PACKAGE not in apt's package lists: updating them once"
	apt_get update -q
	apt_get download "$PACKAGE"
fi
deb=$(find "$work" -maxdepth 1 -name "${PACKAGE}_*.deb" | head -1)
[ -n "$deb" ] || die "apt-get download left no ${PACKAGE}_*.deb in $work"
rm -rf "$UML_DIR.new"
dpkg-deb -x "$deb" "$UML_DIR.new"
[ -x "$UML_DIR.new/usr/bin/linux.uml" ] || die "$deb holds no usr/bin/linux.uml"
printf '%s %s\n' "$PACKAGE" "$(dpkg-deb -f "$deb" Version)" >"$UML_DIR.new/VERSION"
rm -rf "$UML_DIR"
mv "$UML_DIR.new" "$UML_DIR"
log "unpacked $(cat "$UML_DIR/VERSION") into $UML_DIR"
build_preload
