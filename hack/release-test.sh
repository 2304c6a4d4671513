#!/usr/bin/env bash
# `make release-test`: the release is reproducible and usable.
#  1. Exports the commit HEAD twice (git archive) into two directories, runs hack/release.sh in
#     each, and compares the tarballs and SHA256SUMS byte for byte (so the output depends
#     neither on the checkout's path nor on uncommitted files). RELEASE_TEST_FRESH_CACHE=1 gives
#     the second build an empty Go build cache (slower: everything is compiled again).
#  2. Checks the amd64 tarball: its file list, owners and mtimes, that both binaries are static,
#     the shim's -v (version, revision, Go, the containerd library of go.mod) and the
#     installer's version; and that the arm64 tarball holds arm64 binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
PLATFORMS=${PLATFORMS:-linux/amd64 linux/arm64}
VERSION=$($GO run ./hack/version -committed)
REVISION=$(git rev-parse HEAD)
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
export VERSION REVISION SOURCE_DATE_EPOCH PLATFORMS GO
work=$(mktemp -d /tmp/release-test-XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "release-test: FAIL: $*" >&2; exit 1; }

for n in 1 2; do
	mkdir -p "$work/src$n"
	git archive HEAD | tar -x -C "$work/src$n"
	if [ "$n" = 2 ] && [ "${RELEASE_TEST_FRESH_CACHE:-}" = 1 ]; then
		export GOCACHE=$work/gocache
	fi
	start=$(date +%s)
	SRC=$work/src$n OUT=$work/out$n hack/release.sh
	echo "release-test: build $n took $(( $(date +%s) - start ))s"
done

for f in "$work"/out1/*; do
	b=$(basename "$f")
	cmp "$f" "$work/out2/$b" || fail "$b differs between two builds of $REVISION"
done
[ "$(ls "$work/out1")" = "$(ls "$work/out2")" ] || fail "the two builds made different files"
(cd "$work/out1" && sha256sum --quiet -c SHA256SUMS) || fail "SHA256SUMS does not match the tarballs"
echo "release-test: two builds of $REVISION are byte-identical: $(ls "$work/out1" | tr '\n' ' ')"

name=containerd-shim-custom-v1-$VERSION-linux-amd64
tarball=$work/out1/$name.tar.gz
[ -f "$tarball" ] || fail "no $name.tar.gz"
want="$name/
$name/BUILDINFO
$name/LICENSE
$name/README.md
$name/bin/
$name/bin/containerd-shim-custom-v1
$name/bin/custom-shim-install
$name/deploy/
$(cd deploy && ls | sed "s|^|$name/deploy/|")
$name/docs/
$(cd docs && ls ./*.md | sed "s|^\./|$name/docs/|")"
have=$(tar -tzf "$tarball")
[ "$have" = "$want" ] || fail "tarball content:
$have
want:
$want"
# Owner 0/0 and the commit's time on every entry.
mtime=$(date -u -d "@$SOURCE_DATE_EPOCH" '+%Y-%m-%d %H:%M')
bad=$(tar --numeric-owner --utc -tvzf "$tarball" | awk -v m="$mtime" '$2 != "0/0" || ($4 " " $5) != m')
[ -z "$bad" ] || fail "entries with another owner or mtime than 0/0 and $mtime:
$bad"

tar -xzf "$tarball" -C "$work"
for b in containerd-shim-custom-v1 custom-shim-install; do
	ldd "$work/$name/bin/$b" >/dev/null 2>&1 && fail "$b is dynamically linked"
	grep -q "build	CGO_ENABLED=0" "$work/$name/BUILDINFO" || fail "BUILDINFO does not say CGO_ENABLED=0"
done
v=$("$work/$name/bin/containerd-shim-custom-v1" -v)
echo "$v"
ctrd=$($GO list -m -f '{{.Version}}' github.com/containerd/containerd/v2)
for line in "Version:  $VERSION" "Revision: $REVISION" "Go version: $($GO env GOVERSION)" \
	"containerd: github.com/containerd/containerd/v2 $ctrd"; do
	grep -qF "$line" <<<"$v" || fail "-v lacks \"$line\""
done
iv=$("$work/$name/bin/custom-shim-install" version)
grep -qF "$VERSION" <<<"$iv" || fail "installer version: $iv"

if grep -q arm64 <<<"$PLATFORMS"; then
	arm=containerd-shim-custom-v1-$VERSION-linux-arm64
	tar -xzf "$work/out1/$arm.tar.gz" -C "$work"
	grep -q "build	GOARCH=arm64" "$work/$arm/BUILDINFO" || fail "arm64 BUILDINFO lacks GOARCH=arm64"
	# ELF e_machine (bytes 18-19, little endian): 0xb7 = AArch64.
	[ "$(od -An -tx1 -j18 -N2 "$work/$arm/bin/containerd-shim-custom-v1" | tr -d ' ')" = "b700" ] ||
		fail "the arm64 shim is not an AArch64 ELF"
fi
echo "release-test: PASS ($VERSION)"
