//go:build integration && linux

package tests

// Checkpoint and restore through real containerd, also of containers whose stdio is containerd's
// fifos. TestCheckpoint runs with a fake OCI runtime given as BinaryName: it
// records its arguments and the descriptors criu would see (the container's fds 0-2 at
// checkpoint, its own at restore), and fakes checkpoint (writes an image file; with --exit it
// kills and deletes the container, as runc does after a dump) and restore (runs the container
// afresh from its bundle with `runc run --detach`, so the restored process is a child the shim
// must reap and whose stdio must reach the client). TestCheckpointLive does the real thing with
// the criu that `make deps` builds (Debian 12's criu 3.17 fails `criu check` on this kernel).

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

var checkpointScenarios = []scenario{
	{"checkpoint-exit-restore", scenarioCheckpointRestore},
	{"checkpoint-failure", scenarioCheckpointFailure},
}

func TestCheckpoint(t *testing.T) { runTable(t, checkpointScenarios) }

// fakeCriuRuntime: global flags are kept for the real runc; see the file comment. An image path
// containing "fail" makes checkpoint fail like runc does when criu fails: criu's dump.log in
// the work dir, runc's error in its JSON log, exit 1.
const fakeCriuRuntime = `#!/bin/sh
echo "$*" >> %[1]q
real=%[2]q
g=""; log=""
while :; do
	case "$1" in
	--root) g="$g $1 $2"; shift 2 ;;
	--log) g="$g $1 $2"; log=$2; shift 2 ;;
	--log-format) g="$g $1 $2"; shift 2 ;;
	--systemd-cgroup) g="$g $1"; shift ;;
	*) break ;;
	esac
done
verb=$1
case "$verb" in
checkpoint|restore) ;;
*) exec $real $g "$@" ;;
esac
shift
image=""; work=""; pidfile=""; bundle=""; leave=""
while [ $# -gt 1 ]; do
	case "$1" in
	--image-path) image=$2; shift ;;
	--work-path) work=$2; shift ;;
	--pid-file) pidfile=$2; shift ;;
	--bundle) bundle=$2; shift ;;
	--parent-path) shift ;;
	--leave-running) leave=1 ;;
	esac
	shift
done
id=$1
# What criu would see: the container init's fds 0-2 at checkpoint (runc records them in the
# image's descriptors.json and hands the pipes among them back to criu on restore), and at
# restore the runtime's own fds 0-2 (what runc gives criu to inherit).
if [ "$verb" = checkpoint ]; then
	pid=$($real $g state "$id" | grep -o '"pid": *[0-9]*' | grep -o '[0-9]*$')
	printf 'descriptors checkpoint %%s' "$id" >> %[1]q
	for fd in 0 1 2; do printf ' %%s' "$(readlink /proc/$pid/fd/$fd)" >> %[1]q; done
else
	printf 'descriptors restore %%s' "$id" >> %[1]q
	for fd in 0 1 2; do printf ' %%s' "$(readlink /proc/$$/fd/$fd)" >> %[1]q; done
fi
echo >> %[1]q
if [ "$verb" = checkpoint ]; then
	case "$image" in
	*fail*)
		mkdir -p "$work"
		echo "Error (criu/cr-dump.c:2093): Dumping FAILED." > "$work/dump.log"
		printf '%%s\n' '{"level":"error","msg":"criu failed: type NOTIFY errno 0\nlog file: '"$work"'/dump.log","time":"2026-01-01T00:00:00Z"}' >> "$log"
		exit 1 ;;
	esac
	mkdir -p "$image" && echo "$id" > "$image/fake-checkpoint" || exit 1
	[ -n "$leave" ] && exit 0
	exec $real $g delete --force "$id"
fi
[ "$(cat "$image/fake-checkpoint")" = "$id" ] || { echo "no fake checkpoint of $id in $image" >&2; exit 1; }
exec $real $g run --detach --pid-file "$pidfile" --bundle "$bundle" "$id"
`

