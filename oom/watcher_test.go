//go:build linux

package oom

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/custom-shim/containerd-shim-custom-v1/internal/shimtest"
)

// waitTimeout bounds waits for something the watcher's goroutine must do; it is not a speed
// assertion.
const waitTimeout = 10 * time.Second

func TestParseKV(t *testing.T) {
	v1 := "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"
	kv, err := parseKV([]byte(v1))
	if err != nil || kv["oom_kill"] != 3 || kv["under_oom"] != 0 || len(kv) != 3 {
		t.Fatalf("v1 memory.oom_control: %v %v", kv, err)
	}
	v2 := "low 0\nhigh 0\nmax 12\noom 4\noom_kill 2\noom_group_kill 0\n"
	kv, err = parseKV([]byte(v2))
	if err != nil || kv["oom_kill"] != 2 || kv["oom"] != 4 {
		t.Fatalf("v2 memory.events: %v %v", kv, err)
	}
	kv, err = parseKV([]byte("populated 0\nfrozen 0\n\n"))
	if err != nil || kv["populated"] != 0 || len(kv) != 2 {
		t.Fatalf("cgroup.events: %v %v", kv, err)
	}
	if kv, err := parseKV([]byte("x -5\n")); err != nil || kv["x"] != 0 {
		t.Fatalf("negative value: %v %v", kv, err)
	}
	for _, bad := range []string{"oom_kill\n", "oom_kill 1 2\n", "oom_kill one\n"} {
		if _, err := parseKV([]byte(bad)); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: want InvalidArgument, got %v", bad, err)
		}
	}
}

// fakeV2 is a directory with the two files a cgroup v2 watch reads. inotify works on regular
// files, so the v2 watcher runs for real against it, without a cgroup v2 memory controller.
type fakeV2 struct {
	t   *testing.T
	dir string
}

func newFakeV2(t *testing.T) *fakeV2 {
	f := &fakeV2{t: t, dir: t.TempDir()}
	f.set(0, 0, true)
	return f
}

// set rewrites the files in place (O_TRUNC write: one IN_MODIFY at least, as the kernel's
// cgroup_file_notify gives).
func (f *fakeV2) set(oom, oomKill uint64, populated bool) {
	f.t.Helper()
	pop := 0
	if populated {
		pop = 1
	}
	mem := fmt.Sprintf("low 0\nhigh 0\nmax %d\noom %d\noom_kill %d\noom_group_kill 0\n", oom, oom, oomKill)
	if err := os.WriteFile(filepath.Join(f.dir, "memory.events"), []byte(mem), 0o644); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "cgroup.events"), fmt.Appendf(nil, "populated %d\nfrozen 0\n", pop), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// recorder counts callbacks per container.
type recorder struct {
	mu    sync.Mutex
	calls map[string]int
	ch    chan string
}

func newRecorder() *recorder { return &recorder{calls: map[string]int{}, ch: make(chan string, 1024)} }

func (r *recorder) onOOM(id string) {
	r.mu.Lock()
	r.calls[id]++
	r.mu.Unlock()
	r.ch <- id
}

func (r *recorder) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[id]
}

func (r *recorder) wait(t *testing.T, id string) {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case got := <-r.ch:
			if got == id {
				return
			}
		case <-timer.C:
			t.Fatalf("no OOM callback for %s within %s", id, waitTimeout)
		}
	}
}

func newTestWatcher(t *testing.T, m Mode, r *recorder) *Watcher {
	t.Helper()
	w, err := NewMode(m, r.onOOM)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return w
}

// watchedV2 is a V2 watcher with a fake cgroup v2 directory watched as container c1.
func watchedV2(t *testing.T) (*recorder, *Watcher, *fakeV2) {
	t.Helper()
	r := newRecorder()
	w := newTestWatcher(t, V2, r)
	f := newFakeV2(t)
	if err := w.AddDir("c1", f.dir); err != nil {
		t.Fatal(err)
	}
	return r, w, f
}

