//go:build linux

package io

import "sync"

// The copy buffers the console and the copier share (console.go, copier.go): taken only while
// data is moving, so an idle process holds none.

// copyBufSize is the size of the copy buffers. A pty master reads at most 4 KiB at a time (the
// line discipline's buffer), so the output copier reads until the pty is empty or the buffer is
// full and then writes once: one write per up to 32 reads.
const copyBufSize = 128 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}
