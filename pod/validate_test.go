//go:build linux

package pod

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// Any name safe as one path element is a sandbox id; the others are InvalidArgument.
func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"a": true, "abc-123_x.y": true, "0f1e2d": true, strings.Repeat("a", 255): true, "lifecycle#01-8506aac5": true,
		"-a": true, "a..b": true, "a b": true, "é": true, "a:b@c": true, "...": true,
		"": false, strings.Repeat("a", 256): false, "a/b": false, "/": false, ".": false, "..": false, "a\x00": false,
	} {
		err := ValidID(id)
		if (err == nil) != want || (err != nil && !errors.Is(err, errdefs.ErrInvalidArgument)) {
			t.Errorf("ValidID(%q) = %v", id, err)
		}
	}
}

// Every refusal of New is InvalidArgument, and leaves the bundle as it was.
func TestNewInvalid(t *testing.T) {
	for _, tc := range []struct {
		name   string
		id     string
		bundle string // "": a temp dir
		netns  string
		cfg    Config
	}{
		{name: "empty id", id: "-"},
		{name: "odd id", id: "a/../b"},
		{name: "relative bundle", bundle: "rel/bundle"},
		{name: "missing bundle", bundle: "/nonexistent/bundle"},
		{name: "bundle is a file", bundle: "/etc/hostname"},
		{name: "missing netns", netns: "/run/netns/nonexistent-pod-test"},
		{name: "netns not a namespace", netns: "/etc/hostname"},
		{name: "netns of another type", netns: "/proc/self/ns/ipc"},
		{name: "relative netns", netns: "proc/self/ns/net"},
		{name: "user namespace without maps", cfg: Config{IPC: ModeNode, Userns: ModePod, HasUserns: true}},
		{name: "user namespace without 65535", cfg: Config{IPC: ModeNode, Userns: ModePod, HasUserns: true,
			UIDs: []IDMap{{0, 100000, 1000}}, GIDs: []IDMap{{0, 100000, 65536}}}},
		{name: "user namespace without 0", cfg: Config{IPC: ModeNode, Userns: ModePod, HasUserns: true,
			UIDs: []IDMap{{1, 100000, 65536}}, GIDs: []IDMap{{0, 100000, 65536}}}},
		{name: "user namespace overflowing", cfg: Config{IPC: ModeNode, Userns: ModePod, HasUserns: true,
			UIDs: []IDMap{{0, 0xffff0000, 0x20000}}, GIDs: []IDMap{{0, 100000, 65536}}}},
		{name: "user namespace, netns of the host's user namespace", netns: "/proc/self/ns/net", cfg: Config{Userns: ModePod, HasUserns: true,
			UIDs: []IDMap{{0, 100000, 65536}}, GIDs: []IDMap{{0, 100000, 65536}}}},
		{name: "hostname with a newline", cfg: Config{IPC: ModeNode, Hostname: "a\nb"}},
		{name: "sysctl value with a newline", cfg: Config{Sysctls: map[string]string{"kernel.shmmni": "1\nnet/x 1"}}},
		{name: "user namespace mode", cfg: Config{IPC: ModeNode, Userns: 9, HasUserns: true}},
		{name: "pid target", cfg: Config{IPC: ModeNode, PID: ModeTarget}},
		{name: "network mode", cfg: Config{IPC: ModeNode, Network: 9}},
		{name: "not namespaced sysctl", cfg: Config{IPC: ModeNode, Sysctls: map[string]string{"vm.swappiness": "1"}}},
		{name: "hostname sysctl", cfg: Config{Sysctls: map[string]string{"kernel.hostname": "x"}}},
		{name: "net sysctl, host network", cfg: Config{Network: ModeNode, Sysctls: map[string]string{"net.ipv4.ip_forward": "1"}}},
		{name: "net sysctl, no netns", cfg: Config{Sysctls: map[string]string{"net.ipv4.ip_forward": "1"}}},
		{name: "net sysctl, the host's netns", netns: "/proc/self/ns/net", cfg: Config{Sysctls: map[string]string{"net.ipv4.ip_forward": "1"}}},
		{name: "ipc sysctl, host IPC", cfg: Config{IPC: ModeNode, Sysctls: map[string]string{"kernel.shmmni": "1"}}},
		{name: "mqueue sysctl, host IPC", cfg: Config{IPC: ModeNode, Sysctls: map[string]string{"fs/mqueue/msg_max": "1"}}},
		{name: "uts sysctl, host network", cfg: Config{Network: ModeNode, IPC: ModeNode, Sysctls: map[string]string{"kernel.domainname": "x"}}},
		{name: "traversal", cfg: Config{Sysctls: map[string]string{"net...x": "1"}}},
		{name: "empty sysctl", cfg: Config{Sysctls: map[string]string{"": "1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.id
			switch id {
			case "":
				id = "pod1"
			case "-":
				id = ""
			}
			bundle := tc.bundle
			if bundle == "" {
				bundle = t.TempDir()
			}
			p, err := New(Options{ID: id, Bundle: bundle, NetNSPath: tc.netns, Config: &tc.cfg})
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("New: %v, %v; want InvalidArgument", p, err)
			}
			t.Log(err)
			if tc.bundle == "" {
				if left, _ := os.ReadDir(bundle); len(left) != 0 {
					t.Fatalf("left in the bundle: %v", left)
				}
			}
		})
	}
}

