//go:build integration && linux

package tests

// The compatibility matrix: one smoke table run against every containerd line we claim,
// each with the reference shim of its own release as the baseline, and an upgrade of containerd
// to 2.4 under running containers. `make compat` runs every line and prints the table;
// `make compat COMPAT_VERSIONS="1.6 2.2 2.4"` picks lines (CI runs such a subset, see .ci/run)
// through CST_COMPAT_VERSIONS. `make integration` leaves it out (-skip), since its own tables
// already cover 1.6 and 2.4.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

// compatScenarios is the smoke suite: lifecycle, exit code, stdin/CloseIO of init and of an
// exec, exec, TTY, kill, grouping, and a restart of containerd under a running container (last:
// it replaces the daemon's event collector).
var compatScenarios = []scenario{
	{"echo", scenarioEcho},
	{"exit-code", scenarioExitCode},
	{"stdin-close", scenarioStdin},
	{"exec", scenarioExec},
	{"exec-stdin-closeio", scenarioExecStdin},
	{"tty-run", scenarioTTYRun},
	{"sigkill", scenarioSigkill},
	{"grouping", scenarioGrouping},
	{"restart", scenarioRestart},
}

// compatUpgradeTo is the line every older line is upgraded to, with containers running.
const compatUpgradeTo = "2.4"

func init() {
	// containerd-shim-runc-v2 stopped writing the `address` file in 2.0 (1.7's manager still
	// does), so a 2.x reference may leave a grouped shim's socket behind, as 2.4.2 does (seen
	// live on 2.0.14, 2.1.9 and 2.2.9).
	for _, line := range []string{"2.0", "2.1", "2.2", "2.3"} {
		referenceBugs["containerd-"+line+"/grouping/socket"] = "containerd-shim-runc-v2 " + line + ".x leaves the " +
			"socket of a grouped shim behind: since 2.0 it writes no `address` file, and pkg/shim cleanupSockets " +
			"(util_unix.go) derives the socket name from -id (the first container) instead of the group id"
	}
}

// compatResult is a row of the printed table.
type compatResult struct {
	line, version string
	protocol      map[string]string   // runtime → start protocol its shim answered
	failed        map[string][]string // runtime → failed scenarios
	ran           map[string]int      // runtime → scenarios run
	upgrade       string              // outcome of the upgrade to compatUpgradeTo
}

type compatTable struct {
	mu   sync.Mutex
	rows []*compatResult
}

func (c *compatTable) row(line, version string) *compatResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := &compatResult{line: line, version: version, protocol: map[string]string{},
		failed: map[string][]string{}, ran: map[string]int{}}
	c.rows = append(c.rows, r)
	return r
}

func (c *compatTable) setProtocol(r *compatResult, rt, p string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.protocol[rt] == "" {
		r.protocol[rt] = p
	} else if r.protocol[rt] != p {
		r.protocol[rt] += "/" + p
	}
}

// markdown renders the table.
func (c *compatTable) markdown() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	b.WriteString("| containerd | build | start protocol (custom.v1) | io.containerd.custom.v1 | reference runc.v2 of the release | upgrade to " + compatUpgradeTo + " with running containers |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
	for _, r := range c.rows {
		ref := outcome(r, harness.RuntimeRunc)
		if p := r.protocol[harness.RuntimeRunc]; p != "" {
			ref += " (" + p + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.line, r.version,
			orDash(r.protocol[harness.RuntimeCustom]), outcome(r, harness.RuntimeCustom), ref, orDash(r.upgrade))
	}
	return b.String()
}

