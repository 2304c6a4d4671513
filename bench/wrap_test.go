//go:build bench && linux

package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
)

// wrapConfig is <daemon dir>/bench-wrap.json: the real binary of each shim name, and where to
// log the timings.
type wrapConfig struct {
	Targets map[string]string
	Log     string
}

// wrap is the test binary acting as a shim binary (linked as <daemon dir>/bin/<shim name>): it
// runs the real shim with the same arguments, stdio and environment, and appends
// "<name> <id> <action> <nanoseconds>" to the log. The real `start` re-executes itself through
// /proc/self/exe, so the shim daemon it leaves behind is the real binary, not this wrapper.
func wrap() int {
	name := filepath.Base(os.Args[0])
	cfgPath := filepath.Join(filepath.Dir(filepath.Dir(os.Args[0])), "bench-wrap.json")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench wrapper: %v\n", err)
		return 1
	}
	var cfg wrapConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "bench wrapper: %s: %v\n", cfgPath, err)
		return 1
	}
	target := cfg.Targets[name]
	if target == "" {
		fmt.Fprintf(os.Stderr, "bench wrapper: no target for %s\n", name)
		return 1
	}
	id, action := "-", "-"
	for i, a := range os.Args[1:] {
		if (a == "-id" || a == "--id") && i+2 < len(os.Args) {
			id = os.Args[i+2]
		}
	}
	if len(os.Args) > 1 {
		action = os.Args[len(os.Args)-1]
	}
	cmd := exec.Command(target, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	t0 := time.Now()
	err = cmd.Run()
	d := time.Since(t0)
	if f, ferr := os.OpenFile(cfg.Log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); ferr == nil {
		fmt.Fprintf(f, "%s %s %s %d\n", name, id, action, d.Nanoseconds())
		f.Close()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench wrapper: %v\n", err)
		return 1
	}
	return 0
}

// startAction: wall time of the shim binary's `start` as containerd runs it, without a live
// shim (it spawns one) and with a live grouped shim (it returns that shim's address).
func (b *bench) startAction() {
	n := size("START_ACTION_N", 20, 4)
	self, err := os.Executable()
	if err != nil {
		b.t.Fatal(err)
	}
	bin := filepath.Join(b.d.Dir, "bin")
	targets := map[string]string{"containerd-shim-custom-v1": b.paths.Shim, "containerd-shim-runc-v2": b.d.Spec.RefShim}
	logPath := filepath.Join(b.d.Dir, "bench-wrap.log")
	raw, _ := json.Marshal(wrapConfig{Targets: targets, Log: logPath})
	if err := os.WriteFile(filepath.Join(b.d.Dir, "bench-wrap.json"), raw, 0o644); err != nil {
		b.t.Fatal(err)
	}
	// containerd caches the path it found on PATH (bin/<name>), not its target: relinking that
	// path swaps the binary under it.
	relink := func(to func(name string) string) {
		for name := range targets {
			link := filepath.Join(bin, name)
			tmp := link + ".new"
			_ = os.Remove(tmp)
			if err := os.Symlink(to(name), tmp); err != nil {
				b.t.Fatal(err)
			}
			if err := os.Rename(tmp, link); err != nil {
				b.t.Fatal(err)
			}
		}
	}
	relink(func(string) string { return self })
	b.t.Cleanup(func() { relink(func(name string) string { return targets[name] }) })

	solo := map[string]containerd.Container{}
	member := map[string]containerd.Container{}
	for _, rt := range []string{ref, ours} {
		g := "startaction-" + short(rt)
		keeper := b.mustContainer("sa-keep-"+short(rt), rt, []oci.SpecOpts{grouped(g)}, "sleep", "1000000")
		if _, err := b.startTask(keeper); err != nil {
			b.t.Fatalf("%s: keeper: %v", rt, err)
		}
		solo[rt] = b.mustContainer("sa-solo-"+short(rt), rt, nil, "/bin/true")
		member[rt] = b.mustContainer("sa-member-"+short(rt), rt, []oci.SpecOpts{grouped(g)}, "/bin/true")
	}
	createDelete := func(ctr containerd.Container) {
		task, err := ctr.NewTask(b.ctx, cio.NullIO)
		if err != nil {
			b.t.Fatalf("%s: %v", ctr.ID(), err)
		}
		if _, err := task.Delete(b.ctx, containerd.WithProcessKill); err != nil {
			b.t.Fatalf("%s: delete: %v", ctr.ID(), err)
		}
		b.hub.forget(exitKey{ctr.ID(), ctr.ID()})
	}
	for i := -1; i < n; i++ {
		for _, rt := range pair(i + 2) {
			createDelete(solo[rt])
			createDelete(member[rt])
		}
	}
	// Read the log: skip each container's first (warm-up) start.
	raw, err = os.ReadFile(logPath)
	if err != nil {
		b.t.Fatal(err)
	}
	samples := map[string][]float64{}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || f[2] != "start" || !strings.HasPrefix(f[1], "sa-") || strings.HasPrefix(f[1], "sa-keep-") {
			continue
		}
		ns, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil {
			continue
		}
		if !seen[f[1]] {
			seen[f[1]] = true
			continue
		}
		samples[f[1]] = append(samples[f[1]], ms(time.Duration(ns)))
	}
	b.add(row{Figure: "`start` action, no live shim (spawns one)", Unit: "ms",
		Ours: samples["sa-solo-ours"], Ref: samples["sa-solo-ref"], Target: "≤ 0.8", Max: 0.8,
		Note: "wall time of the binary as containerd runs it"})
	b.add(row{Figure: "`start` action, live grouped shim (reuse)", Unit: "ms",
		Ours: samples["sa-member-ours"], Ref: samples["sa-member-ref"], Target: "≤ 0.8", Max: 0.8})
}
