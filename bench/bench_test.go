//go:build bench && linux

package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

const (
	ours = harness.RuntimeCustom
	ref  = harness.RuntimeRunc
)

// TestMain doubles as the timing wrapper of the start-action figure: while that figure runs,
// the daemon's bin/ links both shim names to this test binary (see wrap).
func TestMain(m *testing.M) {
	if strings.HasPrefix(filepath.Base(os.Args[0]), "containerd-shim-") {
		os.Exit(wrap())
	}
	os.Exit(m.Run())
}

// bench is one run: the daemon, a client, the exit-event hub and the rows collected so far.
type bench struct {
	t     *testing.T
	d     *harness.Daemon
	paths harness.Paths
	c     *containerd.Client
	ctx   context.Context
	hub   *exitHub
	img   containerd.Image
	rows  []row
}

// row is one line of the table. Ours and Ref are samples; the ratio is of their medians.
type row struct {
	Figure   string
	Unit     string
	Ours     []float64
	Ref      []float64
	Floor    []float64 // the same work without a shim, when there is such a thing
	Target   string    // e.g. "≤ 0.5"; empty: report only
	Max, Min float64   // the target as a bound on the ratio (0: none)
	FloorMin float64   // the target as a lower bound on ours/floor instead (0: none)
	OursNA   string    // set when ours could not run this workload
	Note     string
}

func (r row) ratio() float64 {
	if len(r.Ours) == 0 || len(r.Ref) == 0 {
		return math.NaN()
	}
	return median(r.Ours) / median(r.Ref)
}

func (r row) met() string {
	if r.FloorMin != 0 {
		if len(r.Ours) == 0 || len(r.Floor) == 0 {
			return ""
		}
		if median(r.Ours)/median(r.Floor) >= r.FloorMin {
			return "yes"
		}
		return "**no**"
	}
	q := r.ratio()
	switch {
	case math.IsNaN(q) || (r.Max == 0 && r.Min == 0):
		return ""
	case r.Max != 0 && q <= r.Max, r.Min != 0 && q >= r.Min:
		return "yes"
	default:
		return "**no**"
	}
}

func (b *bench) add(r row) {
	b.rows = append(b.rows, r)
	b.t.Logf("%s: ours %s / ref %s (%s) ratio %s %s %s", r.Figure, num(median(r.Ours)), num(median(r.Ref)), r.Unit,
		num(r.ratio()), r.OursNA, r.Note)
}

// pair is the order of the runtimes in iteration i: A B, then B A, so that neither always
// runs first (warm caches, drift).
func pair(i int) []string {
	if i%2 == 0 {
		return []string{ref, ours}
	}
	return []string{ours, ref}
}

func short(rt string) string {
	if rt == ours {
		return "ours"
	}
	return "ref"
}

// phases in run order; BENCH_ONLY (a regexp) selects some by name.
var phases = []struct {
	name string
	run  func(*bench)
}{
	{"binary", (*bench).binarySize},
	{"memory", (*bench).memory},
	{"start", (*bench).startOverhead},
	{"exec", (*bench).execLatency},
	{"exit", (*bench).exitLatency},
	{"stdout", (*bench).stdoutThroughput},
	{"tty", (*bench).ttyThroughput},
	{"burst", (*bench).burst},
	{"storm", (*bench).execStorm},
	{"startaction", (*bench).startAction},
	{"pods", (*bench).pods},
}

