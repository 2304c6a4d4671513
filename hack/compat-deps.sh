#!/usr/bin/env bash
# Builds the containerd releases of the compatibility matrix (`make compat`), idempotently.
#
# Each line but two is pinned by a small module of its own, hack/compat/containerd-<line>/go.mod,
# which requires that release and names its containerd, ctr and containerd-shim-runc-v2 as tools:
# `go install pkg@version` refuses the 1.7 and 2.0/2.1 lines (their go.mod has exclude directives),
# and a module of our own also pins every dependency in its go.sum. The two other lines cost no
# build: 1.6 is Debian's package (/usr/bin, installed by `make deps`), 2.4 is the pinned build of
# `make deps` ($DEPS_BIN).
#
# Output: $COMPAT_OUT/<line>/bin/{containerd,ctr,containerd-shim-runc-v2}. A binary is rebuilt only
# when it is missing or `go version -m` says it was built from another containerd version or with
# other build tags.
#
# Environment:
#   COMPAT_VERSIONS  lines to prepare, e.g. "1.6 2.2 2.4" (default: every line)
#   COMPAT_OUT       output root (default _output/compat)
#   DEPS_BIN         where `make deps` put containerd 2.4 (default _output/deps/bin)
#   GO               go command (default: go)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
COMPAT_VERSIONS=${COMPAT_VERSIONS:-1.6 1.7 2.0 2.1 2.2 2.3 2.4}
COMPAT_OUT=${COMPAT_OUT:-$repo/_output/compat}
DEPS_BIN=${DEPS_BIN:-$repo/_output/deps/bin}
GO=${GO:-go}
TAGS=no_btrfs

log() { printf '[compat-deps] %s\n' "$*"; }
die() { printf '[compat-deps] error: %s\n' "$*" >&2; exit 1; }

# pinned LINE: prints "MODULE VERSION" required by hack/compat/containerd-LINE/go.mod.
pinned() {
	local gomod=$repo/hack/compat/containerd-$1/go.mod
	[ -f "$gomod" ] || die "no module pins containerd $1 ($gomod missing)"
	awk '$1 ~ /^github\.com\/containerd\/containerd(\/v2)?$/ && $2 ~ /^v[0-9]/ { print $1, $2; exit }' "$gomod"
}

# built_as BIN MODULE VERSION: true when BIN was built from MODULE@VERSION (its `mod` or a `dep` line) and -tags=$TAGS.
built_as() {
	local bin=$1 mod=$2 version=$3 info
	[ -x "$bin" ] || return 1
	info=$("$GO" version -m "$bin" 2>/dev/null) || return 1
	grep -qP "^\t(mod|dep)\t\Q$mod\E\t\Q$version\E(\t|$)" <<<"$info" || return 1
	grep -qP "^\tbuild\t-tags=\Q$TAGS\E$" <<<"$info"
}

# build LINE: builds containerd, ctr (cgo, as deps.sh does) and the reference shim (static, as
# containerd's Makefile does) of LINE into $COMPAT_OUT/LINE/bin.
build() {
	local line=$1 mod version bin cmd cgo todo
	read -r mod version < <(pinned "$line")
	[ -n "${version:-}" ] || die "cannot read the pinned containerd version of line $line"
	bin=$COMPAT_OUT/$line/bin
	mkdir -p "$bin"
	for cmd in containerd ctr containerd-shim-runc-v2; do
		if built_as "$bin/$cmd" "$mod" "$version"; then
			log "$line: $cmd ($mod@$version) already built"
			continue
		fi
		cgo=1
		[ "$cmd" = containerd-shim-runc-v2 ] && cgo=0
		log "$line: building $cmd from $mod@$version (CGO_ENABLED=$cgo) into $bin"
		(cd "$repo/hack/compat/containerd-$line" &&
			GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=$cgo "$GO" build -trimpath -tags "$TAGS" \
				-ldflags "-X $mod/version.Version=$version -X $mod/version.Revision=compat" \
				-o "$bin/$cmd" "$mod/cmd/$cmd")
		built_as "$bin/$cmd" "$mod" "$version" || die "$bin/$cmd is not $mod@$version with -tags $TAGS"
	done
	log "$line ready: $("$bin/containerd" --version)"
}

check() {
	local dir=$1 what=$2 cmd
	for cmd in containerd ctr containerd-shim-runc-v2; do
		[ -x "$dir/$cmd" ] || die "$dir/$cmd missing ($what): run 'make deps'"
	done
	log "$what: $("$dir/containerd" --version)"
}

main() {
	local line
	command -v "$GO" >/dev/null 2>&1 || die "go not found (e.g. export PATH=\$PATH:/usr/local/go/bin)"
	for line in $COMPAT_VERSIONS; do
		case $line in
		1.6) check /usr/bin "1.6 (Debian's containerd package)" ;;
		2.4) check "$DEPS_BIN" "2.4 (the pinned build of make deps)" ;;
		*) build "$line" ;;
		esac
	done
}

main "$@"
