//go:build integration && linux

package tests

// What a container of a shared-PID pod sees of the pod's PID 1 (rows of the pause-less table):
// the pause container on the pause path, the shim's holder pause-less. Run from inside a member
// container with the default capabilities, with SYS_PTRACE (kubectl debug's "general" profile)
// and with SYS_ADMIN. The two sides differ by construction (a pause image is not an empty
// directory), so the differential is not an equality: each probe measures an exposure, and the
// pause-less pod must never expose more than the pause container does (pid1Compare). The host's
// tree must be unreachable pause-less whatever the pause path does.

import (
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// pid1Scenario is the row for a member container granted caps.
func pid1Scenario(caps ...string) func(*criRow) []string {
	return func(r *criRow) []string { return criPID1(r, caps) }
}

// pid1Probe runs in the member container; $1 is a file of the host's, $2 a directory of the
// host's. Each line is "key=value"; "denied" where the kernel refused the read.
const pid1Probe = `
m=$1; d=$2
yn() { if "$@" >/dev/null 2>&1; then echo yes; else echo no; fi; }
echo "root_host=$(yn test -e /proc/1/root$m)"
echo "root_dotdot_host=$(yn test -e /proc/1/root/../../..$m)"
echo "cwd_host=$(yn test -e /proc/1/cwd$m)"
echo "root_readable=$(yn ls /proc/1/root/)"
echo "write_root=$(yn sh -c "echo x > /proc/1/root$d/written-through-pid1")"
echo "exe_readable=$(yn head -c 4 /proc/1/exe)"
n=0; for f in /proc/1/fd/*; do
	t=$(readlink "$f" 2>/dev/null) || continue
	case $t in /dev/null|pipe:*|socket:*|anon_inode:*) ;; *) n=$((n+1));; esac
done
echo "fd_files=$n"
if env=$(cat /proc/1/environ 2>/dev/null); then echo "environ=$(printf '%s' "$env" | tr '\0' '\n' | grep -c .)"; else echo "environ=0"; fi
echo "mem_open=$(yn sh -c 'exec 3</proc/1/mem')"
for k in Uid CapInh CapPrm CapEff CapBnd CapAmb NoNewPrivs Seccomp; do
	echo "$k=$(awk -v k="$k:" '$1 == k {print $2}' /proc/1/status)"
done
echo "self_CapBnd=$(awk '$1 == "CapBnd:" {print $2}' /proc/self/status)"
echo "oom_score_adj=$(cat /proc/1/oom_score_adj)"
if mi=$(cat /proc/1/mountinfo 2>/dev/null); then
	echo "mounts=$(printf '%s\n' "$mi" | grep -c .)"
	echo "mounts_host=$(printf '%s\n' "$mi" | awk -v d="$3" 'index($5, d) == 1' | grep -c .)"
else echo "mounts=0"; echo "mounts_host=0"; fi
echo "ptrace=$(cst-probe ptrace 1 | cut -d' ' -f1)"
`

// criPID1 runs a shared-PID pod with one busybox container granted caps and probes PID 1 from
// inside it. The notes are pid1Probe's lines, plus what the host sees: whether the write
// through /proc/1/root reached the host's directory, and whether PID 1's cgroup is the pod's
// own (as the pause container's: <cgroup parent>/<pod id>).
func criPID1(r *criRow, caps []string) []string {
	hostDir := r.t.TempDir()
	marker := filepath.Join(hostDir, "host-marker")
	if err := os.WriteFile(marker, []byte("host\n"), 0o644); err != nil {
		r.t.Fatal(err)
	}
	pod, cfg := r.podWith("pid1", func(c *runtimeapi.PodSandboxConfig) { nsOpts(c).Pid = runtimeapi.NamespaceMode_POD })
	cc := containerConfig("probe", "sleep", "1000")
	if len(caps) > 0 {
		cc.Linux.SecurityContext = &runtimeapi.LinuxContainerSecurityContext{
			Capabilities: &runtimeapi.Capability{AddCapabilities: caps},
		}
	}
	id := r.run(pod, cfg, cc)
	out := r.mustExecSync(id, 0, "sh", "-c", pid1Probe, "probe", marker, hostDir, r.Dir)
	for _, line := range strings.Split(strings.TrimSpace(string(out.Stdout)), "\n") {
		r.note("%s", line)
	}
	_, err := os.Stat(filepath.Join(hostDir, "written-through-pid1"))
	r.note("write_host=%s", yesNo(err == nil))
	r.note("cgroup_own=%s", yesNo(r.cgroupIsPods(r.podPid(pod), pod)))
	r.removePod(pod)
	if r.pauseless {
		// Whatever the pause path shows, the host's tree must stay out of reach pause-less.
		n := pid1Notes(r.notes)
		for _, k := range []string{"root_host", "root_dotdot_host", "cwd_host", "write_host"} {
			if n[k] != "no" {
				r.t.Errorf("pause-less, caps %v: %s=%s: the host's tree is reachable through the pod's PID 1", caps, k, n[k])
			}
		}
	}
	return r.notes
}

// cgroupIsPods reports whether every cgroup of pid (each v1 hierarchy it is in, and the v2
// one) is named after pod, as a pause container's are (<cgroup parent>/<pod id>).
func (r *criRow) cgroupIsPods(pid int, pod string) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		r.t.Fatalf("cgroup of the pod's PID 1: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 && filepath.Base(f[2]) != pod && filepath.Base(f[2]) != "cri-containerd-"+pod+".scope" {
			r.t.Logf("PID 1 (%d) of pod %s is in %s", pid, pod, line)
			return false
		}
	}
	return true
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func pid1Notes(notes []string) map[string]string {
	m := map[string]string{}
	for _, n := range notes {
		if k, v, ok := strings.Cut(n, "="); ok {
			m[k] = v
		}
	}
	return m
}

