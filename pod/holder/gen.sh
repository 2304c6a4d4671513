#!/bin/sh
# Builds the pod holder (holder.c: freestanding, no libc) for amd64 and arm64 into the two static
# ELF files package pod embeds: ../holder_amd64.elf and ../holder_arm64.elf. Run through
# `go generate ./pod` (see pod/holder.go); `make verify-holder` (CI) runs it and fails if the
# committed files differ. Needs Debian's gcc and gcc-aarch64-linux-gnu (with its kernel headers,
# linux-libc-dev-arm64-cross). The output depends only on the source and the compilers'
# versions (no build id, no .comment, stripped).
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# -Os and no runtime: no stack protector (no TLS to read it from), no unwind tables, not PIE (a
# fixed address, one segment), no .comment; -n: the segment is not page-aligned in the file.
CFLAGS="-Os -std=gnu11 -Wall -Wextra -Werror -static -nostdlib -ffreestanding -fno-stack-protector
	-fno-stack-clash-protection -fno-asynchronous-unwind-tables -fno-unwind-tables -fno-pie -no-pie
	-fno-ident -Wl,--build-id=none -Wl,-z,noexecstack -Wl,-z,norelro -Wl,-n -s"

build() { # arch, compiler
	# shellcheck disable=SC2086 # CFLAGS is a list of flags
	"$2" $CFLAGS -o "$tmp/holder_$1.elf" holder.c
	chmod 0644 "$tmp/holder_$1.elf"
	mv "$tmp/holder_$1.elf" "../holder_$1.elf"
}
build amd64 x86_64-linux-gnu-gcc
build arm64 aarch64-linux-gnu-gcc
