//go:build linux

package installer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Uninstall undoes what the drop-in's record says install did: it removes the drop-in, the
// options file, a drop-in directory install created (if empty), and the binary if it is still
// the file install put there. It refuses while shims run from that binary (containerd needs it
// to clean up after them) unless Force is set.
func Uninstall(ctx context.Context, o Options) error {
	cfg, err := readOperatorConfig(o.Config)
	if err != nil {
		return err
	}
	dropInFile := DropInPath(o.Config, cfg.Imports)
	if dropInFile == "" {
		o.printf("%s imports no drop-in directory: nothing of this installer is configured", o.Config)
		return nil
	}
	data, err := readIfExists(dropInFile)
	if err != nil {
		return err
	}
	if data == nil {
		o.printf("no drop-in at %s: nothing to uninstall", dropInFile)
		return nil
	}
	rec, ok := parseRecord(data)
	if !ok {
		return refuse("%s was not written by this installer: left alone", dropInFile)
	}
	if rec.Binary != "" && !o.Force {
		if pids := runningFrom(rec.Binary); len(pids) > 0 {
			return refuse("%d shim(s) still run from %s (pids %v): containerd runs that binary to clean "+
				"up after them, so remove their pods first (or use -force)", len(pids), rec.Binary, pids)
		}
	}
	if o.DryRun {
		o.printf("dry run: would remove %s%s%s%s", dropInFile, optional(", ", rec.OptionsFile),
			optional(", ", rec.CreatedDir), optional(", ", rec.Binary))
		return nil
	}
	var errs []error
	errs = append(errs, removeIfExists(dropInFile))
	o.printf("removed %s", dropInFile)
	if rec.OptionsFile != "" {
		errs = append(errs, removeIfExists(rec.OptionsFile))
		o.printf("removed %s", rec.OptionsFile)
	}
	if rec.CreatedDir != "" {
		if err := os.Remove(rec.CreatedDir); err == nil {
			o.printf("removed %s (install created it)", rec.CreatedDir)
		} else if !errors.Is(err, os.ErrNotExist) {
			o.printf("left %s, which install created: %v", rec.CreatedDir, err)
		}
	}
	errs = append(errs, removeBinary(o, rec))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return finish(ctx, o, true)
}

// removeBinary removes the installed shim if it is still the file install wrote.
func removeBinary(o Options, rec Record) error {
	if rec.Binary == "" {
		return nil
	}
	sum, err := fileSHA256(rec.Binary)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case rec.BinarySHA256 != "" && sum != rec.BinarySHA256:
		o.printf("left %s: it changed since install (sha256 %s, installed %s)", rec.Binary, sum, rec.BinarySHA256)
		return nil
	}
	if err := os.Remove(rec.Binary); err != nil {
		return fmt.Errorf("remove %s: %w", rec.Binary, err)
	}
	o.printf("removed %s", rec.Binary)
	return nil
}

func optional(sep, s string) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	return sep + s
}
