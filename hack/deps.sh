#!/usr/bin/env bash
# Installs what the integration tests and the demo need, idempotently, on Debian 12 (as root):
#   1. apt packages: a second OCI runtime, criu, a busybox for the test images, Debian's containerd 1.6
#      (the old daemon we test against), the CNI plugins of the CRI pod-network test (and iproute2,
#      which removes their bridge) and what cgo needs to build runc;
#   2. pinned builds, from the Go module proxy, into $DEPS_BIN (default _output/deps/bin):
#      containerd, ctr and containerd-shim-runc-v2 at $CONTAINERD_VERSION, runc at $RUNC_VERSION,
#      golangci-lint at $GOLANGCI_LINT_VERSION (what `make lint` runs).
# A binary is rebuilt only when it is missing or `go version -m` says it was built from another
# module version or with other build tags (golangci-lint also when another Go built it). Nothing is
# installed outside $DEPS_BIN except the apt packages.
#
# Environment:
#   CONTAINERD_VERSION, RUNC_VERSION, GOLANGCI_LINT_VERSION
#                                     pinned versions (the Makefile passes them)
#   DEPS_BIN                          output directory
#   DEPS_APT=always|never|auto        run apt-get (auto: only when a package is missing)
#   GO                                go command (default: go)
set -euo pipefail

: "${CONTAINERD_VERSION:?set CONTAINERD_VERSION (e.g. v2.4.2)}"
: "${RUNC_VERSION:?set RUNC_VERSION (e.g. v1.5.2)}"
: "${GOLANGCI_LINT_VERSION:?set GOLANGCI_LINT_VERSION (e.g. v2.15.0)}"
repo=$(cd "$(dirname "$0")/.." && pwd)
DEPS_BIN=${DEPS_BIN:-$repo/_output/deps/bin}
DEPS_APT=${DEPS_APT:-auto}
GO=${GO:-go}

# busybox-static: test image rootfs; containerd: Debian's 1.6 daemon, ctr and runc-v2 shim;
# crun: a second runtime for BinaryName; criu: checkpoint/restore; the rest builds runc with cgo + seccomp.
# qemu-user-static: pod tests run the arm64 holder under qemu-aarch64.
# gcc-aarch64-linux-gnu, linux-libc-dev-arm64-cross: `make verify-holder` builds the arm64 holder (pod/holder).
# erofs-utils: mkfs.erofs, for the erofs layer images of the mount-transform tests (rootfs/, TestMountTransforms)
# and containerd's erofs snapshotter in the pause-less table (mkfs.ext4 is e2fsprogs', always installed).
APT_PACKAGES=(busybox-static containerd containernetworking-plugins iproute2 criu crun libseccomp-dev pkg-config gcc libc6-dev ca-certificates qemu-user-static gcc-aarch64-linux-gnu linux-libc-dev-arm64-cross erofs-utils)

CONTAINERD_MOD=github.com/containerd/containerd/v2
CONTAINERD_TAGS=no_btrfs
RUNC_MOD=github.com/opencontainers/runc
RUNC_TAGS=seccomp
GOLANGCI_LINT_MOD=github.com/golangci/golangci-lint/v2

# shellcheck source=hack/apt.sh
. "$repo/hack/apt.sh"

log() { printf '[deps] %s\n' "$*"; }
die() { printf '[deps] error: %s\n' "$*" >&2; exit 1; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root for: $*"
	fi
}

# as_root_apt ARGS...: apt_get (hack/apt.sh: waits for the dpkg lock) as root.
as_root_apt() {
	if [ "$(id -u)" -eq 0 ]; then
		apt_get "$@"
	else
		as_root bash -c '. "$0"; shift; apt_get "$@"' "$repo/hack/apt.sh" - "$@"
	fi
}

missing_packages() {
	local p
	for p in "${APT_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
	done
}

install_packages() {
	command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script targets Debian 12"
	local missing
	missing=$(missing_packages | tr '\n' ' ')
	if [ "$DEPS_APT" = never ] || { [ "$DEPS_APT" = auto ] && [ -z "${missing// /}" ]; }; then
		log "apt packages present: ${APT_PACKAGES[*]}"
		return
	fi
	log "installing apt packages: ${missing:-${APT_PACKAGES[*]}}"
	as_root_apt update -q
	as_root_apt install -y -q --no-install-recommends "${APT_PACKAGES[@]}"
	# Debian's containerd package starts a system daemon where systemd runs; the tests never use it
	# (they start private daemons), so it is left as the package set it up.
}