func TestBench(t *testing.T) {
	paths := harness.DefaultPaths(t)
	harness.Require(t, harness.Executable(paths.Shim), "%s is not built (run `make build`)", paths.Shim)
	only := regexp.MustCompile(os.Getenv("BENCH_ONLY"))
	began := time.Now()
	load0 := loadavg()
	d := harness.Start(t, harness.Daemons(paths)[0], paths)
	ctx, cancel := context.WithCancel(d.Context(context.Background()))
	defer cancel()
	b := &bench{t: t, d: d, paths: paths, c: d.Client(t), ctx: ctx}
	var err error
	if b.hub, err = subscribeExits(ctx, b.c, d.Namespace); err != nil {
		t.Fatal(err)
	}
	if b.img, err = b.c.GetImage(ctx, harness.ImageBusybox.Ref); err != nil {
		t.Fatal(err)
	}
	snap := harness.SnapshotSockets()
	for _, p := range phases {
		if !only.MatchString(p.name) {
			continue
		}
		t.Run(p.name, func(t *testing.T) {
			b.t = t
			p.run(b)
		})
	}
	b.t = t
	table := b.table(began, load0)
	fmt.Print("\n" + table)
	out := os.Getenv("BENCH_OUT")
	if out == "" {
		out = filepath.Join(paths.Repo, "_output", "bench.md")
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err == nil {
		if err := os.WriteFile(out, []byte(table), 0o644); err == nil {
			fmt.Printf("\n(table written to %s)\n", out)
		}
	}
	// containerd-shim-runc-v2 2.4.2 leaves the socket of a grouped shim behind (see
	// tests/scenarios_test.go referenceBugs): remove such sockets so the teardown's leak check
	// reports only real leftovers.
	if leaks := d.WaitClean(snap, 10*time.Second); !leaks.Empty() {
		if len(leaks.Processes)+len(leaks.Mounts) > 0 {
			t.Errorf("left behind by the benchmark:%s", leaks)
		} else {
			t.Logf("stale shim sockets (known reference bug with grouped shims), removed:%s", leaks)
		}
		_ = harness.Reap(leaks)
	}
}

// table renders the rows as Markdown, with the conditions of the run.
func (b *bench) table(began time.Time, load0 string) string {
	var s strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&s, "Run %s on %s: %d CPUs, kernel %s, %s; load average %s at start, %s at end; %s.\n",
		began.UTC().Format("2006-01-02 15:04 MST"), host, runtime.NumCPU(), kernel(), runtime.Version(),
		load0, loadavg(), time.Since(began).Round(time.Second))
	fmt.Fprintf(&s, "Sizes: %s.\n\n", sizesLine())
	s.WriteString("| figure | unit | ours median | ours p95 | ref median | ref p95 | ours/ref | target | met | floor median | note |\n")
	s.WriteString("|---|---|---:|---:|---:|---:|---:|---|---|---:|---|\n")
	for _, r := range b.rows {
		om, op := num(median(r.Ours)), num(p95(r.Ours))
		if r.OursNA != "" {
			om, op = "n/a: "+strings.ReplaceAll(r.OursNA, "|", "/"), ""
		}
		floor := ""
		if len(r.Floor) > 0 {
			floor = num(median(r.Floor))
		}
		fmt.Fprintf(&s, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Figure, r.Unit, om, op,
			num(median(r.Ref)), num(p95(r.Ref)), num(r.ratio()), r.Target, r.met(), floor,
			strings.ReplaceAll(r.Note, "|", "/"))
	}
	return s.String()
}

func num(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "–"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func loadavg() string {
	raw, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func kernel() string {
	raw, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(raw))
}

// ---- containers ----

// newContainer creates container id (busybox image, runtime rt) running args, without a task.
func (b *bench) newContainer(id, rt string, opts []oci.SpecOpts, args ...string) (containerd.Container, error) {
	specOpts := append([]oci.SpecOpts{oci.WithImageConfig(b.img), oci.WithProcessArgs(args...)}, opts...)
	return b.c.NewContainer(b.ctx, id, containerd.WithImage(b.img), containerd.WithNewSnapshot(id+"-snap", b.img),
		containerd.WithRuntime(rt, nil), containerd.WithNewSpec(specOpts...))
}

// mustContainer is newContainer that stops the phase on error and removes the container at
// its end.
func (b *bench) mustContainer(id, rt string, opts []oci.SpecOpts, args ...string) containerd.Container {
	b.t.Helper()
	ctr, err := b.newContainer(id, rt, opts, args...)
	if err != nil {
		b.t.Fatalf("create container %s (%s): %v", id, rt, err)
	}
	b.t.Cleanup(func() { b.remove(ctr) })
	return ctr
}

// startTask creates and starts a null-IO task of ctr.
func (b *bench) startTask(ctr containerd.Container) (containerd.Task, error) {
	task, err := ctr.NewTask(b.ctx, cio.NullIO)
	if err != nil {
		return nil, err
	}
	if err := task.Start(b.ctx); err != nil {
		_, _ = task.Delete(b.ctx, containerd.WithProcessKill)
		return nil, err
	}
	return task, nil
}

// remove kills and deletes ctr's task, if any, and ctr with its snapshot (errors ignored).
func (b *bench) remove(ctr containerd.Container) {
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if task, err := ctr.Task(ctx, nil); err == nil {
		_ = task.Kill(ctx, 9)
		if ch, err := task.Wait(ctx); err == nil {
			select {
			case <-ch:
			case <-time.After(10 * time.Second):
			}
		}
		_, _ = task.Delete(ctx, containerd.WithProcessKill)
	}
	_ = ctr.Delete(ctx, containerd.WithSnapshotCleanup)
}

// binaries: the shim binaries' sizes.
func (b *bench) binarySize() {
	st := func(p string) []float64 {
		fi, err := os.Stat(p)
		if err != nil {
			b.t.Fatal(err)
		}
		return []float64{float64(fi.Size()) / (1 << 20)}
	}
	note := "ours: " + versionLine(b.paths.Shim) + "; ref: " + versionLine(b.d.Spec.RefShim)
	b.add(row{Figure: "binary size", Unit: "MiB", Ours: st(b.paths.Shim), Ref: st(b.d.Spec.RefShim), Target: "report", Note: note})
}

func versionLine(bin string) string {
	out, err := exec.Command(bin, "-v").CombinedOutput()
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "Version:") {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "Version:"))
		}
	}
	return "?"
}
