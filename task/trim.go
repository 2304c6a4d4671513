//go:build linux

package task

import (
	"runtime/debug"
	"sync"
	"time"

	"github.com/custom-shim/containerd-shim-custom-v1/process"
)

// trimDelay is how long the shim must go without a Create, Start or Delete before it returns
// its free heap pages to the OS: long enough that a burst (a pod's containers, an exec storm)
// costs one trim, short against the life of an idle shim.
const trimDelay = 200 * time.Millisecond

// trimmer gives back, once the shim has gone quiet, what the last burst of requests left behind.
//
// Heap pages: the shim's live heap is under 1 MiB, and the GC already runs at a ~1 MiB goal,
// but the pages that a Create or Delete used and the GC freed stay resident: the background
// scavenger keeps what the heap goal allows (measured: 300 KiB with 1 container, 700 KiB with 10,
// held for the shim's whole life). A trim is one forced GC of that small heap (1-2 ms of CPU, a
// stop-the-world under 1 ms) plus madvise of the free pages, off the request path.
//
// OS threads: the Go runtime keeps every thread a burst of blocking system calls made it start;
// the trim ends them down to what a quiet shim needs (process.EndIdleThreads, QuietThreads). If
// a runc child is alive at that moment (a Kill, a Stats), no thread may end, and the trim is tried
// again trimDelay later.
type trimmer struct {
	t       *time.Timer
	mu      sync.Mutex // a timer Reset after it fired may start the next trim beside this one
	stopped bool
}

// newTrimmer arms the first trim, for what setting up the server left behind.
func newTrimmer() *trimmer { return newTrimmerFunc(trimThreadsAndHeap) }

// trimThreadsAndHeap is the shim's trim; it reports false if it must be tried again.
func trimThreadsAndHeap() bool {
	_, done := process.EndIdleThreads(process.QuietThreads())
	debug.FreeOSMemory()
	return done
}

// newTrimmerFunc is newTrimmer with another trim (tests).
func newTrimmerFunc(trim func() bool) *trimmer {
	t := &trimmer{}
	t.mu.Lock() // the first trim may fire before t.t is set
	defer t.mu.Unlock()
	t.t = time.AfterFunc(trimDelay, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if !t.stopped && !trim() {
			t.t.Reset(trimDelay)
		}
	})
	return t
}

// after (re)arms the trim: it runs trimDelay after the last call. Safe for concurrent use.
func (t *trimmer) after() {
	if t != nil {
		t.t.Reset(trimDelay)
	}
}

// stop disarms the trim for good; a trim running meanwhile finishes first.
func (t *trimmer) stop() {
	if t != nil {
		t.t.Stop()
		t.mu.Lock()
		t.stopped = true
		t.mu.Unlock()
	}
}