// checkpointExit asks for the task to stop after the checkpoint (ctr tasks checkpoint --exit);
// it follows WithCheckpointImagePath, which creates the options.
func checkpointExit(r *containerd.CheckpointTaskInfo) error {
	o, ok := r.Options.(*options.CheckpointOptions)
	if !ok {
		return fmt.Errorf("checkpoint options are %T", r.Options)
	}
	o.Exit = true
	return nil
}

// waitOutput waits for want to appear n times in buf.
func waitOutput(t *testing.T, buf *syncBuffer, want string, n int) {
	t.Helper()
	deadline := time.Now().Add(eventTimeout)
	for strings.Count(buf.String(), want) < n {
		if time.Now().After(deadline) {
			t.Fatalf("want %q %d times in the output, have %q", want, n, buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runtimeFlags returns the flags (not their values) of the wrapper's first call of verb for id.
func runtimeFlags(t *testing.T, record, verb, id string) []string {
	t.Helper()
	raw, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		k := slices.Index(f, verb)
		if k < 0 || !slices.Contains(f, id) {
			continue
		}
		var flags []string
		for _, a := range f[k+1:] {
			if strings.HasPrefix(a, "-") {
				flags = append(flags, "--"+strings.TrimLeft(a, "-")) // go-runc writes -no-subreaper
			}
		}
		slices.Sort(flags)
		return flags
	}
	t.Fatalf("no %s of %s in the runtime's calls:\n%s", verb, id, raw)
	return nil
}

// runtimeDescriptors returns the kinds of fds 0-2 the wrapper recorded at its first call of verb
// for id (see fakeCriuRuntime): "pipe" (what runc hands criu as an external descriptor), "fifo"
// (a path under the daemon's fifo dir: criu cannot dump or restore it), "null" or the path.
func runtimeDescriptors(t *testing.T, record, verb, id string) []string {
	t.Helper()
	raw, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "descriptors" || f[1] != verb || f[2] != id {
			continue
		}
		kinds := make([]string, 0, 3)
		for _, d := range f[3:] {
			switch {
			case strings.HasPrefix(d, "pipe:"):
				kinds = append(kinds, "pipe")
			case d == os.DevNull:
				kinds = append(kinds, "null")
			case strings.HasPrefix(d, "/") && strings.Contains(d, "-std"):
				kinds = append(kinds, "fifo")
			default:
				kinds = append(kinds, d)
			}
		}
		return kinds
	}
	t.Fatalf("no descriptors of %s at %s in the runtime's calls:\n%s", id, verb, raw)
	return nil
}

// checkpointRow sets up a row's fake runtime and a container running `sh` that prints a line
// and sleeps, created with the fake runtime as BinaryName (runc Options as TaskOptions, which
// both runtimes take).
type checkpointRow struct {
	*apiRow
	record string
	dir    string
	out    *syncBuffer
	ctr    containerd.Container
	// stdin writes to the stdin of the task newTask made last.
	stdin *io.PipeWriter
}

func newCheckpointRow(r *row) *checkpointRow {
	t := r.t
	dir := t.TempDir()
	bin, record := filepath.Join(dir, "fake-criu-runtime"), filepath.Join(dir, "calls")
	if err := os.WriteFile(bin, []byte(fmt.Sprintf(fakeCriuRuntime, record, r.Paths.Runc())), 0o755); err != nil {
		t.Fatal(err)
	}
	c := &checkpointRow{apiRow: newAPIRow(r), record: record, dir: dir, out: &syncBuffer{}}
	id := r.id("ckpt")
	ctr, err := c.NewContainer(c.ctx, c.c, id, r.runtime, nil, "sh", "-c", "echo started; read x; echo got:$x; exec sleep 1000")
	if err != nil {
		t.Fatalf("new container %s: %v", id, err)
	}
	c.ctr = ctr
	return c
}

// newTask creates the row's task with the fake runtime, restoring from image if it is set.
func (c *checkpointRow) newTask(image string) (containerd.Task, error) {
	bin := filepath.Join(c.dir, "fake-criu-runtime")
	opts := []containerd.NewTaskOpts{func(_ context.Context, _ *containerd.Client, ti *containerd.TaskInfo) error {
		ti.Options = &options.Options{BinaryName: bin}
		return nil
	}}
	if image != "" {
		opts = append(opts, containerd.WithRestoreImagePath(image))
	}
	in, stdin := io.Pipe()
	c.t.Cleanup(func() { _ = stdin.Close() })
	c.stdin = stdin
	return c.ctr.NewTask(c.ctx, cio.NewCreator(cio.WithStreams(in, c.out, c.out), cio.WithFIFODir(c.FifoDir)), opts...)
}

// send writes a line to the task's stdin and waits for the process to echo it.
func (c *checkpointRow) send(line string, n int) {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		c.t.Fatalf("write stdin: %v", err)
	}
	waitOutput(c.t, c.out, "got:"+line+"\n", n)
}

func (c *checkpointRow) status(task containerd.Task) string {
	c.t.Helper()
	st, err := task.Status(c.ctx)
	if err != nil {
		c.t.Fatalf("status of %s: %v", task.ID(), err)
	}
	return string(st.Status)
}

// (a) checkpoint with exit: the task exits, Delete succeeds although the runtime has no such
// container any more; then a new task restoring from the image is Created (no runtime call
// until Start), Start restores it, and its output reaches the client.
func scenarioCheckpointRestore(r *row) *observation {
	c := newCheckpointRow(r)
	t := c.t
	id := c.ctr.ID()
	task, err := c.newTask("")
	if err != nil {
		t.Fatalf("new task: %v", err)
	}
	if err := task.Start(c.ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	waitOutput(t, c.out, "started\n", 1)
	c.send("one", 1)
	exitCh, err := task.Wait(c.ctx)
	if err != nil {
		t.Fatal(err)
	}
	image := filepath.Join(c.dir, "image")
	_, err = task.Checkpoint(c.ctx, containerd.WithCheckpointImagePath(image), checkpointExit)
	if err != nil {
		t.Fatalf("checkpoint --exit: %v", err)
	}
	c.note("checkpoint flags %v", runtimeFlags(t, c.record, "checkpoint", id))
	c.note("container fds 0-2 at checkpoint: %v", runtimeDescriptors(t, c.record, "checkpoint", id))
	if _, err := os.Stat(filepath.Join(image, "fake-checkpoint")); err != nil {
		t.Fatalf("checkpoint image not written: %v", err)
	}
	st := <-exitCh
	c.note("exit after checkpoint --exit: %d", st.ExitCode())
	r.waitExit(id, id, st.ExitCode())
	_, err = task.Delete(c.ctx)
	if err != nil {
		t.Errorf("delete after checkpoint --exit: %v", err)
	}
	c.note("delete after checkpoint --exit: %s", class(err))

	if r.Spec.ConfigVersion < 3 {
		// containerd 1.6 turns CriuImagePath into a restore only for runtimes named
		// io.containerd.runc* (services/tasks/local.go getRestorePath): ours would be created
		// afresh. Both rows stop here so that the differential compares the same steps.
		c.note("restore: not requested by containerd 1.6 for a non-runc runtime name")
		return c.observation()
	}
	restored, err := c.newTask(image)
	if err != nil {
		t.Fatalf("new task restoring from %s: %v", image, err)
	}
	created := c.status(restored)
	if created != "created" || restored.Pid() != 0 {
		t.Errorf("restored task before start: status %s pid %d, want created and 0", created, restored.Pid())
	}
	c.note("restored task before start: %s, pid 0: %v", created, restored.Pid() == 0)
	if verbs := runtimeVerbs(t, c.record, id); slices.Contains(verbs, "restore") {
		t.Errorf("the runtime restored at create, not at start: it ran %v", verbs)
	}
	if err := restored.Start(c.ctx); err != nil {
		t.Fatalf("start (restore): %v", err)
	}
	c.note("restore flags %v", runtimeFlags(t, c.record, "restore", id))
	c.note("runtime fds 0-2 at restore: %v", runtimeDescriptors(t, c.record, "restore", id))
	running := c.status(restored)
	if running != "running" {
		t.Errorf("restored task after start: %s", running)
	}
	c.note("restored task after start: %s", running)
	waitOutput(t, c.out, "started\n", 2) // the restored process's stdout reaches the client
	c.send("two", 1)                     // and the new task's stdin reaches it
	code := c.killInit(restored)
	r.waitExit(id, id, code)
	if _, err := restored.Delete(c.ctx); err != nil {
		t.Errorf("delete restored task: %v", err)
	}
	c.note("restored exit %d", code)
	return c.observation()
}

// (b) a failed checkpoint (criu fails) points at criu's log, and the task keeps running.
func scenarioCheckpointFailure(r *row) *observation {
	c := newCheckpointRow(r)
	t := c.t
	task, err := c.newTask("")
	if err != nil {
		t.Fatalf("new task: %v", err)
	}
	if err := task.Start(c.ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	_, err = task.Checkpoint(c.ctx, containerd.WithCheckpointImagePath(filepath.Join(c.dir, "fail-image")))
	if err == nil {
		t.Fatal("checkpoint succeeded, want criu's failure")
	}
	t.Logf("checkpoint error: %v", err)
	names := strings.Contains(err.Error(), "criu-dump.log")
	if !names {
		t.Errorf("checkpoint error %q does not point at criu-dump.log", err)
	}
	c.note("checkpoint error names criu-dump.log: %v", names)
	if r.runtime == harness.RuntimeCustom {
		// Ours also keeps runc's own message, on one line.
		if !strings.Contains(err.Error(), "criu failed: type NOTIFY errno 0") {
			t.Errorf("checkpoint error %q lacks the runtime's message", err)
		}
		dump := filepath.Join(r.Bundle(c.ctr.ID()), "criu-dump.log")
		if b, rerr := os.ReadFile(dump); rerr != nil || !strings.Contains(string(b), "Dumping FAILED") {
			t.Errorf("%s: %q %v: want criu's dump.log", dump, b, rerr)
		}
	}
	// The client paused the task for the checkpoint and resumes it afterwards.
	c.note("after the failed checkpoint: %s", c.status(task))
	code := c.killInit(task)
	r.waitExit(c.ctr.ID(), c.ctr.ID(), code)
	if _, err := task.Delete(c.ctx); err != nil {
		t.Errorf("delete: %v", err)
	}
	return c.observation()
}

// TestCheckpointLive checkpoints and restores real containers with criu, on our runtime and
// the reference, under containerd 2.4: each row must pass on both. It uses the criu of
// `make deps` (Paths.Criu), else the one on PATH. Where `criu check` fails (a kernel that criu
// build cannot dump on) it skips, saying so; with CI=true that fails, like any missing
// prerequisite (`make deps` builds a criu that passes on this machine).
//
// The container counts, one number a line, and echoes each line it reads from stdin as
// "got:<line>"; its stdio is containerd's fifos (cio), the hard case: criu cannot
// dump a process whose fds are fifos on a mount outside the container.
func TestCheckpointLive(t *testing.T) {
	paths := harness.DefaultPaths(t)
	requireCriu(t, paths)
	spec := harness.Daemons(paths)[0]
	d := harness.Start(t, spec, paths)
	rows := []liveCase{
		// checkpoint --exit, then a new task restored from the image: the count goes on, its
		// output reaches the new task's fifos and the new task's stdin reaches it.
		{"exit-restore", false, false, func(l *liveRow) {
			task := l.start()
			l.send(task, "before")
			l.exitAndRestore(task)
		}},
		// checkpoint leaving the task running (CRI CheckpointContainer, `ctr c checkpoint`):
		// it goes on counting; once it is gone, a restore goes on from the checkpoint.
		{"leave-running-restore", false, false, func(l *liveRow) {
			task := l.start()
			l.checkpoint(task, false)
			l.countGoesOn(l.checkpointedAt, "left running")
			l.send(task, "still")
			l.stop(task)
			restored := l.restore()
			l.send(restored, "restored")
			l.stop(restored)
		}},
		// an exec with fifo stdio runs while the container is dumped (--exit ends both); the
		// restored init goes on.
		{"exec-running", false, false, func(l *liveRow) {
			task := l.start()
			var execOut syncBuffer
			p, err := task.Exec(l.ctx, "loop", l.processSpec(l.ctr, "sh", "-c", "while :; do echo exec; sleep 0.2; done"),
				cio.NewCreator(cio.WithStreams(nil, &execOut, &execOut), cio.WithFIFODir(l.d.FifoDir)))
			if err != nil {
				l.t.Fatalf("exec: %v", err)
			}
			if err := p.Start(l.ctx); err != nil {
				l.t.Fatalf("start exec: %v", err)
			}
			waitOutput(l.t, &execOut, "exec\n", 2)
			// The dump with --exit ends the exec with its container (containerd then has no
			// exec to delete).
			l.exitAndRestore(task)
		}},
		// a terminal: criu dumps the pty's slave side (--shell-job is not needed: runc treats
		// the console as external) and the restore gets a new pty over the console socket.
		{"terminal", true, false, func(l *liveRow) {
			task := l.start()
			l.send(task, "before")
			l.exitAndRestore(task)
		}},
		// stdout and stderr to a file:// log (ctr run --log-uri, cio.LogFile): the restored
		// task appends to its own log file.
		{"file-log", false, true, func(l *liveRow) {
			task := l.start()
			l.checkpoint(task, true)
			restored := l.restore()
			// The restored task writes to its own log, going on from where the first one was.
			deadline := time.Now().Add(eventTimeout)
			for {
				b, _ := os.ReadFile(l.logs[len(l.logs)-1])
				if f := strings.Fields(string(b)); len(f) > 2 {
					if f[0] == "n1" {
						l.t.Errorf("the restored task counted from 1: %.80q", b)
					}
					break
				}
				if time.Now().After(deadline) {
					l.t.Fatalf("the restored task wrote nothing to its log file: %q", b)
				}
				time.Sleep(20 * time.Millisecond)
			}
			l.stop(restored)
		}},
	}
	// The issue's own commands: `ctr run -d` with ctr's default stdio (containerd's fifos),
	// `ctr c checkpoint --task --rw` while it runs, then, once it is gone, `ctr c restore --live
	// --rw` into a new container. The count is kept in the container's rw layer, so a restored
	// task that went on from the checkpoint shows a count at least as high as the checkpoint's.
	t.Run("ctr", func(t *testing.T) {
		for _, rt := range runtimes {
			t.Run(rt, func(t *testing.T) {
				r := newRow(t, d, rt)
				id, restored := r.id("ctrlive"), r.id("ctrback")
				ref := "localhost/checkpoint/" + id + ":1"
				r.t.Cleanup(func() {
					ctx, cancel := context.WithTimeout(context.Background(), harness.CtrTimeout)
					defer cancel()
					r.Ctr(ctx, nil, "images", "rm", ref)
				})
				must := func(args ...string) string {
					t.Helper()
					if res := r.ctr(nil, args...); res.ExitCode != 0 {
						t.Fatalf("%s", res)
					} else {
						return res.Stdout
					}
					return ""
				}
				count := func(id string) int {
					t.Helper()
					n, _ := strconv.Atoi(strings.TrimSpace(must("tasks", "exec", "--exec-id", "read"+strconv.Itoa(time.Now().Nanosecond()), id, "cat", "/count")))
					return n
				}
				must(r.runArgs("-d", harness.ImageBusybox.Ref, id, "sh", "-c",
					"i=0; while :; do i=$((i+1)); echo $i > /count; echo $i; sleep 0.1; done")...)
				time.Sleep(500 * time.Millisecond)
				must("containers", "checkpoint", "--task", "--rw", id, ref)
				at := count(id)
				must("tasks", "kill", "-s", "KILL", id)
				r.waitExit(id, id, 137)
				must("tasks", "delete", id)
				must("containers", "restore", "--live", "--rw", restored, ref)
				if st := must("tasks", "ls"); !strings.Contains(st, restored) || !strings.Contains(st, "RUNNING") {
					t.Fatalf("restored task not running: %s", st)
				}
				time.Sleep(300 * time.Millisecond)
				if now := count(restored); now < at-2 || now <= 0 {
					// at is read after the checkpoint, so it is a little ahead of it
					t.Errorf("restored count %d, checkpointed at about %d: the task did not go on from the checkpoint", now, at)
				}
				must("tasks", "kill", "-s", "KILL", restored)
				r.waitExit(restored, restored, 137)
				must("tasks", "delete", restored)
			})
		}
	})
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			for _, rt := range runtimes {
				t.Run(rt, func(t *testing.T) {
					r := newRow(t, d, rt)
					l := &liveRow{apiRow: newAPIRow(r), d: d, terminal: row.terminal, logFile: row.logFile}
					var opts []oci.SpecOpts
					if row.terminal {
						opts = append(opts, oci.WithTTY)
					}
					ctr, err := l.NewContainer(l.ctx, l.c, r.id("live"), rt, opts, "sh", "-c",
						"i=0; while :; do i=$((i+1)); echo n$i; if read -t 0.2 x; then echo got:$x; fi; done")
					if err != nil {
						t.Fatal(err)
					}
					l.ctr = ctr
					row.run(l)
				})
			}
		})
	}
}