func outcome(r *compatResult, rt string) string {
	switch {
	case r.ran[rt] == 0:
		return "not run"
	case len(r.failed[rt]) > 0:
		return fmt.Sprintf("FAIL %d/%d: %s", len(r.failed[rt]), r.ran[rt], strings.Join(r.failed[rt], ", "))
	}
	return fmt.Sprintf("pass %d/%d", r.ran[rt], r.ran[rt])
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// The row of the line being run, for scenarioRestart to record protocols in.
var (
	compatMu      sync.Mutex
	compatCurrent = map[*harness.Daemon]*compatResult{}
	compatResults = &compatTable{}
)

// TestCompat runs compatScenarios on both runtimes of each selected containerd line, then
// upgrades each older line to 2.4 with a container of each runtime running, and prints the table
// (also written to CST_COMPAT_TABLE when set).
func TestCompat(t *testing.T) {
	paths := harness.DefaultPaths(t)
	harness.Require(t, harness.Executable(paths.Shim), "%s is not built (run `make build`)", paths.Shim)
	// The matrix is its own target: `make integration` leaves it out with -skip, `make compat`
	// picks the lines. Without a choice, every line (each line's binaries are prerequisites).
	lines := strings.Fields(os.Getenv("CST_COMPAT_VERSIONS"))
	if len(lines) == 0 {
		lines = harness.CompatLines
	}
	specs, err := harness.CompatDaemons(paths, lines)
	if err != nil {
		t.Fatal(err)
	}
	target, err := harness.CompatDaemons(paths, []string{compatUpgradeTo})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		table := compatResults.markdown()
		t.Logf("compatibility matrix:\n%s", table)
		if path := os.Getenv("CST_COMPAT_TABLE"); path != "" {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Error(err)
			}
			if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
				t.Errorf("write %s: %v", path, err)
			}
		}
	})
	for _, spec := range specs {
		t.Run(spec.Name, func(t *testing.T) {
			for _, bin := range []string{spec.Containerd, spec.Ctr, spec.RefShim} {
				harness.Require(t, harness.Executable(bin), "%s is missing (run `make compat-deps COMPAT_VERSIONS=%s`)", bin, spec.Line)
			}
			res := compatResults.row(spec.Line, buildVersion(spec.Version()))
			t.Run("smoke", func(t *testing.T) { runCompatSmoke(t, spec, paths, res) })
			if spec.Line != compatUpgradeTo {
				t.Run("upgrade-to-"+compatUpgradeTo, func(t *testing.T) {
					res.upgrade = "FAIL"
					upgradeWithRunning(t, spec, target[0], paths)
					if !t.Failed() {
						res.upgrade = "pass (both runtimes)"
					}
				})
			}
		})
	}
}

// runCompatSmoke is runTable for one daemon, recording each runtime's failures in res.
func runCompatSmoke(t *testing.T, spec harness.CompatSpec, paths harness.Paths, res *compatResult) {
	d := harness.Start(t, spec.DaemonSpec, paths)
	compatMu.Lock()
	compatCurrent[d] = res
	compatMu.Unlock()
	for _, sc := range compatScenarios {
		t.Run(sc.name, func(t *testing.T) {
			obs := map[string]*observation{}
			for _, rt := range runtimes {
				t.Run(rt, func(t *testing.T) {
					// Registered first, so it runs last: after the row's own cleanups (its leak
					// check among them), whose failures count too.
					t.Cleanup(func() {
						compatResults.mu.Lock()
						res.ran[rt]++
						if t.Failed() || obs[rt] == nil {
							res.failed[rt] = append(res.failed[rt], sc.name)
						}
						compatResults.mu.Unlock()
					})
					o := sc.run(newRow(t, d, rt))
					t.Logf("observed: %+v", *o)
					obs[rt] = o
				})
			}
			t.Run("differential", func(t *testing.T) {
				compare(t, obs)
				// A row that failed is already counted; a difference is ours to explain.
				if t.Failed() && obs[harness.RuntimeRunc] != nil && obs[harness.RuntimeCustom] != nil {
					compatResults.mu.Lock()
					res.failed[harness.RuntimeCustom] = append(res.failed[harness.RuntimeCustom], sc.name+" (differs)")
					compatResults.mu.Unlock()
				}
			})
		})
	}
}

