#!/usr/bin/env bash
# Builds a criu that can checkpoint on this machine's kernel into $DEPS_BIN/criu (default
# _output/deps/bin/criu), for the live checkpoint/restore tests (`make checkpoint-test`).
#
# Why: Debian 12's criu 3.17 fails `criu check` on the 6.x kernels of these machines (it cannot
# read their vDSO), so it cannot dump anything. criu is not a Go module; the source comes from
# Debian's archive (the only source host these machines reach besides the Go module proxy): the
# upstream tarball that Debian ships as criu_$CRIU_VERSION.orig.tar.xz, fetched from the pool of
# the Debian mirror apt is configured with (hack/apt.sh: debian_mirror) and checked against a
# pinned SHA-256, built with Debian 12's compiler and libraries (build dependencies from apt).
# Debian keeps a version in its pool only while a suite carries it: when the pinned one is gone,
# pin a newer one (`Sources` of sid or trixie lists the orig tarball and its SHA-256).
#
# Environment:
#   CRIU_VERSION, CRIU_SHA256   the pinned upstream release and its tarball's SHA-256
#   DEPS_BIN                    output directory
#   DEPS_APT=always|never|auto  run apt-get for the build dependencies (auto: when one is missing)
#   CRIU_POOL                   where the tarball is (default: <apt's Debian mirror>/pool/main/c/criu)
set -euo pipefail

: "${CRIU_VERSION:?set CRIU_VERSION (e.g. 4.1.1)}"
: "${CRIU_SHA256:?set CRIU_SHA256}"
repo=$(cd "$(dirname "$0")/.." && pwd)
DEPS_BIN=${DEPS_BIN:-$repo/_output/deps/bin}
DEPS_APT=${DEPS_APT:-auto}
# shellcheck source=hack/apt.sh
. "$repo/hack/apt.sh"

BUILD_PACKAGES=(gcc make pkg-config curl xz-utils libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
	python3-protobuf libnl-3-dev libnet1-dev libcap-dev libbsd-dev libgnutls28-dev uuid-dev)

log() { printf '[criu] %s\n' "$*"; }
die() { printf '[criu] error: %s\n' "$*" >&2; exit 1; }

out=$DEPS_BIN/criu
if [ -x "$out" ] && "$out" --version 2>/dev/null | grep -qx "Version: $CRIU_VERSION"; then
	log "$out is criu $CRIU_VERSION"
else
	missing=()
	for p in "${BUILD_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
	done
	if [ "$DEPS_APT" = always ] || { [ "$DEPS_APT" = auto ] && [ ${#missing[@]} -gt 0 ]; }; then
		apt_get install -y -q "${BUILD_PACKAGES[@]}" >/dev/null
	fi
	if [ -z "${CRIU_POOL:-}" ]; then
		mirror=$(debian_mirror) || die "no Debian mirror in apt's sources (set CRIU_POOL)"
		CRIU_POOL=${mirror%/}/pool/main/c/criu
	fi
	POOL=$CRIU_POOL
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	tarball=criu_$CRIU_VERSION.orig.tar.xz
	log "download $POOL/$tarball"
	curl -fsSL -o "$work/$tarball" "$POOL/$tarball" ||
		die "cannot download $POOL/$tarball (Debian no longer carries it? pin a newer CRIU_VERSION)"
	echo "$CRIU_SHA256  $work/$tarball" | sha256sum -c --quiet - || die "$tarball: SHA-256 mismatch"
	tar -C "$work" -xJf "$work/$tarball"
	log "build criu $CRIU_VERSION ($(nproc) jobs)"
	make -C "$work/criu-$CRIU_VERSION" -j"$(nproc)" criu >"$work/build.log" 2>&1 ||
		{ tail -30 "$work/build.log" >&2; die "criu build failed"; }
	mkdir -p "$DEPS_BIN"
	install -m 0755 "$work/criu-$CRIU_VERSION/criu/criu" "$out"
	log "installed $out"
fi
if check=$("$out" check 2>&1); then
	log "criu check: ok"
else
	die "criu check fails on this kernel: $check"
fi
