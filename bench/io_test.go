//go:build bench && linux

package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
	"unsafe"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"golang.org/x/sys/unix"
)

// counter is an io.Writer that counts and discards, noting when the first and the last bytes
// came: the rate is taken between them, so the task's start and exit handling (timed by other
// figures) do not dilute it.
type counter struct {
	mu          sync.Mutex
	n           int64
	first       int64 // bytes of the first write
	start, last time.Time
}

func (c *counter) Write(p []byte) (int, error) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		c.start, c.first = now, int64(len(p))
	}
	c.n += int64(len(p))
	c.last = now
	return len(p), nil
}

func (c *counter) bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// rate is MiB/s between the first and the last write, after checking that want bytes came.
func (c *counter) rate(want int64) (float64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n < want {
		return 0, fmt.Errorf("received %d of %d bytes", c.n, want)
	}
	d := c.last.Sub(c.start)
	if d <= 0 {
		return 0, fmt.Errorf("no time between the first and the last write")
	}
	return float64(c.n-c.first) / (1 << 20) / d.Seconds(), nil
}

func ddArgs(mib int) []string {
	return []string{"dd", "if=/dev/zero", "bs=1048576", "count=" + strconv.Itoa(mib)}
}

// hostDD is the dd of the floors: the host's static busybox (the image's dd is the same
// build), else coreutils.
func hostDD() string {
	if _, err := os.Stat("/bin/busybox"); err == nil {
		return "/bin/busybox"
	}
	return ""
}

func ddCommand(mib int) *exec.Cmd {
	if bb := hostDD(); bb != "" {
		return exec.Command(bb, ddArgs(mib)...)
	}
	return exec.Command("dd", ddArgs(mib)[1:]...)
}

// stdoutThroughput: MiB of zeros written by dd in the container, read by the client through
// containerd's stdout fifo; floor: the same dd writing into a plain pipe read by this process.
func (b *bench) stdoutThroughput() {
	mib := size("STDOUT_MIB", 1024, 64)
	reps := size("STDOUT_REPS", 3, 1)
	ctrs := map[string]containerd.Container{}
	for _, rt := range []string{ref, ours} {
		ctrs[rt] = b.mustContainer("stdout-"+short(rt), rt, nil, ddArgs(mib)...)
	}
	rate := map[string][]float64{}
	var floor []float64
	for i := 0; i < reps; i++ {
		f, err := pipeFloor(mib)
		if err != nil {
			b.t.Fatalf("pipe floor: %v", err)
		}
		floor = append(floor, f)
		for _, rt := range pair(i) {
			r, err := b.throughput(ctrs[rt], mib, false)
			if err != nil {
				b.t.Fatalf("%s: %v", rt, err)
			}
			rate[rt] = append(rate[rt], r)
		}
	}
	b.add(row{Figure: fmt.Sprintf("stdout throughput (%d MiB through the fifo)", mib), Unit: "MiB/s",
		Ours: rate[ours], Ref: rate[ref], Floor: floor, Target: "≥ 2.0", Min: 2.0, Note: "floor: a plain pipe"})
}

// ttyThroughput: the same with a terminal; floor: dd writing to a pty read by this process.
func (b *bench) ttyThroughput() {
	mib := size("TTY_MIB", 256, 16)
	reps := size("TTY_REPS", 3, 1)
	ctrs := map[string]containerd.Container{}
	for _, rt := range []string{ref, ours} {
		ctrs[rt] = b.mustContainer("tty-"+short(rt), rt, []oci.SpecOpts{oci.WithTTY}, ddArgs(mib)...)
	}
	rate := map[string][]float64{}
	var floor []float64
	na := ""
	for i := 0; i < reps; i++ {
		f, err := ptyFloor(mib)
		if err != nil {
			b.t.Fatalf("pty floor: %v", err)
		}
		floor = append(floor, f)
		for _, rt := range pair(i) {
			if rt == ours && na != "" {
				continue
			}
			r, err := b.throughput(ctrs[rt], mib, true)
			if err != nil && rt == ours {
				na = err.Error()
				b.t.Logf("ours with a terminal: %v", err)
				continue
			}
			if err != nil {
				b.t.Fatalf("%s: %v", rt, err)
			}
			rate[rt] = append(rate[rt], r)
		}
	}
	r := row{Figure: fmt.Sprintf("TTY throughput (%d MiB through the pty and fifo)", mib), Unit: "MiB/s",
		Ours: rate[ours], Ref: rate[ref], Floor: floor, Target: "≥ 1.0× floor", FloorMin: 1.0,
		Note: "floor: a plain pty; the target is ours/floor (the pty bounds both shims)"}
	if na != "" {
		r.Ours, r.OursNA = nil, na
	} else {
		r.Note += fmt.Sprintf(": ours/floor %s", num(median(r.Ours)/median(r.Floor)))
	}
	b.add(r)
}

// throughput runs a task of ctr (dd of mib MiB) with its stdout counted, and returns MiB/s
// from Start to the exit with all output received.
func (b *bench) throughput(ctr containerd.Container, mib int, tty bool) (float64, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Minute)
	defer cancel()
	out := &counter{}
	opts := []cio.Opt{cio.WithStreams(nil, out, io.Discard)}
	if tty {
		opts = []cio.Opt{cio.WithStreams(nil, out, nil), cio.WithTerminal}
	}
	task, err := ctr.NewTask(ctx, cio.NewCreator(opts...))
	if err != nil {
		return 0, fmt.Errorf("create task: %w", err)
	}
	defer func() { _, _ = task.Delete(b.ctx, containerd.WithProcessKill) }()
	ch, err := task.Wait(ctx)
	if err != nil {
		return 0, err
	}
	if err := task.Start(ctx); err != nil {
		return 0, fmt.Errorf("start: %w", err)
	}
	var st containerd.ExitStatus
	select {
	case st = <-ch:
	case <-ctx.Done():
		return 0, fmt.Errorf("no exit within 10 minutes (%d bytes received)", out.bytes())
	}
	task.IO().Wait()
	b.hub.forget(exitKey{ctr.ID(), ctr.ID()})
	if st.ExitCode() != 0 {
		return 0, fmt.Errorf("dd exited %d (%v) after %d bytes", st.ExitCode(), st.Error(), out.bytes())
	}
	return out.rate(int64(mib) << 20)
}

// pipeFloor: dd into a pipe that os/exec copies to a counter (32 KiB reads, like cio's copy).
func pipeFloor(mib int) (float64, error) {
	out := &counter{}
	cmd := ddCommand(mib)
	cmd.Stdout = out
	if err := cmd.Run(); err != nil {
		return 0, err
	}
	return out.rate(int64(mib) << 20)
}

// ptyFloor: dd writing to the slave of a fresh pty; this process reads the master (32 KiB).
func ptyFloor(mib int) (float64, error) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer master.Close()
	var unlock int32
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, master.Fd(), unix.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		return 0, e
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		return 0, err
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return 0, err
	}
	out := &counter{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 32<<10)
		for {
			k, err := master.Read(buf)
			if k > 0 {
				_, _ = out.Write(buf[:k])
			}
			if err != nil { // EIO once the slave is closed everywhere
				return
			}
		}
	}()
	cmd := ddCommand(mib)
	cmd.Stdout, cmd.Stderr = slave, slave
	err = cmd.Run()
	slave.Close()
	<-done
	if err != nil {
		return 0, err
	}
	return out.rate(int64(mib) << 20)
}
