//go:build linux

package io

import (
	"fmt"
	"net/url"
	"path/filepath"
	"sort"

	"github.com/containerd/errdefs"
)

// kind is how a process's output is delivered, chosen by the scheme of its stdout URI.
type kind uint8

const (
	kindNull     kind = iota // no stdout: /dev/null (or discarded console output)
	kindFifo                 // a plain path (or fifo://): the client's fifo, or an existing file
	kindFile                 // file:///abs/path: stdout and stderr appended to one file
	kindBinary               // binary:///abs/path?args: a logging driver the shim starts
	kindBinaryV2             // binary-v2://: the same, but readiness needs a byte
)

// output is a parsed stdout URI.
type output struct {
	kind kind
	path string   // fifo or file path, or the logger binary
	args []string // logger arguments, from the URI's query
}

// parseOutput parses the stdout URI the way containerd's clients build them (pkg/cio
// LogURIGenerator: scheme + absolute path, query = logger args). Relative file and binary paths
// and unknown schemes are InvalidArgument.
func parseOutput(stdout string) (output, error) {
	if stdout == "" {
		return output{kind: kindNull}, nil
	}
	u, err := url.Parse(stdout)
	if err != nil {
		return output{}, fmt.Errorf("parse stdout uri %q: %v: %w", stdout, err, errdefs.ErrInvalidArgument) //nolint:errorlint // cause as text: one class in the chain (process/doc.go)
	}
	switch u.Scheme {
	case "":
		// A plain path: what cio.NewFIFOSet gives. Use it verbatim (a path may contain '?').
		return output{kind: kindFifo, path: stdout}, nil
	case "fifo":
		return output{kind: kindFifo, path: u.Path}, nil
	case "file", "binary", "binary-v2":
	default:
		return output{}, fmt.Errorf("unsupported stdio scheme %q in %q (want a fifo path, file://, binary:// or binary-v2://): %w",
			u.Scheme, stdout, errdefs.ErrInvalidArgument)
	}
	// file://rel/x parses with Host "rel": a relative path, as is file:rel.
	if u.Host != "" || u.Opaque != "" || !filepath.IsAbs(u.Path) {
		return output{}, fmt.Errorf("stdio uri %q: the path must be absolute (%s:///abs/path): %w",
			stdout, u.Scheme, errdefs.ErrInvalidArgument)
	}
	o := output{path: filepath.Clean(u.Path)}
	switch u.Scheme {
	case "file":
		o.kind = kindFile
	case "binary":
		o.kind = kindBinary
		o.args = loggerArgs(u.Query())
	case "binary-v2":
		o.kind = kindBinaryV2
		o.args = loggerArgs(u.Query())
	}
	return o, nil
}

// loggerArgs turns the query into logger arguments: each key, then its first value if any, as
// the reference shim does (containerd's pkg/process/io_util.go:NewBinaryCmd). Keys are sorted so that the
// command line is stable (the reference's follows Go's random map order).
func loggerArgs(q url.Values) []string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var args []string
	for _, k := range keys {
		args = append(args, k)
		if vs := q[k]; len(vs) > 0 {
			args = append(args, vs[0])
		}
	}
	return args
}
