//go:build linux

package tune

import (
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/log"
)

// trimDelay is how long the shim must go without a Create, Start or Delete, and with no event
// left to deliver, before it returns its free heap pages to the OS: long enough that a burst (a
// pod's containers, an exec storm) costs one trim, short against the life of an idle shim.
const trimDelay = 200 * time.Millisecond

// Trimmer gives back, once the shim has gone quiet, what the last burst of requests left behind.
//
// Heap pages: the shim's live heap is under 1 MiB, and the GC already runs at a ~1 MiB goal,
// but the pages that a Create or Delete used and the GC freed stay resident: the background
// scavenger keeps what the heap goal allows (measured: 300 KiB with 1 container, 700 KiB with 10,
// held for the shim's whole life). A trim is one forced GC of that small heap (1-2 ms of CPU, a
// stop-the-world under 1 ms) plus madvise of the free pages, off the request path.
//
// OS threads: the Go runtime keeps every thread a burst of blocking system calls made it start;
// the trim ends them down to what a quiet shim needs (EndIdleThreads, QuietThreads). If
// a runc child is alive at that moment (a Kill, a Stats), no thread may end: the threads alone
// are tried again, trimDelay later, then twice as late each time up to trimRetryMax (a child
// that is never waited for, see EndIdleThreads, must not keep an idle shim waking up).
type Trimmer struct {
	t       *time.Timer
	mu      sync.Mutex // a timer Reset after it fired may start the next trim beside this one
	stopped bool
	retry   atomic.Int64 // 0: the next trim is a full one; else the delay (ns) after this retry
}

// trimRetryMax bounds the delay between retries of the thread trim.
const trimRetryMax = 30 * time.Second

// NewTrimmer arms the first trim, for what setting up the server left behind. blocked is the
// number of the shim's goroutines that hold an OS thread for good (QuietThreads).
func NewTrimmer(blocked int) *Trimmer {
	keep := QuietThreads(blocked)
	// The shim's trim: threads, then (not on a retry) heap pages; false if the threads must be
	// tried again.
	return newTrimmerFunc(func(retry bool) bool {
		ended, done := EndIdleThreads(keep)
		if ended > 0 && log.GetLevel() >= log.DebugLevel {
			log.L.Debugf("trim: ended %d idle OS threads, %d left (quiet: %d)", ended, ThreadCount(), keep)
		}
		if !retry {
			debug.FreeOSMemory()
		}
		return done
	})
}

// newTrimmerFunc is NewTrimmer with another trim (tests).
func newTrimmerFunc(trim func(retry bool) bool) *Trimmer {
	t := &Trimmer{}
	t.mu.Lock() // the first trim may fire before t.t is set
	defer t.mu.Unlock()
	t.t = time.AfterFunc(trimDelay, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.stopped {
			return
		}
		retry := time.Duration(t.retry.Load())
		if trim(retry != 0) {
			t.retry.Store(0)
			return
		}
		retry = min(max(2*retry, trimDelay), trimRetryMax)
		log.L.Debugf("trim: a runc child is alive, OS threads kept; again in %s", retry)
		t.retry.Store(int64(retry))
		t.t.Reset(retry)
	})
	return t
}

// After (re)arms the trim: a full one runs trimDelay after the last call. Safe for concurrent
// use.
func (t *Trimmer) After() {
	if t != nil {
		t.retry.Store(0)
		t.t.Reset(trimDelay)
	}
}

// Stop disarms the trim for good; a trim running meanwhile finishes first.
func (t *Trimmer) Stop() {
	if t != nil {
		t.t.Stop()
		t.mu.Lock()
		t.stopped = true
		t.mu.Unlock()
	}
}