// requireCriu skips t unless criu can checkpoint on this kernel (see TestCheckpointLive).
func requireCriu(t *testing.T, paths harness.Paths) {
	t.Helper()
	criu := paths.Criu()
	if criu == "" {
		var err error
		criu, err = exec.LookPath("criu")
		harness.Require(t, err == nil, "criu is not installed (run `make deps`)")
	}
	why := criuUnusable(criu)
	harness.Require(t, why == "", "%s", why)
}

// criuUnusable says why criu cannot checkpoint here, or "" if `criu check` passes.
func criuUnusable(criu string) string {
	if out, err := exec.Command(criu, "check").CombinedOutput(); err != nil {
		return fmt.Sprintf("`%s check` fails on this kernel, so criu cannot checkpoint here (%v): %s", criu, err,
			strings.TrimSpace(string(out)))
	}
	return ""
}

// TestCRICheckpoint is Kubernetes' container checkpointing through the CRI plugin, on both
// handlers, with real criu (skipped like TestCheckpointLive where `criu check` fails, a failure with CI=true): the
// kubelet's CheckpointContainer (what the kubelet's checkpoint API and `crictl checkpoint` call)
// writes an archive with criu's images while the container keeps running and logging. CRI
// containers' stdio is containerd's fifos. containerd 1.6 answers Unimplemented on both.
func TestCRICheckpoint(t *testing.T) {
	requireCriu(t, harness.DefaultPaths(t))
	runCRITable(t, []criScenario{{"checkpoint", criCheckpoint}})
}

