//go:build linux

package io

import (
	"reflect"
	"testing"

	"github.com/containerd/errdefs"
)

func TestParseOutput(t *testing.T) {
	for _, tc := range []struct {
		uri  string
		want output
		bad  bool
	}{
		{uri: "", want: output{kind: kindNull}},
		{uri: "/run/containerd/fifo/1/x-stdout", want: output{kind: kindFifo, path: "/run/containerd/fifo/1/x-stdout"}},
		{uri: "/odd/path?with=query", want: output{kind: kindFifo, path: "/odd/path?with=query"}},
		{uri: "fifo:///a/b", want: output{kind: kindFifo, path: "/a/b"}},
		{uri: "file:///var/log/c.log", want: output{kind: kindFile, path: "/var/log/c.log"}},
		{uri: "file:///var/log/../c.log", want: output{kind: kindFile, path: "/var/c.log"}},
		{uri: "binary:///usr/bin/logger", want: output{kind: kindBinary, path: "/usr/bin/logger"}},
		{uri: "binary:///usr/bin/logger?b=2&a=1&flag", want: output{kind: kindBinary, path: "/usr/bin/logger",
			args: []string{"a", "1", "b", "2", "flag", ""}}},
		{uri: "binary-v2:///l?id=x", want: output{kind: kindBinaryV2, path: "/l", args: []string{"id", "x"}}},
		{uri: "file://relative/c.log", bad: true},
		{uri: "file:relative", bad: true},
		{uri: "binary://logger", bad: true},
		{uri: "binary-v2:logger", bad: true},
		{uri: "http://example.com/x", bad: true},
		{uri: "npipe:///x", bad: true},
		{uri: "%zz", bad: true},
	} {
		got, err := parseOutput(tc.uri)
		if tc.bad {
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("%q: want InvalidArgument, got %+v, %v", tc.uri, got, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v, %v; want %+v", tc.uri, got, err, tc.want)
		}
	}
}
