#!/bin/sh
# Assembles the pod holder (amd64.s, arm64.s, common.inc) into the two static ELF files package
# pod embeds: ../holder_amd64.elf and ../holder_arm64.elf. Run through `go generate ./pod` (see
# pod/holder.go); `make verify-holder` (CI) runs it and fails if the committed files differ.
# Needs Debian's binutils for both targets: x86_64-linux-gnu-as/ld (binutils) and
# aarch64-linux-gnu-as/ld (binutils-aarch64-linux-gnu). The output depends only on the sources
# and the binutils version (no build id, no timestamps, stripped).
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

build() { # arch, tool prefix
	"$2as" -I . -o "$tmp/$1.o" "$1.s"
	"$2ld" -static -nostdlib -s -n --build-id=none -z noexecstack -z noseparate-code \
		-o "$tmp/holder_$1.elf" "$tmp/$1.o"
	chmod 0644 "$tmp/holder_$1.elf"
	mv "$tmp/holder_$1.elf" "../holder_$1.elf"
}
build amd64 x86_64-linux-gnu-
build arm64 aarch64-linux-gnu-
