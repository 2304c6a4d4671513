//go:build linux

package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// CompatLines are the containerd release lines of the compatibility matrix (`make compat`),
// oldest first. 1.6 is Debian's package, 2.4 the pinned build of `make deps`; the others are built
// by hack/compat-deps.sh from the modules in hack/compat/containerd-<line>.
var CompatLines = []string{"1.6", "1.7", "2.0", "2.1", "2.2", "2.3", "2.4"}

// How a shim answered containerd's `start`, as the daemon recorded it (see ShimVersion).
const (
	// ProtocolLegacy: the plain socket address on stdout (legacy start), which a daemon takes for
	// a version 2 shim (task API v2). What our shim answers every daemon before 2.3.
	ProtocolLegacy = "legacy v2"
	// ProtocolLegacyJSON: JSON BootstrapParams version 3 on stdout (legacy start, task API v3):
	// what containerd-shim-runc-v2 2.0–2.2 answers.
	ProtocolLegacyJSON = "legacy JSON v3"
	// ProtocolBootstrap: a protobuf BootstrapResult version 3, the start protocol of containerd
	// 2.3+ (it sends BootstrapParams on stdin).
	ProtocolBootstrap = "bootstrap v3"
)

// CompatSpec is a DaemonSpec of the matrix with its release line.
type CompatSpec struct {
	DaemonSpec
	Line string // "1.6" ... "2.4"
}

// Legacy reports whether the line's daemon predates the bootstrap protocol (2.3): it starts
// shims with the legacy `start` input.
func (s CompatSpec) Legacy() bool { return s.Line < "2.3" }

// Protocol names the answer of a shim this daemon recorded as version (ShimVersion): on a
// legacy daemon a version 3 can only be JSON, on 2.3+ our shim answers BootstrapParams with a
// protobuf BootstrapResult.
func (s CompatSpec) Protocol(version int) string {
	switch {
	case version == 2:
		return ProtocolLegacy
	case s.Legacy():
		return ProtocolLegacyJSON
	}
	return ProtocolBootstrap
}

// WantCustomProtocol is how our shim must answer this line's daemon: the plain address before
// 2.3, a BootstrapResult from 2.3 on (manager/main_linux.go:runStart).
func (s CompatSpec) WantCustomProtocol() string {
	if s.Legacy() {
		return ProtocolLegacy
	}
	return ProtocolBootstrap
}

// CompatDir is where hack/compat-deps.sh puts the builds: CST_COMPAT_OUT, default
// <repo>/_output/compat.
func (p Paths) CompatDir() string {
	return envOr("CST_COMPAT_OUT", filepath.Join(p.Repo, "_output", "compat"))
}

// CompatDaemons returns the matrix's daemons for lines (nil: every line of CompatLines), oldest
// first. It does not change Daemons: the 1.6 and 2.4 entries are the ones Daemons returns.
func CompatDaemons(p Paths, lines []string) ([]CompatSpec, error) {
	if lines == nil {
		lines = CompatLines
	}
	base := Daemons(p)
	var out []CompatSpec
	for _, line := range CompatLines { // keeps the matrix order whatever the caller's order
		if !slices.Contains(lines, line) {
			continue
		}
		var spec DaemonSpec
		switch line {
		case "2.4":
			spec = base[0]
		case "1.6":
			spec = base[1]
		default:
			bin := filepath.Join(p.CompatDir(), line, "bin")
			spec = DaemonSpec{
				Name:          "containerd-" + line,
				Containerd:    filepath.Join(bin, "containerd"),
				Ctr:           filepath.Join(bin, "ctr"),
				RefShim:       filepath.Join(bin, "containerd-shim-runc-v2"),
				ConfigVersion: 3,
				DisabledPlugins: []string{
					"io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime",
					"io.containerd.nri.v1.nri",
				},
			}
			if strings.HasPrefix(line, "1.") {
				spec.ConfigVersion = 2
				spec.DisabledPlugins = []string{"io.containerd.grpc.v1.cri", "io.containerd.nri.v1.nri"}
			}
		}
		out = append(out, CompatSpec{DaemonSpec: spec, Line: line})
	}
	for _, line := range lines {
		if !slices.Contains(CompatLines, line) {
			return out, fmt.Errorf("unknown containerd line %q (known: %s)", line, strings.Join(CompatLines, " "))
		}
	}
	return out, nil
}

