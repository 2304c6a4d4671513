//go:build linux

package tune

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// Idle OS threads. The Go runtime starts an OS thread whenever goroutines wait to run while
// others are blocked in system calls, and keeps every thread it ever started. Under load the
// shim's requests block in many calls at once (unmounts, reads of /proc/self/mountinfo,
// unlinks, the runtime's own madvise: a perf trace of a 300-lifecycle, 3,000-exec run saw
// umount2 average 30 ms and 300 unlinks over 1 ms), so after a burst the shim kept 3 to 5
// threads more than before it, for its whole life. A thread ends only when a goroutine locked
// to it (runtime.LockOSThread) returns without unlocking: EndIdleThreads does that.
//
// The hazard is the parent-death signal. runc is started with PdeathSignal SIGKILL (so a dying
// shim takes its half-done runc calls with it, as with the reference shim), and Linux sends it
// when the thread that forked the child ends, not the process. So a thread may end only while
// no such child is alive: Monitor counts them from before the fork to the end of the wait, and
// EndIdleThreads runs only at zero and holds new forks off while it works.
var children struct {
	sync.Mutex
	live int // children started by Monitor and not yet waited for
}

func childStarting() {
	children.Lock()
	children.live++
	children.Unlock()
}

func childDone() {
	children.Lock()
	children.live--
	children.Unlock()
}

// EndIdleThreads ends OS threads of the process until keep remain, and returns how many it
// ended. It ends none, and reports false, while a child started through Monitor is alive. A
// Start whose Wait never comes (go-runc returns early when closing the stdio after a start
// fails) leaves the count above zero: threads are then kept, which is the safe side.
//
// Each thread ended is the one running the ending goroutine; the runtime hands its processor
// to an idle thread, so ending more threads than are idle only makes the runtime start new
// ones: keep should be what the shim needs when it is quiet (QuietThreads).
func EndIdleThreads(keep int) (ended int, ok bool) {
	children.Lock()
	defer children.Unlock()
	if children.live > 0 {
		return 0, false
	}
	// A round may fall short: a goroutine locked to the main thread does not end it (the runtime
	// parks that thread for good instead), and ended threads leave /proc a moment later.
	for round := 0; round < 3; round++ {
		n := ThreadCount() - keep
		if n <= 0 {
			break
		}
		for i := 0; i < n; i++ {
			endThread()
		}
		ended += n
		time.Sleep(2 * time.Millisecond)
	}
	return ended, true
}

// QuietThreads is how many OS threads a quiet process keeps: one per processor (GOMAXPROCS), so
// that the next requests run without starting threads; blocked, the goroutines that hold a
// thread for good in a system call, which no trim can end; and four of the Go runtime's own: the
// main thread, sysmon, the template thread that starts threads for locked goroutines, and the one
// waiting in the network poller. A fixed count, so that every trim ends at the same place.
func QuietThreads(blocked int) int { return runtime.GOMAXPROCS(0) + 4 + blocked }

// endThread ends the OS thread that runs a new goroutine: it returns locked to it.
func endThread() {
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		close(done)
	}()
	<-done
}

// ThreadCount is the number of OS threads of the process (Threads: in /proc/self/status), or 0
// if it cannot be read.
func ThreadCount() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	_, rest, ok := bytes.Cut(b, []byte("\nThreads:"))
	if !ok {
		return 0
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	n, err := strconv.Atoi(string(bytes.TrimSpace(line)))
	if err != nil {
		return 0
	}
	return n
}