// released reports whether id's fd has been closed (or id is not watched).
func (w *Watcher) released(id string) bool {
	w.mu.Lock()
	e := w.byID[id]
	w.mu.Unlock()
	if e == nil {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.src == nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, waitTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// B.17: on cgroup v2 the kill counter is oom_kill; "oom" alone (an OOM situation that killed
// nothing) is not reported. A kill is reported once, by the loop.
func TestV2CountsOOMKillNotOOM(t *testing.T) {
	r, w, f := watchedV2(t)
	f.set(1, 0, true)
	if w.Check("c1") {
		t.Fatal("Check reported an OOM without a kill")
	}
	f.set(2, 1, true)
	r.wait(t, "c1")
	if w.Check("c1") {
		t.Fatal("Check reported a kill the loop had already reported")
	}
	if n := r.count("c1"); n != 1 {
		t.Fatalf("callbacks: %d, want 1", n)
	}
	f.set(3, 2, true)
	r.wait(t, "c1")
	if n := r.count("c1"); n != 2 {
		t.Fatalf("callbacks after a second kill: %d, want 2", n)
	}
}

// Check made right after a kill is counted always returns with that kill reported, exactly
// once, whether Check or the loop got to it first (the init-exit path relies on this).
func TestCheckReportsBeforeReturning(t *testing.T) {
	r, w, f := watchedV2(t)
	for i := uint64(1); i <= 200; i++ {
		f.set(i, i, true)
		w.Check("c1")
		if n := r.count("c1"); n != int(i) {
			t.Fatalf("after kill %d and Check: %d callbacks", i, n)
		}
	}
}

// Kills counted before the watch began (a cgroup reused by a new container) are not reported.
func TestBaselineNotReported(t *testing.T) {
	r := newRecorder()
	w := newTestWatcher(t, V2, r)
	f := newFakeV2(t)
	f.set(5, 5, true)
	if err := w.AddDir("c1", f.dir); err != nil {
		t.Fatal(err)
	}
	if w.Check("c1") || r.count("c1") != 0 {
		t.Fatal("kills from before the watch reported")
	}
	f.set(6, 6, true)
	w.Check("c1")
	if r.count("c1") != 1 {
		t.Fatal("new kill not reported")
	}
}

// cgroup.events populated 0: the group is empty for good, the watch releases its fd (after
// reporting the last kill) and keeps the entry until Stop.
func TestV2UnpopulatedReleases(t *testing.T) {
	r, w, f := watchedV2(t)
	f.set(1, 1, false)
	r.wait(t, "c1")
	waitFor(t, "fd released after populated 0", func() bool { return w.released("c1") })
	if w.Len() != 1 {
		t.Fatalf("entry dropped before Stop: Len %d", w.Len())
	}
	if w.Check("c1") || r.count("c1") != 1 {
		t.Fatalf("Check after release: %d callbacks", r.count("c1"))
	}
	w.Stop("c1")
	if w.Len() != 0 {
		t.Fatalf("Len after Stop: %d", w.Len())
	}
}

// A removed group (its files gone) releases the watch too.
func TestV2RemovedGroupReleases(t *testing.T) {
	r, w, f := watchedV2(t)
	if err := os.Remove(filepath.Join(f.dir, "memory.events")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "fd released after removal", func() bool { return w.released("c1") })
	w.Stop("c1")
	if r.count("c1") != 0 {
		t.Fatal("a removal reported as a kill")
	}
}

func TestAddErrors(t *testing.T) {
	r, w, f := watchedV2(t)
	if err := w.AddDir("c1", f.dir); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("duplicate: want AlreadyExists, got %v", err)
	}
	err := w.AddDir("c2", filepath.Join(f.dir, "missing"))
	if !errdefs.IsNotFound(err) {
		t.Fatalf("missing group: want NotFound, got %v", err)
	}
	if want := "container c2"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name the container", err)
	}
	w.Stop("c1")
	w.Stop("c1") // no-op
	w.Stop("unknown")
	if w.Check("unknown") {
		t.Fatal("Check of an unknown container reported")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.AddDir("c3", f.dir); !errdefs.IsUnavailable(err) {
		t.Fatalf("after Close: want Unavailable, got %v", err)
	}
	if _, err := NewMode(Mode(7), r.onOOM); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bad mode: %v", err)
	}
}

// B.20 without root: 1000 add/stop cycles of the same id leave no entry and no fd, and the
// 1000th watch still reports.
func TestCyclesLeaveNothing(t *testing.T) {
	r := newRecorder()
	w := newTestWatcher(t, V2, r)
	f := newFakeV2(t)
	base := shimtest.OpenFDs(t)
	for i := 1; i <= 1000; i++ {
		if err := w.AddDir("same-id", f.dir); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if i == 1000 {
			f.set(1, 1, true)
			r.wait(t, "same-id")
		}
		w.Stop("same-id")
	}
	if w.Len() != 0 {
		t.Fatalf("Len after cycles: %d", w.Len())
	}
	if now := shimtest.OpenFDs(t); now != base {
		t.Fatalf("open fds: %d before, %d after 1000 cycles", base, now)
	}
	if n := r.count("same-id"); n != 1 {
		t.Fatalf("callbacks: %d, want 1", n)
	}
}

