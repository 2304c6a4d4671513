//go:build integration && linux

package tests

// Helpers of the reliability tests (load_test.go, faults_test.go, security_test.go):
// a precise event recorder on the containerd Go client, process accounting of a shim (fds,
// threads, RSS, zombies), grouped containers and OCI runtime wrappers.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	eventtypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

// sandboxKey groups containers into one shim (both runtimes honour it).
const sandboxKey = "io.kubernetes.cri.sandbox-id"

// soak reports whether the long version was asked for (`make soak`: CST_SOAK=1).
func soak() bool {
	v, _ := strconv.ParseBool(os.Getenv("CST_SOAK"))
	return v
}

// taskEvent is one /tasks/* event as the Go client decoded it.
type taskEvent struct {
	Topic     string
	Container string
	Exec      string // the exec id; empty for the init (exit: ID == container)
	Pid       uint32
	Status    uint32
}

// recorder holds the /tasks/* events of one namespace, subscribed through client.Subscribe.
type recorder struct {
	mu     sync.Mutex
	list   []taskEvent
	errs   []error
	cancel context.CancelFunc
}

// subscribe records the task events of d's namespace until t ends. It returns once the
// subscription is known to be live (a probe event published after it has arrived).
func subscribe(t *testing.T, d *harness.Daemon, c *containerd.Client) *recorder {
	t.Helper()
	ctx, cancel := context.WithCancel(namespaces.WithNamespace(context.Background(), d.Namespace))
	rec := &recorder{cancel: cancel}
	t.Cleanup(cancel)
	ch, errs := c.Subscribe(ctx, fmt.Sprintf(`namespace==%s`, d.Namespace))
	probe := "cst-sync-" + strconv.Itoa(int(time.Now().UnixNano()%1e9))
	synced := make(chan struct{})
	go func() {
		var once sync.Once
		for {
			select {
			case env := <-ch:
				if env == nil {
					continue
				}
				v, err := typeurl.UnmarshalAny(env.Event)
				if err != nil {
					rec.add(taskEvent{}, fmt.Errorf("decode %s: %w", env.Topic, err))
					continue
				}
				e := taskEvent{Topic: env.Topic}
				switch ev := v.(type) {
				case *eventtypes.TaskCreate:
					e.Container, e.Pid = ev.ContainerID, ev.Pid
				case *eventtypes.TaskStart:
					e.Container, e.Pid = ev.ContainerID, ev.Pid
				case *eventtypes.TaskExecAdded:
					e.Container, e.Exec = ev.ContainerID, ev.ExecID
				case *eventtypes.TaskExecStarted:
					e.Container, e.Exec, e.Pid = ev.ContainerID, ev.ExecID, ev.Pid
				case *eventtypes.TaskExit:
					e.Container, e.Pid, e.Status = ev.ContainerID, ev.Pid, ev.ExitStatus
					if ev.ID != ev.ContainerID {
						e.Exec = ev.ID
					}
				case *eventtypes.TaskDelete:
					e.Container, e.Pid, e.Status = ev.ContainerID, ev.Pid, ev.ExitStatus
					if ev.ID != "" && ev.ID != ev.ContainerID {
						e.Exec = ev.ID
					}
				case *eventtypes.TaskOOM:
					if ev.ContainerID == probe {
						once.Do(func() { close(synced) })
						continue
					}
					e.Container = ev.ContainerID
				default:
					continue
				}
				if strings.HasPrefix(e.Topic, "/tasks/") {
					rec.add(e, nil)
				}
			case err := <-errs:
				if err != nil && ctx.Err() == nil {
					rec.add(taskEvent{}, err)
				}
				return
			}
		}
	}()
	for i := 0; ; i++ {
		if err := c.EventService().Publish(ctx, "/cst/sync", &eventtypes.TaskOOM{ContainerID: probe}); err != nil {
			t.Fatalf("publish sync probe: %v", err)
		}
		select {
		case <-synced:
			return rec
		case <-time.After(200 * time.Millisecond):
		}
		if i == 50 {
			t.Fatal("event subscription not live after 10s")
		}
	}
}

func (r *recorder) add(e taskEvent, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs = append(r.errs, err)
		return
	}
	r.list = append(r.list, e)
}

// events returns the events recorded so far for the containers accepted by keep (nil: all).
func (r *recorder) events(keep func(string) bool) []taskEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []taskEvent
	for _, e := range r.list {
		if keep == nil || keep(e.Container) {
			out = append(out, e)
		}
	}
	return out
}