// It is also a row of TestCRISandboxed (a container of a pause-less pod, against the pause
// path); there, where criu cannot checkpoint, both rows say so and stop (with CI=true they fail).
func criCheckpoint(r *criRow) []string {
	criu := r.Paths.Criu()
	if criu == "" {
		criu = "criu"
	}
	if why := criuUnusable(criu); why != "" {
		harness.Require(r.t, !harness.InCI(), "%s", why) // with CI=true: a failure
		r.t.Log(why)
		r.note("criu cannot checkpoint on this kernel")
		return r.notes
	}
	pod, podCfg := r.runPod("ckpt")
	c := r.run(pod, podCfg, containerConfig("counter", "sh", "-c", "i=0; while :; do i=$((i+1)); echo n$i; sleep 0.1; done"))
	logPath := r.status(c).GetStatus().GetLogPath()
	r.waitFor("the count in the log", func() bool { st, err := os.Stat(logPath); return err == nil && st.Size() > 100 })
	archive := filepath.Join(r.t.TempDir(), "checkpoint.tar")
	ctx, cancel := r.ctx()
	_, err := r.Runtime.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: c, Location: archive, Timeout: 60})
	cancel()
	r.note("CheckpointContainer: %s", codeOf(err))
	if err != nil {
		if r.Spec.ConfigVersion >= 3 {
			r.t.Fatalf("CheckpointContainer: %v", err)
		}
		r.t.Logf("CheckpointContainer on containerd 1.x: %v", err)
		r.removePod(pod)
		return r.notes
	}
	files, err := archiveFiles(archive)
	if err != nil {
		r.t.Fatalf("read the checkpoint archive: %v", err)
	}
	// criu's images (the inventory, and runc's descriptors.json: pipes, as the fake rows check)
	r.note("archive has criu's images: %v", slices.Contains(files, "checkpoint/inventory.img") && slices.Contains(files, "checkpoint/descriptors.json"))
	r.waitFor("the count going on after the checkpoint", func() bool {
		before := len(readCRILog(r.t, logPath))
		time.Sleep(300 * time.Millisecond)
		return len(readCRILog(r.t, logPath)) > before
	})
	r.note("after the checkpoint: %s", r.status(c).GetStatus().GetState())
	// Restoring that archive (CreateContainer with the archive as the image, as CRI-O does) is
	// not in containerd 2.4's CRI plugin; TestCheckpointLive restores through the task API.
	r.removePod(pod)
	return r.notes
}

