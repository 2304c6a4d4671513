//go:build linux

package pod

import (
	"errors"
	"reflect"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A PodSandboxConfig as the CRI plugin sends it (typeurl.MarshalAny of the cri-api message),
// with every field the shim reads and many it skips, decodes to what the shim uses.
func TestDecodeConfigCRI(t *testing.T) {
	full := &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: "web", Uid: "0f1e-uid", Namespace: "default", Attempt: 3},
		Hostname:     "web-0",
		LogDirectory: "/var/log/pods/x",
		DnsConfig: &runtime.DNSConfig{
			Servers: []string{"10.0.0.10", "10.0.0.11"}, Searches: []string{"svc.cluster.local", "cluster.local"},
			Options: []string{"ndots:5", "edns0"},
		},
		PortMappings: []*runtime.PortMapping{{ContainerPort: 80, HostPort: 8080}},
		Labels:       map[string]string{"app": "web"},
		Annotations:  map[string]string{"a": "b"},
		Linux: &runtime.LinuxPodSandboxConfig{
			CgroupParent: "kubepods-besteffort-pod0f1e.slice",
			SecurityContext: &runtime.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{
					Network: runtime.NamespaceMode_NODE, Pid: runtime.NamespaceMode_POD, Ipc: runtime.NamespaceMode_NODE,
					TargetId:      "t",
					UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE},
				},
				SelinuxOptions:     &runtime.SELinuxOption{User: "u"},
				RunAsUser:          &runtime.Int64Value{Value: 1000},
				ReadonlyRootfs:     true,
				SupplementalGroups: []int64{1, 2, 3},
				Privileged:         true,
				Seccomp:            &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault},
			},
			Sysctls:  map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shmmni": "4096"},
			Overhead: &runtime.LinuxContainerResources{CpuShares: 2},
		},
	}
	for _, tc := range []struct {
		name string
		cfg  *runtime.PodSandboxConfig
		want Config
	}{
		{"full", full, Config{
			Name: "web", UID: "0f1e-uid", Namespace: "default", Hostname: "web-0",
			DNS: &DNSConfig{
				Servers: []string{"10.0.0.10", "10.0.0.11"}, Searches: []string{"svc.cluster.local", "cluster.local"},
				Options: []string{"ndots:5", "edns0"},
			},
			CgroupParent: "kubepods-besteffort-pod0f1e.slice",
			Sysctls:      map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shmmni": "4096"},
			Network:      ModeNode, PID: ModePod, IPC: ModeNode, Userns: ModeNode, HasUserns: true,
		}},
		{"empty", &runtime.PodSandboxConfig{}, Config{}},
		{"pod userns", &runtime.PodSandboxConfig{Linux: &runtime.LinuxPodSandboxConfig{
			SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{
				Pid: runtime.NamespaceMode_CONTAINER, UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD,
					Uids: []*runtime.IDMapping{{HostId: 2000000, ContainerId: 0, Length: 65536}, {HostId: 1, ContainerId: 70000, Length: 1}},
					Gids: []*runtime.IDMapping{{HostId: 3000000, ContainerId: 0, Length: 65536}},
				},
			}},
		}}, Config{PID: ModeContainer, Userns: ModePod, HasUserns: true,
			UIDs: []IDMap{{ContainerID: 0, HostID: 2000000, Length: 65536}, {ContainerID: 70000, HostID: 1, Length: 1}},
			GIDs: []IDMap{{ContainerID: 0, HostID: 3000000, Length: 65536}}}},
		{"empty DNS config", &runtime.PodSandboxConfig{DnsConfig: &runtime.DNSConfig{}}, Config{DNS: &DNSConfig{}}},
		{"target pid", &runtime.PodSandboxConfig{Linux: &runtime.LinuxPodSandboxConfig{
			SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET}},
		}}, Config{PID: ModeTarget}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := typeurl.MarshalAny(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if a.GetTypeUrl() != podSandboxConfigURL {
				t.Fatalf("CRI's type URL is %q", a.GetTypeUrl())
			}
			for _, url := range []string{a.GetTypeUrl(), "type.googleapis.com/" + a.GetTypeUrl()} {
				got, err := DecodeConfig(url, a.GetValue())
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(*got, tc.want) {
					t.Fatalf("%s:\n got %+v\nwant %+v", url, *got, tc.want)
				}
			}
		})
	}
}

// No options at all: a zero Config.
func TestDecodeConfigNone(t *testing.T) {
	got, err := DecodeConfig("", nil)
	if err != nil || !reflect.DeepEqual(*got, Config{}) {
		t.Fatalf("%+v %v", got, err)
	}
}

// Anything else is InvalidArgument: another type, bytes without a type, bytes that do not parse
// or put a known field in the wrong wire type, strings that are not UTF-8.
func TestDecodeConfigInvalid(t *testing.T) {
	valid, err := proto.Marshal(&runtime.PodSandboxConfig{Hostname: "h", Linux: &runtime.LinuxPodSandboxConfig{CgroupParent: "/p"}})
	if err != nil {
		t.Fatal(err)
	}
	tag := func(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }
	for _, tc := range []struct {
		name  string
		url   string
		value []byte
	}{
		{"other type", "runtime.v1.ContainerConfig", valid},
		{"other type prefix", "example.com/runtime.v1.PodSandboxConfig", valid},
		{"bytes without type", "", valid},
		{"truncated", podSandboxConfigURL, valid[:len(valid)-1]},
		{"truncated tag", podSandboxConfigURL, []byte{0x80}},
		{"bad varint", podSandboxConfigURL, append(tag(8, protowire.BytesType), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)},
		{"field 0", podSandboxConfigURL, []byte{0x02, 0x00}},
		{"hostname as varint", podSandboxConfigURL, append(tag(2, protowire.VarintType), 1)},
		{"mode as bytes", podSandboxConfigURL, nest([]protowire.Number{8, 2, 1}, protowire.AppendBytes(tag(1, protowire.BytesType), []byte("x")))},
		{"hostname not UTF-8", podSandboxConfigURL, protowire.AppendBytes(tag(2, protowire.BytesType), []byte{0xff, 0xfe})},
		{"broken sysctl entry", podSandboxConfigURL, nest([]protowire.Number{8}, protowire.AppendBytes(tag(3, protowire.BytesType), []byte{0x0a, 0x05, 'a'}))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeConfig(tc.url, tc.value)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("got %+v, %v; want InvalidArgument", c, err)
			}
			t.Log(err)
		})
	}
}

// nest wraps the message inner in fields path[len-1], ..., path[0] (outermost first).
func nest(path []protowire.Number, inner []byte) []byte {
	for i := len(path) - 1; i >= 0; i-- {
		inner = protowire.AppendBytes(protowire.AppendTag(nil, path[i], protowire.BytesType), inner)
	}
	return inner
}

// Fields the shim does not know, of every wire type, are skipped.
func TestDecodeConfigUnknownFields(t *testing.T) {
	var b []byte
	b = protowire.AppendTag(b, 100, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, 7)
	b = protowire.AppendTag(b, 101, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, 7)
	b = protowire.AppendTag(b, 102, protowire.VarintType)
	b = protowire.AppendVarint(b, 7)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, "h")
	c, err := DecodeConfig(podSandboxConfigURL, b)
	if err != nil || c.Hostname != "h" {
		t.Fatalf("%+v %v", c, err)
	}
}