// waitCount waits until n events match, up to timeout, and returns how many did.
func (r *recorder) waitCount(n int, timeout time.Duration, match func(taskEvent) bool) int {
	deadline := time.Now().Add(timeout)
	for {
		got := 0
		for _, e := range r.events(nil) {
			if match(e) {
				got++
			}
		}
		if got >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// expectation is what one container's events must show: its init's exit status and its execs'.
type expectation struct {
	Init  uint32
	Execs map[string]uint32
	// Deleted: the task was deleted, so a /tasks/delete is expected.
	Deleted bool
	// MayDrop: the init's /tasks/exit and the /tasks/delete may be missing (counted as Dropped,
	// not Lost): the reference shim's last container. Never set for ours.
	MayDrop bool
}

// accounting is the outcome of checking a recording against expectations.
type accounting struct {
	Processes  int // processes expected (inits + execs)
	Exits      int // exits seen for them
	Lost       int // expected exits never seen
	Duplicated int // extra events of a process (a second exit, start, ...)
	WrongCode  int // exits with another status
	OutOfOrder int // exec exit before its start, exec exit after the init's, start after exit...
	Unexpected int // task events for processes nobody started
	// Dropped: events of an expectation with MayDrop that never came (known reference bug), of
	// which DroppedExits are exits.
	Dropped      int
	DroppedExits int
	Problems     []string
}

func (a *accounting) problem(format string, args ...any) {
	if len(a.Problems) < 20 {
		a.Problems = append(a.Problems, fmt.Sprintf(format, args...))
	}
}

func (a accounting) clean() bool {
	return a.Lost+a.Duplicated+a.WrongCode+a.OutOfOrder+a.Unexpected == 0
}

func (a accounting) String() string {
	return fmt.Sprintf("%d processes, %d exits: lost %d, duplicated %d, wrong status %d, out of order %d, unexpected %d, dropped (known reference bug) %d %v",
		a.Processes, a.Exits, a.Lost, a.Duplicated, a.WrongCode, a.OutOfOrder, a.Unexpected, a.Dropped, a.Problems)
}

// account checks that every process of want has exactly one exit with its status, in order:
// create, start, exec-added, exec-started, exec exit, ..., the init's exit last, then delete.
func account(events []taskEvent, want map[string]*expectation) accounting {
	var a accounting
	type procEvents struct{ added, started, exits int }
	perContainer := map[string][]taskEvent{}
	for _, e := range events {
		if want[e.Container] == nil {
			continue
		}
		perContainer[e.Container] = append(perContainer[e.Container], e)
	}
	for id, exp := range want {
		a.Processes += 1 + len(exp.Execs)
		seen := map[string]*procEvents{}
		get := func(exec string) *procEvents {
			if seen[exec] == nil {
				seen[exec] = &procEvents{}
			}
			return seen[exec]
		}
		var creates, starts, deletes int
		initExited := false
		for _, e := range perContainer[id] {
			if _, known := exp.Execs[e.Exec]; e.Exec != "" && !known {
				a.Unexpected++
				a.problem("%s: %s of unknown exec %q", id, e.Topic, e.Exec)
				continue
			}
			switch e.Topic {
			case "/tasks/create":
				creates++
			case "/tasks/start":
				starts++
				if creates == 0 {
					a.OutOfOrder++
					a.problem("%s: start before create", id)
				}
			case "/tasks/exec-added":
				get(e.Exec).added++
			case "/tasks/exec-started":
				p := get(e.Exec)
				p.started++
				if p.exits > 0 {
					a.OutOfOrder++
					a.problem("%s/%s: exec-started after its exit", id, e.Exec)
				}
			case "/tasks/exit":
				a.Exits++
				if e.Exec == "" {
					if initExited {
						a.Duplicated++
						a.problem("%s: second init exit", id)
						continue
					}
					initExited = true
					if starts == 0 {
						a.OutOfOrder++
						a.problem("%s: init exit before start", id)
					}
					if e.Status != exp.Init {
						a.WrongCode++
						a.problem("%s: init exit %d, want %d", id, e.Status, exp.Init)
					}
					continue
				}
				p := get(e.Exec)
				p.exits++
				if p.exits > 1 {
					a.Duplicated++
					a.problem("%s/%s: exit #%d", id, e.Exec, p.exits)
					continue
				}
				if p.started == 0 {
					a.OutOfOrder++
					a.problem("%s/%s: exit before exec-started", id, e.Exec)
				}
				if initExited {
					a.OutOfOrder++
					a.problem("%s/%s: exit after the init's", id, e.Exec)
				}
				if e.Status != exp.Execs[e.Exec] {
					a.WrongCode++
					a.problem("%s/%s: exit %d, want %d", id, e.Exec, e.Status, exp.Execs[e.Exec])
				}
			case "/tasks/delete":
				if e.Exec == "" {
					deletes++
				}
			}
		}
		switch {
		case initExited:
		case exp.MayDrop:
			a.Dropped++
			a.DroppedExits++
		default:
			a.Lost++
			a.problem("%s: no init exit", id)
		}
		if creates != 1 || starts != 1 {
			a.Duplicated += max(creates-1, 0) + max(starts-1, 0)
			a.Lost += max(1-creates, 0) + max(1-starts, 0)
			a.problem("%s: %d creates, %d starts", id, creates, starts)
		}
		if exp.Deleted && deletes == 0 && exp.MayDrop {
			a.Dropped++
		} else if deletes > 1 || (exp.Deleted && deletes == 0) {
			a.Duplicated += max(deletes-1, 0)
			a.Lost += max(1-deletes, 0)
			a.problem("%s: %d deletes", id, deletes)
		}
		for exec := range exp.Execs {
			p := get(exec)
			if p.exits == 0 {
				a.Lost++
				a.problem("%s/%s: no exit", id, exec)
			}
			if p.added != 1 || p.started != 1 {
				a.Duplicated += max(p.added-1, 0) + max(p.started-1, 0)
				a.Lost += max(1-p.added, 0) + max(1-p.started, 0)
				a.problem("%s/%s: %d exec-added, %d exec-started", id, exec, p.added, p.started)
			}
		}
	}
	return a
}

// procStat is what the tests watch of a shim process.
type procStat struct {
	FDs     int
	Threads int
	RSSKiB  int // VmRSS
	AnonKiB int // RssAnon: the process's private memory, what a leak grows
	FileKiB int // RssFile: mostly the binary's text, paged in as code paths first run
}

func (p procStat) String() string {
	return fmt.Sprintf("fds %d, threads %d, rss %d KiB (anon %d, file %d)", p.FDs, p.Threads, p.RSSKiB, p.AnonKiB, p.FileKiB)
}

// statProc reads the fd count, thread count and resident memory of pid.
func statProc(pid int) (procStat, error) {
	var s procStat
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.FDs = len(fds)
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "Threads:":
			s.Threads, _ = strconv.Atoi(f[1])
		case "VmRSS:":
			s.RSSKiB, _ = strconv.Atoi(f[1])
		case "RssAnon:":
			s.AnonKiB, _ = strconv.Atoi(f[1])
		case "RssFile:":
			s.FileKiB, _ = strconv.Atoi(f[1])
		}
	}
	return s, nil
}