// archiveFiles lists the regular files of a tar archive.
func archiveFiles(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			names = append(names, strings.TrimPrefix(h.Name, "./"))
		}
	}
}

// liveCase is a row of TestCheckpointLive: how the container's stdio is set up, and what runs.
type liveCase struct {
	name     string
	terminal bool // a terminal (oci.WithTTY, cio.WithTerminal)
	logFile  bool // a file:// log per task instead of fifos
	run      func(*liveRow)
}

// liveRow is one container of TestCheckpointLive and its tasks: the first, then the restored.
type liveRow struct {
	*apiRow
	d        *harness.Daemon
	ctr      containerd.Container
	terminal bool
	// logFile: each task logs to a file:// of its own (logs), not to fifos read into out.
	logFile bool
	logs    []string
	image   string
	out     syncBuffer
	stdin   *io.PipeWriter
	// checkpointedAt is the last number printed before the checkpoint was taken.
	checkpointedAt int
}

func (l *liveRow) creator() cio.Creator {
	if l.logFile {
		path := filepath.Join(l.t.TempDir(), "task.log")
		l.logs = append(l.logs, path)
		return cio.LogFile(path)
	}
	in, stdin := io.Pipe()
	l.t.Cleanup(func() { _ = stdin.Close() })
	l.stdin = stdin
	opts := []cio.Opt{cio.WithStreams(in, &l.out, &l.out), cio.WithFIFODir(l.d.FifoDir)}
	if l.terminal {
		opts = append(opts, cio.WithTerminal)
	}
	return cio.NewCreator(opts...)
}

