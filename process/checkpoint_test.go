//go:build linux

package process

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	shimio "github.com/custom-shim/containerd-shim-custom-v1/io"

	ocibundle "github.com/custom-shim/containerd-shim-custom-v1/bundle"
)

// fakeRuntime is an OCI runtime stand-in: it appends its arguments (one call per line) to
// record and, by verb:
//   - checkpoint: with FAKE_FAIL set, writes a dump.log into --work-path and a JSON error line
//     into --log, and fails like runc does when criu fails; with FAKE_NO_CRIU set, fails like
//     runc does when it finds no criu; else writes a marker image file;
//   - restore: records its fds 0-2 ("fds ..." line) and writes the pid $FAKE_PID to --pid-file;
//   - anything else succeeds.
const fakeRuntime = `
echo "$*" >> "$RECORD"
verb=""; log=""; work=""; pidfile=""; image=""
while [ $# -gt 0 ]; do
	case "$1" in
	--log) log=$2; shift ;;
	--work-path) work=$2; shift ;;
	--pid-file) pidfile=$2; shift ;;
	--image-path) image=$2; shift ;;
	--root|--log-format|--bundle|--parent-path|--manage-cgroups-mode) shift ;;
	-*) ;;
	*) [ -z "$verb" ] && verb=$1 ;;
	esac
	shift
done
case "$verb" in
checkpoint)
	if [ -n "$FAKE_NO_CRIU" ]; then
		printf '%s\n' '{"level":"error","msg":"CRIU version check failed: exec: \"criu\": executable file not found in $PATH","time":"x"}' >> "$log"
		exit 1
	fi
	if [ -n "$FAKE_FAIL" ]; then
		mkdir -p "$work"
		echo "Error (criu/cr-dump.c:1234): Dumping FAILED." > "$work/dump.log"
		printf '%s\n' '{"level":"error","msg":"criu failed: type NOTIFY errno 0\nlog file: '"$work"'/dump.log","time":"x"}' >> "$log"
		exit 1
	fi
	mkdir -p "$image" && echo dumped > "$image/inventory.img"
	[ -d "$work" ] && echo "$work" > "$image/work-seen" ;;
restore)
	# what criu would be given to inherit: the runtime's own fds 0-2
	echo "fds $(readlink /proc/$$/fd/0) $(readlink /proc/$$/fd/1) $(readlink /proc/$$/fd/2)" >> "$RECORD"
	printf '%s' "$FAKE_PID" > "$pidfile" ;;
esac
exit 0
`

// newFakeInit returns an Init in the given state whose runtime is fakeRuntime, and the file
// that records the runtime's calls.
func newFakeInit(t *testing.T, o *Options, st State) (*Init, string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "fake-runc")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+fakeRuntime), 0o755); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(dir, "record")
	t.Setenv("RECORD", record)
	bundle := filepath.Join(dir, "bundle")
	if err := os.Mkdir(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	o.BinaryName = bin
	i := &Init{proc: newProc(), id: "c1", bundle: bundle, rt: NewRuntime(o, bundle, "ns"), opts: o}
	switch st {
	case Created:
	case Running:
		i.cas(Created, Running)
	case Paused:
		i.cas(Created, Running)
		i.cas(Running, Pausing)
		i.cas(Pausing, Paused)
	case Stopped:
		i.SetExited(0, i.exitedAt)
	}
	return i, record
}

