//go:build linux

package io

import (
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
)

// FuzzParseOutput feeds the stdout URI parser arbitrary strings (bad input,
// docs/reliability.md): it must never panic; every error is InvalidArgument; a file or logger
// path is absolute and clean (no ".." left to climb out with); a plain path is used verbatim.
// Seed corpus: testdata/fuzz/FuzzParseOutput plus the f.Add calls.
func FuzzParseOutput(f *testing.F) {
	for _, s := range []string{
		"", "/run/containerd/fifo/1/c-stdout", "fifo:///run/x", "file:///var/log/c.log", "file://relative/log",
		"file:rel", "binary:///usr/bin/logger?a=b&c", "binary-v2:///bin/l?x=1&x=2", "binary://rel/logger",
		"gopher://example/stdout", "file:///../../etc/passwd", "file:///a/../../b", "/path/with?query",
		"file://%zz", "::", "file:///a%2f..%2f..%2fetc", "binary:///l?%=", "FILE:///x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		o, err := parseOutput(uri)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("parseOutput(%q): %v is not InvalidArgument", uri, err)
			}
			return
		}
		switch o.kind {
		case kindNull:
			if uri != "" {
				t.Errorf("parseOutput(%q): null output for a non-empty uri", uri)
			}
		case kindFifo:
			if o.path == "" && uri != "fifo:" && uri != "fifo://" {
				t.Logf("parseOutput(%q): empty fifo path", uri)
			}
		case kindFile, kindBinary, kindBinaryV2:
			if !filepath.IsAbs(o.path) || filepath.Clean(o.path) != o.path {
				t.Errorf("parseOutput(%q): path %q is not absolute and clean", uri, o.path)
			}
			if o.kind == kindFile && len(o.args) != 0 {
				t.Errorf("parseOutput(%q): logger args %v for a file", uri, o.args)
			}
		default:
			t.Errorf("parseOutput(%q): unknown kind %d", uri, o.kind)
		}
	})
}
