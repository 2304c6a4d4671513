//go:build bench && linux

package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	eventtypes "github.com/containerd/containerd/api/events"
	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl/v2"
)

// ---- configuration ----

// quick is BENCH_QUICK=1: small sizes for a smoke run.
var quick = os.Getenv("BENCH_QUICK") != ""

// size reads BENCH_<name> (an integer), else def (or quickDef with BENCH_QUICK=1).
func size(name string, def, quickDef int) int {
	v, err := strconv.Atoi(os.Getenv("BENCH_" + name))
	switch {
	case err == nil && v > 0:
	case quick:
		v = quickDef
	default:
		v = def
	}
	sizesMu.Lock()
	defer sizesMu.Unlock()
	if _, seen := sizes[name]; !seen {
		sizeOrder = append(sizeOrder, name)
	}
	sizes[name] = v
	return v
}

var (
	sizesMu   sync.Mutex
	sizes     = map[string]int{}
	sizeOrder []string
)

// sizesLine lists the sizes the run used, as BENCH_<name>=value.
func sizesLine() string {
	sizesMu.Lock()
	defer sizesMu.Unlock()
	var parts []string
	for _, n := range sizeOrder {
		parts = append(parts, fmt.Sprintf("BENCH_%s=%d", n, sizes[n]))
	}
	if quick {
		parts = append([]string{"BENCH_QUICK=1"}, parts...)
	}
	return strings.Join(parts, " ")
}

// ---- statistics ----

func median(xs []float64) float64 { return quantile(xs, 0.5) }
func p95(xs []float64) float64    { return quantile(xs, 0.95) }

// quantile is the nearest-rank quantile q of xs (NaN when empty).
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	if i < 0 {
		i = 0
	}
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ---- /proc ----

// memStat is a shim's memory, KiB.
type memStat struct {
	RssAnon, VmRSS, Pss float64 //nolint:revive // VmRSS: the field of /proc/PID/status it holds
}

func (m memStat) sub(o memStat) memStat {
	return memStat{m.RssAnon - o.RssAnon, m.VmRSS - o.VmRSS, m.Pss - o.Pss}
}

func (m memStat) add(o memStat) memStat {
	return memStat{m.RssAnon + o.RssAnon, m.VmRSS + o.VmRSS, m.Pss + o.Pss}
}

func (m memStat) div(n float64) memStat { return memStat{m.RssAnon / n, m.VmRSS / n, m.Pss / n} }

// readMem reads RssAnon and VmRSS (/proc/PID/status) and Pss (/proc/PID/smaps_rollup).
func readMem(pid int) (memStat, error) {
	var m memStat
	status, err := readKeyed(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	rollup, err := readKeyed(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return m, err
	}
	m.RssAnon, m.VmRSS, m.Pss = status["RssAnon"], status["VmRSS"], rollup["Pss"]
	if m.VmRSS == 0 || m.Pss == 0 {
		return m, fmt.Errorf("pid %d: no VmRSS/Pss in /proc", pid)
	}
	return m, nil
}

// readKeyed parses "Key:   value kB" lines.
func readKeyed(path string) (map[string]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		if n, err := strconv.ParseFloat(fields[0], 64); err == nil {
			out[k] = n
		}
	}
	return out, sc.Err()
}

// procCounts is the number of open fds and threads of a process.
type procCounts struct{ FDs, Threads int }

func (p procCounts) String() string { return fmt.Sprintf("%d fds/%d thr", p.FDs, p.Threads) }

func readCounts(pid int) (procCounts, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return procCounts{}, err
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return procCounts{}, err
	}
	return procCounts{FDs: len(fds), Threads: len(tasks)}, nil
}

// shimOf returns the shim of a task: the parent of its init (both shims are the child
// subreaper of their containers), checked by its command line.
func shimOf(initPid uint32) (int, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", initPid))
	if err != nil {
		return 0, err
	}
	// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 2 {
		return 0, fmt.Errorf("short /proc/%d/stat", initPid)
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return 0, err
	}
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ppid))
	if err != nil {
		return 0, err
	}
	argv0, _, _ := strings.Cut(string(cmd), "\x00")
	if !strings.HasPrefix(filepath.Base(argv0), "containerd-shim") {
		return 0, fmt.Errorf("parent %d of %d is %q, not a shim", ppid, initPid, argv0)
	}
	return ppid, nil
}

// ---- exit events ----

type exitKey struct{ Container, ID string } // ID: exec id, or the container id for init

// exitHub records every /tasks/exit the client receives: when, and how many times per process.
type exitHub struct {
	mu      sync.Mutex
	count   map[exitKey]int
	first   map[exitKey]time.Time
	stamps  map[exitKey]exitStamps
	waiters map[exitKey][]chan time.Time
	errs    atomic.Int64
}

