//go:build linux

package task

import (
	"runtime/debug"
	"time"
)

// trimDelay is how long the shim must go without a Create, Start or Delete before it returns
// its free heap pages to the OS: long enough that a burst (a pod's containers, an exec storm)
// costs one trim, short against the life of an idle shim.
const trimDelay = 200 * time.Millisecond

// trimmer returns the heap pages freed by the last burst of requests to the OS once the shim
// has gone quiet. The shim's live heap is under 1 MiB, and the GC already runs at a ~1 MiB goal,
// but the pages that a Create or Delete used and the GC freed stay resident: the background
// scavenger keeps what the heap goal allows (measured: 300 KiB with 1 container, 700 KiB with 10,
// held for the shim's whole life). A trim is one forced GC of that small heap (1-2 ms of CPU, a
// stop-the-world under 1 ms) plus madvise of the free pages, off the request path.
type trimmer struct{ t *time.Timer }

// newTrimmer arms the first trim, for what setting up the server left behind.
func newTrimmer() *trimmer { return newTrimmerFunc(debug.FreeOSMemory) }

// newTrimmerFunc is newTrimmer with another trim (tests).
func newTrimmerFunc(trim func()) *trimmer { return &trimmer{t: time.AfterFunc(trimDelay, trim)} }

// after (re)arms the trim: it runs trimDelay after the last call. Safe for concurrent use.
func (t *trimmer) after() {
	if t != nil {
		t.t.Reset(trimDelay)
	}
}

func (t *trimmer) stop() {
	if t != nil {
		t.t.Stop()
	}
}