// threadReport says what each OS thread of pid is doing (state, system call number or
// "running", wait channel) and which children pid has, for a thread count that did not come
// back: a thread blocked in a system call is needed, an idle one should have been ended.
func threadReport(pid int) string {
	var b strings.Builder
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, e := range tasks {
		dir := fmt.Sprintf("/proc/%d/task/%s", pid, e.Name())
		stat, _ := os.ReadFile(dir + "/stat")
		state := "?"
		if _, rest, ok := strings.Cut(string(stat), ") "); ok && len(rest) > 0 {
			state = rest[:1]
		}
		sc, _ := os.ReadFile(dir + "/syscall")
		call, _, _ := strings.Cut(strings.TrimSpace(string(sc)), " ")
		wchan, _ := os.ReadFile(dir + "/wchan")
		fmt.Fprintf(&b, "tid %s %s syscall %s wchan %s; ", e.Name(), state, call, wchan)
	}
	fmt.Fprintf(&b, "children %v", childrenOf(pid))
	return b.String()
}

// child is a process whose parent is some pid.
type child struct {
	Pid   int
	Comm  string
	State string
}

// childrenOf lists the processes whose parent is ppid (from /proc/*/stat).
func childrenOf(ppid int) []child {
	entries, _ := os.ReadDir("/proc")
	var out []child
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		s := string(raw)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 2 {
			continue
		}
		if pp, _ := strconv.Atoi(f[1]); pp == ppid {
			out = append(out, child{Pid: pid, Comm: s[open+1 : end], State: f[0]})
		}
	}
	return out
}

// zombiesOf lists the children of pid in state Z.
func zombiesOf(pid int) []child {
	var z []child
	for _, c := range childrenOf(pid) {
		if c.State == "Z" {
			z = append(z, c)
		}
	}
	return z
}