// subscribeExits subscribes to /tasks/exit of namespace ns; it returns once the stream is
// known to be live (probed with a namespace label update, which publishes /namespaces/update).
func subscribeExits(ctx context.Context, c *containerd.Client, ns string) (*exitHub, error) {
	h := &exitHub{count: map[exitKey]int{}, first: map[exitKey]time.Time{}, stamps: map[exitKey]exitStamps{},
		waiters: map[exitKey][]chan time.Time{}}
	ch, errs := c.Subscribe(ctx, `topic=="/tasks/exit"`, `topic=="/namespaces/update"`)
	live := make(chan struct{})
	var once sync.Once
	go func() {
		for {
			select {
			case env := <-ch:
				if env == nil {
					continue
				}
				now := time.Now()
				if env.Topic == "/namespaces/update" {
					once.Do(func() { close(live) })
					continue
				}
				v, err := typeurl.UnmarshalAny(env.Event)
				if err != nil {
					h.errs.Add(1)
					continue
				}
				e, ok := v.(*eventtypes.TaskExit)
				if !ok || env.Namespace != ns {
					continue
				}
				h.record(exitKey{e.ContainerID, e.ID}, now, exitStamps{Exited: e.ExitedAt.AsTime(), Sent: env.Timestamp})
			case <-errs:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	for i := 0; i < 50; i++ {
		if err := c.NamespaceService().SetLabel(ctx, ns, "bench-probe", strconv.Itoa(i)); err != nil {
			return nil, fmt.Errorf("probe the event stream: %w", err)
		}
		select {
		case <-live:
			return h, nil
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil, errors.New("event stream not live after 50 probes")
}

// exitStamps are the times a shim put on an exit event: the exit as the shim saw it (the event's
// ExitedAt: when it reaped the process) and the envelope's timestamp (when the shim handed the
// event to its publisher). With the client's receive time they split an exit's latency into the
// shim's part and containerd's (both clocks are this machine's).
type exitStamps struct{ Exited, Sent time.Time }

func (h *exitHub) record(k exitKey, now time.Time, st exitStamps) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.count[k]++
	if h.count[k] == 1 {
		h.first[k] = now
		h.stamps[k] = st
	}
	for _, w := range h.waiters[k] {
		w <- now
	}
	delete(h.waiters, k)
}

// expect returns a channel receiving when the first exit of k arrives (at once if it has).
func (h *exitHub) expect(k exitKey) <-chan time.Time {
	w := make(chan time.Time, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if t, ok := h.first[k]; ok {
		w <- t
		return w
	}
	h.waiters[k] = append(h.waiters[k], w)
	return w
}

// stampsOf returns the shim's stamps on the first exit event of k.
func (h *exitHub) stampsOf(k exitKey) exitStamps {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stamps[k]
}

// forget drops what was recorded for k (a container id reused by successive tasks).
func (h *exitHub) forget(k exitKey) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.count, k)
	delete(h.first, k)
	delete(h.stamps, k)
	delete(h.waiters, k)
}

// tally counts, among keys, those seen exactly once, never and more than once.
func (h *exitHub) tally(keys []exitKey) (once, missing, dup int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range keys {
		switch h.count[k] {
		case 0:
			missing++
		case 1:
			once++
		default:
			dup++
		}
	}
	return
}

// eventForwarder sends events to containerd's ttrpc events service the way a shim does
// (Events.Forward): the floor of an exit event's delivery.
type eventForwarder struct{ client *ttrpc.Client }

func dialEvents(address string) (*eventForwarder, error) {
	conn, err := net.Dial("unix", address)
	if err != nil {
		return nil, fmt.Errorf("dial containerd's ttrpc address: %w", err)
	}
	return &eventForwarder{client: ttrpc.NewClient(conn)}, nil
}

func (f *eventForwarder) Close() error { return f.client.Close() }

// timeForward forwards a /tasks/exit of a container that does not exist (exec id) in namespace
// ns and returns how long it took to reach h's subscription.
func (f *eventForwarder) timeForward(ctx context.Context, h *exitHub, ns, id string) (time.Duration, error) {
	k := exitKey{"bench-floor", id}
	ev := h.expect(k)
	sent := time.Now()
	body, err := typeurl.MarshalAnyToProto(&eventtypes.TaskExit{ContainerID: k.Container, ID: id, Pid: 1,
		ExitStatus: 137, ExitedAt: protobuf.ToTimestamp(sent)})
	if err != nil {
		return 0, err
	}
	_, err = eventsapi.NewTTRPCEventsClient(f.client).Forward(namespaces.WithNamespace(ctx, ns),
		&eventsapi.ForwardRequest{Envelope: &types.Envelope{Timestamp: protobuf.ToTimestamp(sent), Namespace: ns,
			Topic: "/tasks/exit", Event: body}})
	if err != nil {
		return 0, fmt.Errorf("forward: %w", err)
	}
	select {
	case got := <-ev:
		h.forget(k)
		return got.Sub(sent), nil
	case <-time.After(30 * time.Second):
		return 0, fmt.Errorf("forwarded /tasks/exit %v not received within 30s", k)
	}
}