// Close releases every watch and the watcher's own fds, and stops its goroutine.
func TestCloseReleasesEverything(t *testing.T) {
	base := shimtest.OpenFDs(t)
	r := newRecorder()
	w, err := NewMode(V2, r.onOOM)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		f := newFakeV2(t)
		if err := w.AddDir(fmt.Sprintf("c%d", i), f.dir); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case <-w.done:
	default:
		t.Fatal("goroutine still running after Close")
	}
	if w.Len() != 0 {
		t.Fatalf("Len after Close: %d", w.Len())
	}
	if now := shimtest.OpenFDs(t); now != base {
		t.Fatalf("open fds: %d before, %d after Close", base, now)
	}
}

func TestModeString(t *testing.T) {
	if V1.String() != "cgroup v1" || V2.String() != "cgroup v2" {
		t.Fatal(V1.String(), V2.String())
	}
	if _, err := V1.open(""); err == nil {
		t.Fatal("open of an empty dir succeeded")
	}
	if _, err := Mode(0).open(t.TempDir()); !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Fatalf("unknown mode: %v", err)
	}
}

// fakeSource is a scripted source: tests set what the next drain and read return.
type fakeSource struct {
	mu       sync.Mutex
	notified bool
	kills    uint64
	gone     bool
	efd      int
}

func newFakeSource(t *testing.T) *fakeSource {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeSource{efd: fd}
}

func (f *fakeSource) fd() int { return f.efd }
func (f *fakeSource) drain() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.notified
	f.notified = false
	return n, nil
}
func (f *fakeSource) read() (uint64, bool, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.kills, !f.gone, f.gone, nil
}
func (f *fakeSource) close() error { return unix.Close(f.efd) }

func (f *fakeSource) set(notified bool, kills uint64, gone bool) {
	f.mu.Lock()
	f.notified, f.kills, f.gone = notified, kills, gone
	f.mu.Unlock()
}

// pending reports whether id awaits a recheck.
func (w *Watcher) isPending(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.byID[id]
	_, ok := w.pending[e]
	return ok
}

// The v1 accounting: a notification comes before its kill is counted; it makes the entry
// pending and the timer's recheck reports the kill once counted; a storm of notifications
// around one kill gives one report; the notification a removal sends is not an OOM. (The
// fake's fd never wakes the loop: Check and the timer drive it.)
func TestNotificationBeforeCount(t *testing.T) {
	r := newRecorder()
	w := newTestWatcher(t, V1, r)
	f := newFakeSource(t)
	if err := w.addSource("c1", f); err != nil {
		t.Fatal(err)
	}
	f.set(true, 0, false)
	if w.Check("c1") || r.count("c1") != 0 {
		t.Fatal("a notification without a counted kill was reported")
	}
	if !w.isPending("c1") {
		t.Fatal("notification without a counted kill: not pending")
	}
	f.set(false, 1, false) // the kernel counts the kill: the recheck reports it
	r.wait(t, "c1")
	waitFor(t, "pending cleared", func() bool { return !w.isPending("c1") })
	for range 50 { // storm of notifications, no new kill
		f.set(true, 1, false)
		w.Check("c1")
	}
	if n := r.count("c1"); n != 1 {
		t.Fatalf("callbacks after a notification storm: %d, want 1", n)
	}
	f.set(false, 3, false) // two kills, seen at once: one report
	if !w.Check("c1") || r.count("c1") != 2 || w.isPending("c1") {
		t.Fatalf("Check after two more kills: %d callbacks, pending %v", r.count("c1"), w.isPending("c1"))
	}
	f.set(true, 0, true) // removal signal
	if w.Check("c1") || r.count("c1") != 2 || w.isPending("c1") {
		t.Fatal("removal reported as an OOM, or left pending")
	}
}

// A notification whose kill never comes (the OOM resolved without a kill) stops being
// rechecked after recheckTries.
func TestPendingGivesUp(t *testing.T) {
	r := newRecorder()
	w := newTestWatcher(t, V1, r)
	f := newFakeSource(t)
	if err := w.addSource("c1", f); err != nil {
		t.Fatal(err)
	}
	f.set(true, 0, false)
	w.Check("c1")
	waitFor(t, "recheck gives up", func() bool { return !w.isPending("c1") })
	if r.count("c1") != 0 {
		t.Fatal("reported an OOM without a kill")
	}
	w.Stop("c1")
}