// connectingLine is containerd 2.x's log line for a shim connection (core/runtime/v2/shim.go
// makeConnection): `msg="connecting to shim <id>" address=... protocol=ttrpc version=<n>`.
var connectingLine = regexp.MustCompile(`msg="connecting to shim ([^"]+)".* version=(\d+)`)

// ShimVersion reports the shim version containerd recorded for the shim of container id, while
// its task exists: containerd 2.x stores the parsed `start` answer in the bundle's
// bootstrap.json ("version" 2 for a plain address, else the version the shim announced) and logs
// it when it connects ("connecting to shim <id>" ... version=<n>); 1.x writes no bootstrap.json
// and reads the legacy answer, a version 2 address (the bundle's address file). Where both the
// file and the log speak, they must agree.
func (d *Daemon) ShimVersion(id string) (int, error) {
	bundle := d.Bundle(id)
	version := 0
	raw, err := os.ReadFile(filepath.Join(bundle, "bootstrap.json"))
	switch {
	case err == nil:
		var b struct {
			Version int `json:"version"`
		}
		if err := json.Unmarshal(raw, &b); err != nil {
			return 0, fmt.Errorf("%s/bootstrap.json: %w", bundle, err)
		}
		version = b.Version
	case errors.Is(err, os.ErrNotExist):
		if _, err := os.Stat(filepath.Join(bundle, "address")); err != nil {
			return 0, fmt.Errorf("neither bootstrap.json nor address in %s: %w", bundle, err)
		}
		version = 2
	default:
		return 0, err
	}
	if version != 2 && version != 3 {
		return 0, fmt.Errorf("%s/bootstrap.json: unknown shim version %d", bundle, version)
	}
	logs, _ := os.ReadFile(d.logPath)
	for _, m := range connectingLine.FindAllStringSubmatch(string(logs), -1) {
		if m[1] == id && m[2] != fmt.Sprint(version) {
			return 0, fmt.Errorf("shim of %s: version %d in the bundle, %s in containerd's log", id, version, m[2])
		}
	}
	return version, nil
}

// Version is the first line of `containerd --version`.
func (s DaemonSpec) Version() string { return firstLine(s.Containerd, "--version") }

// Upgrade stops containerd gracefully (SIGTERM: its shims and containers keep running, as in a
// package upgrade) and starts next's containerd on the same root, state, address and config
// file, with next's reference shim on PATH. The config file is kept as the old daemon had it: a
// 2.x daemon reads (and migrates) a version 2 config of 1.x. A new `ctr events` collector (of
// next's ctr) replaces d.Events.
func (d *Daemon) Upgrade(t *testing.T, next DaemonSpec) {
	t.Helper()
	if d.exited == nil {
		t.Fatalf("Upgrade: %s was never started", d.Spec.Name)
	}
	select {
	case <-d.exited:
		t.Fatalf("Upgrade: %s exited before: %v", d.Spec.Name, d.exitErr)
	default:
	}
	for _, bin := range []string{next.Containerd, next.Ctr, next.RefShim} {
		Require(t, Executable(bin), "%s is missing (run `make compat-deps`)", bin)
	}
	if d.events != nil && d.events.Process != nil {
		_ = d.events.Process.Kill()
		_ = d.events.Wait()
	}
	d.stop(t)
	link := filepath.Join(d.Dir, "bin", "containerd-shim-runc-v2")
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(next.RefShim, link); err != nil {
		t.Fatal(err)
	}
	_ = os.Rename(d.logPath, d.logPath+".before-upgrade")
	prev := d.Spec.Name
	d.Spec = next
	if err := d.start(); err != nil {
		t.Fatalf("upgrade %s → %s: %v%s", prev, next.Name, err, d.logTail(40))
	}
	if err := d.startEvents(); err != nil {
		t.Fatalf("ctr events after the upgrade: %v", err)
	}
}

// UpgradeConfigPlugins is the union of the plugins the specs disable, for a daemon whose config
// must also suit the daemon it is upgraded to (1.x ignores the 2.x names it does not know).
func UpgradeConfigPlugins(specs ...DaemonSpec) []string {
	var out []string
	for _, s := range specs {
		for _, p := range s.DisabledPlugins {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}
