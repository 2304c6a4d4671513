//go:build linux

package installer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
)

// Options configure Install and Uninstall. Paths are as the installer sees them: in a
// DaemonSet, the host's directories mounted into the container.
type Options struct {
	Config string // the operator's containerd config file, e.g. /etc/containerd/config.toml
	BinDir string // where containerd finds shims (on its PATH), e.g. /usr/local/bin
	Shim   string // the shim binary to install
	// Line overrides the line `containerd --version` reports (e.g. "2.4").
	Line string
	// Handlers to install; nil means HandlersFor(line).
	Handlers []string
	// SystemdCgroup is "auto" (as the CRI's default runtime has it), "true" or "false".
	SystemdCgroup string
	// BinaryName is the OCI runtime the handlers run ("" = runc).
	BinaryName string
	// Restart runs RestartCommand (through sh -c) when containerd's config changed.
	Restart        bool
	RestartCommand string
	// DryRun checks and prints the drop-in, and leaves everything as it was.
	DryRun bool
	// Force uninstalls even while shims run from the installed binary.
	Force bool
	// Version is the installer's own version, recorded in the drop-in.
	Version string
	Out     io.Writer // progress messages
}

func (o *Options) printf(format string, args ...any) {
	if o.Out != nil {
		_, _ = fmt.Fprintf(o.Out, format+"\n", args...) // progress only: a lost line changes nothing
	}
}

// Install installs the shim binary and the runtime handlers (see the package doc). On any
// failure after it started changing files it puts back what was there.
func Install(ctx context.Context, o Options, c Containerd) (retErr error) {
	line, err := detectLine(ctx, o, c)
	if err != nil {
		return err
	}
	handlers := o.Handlers
	if handlers == nil {
		handlers = HandlersFor(line)
	}
	if err := checkHandlers(line, handlers); err != nil {
		return err
	}
	cfg, err := readOperatorConfig(o.Config)
	if err != nil {
		return err
	}
	dropInFile := DropInPath(o.Config, cfg.Imports)
	if dropInFile == "" {
		return noImportRefusal(o.Config, cfg.Imports)
	}
	sum, err := fileSHA256(o.Shim)
	if err != nil {
		return fmt.Errorf("the shim binary to install: %w", err)
	}
	d := &dropIn{line: line, handlers: handlers, options: RuntimeOptions{BinaryName: o.BinaryName}}
	d.record = Record{
		Installer: o.Version, Line: line.String(),
		Binary: filepath.Join(o.BinDir, ShimName), BinarySHA256: sum,
	}
	if line.optionsByPath() {
		if d.optionsFile, err = optionsPath(o.Config, cfg.Imports); err != nil {
			return err
		}
		d.record.OptionsFile = d.optionsFile
	}

	// Set our old drop-in aside: the "before" dump must be the operator's config alone.
	st, err := setAside(dropInFile, d.optionsFile)
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil || o.DryRun {
			if err := st.restore(); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("put back the previous state: %w", err))
			}
		}
	}()
	d.record.CreatedDir = st.record.CreatedDir // a directory an earlier install created is still ours
	if err := plan(ctx, o, c, d); err != nil {
		return err
	}
	if err := st.createDir(filepath.Dir(dropInFile), &d.record); err != nil {
		return err
	}
	content, err := d.render()
	if err != nil {
		return err
	}
	if err := st.write(ctx, o, c, d, dropInFile, content); err != nil {
		return err
	}
	if o.DryRun {
		o.printf("dry run: containerd %s would load this drop-in, %s:\n\n%s", line, dropInFile, content)
		return nil
	}
	replaced, err := installBinary(o.Shim, d.record.Binary, sum)
	if err != nil {
		return err
	}
	if replaced {
		o.printf("installed %s", d.record.Binary)
	} else {
		o.printf("%s is up to date", d.record.Binary)
	}
	changed := !bytes.Equal(st.oldDropIn, content) || !bytes.Equal(st.oldOptions, st.newOptions)
	o.printf("containerd %s: handlers %s in %s%s", line, strings.Join(handlers, ", "), dropInFile,
		map[bool]string{true: "", false: " (unchanged)"}[changed])
	return finish(ctx, o, changed)
}

// detectLine asks containerd for its line, unless the options name it.
func detectLine(ctx context.Context, o Options, c Containerd) (Line, error) {
	var line Line
	if o.Line != "" {
		l, err := ParseLine(o.Line)
		if err != nil {
			return Line{}, err
		}
		line = l
	} else {
		out, err := c.Version(ctx)
		if err != nil {
			return Line{}, fmt.Errorf("find the containerd version: %w", err)
		}
		l, v, err := ParseVersionOutput(out)
		if err != nil {
			return Line{}, err
		}
		o.printf("containerd %s (line %s)", v, l)
		line = l
	}
	if !line.Supported() {
		return Line{}, refuse("containerd %s is not supported (1.6, 1.7 and 2.x are)", line)
	}
	return line, nil
}

// plan takes the dump without our drop-in and fills in what depends on it: the systemd cgroup
// option and, on 1.x, the CRI table the drop-in must carry.
func plan(ctx context.Context, o Options, c Containerd, d *dropIn) error {
	raw, err := c.Dump(ctx, o.Config)
	if err != nil {
		return fmt.Errorf("containerd cannot load its config as it is (before the install): %w", err)
	}
	before, err := parseDump(d.line, raw)
	if err != nil {
		return err
	}
	if taken := before.conflicts(d.handlers); len(taken) > 0 {
		return refuse("containerd's config already defines the runtime handler(s) %s, not through this "+
			"installer: remove them, or install other handlers (-handlers)", strings.Join(taken, ", "))
	}
	switch o.SystemdCgroup {
	case "", "auto":
		d.options.SystemdCgroup = before.defaultSystemdCgroup()
	case "true", "false":
		d.options.SystemdCgroup = o.SystemdCgroup == "true"
	default:
		return fmt.Errorf("-systemd-cgroup must be auto, true or false, not %q", o.SystemdCgroup)
	}
	o.printf("runtime options: SystemdCgroup = %v%s", d.options.SystemdCgroup,
		map[bool]string{true: fmt.Sprintf(", BinaryName = %q", d.options.BinaryName)}[d.options.BinaryName != ""])
	if !d.line.mergesPluginTables() {
		d.criTable = before.criTable()
		if d.criTable == nil {
			return refuse("containerd %s has no CRI plugin table in its config dump (is the CRI plugin "+
				"disabled?): there is nothing to add a runtime handler to", d.line)
		}
	}
	d.before = before
	return nil
}

// finish restarts containerd if asked and needed, or says that it is needed.
func finish(ctx context.Context, o Options, changed bool) error {
	if !changed {
		return nil
	}
	if !o.Restart {
		o.printf("containerd reads its config at start: restart it to apply (e.g. `%s`, or run with -restart)", o.RestartCommand)
		return nil
	}
	o.printf("restarting containerd: %s", o.RestartCommand)
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", o.RestartCommand)
	cmd.Stdout, cmd.Stderr = o.Out, o.Out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("restart containerd (%s): %w", o.RestartCommand, err)
	}
	return nil
}