// waitNoZombies polls until pid has no zombie child, up to timeout, and returns those left.
func waitNoZombies(pid int, timeout time.Duration) []child {
	deadline := time.Now().Add(timeout)
	for {
		z := zombiesOf(pid)
		if len(z) == 0 || time.Now().After(deadline) {
			return z
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// shimOf returns the pid of the shim process serving container id (the one holding its socket
// address on its command line is not enough for grouped shims: use the socket's listener).
func shimOf(t *testing.T, d *harness.Daemon, id string) int {
	t.Helper()
	addr, err := d.ShimAddress(id)
	if err != nil {
		t.Fatal(err)
	}
	socket := strings.TrimPrefix(addr, "unix://")
	inode := socketInode(socket)
	for _, p := range d.ShimProcesses() {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.Pid))
		for _, fd := range fds {
			link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", p.Pid, fd.Name()))
			if inode != "" && link == "socket:["+inode+"]" {
				return p.Pid
			}
		}
	}
	t.Fatalf("no shim process listens on %s (shims: %v)", socket, d.ShimProcesses())
	return 0
}

// socketInode finds the inode of the listening unix socket bound to path (/proc/net/unix).
func socketInode(path string) string {
	raw, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		// Num RefCount Protocol Flags Type St Inode Path; Flags 00010000 = listening.
		if len(f) >= 8 && f[7] == path && f[3] == "00010000" {
			return f[6]
		}
	}
	return ""
}

// grouped is the spec option putting a container in shim group g.
func grouped(g string) oci.SpecOpts { return oci.WithAnnotations(map[string]string{sandboxKey: g}) }

// newTask creates container id (runtime rt, runtime options opts when not nil) running args
// and its task with null IO, without starting it.
func newTask(ctx context.Context, _ testing.TB, _ *harness.Daemon, c *containerd.Client, id, rt string, ropts *options.Options, specOpts []oci.SpecOpts, args ...string) (containerd.Container, containerd.Task, error) {
	img, err := c.GetImage(ctx, harness.ImageBusybox.Ref)
	if err != nil {
		return nil, nil, err
	}
	var runtimeOpts any
	if ropts != nil {
		runtimeOpts = ropts
	}
	all := append([]oci.SpecOpts{oci.WithImageConfig(img), oci.WithProcessArgs(args...)}, specOpts...)
	ctr, err := c.NewContainer(ctx, id, containerd.WithImage(img), containerd.WithNewSnapshot(id+"-snapshot", img),
		containerd.WithRuntime(rt, runtimeOpts), containerd.WithNewSpec(all...))
	if err != nil {
		return nil, nil, err
	}
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		_ = ctr.Delete(ctx, containerd.WithSnapshotCleanup)
		return nil, nil, err
	}
	return ctr, task, nil
}

// forceRemove kills and deletes a task and its container, ignoring errors (cleanup paths).
func forceRemove(ctx context.Context, ctr containerd.Container, task containerd.Task) {
	if task != nil {
		_ = task.Kill(ctx, 9)
		if ch, err := task.Wait(ctx); err == nil {
			select {
			case <-ch:
			case <-time.After(10 * time.Second):
			}
		}
		_, _ = task.Delete(ctx, containerd.WithProcessKill)
	}
	if ctr != nil {
		_ = ctr.Delete(ctx, containerd.WithSnapshotCleanup)
	}
}

// runtimeWrapper writes an executable shell script in a fresh 0755 dir that runs the pinned
// runc with all its arguments, after body (which sees the runc command as $cmd and the --log
// file as $log, and may exit early), and returns its path.
func runtimeWrapper(t *testing.T, runc, name, body string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cst-rt-") //nolint:usetesting // made 0755 below: t.TempDir's parent is 0700
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := `#!/bin/sh
# OCI runtime wrapper of the reliability tests: finds the runc command and --log, then runs body.
log= cmd= prev=
for a in "$@"; do
	case "$prev" in --log) log=$a ;; esac
	case "$a" in create|start|exec|delete|kill|state|run|update|pause|resume|ps|features)
		[ -z "$cmd" ] && [ "$prev" != --log ] && [ "$prev" != --root ] && cmd=$a ;;
	esac
	prev=$a
done
# fail MESSAGE: fail the way runc does, with MESSAGE in its json log and on stderr.
fail() {
	[ -n "$log" ] && printf '{"level":"error","msg":"%s","time":"2026-01-01T00:00:00Z"}\n' "$1" >>"$log"
	echo "$1" >&2
	exit 1
}
` + body + `
exec ` + runc + ` "$@"
`
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// median returns the median of ds (0 for none), and the max.
func medianMax(ds []time.Duration) (time.Duration, time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}

// runcBinary is runtime options selecting another OCI runtime binary.
func runcBinary(path string) *options.Options { return &options.Options{BinaryName: path} }

// fdLinks maps the fds of pid to what they point at.
func fdLinks(pid int) map[string]string {
	out := map[string]string{}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		out[fd.Name()] = link
	}
	return out
}

// newFDs lists the fds of now that are not in base (or point elsewhere), as "fd -> target".
func newFDs(base, now map[string]string) []string {
	var out []string
	for fd, link := range now {
		if base[fd] != link {
			out = append(out, fd+" -> "+link)
		}
	}
	slices.Sort(out)
	return out
}