func (l *liveRow) start() containerd.Task {
	l.t.Helper()
	task, err := l.ctr.NewTask(l.ctx, l.creator())
	if err != nil {
		l.t.Fatalf("new task: %v", err)
	}
	if err := task.Start(l.ctx); err != nil {
		l.t.Fatalf("start: %v", err)
	}
	deadline := time.Now().Add(eventTimeout)
	for l.last() < 3 {
		if time.Now().After(deadline) {
			l.t.Fatalf("the task did not count: %q", l.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return task
}

// output is what the tasks printed: through their fifos, or their log files one after another.
func (l *liveRow) output() string {
	if !l.logFile {
		return l.out.String()
	}
	var all strings.Builder
	for _, p := range l.logs {
		b, _ := os.ReadFile(p)
		all.Write(b)
	}
	return all.String()
}

// last is the highest number printed so far.
func (l *liveRow) last() int {
	n := 0
	for _, f := range strings.Fields(l.output()) {
		var k int
		if _, err := fmt.Sscanf(f, "n%d", &k); err == nil && k > n {
			n = k
		}
	}
	return n
}

// send writes a line to the current task's stdin and waits for the process to echo it.
func (l *liveRow) send(task containerd.Task, line string) {
	l.t.Helper()
	if _, err := io.WriteString(l.stdin, line+"\n"); err != nil {
		l.t.Fatalf("write stdin of %s: %v", task.ID(), err)
	}
	waitOutput(l.t, &l.out, "got:"+line, 1)
}

// checkpoint dumps the task into a new image; with exit the task stops and is deleted.
func (l *liveRow) checkpoint(task containerd.Task, exit bool) {
	l.t.Helper()
	l.image = filepath.Join(l.t.TempDir(), "image")
	opts := []containerd.CheckpointTaskOpts{containerd.WithCheckpointImagePath(l.image)}
	if exit {
		opts = append(opts, checkpointExit)
	}
	exitCh, err := task.Wait(l.ctx)
	if err != nil {
		l.t.Fatal(err)
	}
	before := l.last()
	if _, err := task.Checkpoint(l.ctx, opts...); err != nil {
		l.t.Fatalf("checkpoint (exit %v): %v", exit, err)
	}
	l.checkpointedAt = before
	if !exit {
		return
	}
	select {
	case <-exitCh:
	case <-time.After(eventTimeout):
		l.t.Fatal("no exit after checkpoint --exit")
	}
	if _, err := task.Delete(l.ctx); err != nil {
		l.t.Fatalf("delete after checkpoint --exit: %v", err)
	}
}

// restore creates a task from the last image and starts it.
func (l *liveRow) restore() containerd.Task {
	l.t.Helper()
	task, err := l.ctr.NewTask(l.ctx, l.creator(), containerd.WithRestoreImagePath(l.image))
	if err != nil {
		l.t.Fatalf("restore: %v", err)
	}
	if err := task.Start(l.ctx); err != nil {
		l.t.Fatalf("start restored: %v", err)
	}
	return task
}

// exitAndRestore checkpoints task with --exit, restores a new task from the image, checks that
// the count goes on and that the new task's stdin reaches it, and stops it.
func (l *liveRow) exitAndRestore(task containerd.Task) {
	l.t.Helper()
	l.checkpoint(task, true)
	restored := l.restore()
	l.countGoesOn(l.checkpointedAt, "after exit")
	l.send(restored, "after")
	l.stop(restored)
}

// countGoesOn waits for the number two after from, then checks that the count never restarted
// (a terminal ends lines with CRLF: numbers are read as words).
func (l *liveRow) countGoesOn(from int, when string) {
	l.t.Helper()
	deadline := time.Now().Add(eventTimeout)
	for l.last() < from+2 {
		if time.Now().After(deadline) {
			l.t.Fatalf("%s: the count did not go on past %d: %q", when, from, l.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ones := slices.Index(strings.Fields(l.output())[1:], "n1"); ones >= 0 {
		l.t.Errorf("%s: the count restarted: %q", when, l.output())
	}
}

func (l *liveRow) stop(task containerd.Task) {
	l.t.Helper()
	id := l.ctr.ID()
	code := l.killInit(task)
	l.waitExit(id, id, code)
	if _, err := task.Delete(l.ctx); err != nil {
		l.t.Errorf("delete %s: %v", id, err)
	}
}
