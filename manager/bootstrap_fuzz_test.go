//go:build linux

package manager

import (
	"errors"
	"testing"

	bootstrap "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types/runc/options"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// FuzzParseStartInput feeds the start protocol detection arbitrary stdin (bad input,
// docs/reliability.md): it must never panic; it picks the new protocol only for BootstrapParams
// naming the same instance and namespace as the flags; every failure is one of its two errors;
// legacy options are an Any with no unknown fields. Seed corpus:
// testdata/fuzz/FuzzParseStartInput plus the f.Add calls.
func FuzzParseStartInput(f *testing.F) {
	const id, ns = "c1", "k8s.io"
	mustMarshal := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	runcAny, err := anypb.New(&options.Options{BinaryName: "/opt/runc"})
	if err != nil {
		f.Fatal(err)
	}
	dir := "/run/containerd/s"
	f.Add([]byte{})
	f.Add(mustMarshal(runcAny))
	f.Add(mustMarshal(&bootstrap.BootstrapParams{InstanceID: id, Namespace: ns, SocketDir: &dir,
		Extensions: []*bootstrap.Extension{{Value: runcAny}}}))
	f.Add(mustMarshal(&bootstrap.BootstrapParams{InstanceID: "other", Namespace: ns, ContainerdVersion: "2.4.2"}))
	f.Add(mustMarshal(&bootstrap.BootstrapParams{InstanceID: id, Namespace: "other"}))
	f.Add(append(mustMarshal(runcAny), 0x78, 0x01))
	f.Add(append(mustMarshal(runcAny), 0x18, 0x01))
	f.Add([]byte("{\"version\":2}"))
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, input []byte) {
		req, err := parseStartInput(input, id, ns)
		if err != nil {
			if req != nil {
				t.Errorf("parseStartInput(%x): request %+v with error %v", input, req, err)
			}
			if !errors.Is(err, errBootstrapMismatch) && !errors.Is(err, errBadStartInput) {
				t.Errorf("parseStartInput(%x): unexpected error %v", input, err)
			}
			return
		}
		if req == nil {
			t.Fatalf("parseStartInput(%x): nil request without error", input)
		}
		if req.params != nil && req.options != nil {
			t.Errorf("parseStartInput(%x): both protocols at once", input)
		}
		if p := req.params; p != nil && (p.GetInstanceID() != id || p.GetNamespace() != ns) {
			t.Errorf("parseStartInput(%x): new protocol for instance %q namespace %q", input, p.GetInstanceID(), p.GetNamespace())
		}
		if a := req.options; a != nil && len(a.ProtoReflect().GetUnknown()) != 0 {
			t.Errorf("parseStartInput(%x): legacy options with unknown fields", input)
		}
		if len(input) == 0 && (req.params != nil || req.options != nil) {
			t.Errorf("empty stdin must be legacy without options, got %+v", req)
		}
	})
}