// Sysctl names in either form map to their /proc/sys paths; the allowed ones pass.
func TestPodSysctls(t *testing.T) {
	c := &Config{Sysctls: map[string]string{
		"net.ipv4.conf.eth0/100.rp_filter": "1", "net/ipv4/conf/eth0.200/rp_filter": "2",
		"kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "20", "kernel.domainname": "example",
	}}
	got, err := podSysctls(c, "/proc/1/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	want := []sysctl{
		{"fs.mqueue.msg_max", "/proc/sys/fs/mqueue/msg_max", "20"},
		{"kernel.domainname", "/proc/sys/kernel/domainname", "example"},
		{"kernel.shm_rmid_forced", "/proc/sys/kernel/shm_rmid_forced", "1"},
		{"net.ipv4.conf.eth0/100.rp_filter", "/proc/sys/net/ipv4/conf/eth0.100/rp_filter", "1"},
		{"net.ipv4.conf.eth0/200.rp_filter", "/proc/sys/net/ipv4/conf/eth0.200/rp_filter", "2"},
		// CRI's defaults for a pod with a network of its own (enable_unprivileged_ports/icmp).
		{"net.ipv4.ip_unprivileged_port_start", "/proc/sys/net/ipv4/ip_unprivileged_port_start", "0"},
		{"net.ipv4.ping_group_range", "/proc/sys/net/ipv4/ping_group_range", "0 2147483647"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: got %+v want %+v", i, got[i], want[i])
		}
	}
}

// CRI's default sysctls of the pause path: only for a pod with a network namespace of its own, a
// value the pod sets wins, and no ping_group_range with a user namespace.
func TestCRIDefaultSysctls(t *testing.T) {
	keys := func(c *Config, netns string) map[string]string {
		got, err := podSysctls(c, netns)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, s := range got {
			m[s.key] = s.value
		}
		return m
	}
	if m := keys(&Config{Network: ModeNode}, ""); len(m) != 0 {
		t.Fatalf("host network pod got sysctls %v", m)
	}
	m := keys(&Config{Sysctls: map[string]string{"net/ipv4/ip_unprivileged_port_start": "80"}}, "/run/netns/x")
	if m["net.ipv4.ip_unprivileged_port_start"] != "80" || m["net.ipv4.ping_group_range"] != "0 2147483647" {
		t.Fatalf("pod network with its own port start: %v", m)
	}
	m = keys(&Config{HasUserns: true, Userns: ModePod}, "/run/netns/x")
	if _, ok := m["net.ipv4.ping_group_range"]; ok || m["net.ipv4.ip_unprivileged_port_start"] != "0" {
		t.Fatalf("user namespace pod: %v", m)
	}
}

// The pod's files: the hostname asked for (or the host's) and a newline, the host's hosts, a
// resolv.conf from the DNS config (or the host's); Release removes them.
func TestNewFiles(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	hosts, _ := os.ReadFile("/etc/hosts")
	resolv, _ := os.ReadFile("/etc/resolv.conf")
	for _, tc := range []struct {
		name             string
		cfg              Config
		hostname, resolv string
	}{
		{"defaults", Config{}, host + "\n", string(resolv)},
		{"hostname and DNS", Config{Hostname: "web-0", DNS: &DNSConfig{
			Servers: []string{"10.0.0.10", "10.0.0.11"}, Searches: []string{"ns.svc.cluster.local", "cluster.local"}, Options: []string{"ndots:5"},
		}}, "web-0\n", "search ns.svc.cluster.local cluster.local\nnameserver 10.0.0.10\nnameserver 10.0.0.11\noptions ndots:5\n"},
		{"empty DNS config", Config{DNS: &DNSConfig{}}, host + "\n", ""},
		{"servers only", Config{DNS: &DNSConfig{Servers: []string{"1.1.1.1"}}}, host + "\n", "nameserver 1.1.1.1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.IPC = ModeNode // no shm mount: no root needed
			bundle := t.TempDir()
			p, err := New(Options{ID: "pod1", Bundle: bundle, Config: &cfg})
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range map[string]string{hostnameFile: tc.hostname, hostsFile: string(hosts), resolvFile: tc.resolv} {
				if b, err := os.ReadFile(filepath.Join(bundle, name)); err != nil || string(b) != want {
					t.Errorf("%s: %q %v, want %q", name, b, err, want)
				}
			}
			if _, err := os.Stat(filepath.Join(bundle, shmDir)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("shm with host IPC: %v", err)
			}
			if st := p.Status(); st.State != Created || st.ID != "pod1" || st.Pid != 0 || st.CreatedAt.IsZero() {
				t.Errorf("status %+v", st)
			}
			if err := p.Release(t.Context()); err != nil {
				t.Fatal(err)
			}
			if left, _ := os.ReadDir(bundle); len(left) != 0 {
				t.Fatalf("left in the bundle: %v", left)
			}
		})
	}
}
