//go:build linux

package process

import (
	"strings"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
)

// FuzzDecodeOptions feeds DecodeOptions arbitrary type URLs and payloads:
// it must never panic, every error must be InvalidArgument, and what decodes as runc Options
// must keep its fields. Run with `make fuzz` or
// `go test -run '^$' -fuzz FuzzDecodeOptions -fuzztime 30s ./process`; the seed corpus is in
// testdata/fuzz/FuzzDecodeOptions plus the f.Add calls below.
func FuzzDecodeOptions(f *testing.F) {
	runc := func(o *options.Options) []byte {
		b, err := proto.Marshal(o)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	cri := func(body string) []byte {
		b, err := proto.Marshal(&runtimeoptions.Options{TypeUrl: "io.containerd.custom.v1", ConfigBody: []byte(body)})
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	const runcURL = "containerd.runc.v1.Options"
	const criURL = "runtimeoptions.v1.Options"
	f.Add("", []byte{})
	f.Add("", []byte("x"))
	f.Add(runcURL, runc(&options.Options{BinaryName: "crun", Root: "/run/x", SystemdCgroup: true, IoUid: 7}))
	f.Add("/"+runcURL, runc(&options.Options{ShimCgroup: "/a/b"}))
	f.Add(runcURL, []byte{0xff, 0xff, 0xff})
	f.Add(criURL, cri("SystemdCgroup = true\nBinaryName = \"/usr/bin/crun\"\n"))
	f.Add(criURL, cri("SystemdCgroup = \"yes\""))
	f.Add(criURL, cri("[[[["))
	f.Add(criURL, cri("IoUid = -1"))
	f.Add("example.com/NoSuchOptions", []byte("x"))
	f.Add("type.googleapis.com/", []byte{})
	f.Fuzz(func(t *testing.T, typeURL string, value []byte) {
		if typeURL[strings.LastIndex(typeURL, "/")+1:] == criURL {
			// A config_path is read from disk: keep the fuzzer off arbitrary files (/dev/zero).
			var co runtimeoptions.Options
			if proto.Unmarshal(value, &co) == nil && len(co.GetConfigBody()) == 0 && co.GetConfigPath() != "" {
				t.Skip("config_path payload")
			}
		}
		o, err := DecodeOptions(typeURL, value)
		if err != nil {
			if o != nil {
				t.Errorf("DecodeOptions(%q, %x) returned options %+v with error %v", typeURL, value, o, err)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("DecodeOptions(%q, %x): error %v is not InvalidArgument", typeURL, value, err)
			}
			return
		}
		if o == nil {
			t.Fatalf("DecodeOptions(%q, %x): nil options without error", typeURL, value)
		}
		if typeURL[strings.LastIndex(typeURL, "/")+1:] == runcURL {
			var ro options.Options
			if err := proto.Unmarshal(value, &ro); err != nil {
				t.Fatalf("DecodeOptions accepted runc options proto.Unmarshal rejects: %v", err)
			}
			if o.BinaryName != ro.GetBinaryName() || o.Root != ro.GetRoot() || o.ShimCgroup != ro.GetShimCgroup() ||
				o.IoUID != ro.GetIoUid() || o.SystemdCgroup != ro.GetSystemdCgroup() {
				t.Errorf("decoded %+v lost fields of %v", o, &ro)
			}
		}
	})
}