func calls(t *testing.T, record string) []string {
	t.Helper()
	b, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func TestCheckpointArgs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state State
		cfg   CheckpointConfig
		want  []string // substrings of the call, in order
		not   []string
	}{
		{"leave-running", Running, CheckpointConfig{},
			[]string{"checkpoint", "--image-path IMG", "--work-path BUNDLE/criu-work", "--leave-running", " c1"}, nil},
		{"exit", Running, CheckpointConfig{Exit: true},
			[]string{"checkpoint", "--image-path IMG"}, []string{"--leave-running"}},
		{"paused, all options", Paused, CheckpointConfig{
			Exit: true, OpenTCP: true, ExternalUnixSockets: true, Terminal: true, FileLocks: true,
			EmptyNamespaces: []string{"network"}, ParentPath: "/parent"},
			[]string{"checkpoint", "--parent-path /parent", "--tcp-established", "--ext-unix-sk", "--shell-job",
				"--file-locks", "--empty-ns network"}, []string{"--leave-running"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i, record := newFakeInit(t, &Options{}, tc.state)
			img := filepath.Join(t.TempDir(), "img")
			tc.cfg.ImagePath = img
			if err := i.Checkpoint(context.Background(), tc.cfg); err != nil {
				t.Fatal(err)
			}
			call := calls(t, record)[0]
			r := strings.NewReplacer("IMG", img, "BUNDLE", i.bundle)
			rest := call
			for _, w := range tc.want {
				w = r.Replace(w)
				k := strings.Index(rest, w)
				if k < 0 {
					t.Fatalf("call %q: want %q (in this order: %q)", call, w, tc.want)
				}
				rest = rest[k+len(w):]
			}
			for _, n := range tc.not {
				if strings.Contains(call, n) {
					t.Errorf("call %q: unexpected %q", call, n)
				}
			}
			if !strings.HasSuffix(call, " c1") {
				t.Errorf("call %q: container id is not last", call)
			}
			if _, err := os.Stat(filepath.Join(img, "inventory.img")); err != nil {
				t.Errorf("image not written: %v", err)
			}
			// The default work dir existed during the call and is gone after it.
			if seen, _ := os.ReadFile(filepath.Join(img, "work-seen")); strings.TrimSpace(string(seen)) != filepath.Join(i.bundle, "criu-work") {
				t.Errorf("work dir seen by the runtime = %q", seen)
			}
			if _, err := os.Stat(filepath.Join(i.bundle, "criu-work")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("default criu work dir left behind: %v", err)
			}
		})
	}
}

func TestCheckpointPathsFromOptions(t *testing.T) {
	dir := t.TempDir()
	img, work := filepath.Join(dir, "img"), filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	i, record := newFakeInit(t, &Options{CriuImagePath: img, CriuWorkPath: work}, Running)
	if err := i.Checkpoint(context.Background(), CheckpointConfig{}); err != nil {
		t.Fatal(err)
	}
	if call := calls(t, record)[0]; !strings.Contains(call, "--image-path "+img) || !strings.Contains(call, "--work-path "+work) {
		t.Fatalf("call %q: want the runtime options' CriuImagePath and CriuWorkPath", call)
	}
	if _, err := os.Stat(work); err != nil {
		t.Errorf("a work dir named by the options must be kept: %v", err)
	}
	// The request's paths win over the options'.
	img2, work2 := filepath.Join(dir, "img2"), filepath.Join(dir, "work2")
	if err := i.Checkpoint(context.Background(), CheckpointConfig{ImagePath: img2, WorkPath: work2}); err != nil {
		t.Fatal(err)
	}
	if call := calls(t, record)[1]; !strings.Contains(call, "--image-path "+img2) || !strings.Contains(call, "--work-path "+work2) {
		t.Fatalf("call %q: want the request's paths", call)
	}
}

func TestCheckpointFailurePointsAtCriuLog(t *testing.T) {
	i, _ := newFakeInit(t, &Options{}, Running)
	t.Setenv("FAKE_FAIL", "1")
	err := i.Checkpoint(context.Background(), CheckpointConfig{ImagePath: filepath.Join(t.TempDir(), "img")})
	if err == nil {
		t.Fatal("checkpoint succeeded")
	}
	kept := filepath.Join(i.bundle, CriuDumpLog)
	msg := err.Error()
	for _, want := range []string{"container c1", "checkpoint failed", "criu failed: type NOTIFY errno 0", "criu log: " + kept} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q: want %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error %q: want one line", msg)
	}
	if !errdefs.IsUnknown(err) {
		t.Errorf("error %v: want class Unknown", err)
	}
	if b, rerr := os.ReadFile(kept); rerr != nil || !strings.Contains(string(b), "Dumping FAILED") {
		t.Errorf("%s: %q, %v", kept, b, rerr)
	}
	if st := i.State(); st != Running {
		t.Errorf("state after a failed checkpoint = %s, want running", st)
	}
}