// scenarioRestart: containerd is SIGKILLed and started again under a running container. The
// task is RUNNING afterwards with the same pid and shim, takes an exec, and is killed (137) and
// deleted through the restarted daemon. It also records how each shim answered `start` (for the
// table) and checks ours: the plain address before 2.3, a BootstrapResult from 2.3 on.
func scenarioRestart(r *row) *observation {
	id := r.id("restart")
	r.expect(r.ctr(nil, r.runArgs("-d", "--null-io", harness.ImageBusybox.Ref, id, "sleep", "1000")...), 0, "-")
	before := r.WaitTask(r.t, id, "RUNNING", eventTimeout)
	shim := r.expectShim()
	version, err := r.ShimVersion(id)
	if err != nil {
		r.t.Fatalf("shim version of %s: %v", id, err)
	}
	compatMu.Lock()
	res := compatCurrent[r.Daemon]
	compatMu.Unlock()
	if res != nil {
		spec := harness.CompatSpec{Line: res.line}
		proto := spec.Protocol(version)
		compatResults.setProtocol(res, r.runtime, proto)
		if want := spec.WantCustomProtocol(); r.runtime == harness.RuntimeCustom && proto != want {
			r.t.Errorf("%s answered containerd %s in %s, want %s", r.runtime, res.line, proto, want)
		}
	}

	r.Crash(r.t)
	r.Restart(r.t)
	r.from = r.Events.Len() // a new collector: positions start again

	after := r.WaitTask(r.t, id, "RUNNING", eventTimeout)
	if after.Pid != before.Pid {
		r.t.Errorf("task %s: pid %d after the restart, %d before", id, after.Pid, before.Pid)
	}
	if now := r.expectShim(); now.Pid != shim.Pid {
		r.t.Errorf("shim %s replaced by %s across the restart", shim, now)
	}
	exec := r.ctr(nil, "tasks", "exec", "--exec-id", "probe", "--fifo-dir", r.FifoDir, id, "/bin/echo", "after restart")
	r.expect(exec, 0, "after restart\n")
	r.waitExit(id, "probe", 0)
	obs := r.killAndDelete(id, "SIGKILL", 137)
	obs.Stdout = exec.Stdout
	// Not the protocol: the reference of 2.0–2.2 answers in JSON v3, ours with an address.
	obs.Notes = append(obs.Notes, fmt.Sprintf("pid kept %v", after.Pid == before.Pid))
	return obs
}

