//go:build linux

package installer

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// state is what an install found and changed, so that a failure, or a dry run, can put back
// what was there.
type state struct {
	dropIn    string
	oldDropIn []byte // the drop-in an earlier install wrote; nil if none
	record    Record // its record

	optionsFile  string // 1.6's options file ("" on other lines)
	oldOptions   []byte
	newOptions   []byte
	wroteDropIn  bool
	wroteOptions bool
	createdDir   string // the drop-in directory, if this run created it
}

// setAside removes an earlier install's drop-in, keeping its bytes and record, so containerd's
// dump shows the operator's config alone. A file at that path that this installer did not write
// is left alone: install refuses.
func setAside(dropIn, optionsFile string) (*state, error) {
	s := &state{dropIn: dropIn, optionsFile: optionsFile}
	old, err := readIfExists(dropIn)
	if err != nil {
		return nil, err
	}
	if old != nil {
		rec, ok := parseRecord(old)
		if !ok {
			return nil, refuse("%s exists and was not written by this installer: move it away first", dropIn)
		}
		s.oldDropIn, s.record = old, rec
		if err := os.Remove(dropIn); err != nil {
			return nil, err
		}
	}
	if optionsFile != "" {
		if s.oldOptions, err = readIfExists(optionsFile); err != nil {
			return nil, s.fail(err)
		}
	}
	return s, nil
}

// fail restores and returns err joined with a restore failure, if any.
func (s *state) fail(err error) error {
	if rerr := s.restore(); rerr != nil {
		return errors.Join(err, rerr)
	}
	return err
}

// restore puts back the drop-in and options file as they were and removes a directory this
// run created.
func (s *state) restore() error {
	var errs []error
	switch {
	case s.oldDropIn != nil:
		errs = append(errs, writeAtomic(s.dropIn, s.oldDropIn))
	case s.wroteDropIn:
		errs = append(errs, removeIfExists(s.dropIn))
	}
	if s.wroteOptions {
		if s.oldOptions != nil {
			errs = append(errs, writeAtomic(s.optionsFile, s.oldOptions))
		} else {
			errs = append(errs, removeIfExists(s.optionsFile))
		}
	}
	if s.createdDir != "" {
		errs = append(errs, removeIfExists(s.createdDir))
	}
	return errors.Join(errs...)
}

// createDir creates the drop-in directory if it is missing (its parent must exist) and records
// that it did.
func (s *state) createDir(dir string, rec *Record) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.Mkdir(dir, 0o755); err != nil { //nolint:gosec // a directory of containerd's config, world-readable as /etc/containerd
		return fmt.Errorf("create the drop-in directory: %w", err)
	}
	s.createdDir, rec.CreatedDir = dir, dir
	return nil
}

// write writes the options file (1.6) and the drop-in, then has containerd load the config and
// checks that the handlers, and nothing else, were added.
func (s *state) write(ctx context.Context, o Options, c Containerd, d *dropIn, dropIn string, content []byte) error {
	if d.optionsFile != "" {
		opts, err := d.optionsFileContent()
		if err != nil {
			return err
		}
		s.newOptions, s.wroteOptions = opts, true
		if err := writeAtomic(d.optionsFile, opts); err != nil {
			return err
		}
	}
	s.wroteDropIn = true
	if err := writeAtomic(dropIn, content); err != nil {
		return err
	}
	raw, err := c.Dump(ctx, o.Config)
	if err != nil {
		return fmt.Errorf("containerd cannot load its config with the drop-in (put back as it was): %w", err)
	}
	after, err := parseDump(d.line, raw)
	if err != nil {
		return err
	}
	if err := checkAdded(d.before, after, d); err != nil {
		return fmt.Errorf("%w (put back as it was)", err)
	}
	return nil
}

// removeIfExists removes path; a missing file is not an error.
func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