// pid1Compare fails t where the pause-less pod's PID 1 exposes more than the pause
// container: a yes/no exposure that is yes pause-less only; more fds to files, environment
// entries or mounts of the host; a capability set that is not a subset of the pause
// container's; root where pause is not; no no_new_privs or seccomp where pause has them; a
// higher oom_score_adj (killed before the pause container would be); a cgroup not the pod's own.
func pid1Compare(t *testing.T, ref, ours []string) {
	rn, on := pid1Notes(ref), pid1Notes(ours)
	more := func(k string, worse bool) {
		if worse {
			t.Errorf("pause-less exposes more than the pause path: %s = %q (pause path %q)", k, on[k], rn[k])
		}
	}
	num := func(m map[string]string, k string) int64 {
		n, err := strconv.ParseInt(m[k], 10, 64)
		if err != nil {
			t.Errorf("%s: not a number: %q", k, m[k])
		}
		return n
	}
	hex := func(m map[string]string, k string) uint64 {
		n, err := strconv.ParseUint(m[k], 16, 64)
		if err != nil {
			t.Errorf("%s: not a capability set: %q", k, m[k])
		}
		return n
	}
	for _, k := range []string{"root_host", "root_dotdot_host", "cwd_host", "root_readable", "write_root", "write_host",
		"exe_readable", "mem_open", "ptrace"} {
		yes := map[string]bool{"yes": true, "attached": true}
		more(k, yes[on[k]] && !yes[rn[k]])
	}
	more("cgroup_own", on["cgroup_own"] != "yes" && rn["cgroup_own"] == "yes")
	for _, k := range []string{"fd_files", "environ", "mounts_host", "oom_score_adj"} {
		more(k, num(on, k) > num(rn, k))
	}
	for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		o, p := hex(on, k), hex(rn, k)
		if extra := o &^ p; extra != 0 {
			t.Errorf("pause-less PID 1 holds %d capabilities the pause container has not in %s: %#x (pause %#x)", bits.OnesCount64(extra), k, o, p)
		}
	}
	uid := func(m map[string]string) int64 { return num(m, "Uid") }
	more("Uid", uid(on) == 0 && uid(rn) != 0)
	more("NoNewPrivs", num(on, "NoNewPrivs") < num(rn, "NoNewPrivs"))
	more("Seccomp", num(on, "Seccomp") == 0 && num(rn, "Seccomp") != 0)
	t.Logf("pause path: %q", ref)
	t.Logf("pause-less: %q", ours)
}