// upgradeWithRunning starts from's containerd with a sleeping container per runtime, stops it
// and starts to's containerd on the same root, state, address and (old) config, then checks on
// each runtime that the task is RUNNING with its pid, takes an exec, is killed (137) and deleted,
// and that its shim exits. The reference shim of from's release is the baseline: the same
// observation is required of both.
func upgradeWithRunning(t *testing.T, from harness.CompatSpec, to harness.CompatSpec, paths harness.Paths) {
	spec := from.DaemonSpec
	// The old daemon's config must also do for the new one: disable the plugins of both (1.x
	// ignores the 2.x names it does not know, 2.x migrates the version 2 config).
	spec.DisabledPlugins = harness.UpgradeConfigPlugins(from.DaemonSpec, to.DaemonSpec)
	d := harness.Start(t, spec, paths)
	type running struct {
		id      string
		pid     int
		version int
	}
	started := map[string]running{}
	for _, rt := range runtimes {
		id := "up-" + shortName(rt)
		d.MustCtr(t, "run", "--runtime", rt, "-d", "--null-io", harness.ImageBusybox.Ref, id, "sleep", "1000")
		task := d.WaitTask(t, id, "RUNNING", eventTimeout)
		version, err := d.ShimVersion(id)
		if err != nil {
			t.Fatalf("shim version of %s: %v", id, err)
		}
		proto := from.Protocol(version)
		if want := from.WantCustomProtocol(); rt == harness.RuntimeCustom && proto != want {
			t.Errorf("%s answered containerd %s in %s, want %s", rt, from.Line, proto, want)
		}
		started[rt] = running{id: id, pid: task.Pid, version: version}
	}
	shims := d.ShimProcesses()
	if len(shims) != len(runtimes) {
		t.Fatalf("want %d shims before the upgrade, have %v", len(runtimes), shims)
	}

	d.Upgrade(t, to.DaemonSpec)
	t.Logf("upgraded %s → %s", from.Version(), to.Version())

	if now := d.ShimProcesses(); !slices.Equal(pidsOf(now), pidsOf(shims)) {
		t.Errorf("shims changed across the upgrade: %v before, %v after", shims, now)
	}
	obs := map[string]*observation{}
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			s := started[rt]
			pos := d.Events.Len()
			task := d.WaitTask(t, s.id, "RUNNING", eventTimeout)
			if task.Pid != s.pid {
				t.Errorf("%s: pid %d after the upgrade, %d before", s.id, task.Pid, s.pid)
			}
			// The new daemon reconnected with what the old one recorded (and logged the same).
			if v, err := d.ShimVersion(s.id); err != nil || v != s.version {
				t.Errorf("%s: shim version %d (%v) after the upgrade, %d before", s.id, v, err, s.version)
			}
			exec := d.MustCtr(t, "tasks", "exec", "--exec-id", "probe", "--fifo-dir", d.FifoDir, s.id, "/bin/echo", "after upgrade")
			if exec.Stdout != "after upgrade\n" {
				t.Errorf("exec after the upgrade: %s", exec)
			}
			d.MustCtr(t, "tasks", "kill", "-s", "SIGKILL", s.id)
			ev, ok := d.Events.Wait(pos, eventTimeout, func(e harness.Event) bool {
				return harness.TaskEvent(d.Namespace, s.id, "/tasks/exit")(e) && e.ID == s.id
			})
			if !ok || ev.ExitStatus != 137 {
				t.Fatalf("%s: no /tasks/exit 137 after SIGKILL (seen %v: %s)", s.id, ok, ev.JSON)
			}
			ctx, cancel := context.WithTimeout(context.Background(), harness.CtrTimeout)
			defer cancel()
			rm := d.Ctr(ctx, nil, "tasks", "rm", s.id)
			if rm.ExitCode != 0 || !strings.Contains(rm.Stderr, "exit code 137") {
				t.Errorf("tasks rm %s: want exit 0 and a 137 status: %s", s.id, rm)
			}
			d.MustCtr(t, "containers", "rm", s.id)
			var topics []string
			for _, e := range d.Events.Since(pos, harness.TaskEvent(d.Namespace, s.id, "")) {
				if e.Topic != "/tasks/delete" { // see row.events: not part of the contract
					topics = append(topics, e.Topic)
				}
			}
			obs[rt] = &observation{Stdout: exec.Stdout, Events: topics}
		})
	}
	t.Run("differential", func(t *testing.T) { compare(t, obs) })
	if left := d.WaitClean(harness.SnapshotSockets(), 10*time.Second); len(left.Processes) > 0 {
		t.Errorf("shims left after their containers were deleted: %v", left.Processes)
	}
}

// buildVersion shortens `containerd --version` ("containerd <module> <version> <revision>") to
// the version, with Debian's package revision when there is one.
func buildVersion(out string) string {
	f := strings.Fields(out)
	if len(f) < 3 {
		return out
	}
	if len(f) > 3 && f[3] != "compat" && strings.Contains(f[3], "deb") {
		return f[2] + " (Debian " + f[3] + ")"
	}
	return f[2]
}

func pidsOf(ps []harness.Proc) []int {
	out := make([]int, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Pid)
	}
	slices.Sort(out)
	return out
}