// A runtime that finds no criu: FailedPrecondition, naming the container and criu's trouble.
func TestCheckpointWithoutCriu(t *testing.T) {
	i, _ := newFakeInit(t, &Options{}, Running)
	t.Setenv("FAKE_NO_CRIU", "1")
	err := i.Checkpoint(context.Background(), CheckpointConfig{ImagePath: filepath.Join(t.TempDir(), "img")})
	if !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("error %v: want class FailedPrecondition", err)
	}
	for _, want := range []string{"container c1", "CRIU version check failed", "executable file not found"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q: want %q", err, want)
		}
	}
	if st := i.State(); st != Running {
		t.Errorf("state after a refused checkpoint = %s, want running", st)
	}
}

func TestCheckpointRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state State
		cfg   CheckpointConfig
		class func(error) bool
	}{
		{"created", Created, CheckpointConfig{ImagePath: "/x"}, errdefs.IsFailedPrecondition},
		{"stopped", Stopped, CheckpointConfig{ImagePath: "/x"}, errdefs.IsFailedPrecondition},
		{"no image path", Running, CheckpointConfig{}, errdefs.IsInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i, record := newFakeInit(t, &Options{}, tc.state)
			err := i.Checkpoint(context.Background(), tc.cfg)
			if !tc.class(err) || !strings.Contains(err.Error(), "c1") {
				t.Fatalf("error %v: wrong class or no container id", err)
			}
			if _, err := os.Stat(record); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the runtime was called")
			}
		})
	}
}

func TestDecodeCheckpointOptions(t *testing.T) {
	cfg, err := DecodeCheckpointOptions("", nil)
	if err != nil || cfg.Exit || cfg.ImagePath != "" {
		t.Fatalf("empty: %+v, %v", cfg, err)
	}
	v, err := proto.Marshal(&options.CheckpointOptions{
		Exit: true, OpenTcp: true, ExternalUnixSockets: true, Terminal: true, FileLocks: true,
		EmptyNamespaces: []string{"network"}, ImagePath: "/img", WorkPath: "/work", ParentPath: "/parent",
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err = DecodeCheckpointOptions("containerd.runc.v1.CheckpointOptions", v)
	want := CheckpointConfig{ImagePath: "/img", WorkPath: "/work", ParentPath: "/parent", Exit: true,
		OpenTCP: true, ExternalUnixSockets: true, Terminal: true, FileLocks: true, EmptyNamespaces: []string{"network"}}
	if err != nil || cfg.ImagePath != want.ImagePath || cfg.WorkPath != want.WorkPath || cfg.ParentPath != want.ParentPath ||
		!cfg.Exit || !cfg.OpenTCP || !cfg.ExternalUnixSockets || !cfg.Terminal || !cfg.FileLocks ||
		len(cfg.EmptyNamespaces) != 1 || cfg.EmptyNamespaces[0] != "network" {
		t.Fatalf("decoded %+v, %v; want %+v", cfg, err, want)
	}
	_, err = DecodeCheckpointOptions("types.example.com/foo.Bar", []byte{1})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "types.example.com/foo.Bar") {
		t.Fatalf("unknown type: %v", err)
	}
	_, err = DecodeCheckpointOptions("", []byte{1})
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("value without type: %v", err)
	}
}

// fakeRestoreDir makes a dir with fakeRuntime (bin), its call record and an empty bundle, for
// a restore whose pid is this process's.
func fakeRestoreDir(t *testing.T) (dir, bin, record, bundle string) {
	t.Helper()
	dir = t.TempDir()
	bin = filepath.Join(dir, "fake-runc")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+fakeRuntime), 0o755); err != nil {
		t.Fatal(err)
	}
	record = filepath.Join(dir, "record")
	t.Setenv("RECORD", record)
	t.Setenv("FAKE_PID", strconv.Itoa(os.Getpid()))
	bundle = filepath.Join(dir, "bundle")
	if err := os.Mkdir(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, bin, record, bundle
}

