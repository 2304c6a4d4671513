#!/usr/bin/env bash
# Builds the release tarballs (`make release`): for each platform of PLATFORMS,
#   $OUT/containerd-shim-custom-v1-$VERSION-linux-$ARCH.tar.gz
# holding containerd-shim-custom-v1-$VERSION-linux-$ARCH/ with
#   bin/containerd-shim-custom-v1   the shim (static: CGO_ENABLED=0)
#   bin/custom-shim-install         the node installer
#   LICENSE README.md docs/ deploy/ the license, the docs, the Kubernetes manifests
#   BUILDINFO                       `go version -m` of both binaries (Go, modules, flags)
# and $OUT/SHA256SUMS over the tarballs.
#
# Reproducible: the same commit built with the same Go gives byte-identical tarballs, wherever
# the tree is checked out (-trimpath, no VCS stamping, a cleared GOFLAGS, fixed GOAMD64/GOARM64),
# with every file's mtime at SOURCE_DATE_EPOCH (default: the commit's time), owner 0:0, fixed
# modes, sorted names, and gzip without a name or time. hack/release-test.sh checks it.
#
# Environment: VERSION, REVISION (the Makefile's), SRC (the tree to build, default this
# repository), OUT (default $SRC/_output/release), PLATFORMS (default "linux/amd64 linux/arm64"),
# SOURCE_DATE_EPOCH, GO.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
SRC=${SRC:-$here}
OUT=${OUT:-$SRC/_output/release}
PLATFORMS=${PLATFORMS:-linux/amd64 linux/arm64}
GO=${GO:-go}
PKG=github.com/custom-shim/containerd-shim-custom-v1
: "${VERSION:?set VERSION (make release computes it)}"
: "${REVISION:?set REVISION (make release computes it)}"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$here" log -1 --format=%ct)
fi
export SOURCE_DATE_EPOCH

# Nothing from the caller's environment may change the binaries.
export GOFLAGS= CGO_ENABLED=0 GOAMD64=v1 GOARM64=v8.0 GOEXPERIMENT=
ldflags="-X $PKG/version.Version=$VERSION -X $PKG/version.Revision=$REVISION"

mkdir -p "$OUT"
rm -f "$OUT"/containerd-shim-custom-v1-*.tar.gz "$OUT/SHA256SUMS"
stage=$(mktemp -d "$OUT/.stage-XXXXXX")
trap 'rm -rf "$stage"' EXIT
tarballs=()
for platform in $PLATFORMS; do
	os=${platform%/*} arch=${platform#*/}
	name=containerd-shim-custom-v1-$VERSION-$os-$arch
	dir=$stage/$name
	mkdir -p "$dir/bin" "$dir/deploy" "$dir/docs"
	echo "[release] $name"
	for cmd in containerd-shim-custom-v1 custom-shim-install; do
		(cd "$SRC" && GOOS=$os GOARCH=$arch "$GO" build -trimpath -buildvcs=false -ldflags "$ldflags" \
			-o "$dir/bin/$cmd" "./cmd/$cmd")
	done
	cp "$SRC/LICENSE" "$SRC/README.md" "$dir/"
	cp "$SRC"/deploy/* "$dir/deploy/"
	cp "$SRC"/docs/*.md "$dir/docs/" # the README links them
	(cd "$dir" && "$GO" version -m bin/containerd-shim-custom-v1 bin/custom-shim-install) > "$dir/BUILDINFO"
	find "$dir" -type d -exec chmod 0755 {} +
	find "$dir" -type f -exec chmod 0644 {} +
	chmod 0755 "$dir"/bin/*
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
		--format=gnu -C "$stage" -cf - "$name" | gzip -n -9 > "$OUT/$name.tar.gz"
	tarballs+=("$name.tar.gz")
done
(cd "$OUT" && sha256sum "${tarballs[@]}" > SHA256SUMS)
echo "[release] $OUT:"
(cd "$OUT" && cat SHA256SUMS)