# built_as BIN MODULE VERSION TAGS: true when BIN exists and was built from MODULE@VERSION with -tags=TAGS
# (an empty TAGS: without -tags, as `go version -m` then lists none).
built_as() {
	local bin=$1 mod=$2 version=$3 tags=$4 info
	[ -x "$bin" ] || return 1
	info=$("$GO" version -m "$bin" 2>/dev/null) || return 1
	grep -qP "^\tmod\t\Q$mod\E\t\Q$version\E(\t|$)" <<<"$info" || return 1
	if [ -z "$tags" ]; then
		! grep -qP "^\tbuild\t-tags=" <<<"$info"
	else
		grep -qP "^\tbuild\t-tags=\Q$tags\E$" <<<"$info"
	fi
}

# go_install MODULE VERSION TAGS CGO CMD...: builds MODULE/CMD@VERSION into $DEPS_BIN unless already there,
# then checks every CMD is there as pinned.
go_install() {
	local mod=$1 version=$2 tags=$3 cgo=$4 cmd pkg todo=()
	shift 4
	for cmd in "$@"; do
		pkg=$mod${cmd:+/$cmd}
		if built_as "$DEPS_BIN/$(basename "$pkg")" "$mod" "$version" "$tags"; then
			log "$(basename "$pkg"): $mod@$version (-tags ${tags:-none}) already built"
		else
			todo+=("$pkg@$version")
		fi
	done
	if [ ${#todo[@]} -gt 0 ]; then
		log "building ${todo[*]} (-tags ${tags:-none}, CGO_ENABLED=$cgo) into $DEPS_BIN"
		GOBIN=$DEPS_BIN CGO_ENABLED=$cgo GOFLAGS= "$GO" install -tags "$tags" "${todo[@]}"
	fi
	for cmd in "$@"; do
		pkg=$mod${cmd:+/$cmd}
		built_as "$DEPS_BIN/$(basename "$pkg")" "$mod" "$version" "$tags" ||
			die "$DEPS_BIN/$(basename "$pkg") is not $mod@$version with -tags ${tags:-none}"
	done
}

# install_golangci_lint: golangci-lint at $GOLANGCI_LINT_VERSION, built by this $GO. It type-checks our
# code with the go/types and standard library it was compiled with, so a binary an older Go built
# refuses (or misreads) code of a newer language version: rebuild it when $GO changes, too.
install_golangci_lint() {
	local bin=$DEPS_BIN/golangci-lint want built
	want=$("$GO" env GOVERSION)
	built=$("$GO" version "$bin" 2>/dev/null | awk '{print $NF}') || true
	if [ -n "$built" ] && [ "$built" != "$want" ]; then
		log "golangci-lint: built by $built, not $want: rebuilding"
		rm -f "$bin"
	fi
	go_install "$GOLANGCI_LINT_MOD" "$GOLANGCI_LINT_VERSION" "" 0 cmd/golangci-lint
}

main() {
	install_packages
	command -v "$GO" >/dev/null 2>&1 || die "go not found (containerd $CONTAINERD_VERSION needs a recent Go, e.g. /usr/local/go/bin)"
	mkdir -p "$DEPS_BIN"
	go_install "$CONTAINERD_MOD" "$CONTAINERD_VERSION" "$CONTAINERD_TAGS" 1 cmd/containerd cmd/ctr
	# The reference shim is built static, as containerd's own Makefile does (SHIM_CGO_ENABLED=0).
	go_install "$CONTAINERD_MOD" "$CONTAINERD_VERSION" "$CONTAINERD_TAGS" 0 cmd/containerd-shim-runc-v2
	go_install "$RUNC_MOD" "$RUNC_VERSION" "$RUNC_TAGS" 1 ""
	install_golangci_lint
	log "ready: $("$DEPS_BIN/containerd" --version | head -1); $("$DEPS_BIN/runc" --version | head -1); golangci-lint $("$DEPS_BIN/golangci-lint" version --short)"
	log "Debian daemon: $(/usr/bin/containerd --version 2>/dev/null | head -1 || echo 'missing /usr/bin/containerd')"
}

main "$@"