// A container created from a checkpoint runs no runtime at Create, is Created with no pid,
// and Start runs `restore --detach` with the image, the pid file and no subreaper.
func TestRestoreDeferredToStart(t *testing.T) {
	dir, bin, record, bundle := fakeRestoreDir(t)
	img := filepath.Join(dir, "img")
	i, err := CreateInit(context.Background(), InitConfig{
		ID: "c1", Bundle: bundle, Spec: &ocibundle.Spec{Process: &ocibundle.Process{Cwd: "/"}}, Namespace: "ns", Stdio: shimio.Stdio{},
		Options:    &Options{BinaryName: bin, NoPivotRoot: true, CriuWorkPath: filepath.Join(dir, "work")},
		Checkpoint: img, ParentCheckpoint: filepath.Join(dir, "parent"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer i.Delete(context.Background())
	if _, err := os.Stat(record); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the runtime was called at create: %v", calls(t, record))
	}
	if st, pid := i.State(), i.Pid(); st != Created || pid != 0 || !i.Restoring() {
		t.Fatalf("after create: state %s pid %d restoring %v; want created, 0, true", st, pid, i.Restoring())
	}
	if err := i.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	call := calls(t, record)[0]
	for _, want := range []string{"restore ", "--image-path " + img, "--work-path " + filepath.Join(dir, "work"),
		"--parent-path " + filepath.Join(dir, "parent"), "--detach", "--pid-file " + filepath.Join(bundle, InitPidFile),
		"-no-subreaper" /* go-runc spells it with one dash; runc accepts both */, "--no-pivot", "--bundle " + bundle} {
		if !strings.Contains(call, want) {
			t.Errorf("restore call %q: want %q", call, want)
		}
	}
	if !strings.HasSuffix(call, " c1") {
		t.Errorf("restore call %q: container id is not last", call)
	}
	if st, pid := i.State(), i.Pid(); st != Running || pid != os.Getpid() || i.Restoring() {
		t.Fatalf("after start: state %s pid %d restoring %v; want running, %d, false", st, pid, i.Restoring(), os.Getpid())
	}
	if err := i.Start(context.Background()); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("second start: %v, want FailedPrecondition", err)
	}
}

// A restore with containerd's fifos as stdio hands the runtime pipes, never the fifos: runc gives
// its stdio to criu, which reconnects the pipes recorded in the image's descriptors.json to
// them (a fifo cannot be given back: it lies outside the container).
func TestRestoreWithFifoStdioGetsPipes(t *testing.T) {
	dir, bin, record, bundle := fakeRestoreDir(t)
	var fifos [3]string
	for k, name := range []string{"stdin", "stdout", "stderr"} {
		fifos[k] = filepath.Join(dir, name)
		if err := unix.Mkfifo(fifos[k], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The client's reader of the output fifos, as containerd's cio has them open.
	for _, p := range fifos[1:] {
		f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
	}
	i, err := CreateInit(context.Background(), InitConfig{
		ID: "c1", Bundle: bundle, Spec: &ocibundle.Spec{Process: &ocibundle.Process{Cwd: "/"}}, Namespace: "ns",
		Stdio:      shimio.Stdio{Stdin: fifos[0], Stdout: fifos[1], Stderr: fifos[2]},
		Options:    &Options{BinaryName: bin},
		Checkpoint: filepath.Join(dir, "img"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer i.Delete(context.Background())
	if err := i.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var fds []string
	for _, line := range calls(t, record) {
		if rest, ok := strings.CutPrefix(line, "fds "); ok {
			fds = strings.Fields(rest)
		}
	}
	if len(fds) != 3 {
		t.Fatalf("the runtime recorded no fds: %q", calls(t, record))
	}
	for k, fd := range fds {
		if !strings.HasPrefix(fd, "pipe:") {
			t.Errorf("restore: the runtime's fd %d is %q, want a pipe", k, fd)
		}
	}
}
