//go:build linux

package installer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Line is a containerd release line: 1.6, 1.7, 2.0 ... 2.4.
type Line struct {
	Major, Minor int
}

func (l Line) String() string { return fmt.Sprintf("%d.%d", l.Major, l.Minor) }

// AtLeast reports whether l is major.minor or later.
func (l Line) AtLeast(major, minor int) bool {
	return l.Major > major || (l.Major == major && l.Minor >= minor)
}

// Supported reports whether the installer knows how to configure l: 1.6, 1.7 and every 2.x
// (a later 2.x than 2.4 is treated as 2.4; config version 3 is still accepted there).
func (l Line) Supported() bool {
	return (l.Major == 1 && l.Minor >= 6) || l.Major == 2
}

// criPlugin is the plugin whose table holds the CRI runtime handlers on l.
func (l Line) criPlugin() string {
	if l.Major >= 2 {
		return "io.containerd.cri.v1.runtime"
	}
	return "io.containerd.grpc.v1.cri"
}

// configVersion is the config version the drop-in declares on l: 3 on 2.x (2.3+ reads it and
// migrates it to 4 as it does the operator's file; 2.0–2.2 know no 4), 2 on 1.x.
func (l Line) configVersion() int {
	if l.Major >= 2 {
		return 3
	}
	return 2
}

// mergesPluginTables reports whether imports merge plugin tables key by key (2.x) rather than
// replace them whole (1.x); see the package doc.
func (l Line) mergesPluginTables() bool { return l.Major >= 2 }

// optionsByPath reports whether the runtime options must go in a file named by ConfigPath: 1.6's
// CRI plugin drops every other key of a non-runc runtime's options table.
func (l Line) optionsByPath() bool { return l.Major == 1 && l.Minor == 6 }

// lineRE finds major.minor in a version string: 1.6.20~ds1, v1.7.35, 2.4.2+unknown, v2.2.9.
var lineRE = regexp.MustCompile(`^v?([0-9]+)\.([0-9]+)(\.[0-9]+)?`)

// ParseLine parses a line ("2.4") or a version ("v2.4.2", "1.6.20~ds1").
func ParseLine(s string) (Line, error) {
	m := lineRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return Line{}, fmt.Errorf("not a containerd version: %q", s)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return Line{Major: major, Minor: minor}, nil
}

// ParseVersionOutput reads `containerd --version`: "containerd <package> <version> <revision>",
// e.g. "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3" (Debian),
// "containerd github.com/containerd/containerd/v2 v2.2.9 <rev>", "containerd containerd.io
// 1.7.27 <rev>" (Docker's package). It returns the line and the version field.
func ParseVersionOutput(out string) (Line, string, error) {
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	f := strings.Fields(line)
	if len(f) < 3 || f[0] != "containerd" {
		return Line{}, "", fmt.Errorf("unexpected `containerd --version` output %q", line)
	}
	l, err := ParseLine(f[2])
	if err != nil {
		return Line{}, "", fmt.Errorf("unexpected `containerd --version` output %q: %w", line, err)
	}
	return l, f[2], nil
}

// Containerd is what the installer asks of the containerd binary. Tests replace it.
type Containerd interface {
	// Version returns the output of `containerd --version`.
	Version(ctx context.Context) (string, error)
	// Dump returns `containerd --config <config> config dump`: the config containerd would run
	// with, imports merged and defaults filled in.
	Dump(ctx context.Context, config string) ([]byte, error)
}

// commandTimeout bounds each containerd invocation (it only reads files).
const commandTimeout = 30 * time.Second

// Binary is the containerd binary at a path (or a name looked up on PATH).
type Binary string

// Version runs `containerd --version`.
func (b Binary) Version(ctx context.Context) (string, error) {
	out, err := b.run(ctx, "--version")
	return string(out), err
}

// Dump runs `containerd --config config config dump`.
func (b Binary) Dump(ctx context.Context, config string) ([]byte, error) {
	return b.run(ctx, "--config", config, "config", "dump")
}

func (b Binary) run(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, string(b), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:] // containerd's last line says what failed; earlier ones are warnings
		}
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) && msg != "" {
			return nil, fmt.Errorf("%s %s: %s", b, strings.Join(args, " "), msg)
		}
		return nil, fmt.Errorf("%s %s: %w", b, strings.Join(args, " "), err)
	}
	return stdout.Bytes(), nil
}
