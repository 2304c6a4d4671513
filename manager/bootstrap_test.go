//go:build linux

package manager

import (
	"errors"
	"strings"
	"testing"

	bootstrap "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/custom-shim/containerd-shim-custom-v1/process"
)

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// typeurlAny wraps m the way containerd's typeurl.MarshalAny does: the bare message name as
// the type URL, without anypb's "type.googleapis.com/" prefix.
func typeurlAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	return &anypb.Any{TypeUrl: string(m.ProtoReflect().Descriptor().FullName()), Value: mustMarshal(t, m)}
}

func TestParseStartInput(t *testing.T) {
	const id, ns = "c1", "k8s.io"
	runcOpts := &options.Options{BinaryName: "/opt/runc", ShimCgroup: "/shim"}
	criOpts := &runtimeoptions.Options{ConfigBody: []byte("SystemdCgroup = true\nBinaryName = \"crun\"\n")}
	runcAny, _ := anypb.New(runcOpts)
	socketDir := "/run/containerd/s2"
	match := &bootstrap.BootstrapParams{InstanceID: id, Namespace: ns, ContainerdTtrpcAddress: "/run/containerd/containerd.sock.ttrpc",
		SocketDir: &socketDir, Extensions: []*bootstrap.Extension{{Value: runcAny}}}
	unknown := append(mustMarshal(t, runcAny), 0x78, 0x01)  // field 15, varint: in neither message
	logLevel := append(mustMarshal(t, runcAny), 0x18, 0x01) // field 3: BootstrapParams.log_level

	tests := []struct {
		name       string
		input      []byte
		wantParams bool
		want       *process.Options // decoded legacy options; nil for the new protocol
		wantErr    error
	}{
		{name: "empty stdin is legacy", input: nil, want: &process.Options{}},
		{name: "legacy runc options, typeurl URL", input: mustMarshal(t, typeurlAny(t, runcOpts)),
			want: &process.Options{BinaryName: "/opt/runc", ShimCgroup: "/shim"}},
		{name: "legacy runc options, anypb URL", input: mustMarshal(t, runcAny),
			want: &process.Options{BinaryName: "/opt/runc", ShimCgroup: "/shim"}},
		{name: "legacy runtimeoptions", input: mustMarshal(t, typeurlAny(t, criOpts)),
			want: &process.Options{BinaryName: "crun", SystemdCgroup: true}},
		{name: "bootstrap params matching", input: mustMarshal(t, match), wantParams: true},
		{name: "bootstrap params matching, minimal", wantParams: true,
			input: mustMarshal(t, &bootstrap.BootstrapParams{InstanceID: id, Namespace: ns})},
		{name: "bootstrap params for another id", wantErr: errBootstrapMismatch,
			input: mustMarshal(t, &bootstrap.BootstrapParams{InstanceID: "other", Namespace: ns, ContainerdTtrpcAddress: "/x"})},
		{name: "bootstrap params for another namespace", wantErr: errBootstrapMismatch,
			input: mustMarshal(t, &bootstrap.BootstrapParams{InstanceID: id, Namespace: "default",
				Extensions: []*bootstrap.Extension{{Value: runcAny}}})},
		{name: "garbage", input: []byte{0xff, 0xff, 0xff, 0xff}, wantErr: errBadStartInput},
		{name: "text", input: []byte("unix:///run/containerd/s/abc"), wantErr: errBadStartInput},
		{name: "Any with unknown fields", input: unknown, wantErr: errBadStartInput},
		{name: "Any with a bootstrap-only field", input: logLevel, wantErr: errBootstrapMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := parseStartInput(tc.input, id, ns)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := req.params != nil; got != tc.wantParams {
				t.Fatalf("new protocol = %v, want %v", got, tc.wantParams)
			}
			if tc.wantParams {
				return
			}
			got, err := decodeOptionsAny(req.options)
			if err != nil {
				t.Fatal(err)
			}
			if *got != *tc.want {
				t.Fatalf("options = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseStartInputMismatchNamesBothIDs(t *testing.T) {
	in := mustMarshal(t, &bootstrap.BootstrapParams{InstanceID: "theirs", Namespace: "nsA", ContainerdGrpcAddress: "/g"})
	_, err := parseStartInput(in, "ours", "nsB")
	for _, s := range []string{"theirs", "ours", "nsA", "nsB"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Fatalf("error %v does not name %q", err, s)
		}
	}
}

func TestOptionsFromExtensions(t *testing.T) {
	runcAny, _ := anypb.New(&options.Options{Root: "/r", SystemdCgroup: true})
	criAny := typeurlAny(t, &runtimeoptions.Options{ConfigBody: []byte("ShimCgroup = \"/s\"\n")})
	other, _ := anypb.New(&bootstrap.BootstrapResult{Version: 3})
	ext := func(as ...*anypb.Any) []*bootstrap.Extension {
		var out []*bootstrap.Extension
		for _, a := range as {
			out = append(out, &bootstrap.Extension{Value: a})
		}
		return out
	}
	tests := []struct {
		name    string
		exts    []*bootstrap.Extension
		want    process.Options
		wantErr bool
	}{
		{name: "none", want: process.Options{}},
		{name: "unrelated only", exts: ext(other), want: process.Options{}},
		{name: "nil value skipped", exts: []*bootstrap.Extension{{}}, want: process.Options{}},
		{name: "runc after unrelated", exts: ext(other, runcAny), want: process.Options{Root: "/r", SystemdCgroup: true}},
		{name: "runtimeoptions", exts: ext(criAny), want: process.Options{ShimCgroup: "/s"}},
		{name: "first option payload wins", exts: ext(criAny, runcAny), want: process.Options{ShimCgroup: "/s"}},
		{name: "corrupt runc options", wantErr: true,
			exts: ext(&anypb.Any{TypeUrl: runcAny.GetTypeUrl(), Value: []byte{0xff}})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := optionsFromExtensions(tc.exts)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != tc.want {
				t.Fatalf("options = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseFlagsLeavesUnknownToPkgShim(t *testing.T) {
	f, err := parseFlags([]string{"-namespace", "n", "-address", "/a", "-publish-binary", "/c", "-id", "c1", "-debug", "start"})
	if err != nil {
		t.Fatal(err)
	}
	if f.namespace != "n" || f.id != "c1" || f.address != "/a" || !f.debug || f.action != "start" {
		t.Fatalf("flags = %+v", f)
	}
	if _, err := parseFlags([]string{"-bogus"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
}
