//go:build linux

package process

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// logMark remembers how long an OCI runtime's JSON log was before a call, so that an error
// is explained by what that call logged, not by an older line.
type logMark struct {
	path string
	off  int64
}

func markLog(path string) logMark {
	m := logMark{path: path}
	if st, err := os.Stat(path); err == nil {
		m.off = st.Size()
	}
	return m
}

// lastError returns the message of the last error-level line logged since the mark, or "".
func (m logMark) lastError() string {
	f, err := os.Open(m.path)
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Seek(m.off, 0); err != nil {
		return ""
	}
	var last string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		var line struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Level == "error" {
			last = line.Msg
		}
	}
	return last
}

// wrap wraps a failed OCI runtime call with the runtime's own error message.
// It adds an errdefs class where the message tells one.
func (m logMark) wrap(err error, what string) error {
	if err == nil {
		return nil
	}
	msg := m.lastError()
	if msg == "" {
		return fmt.Errorf("%s: %w", what, err)
	}
	if class := classify(msg); class != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("%s: %s: %w", what, msg, errors.Join(err, class))
	}
	return fmt.Errorf("%s: %s: %w", what, msg, err)
}

// classify maps an OCI runtime message to an errdefs class, or nil if it tells none.
func classify(msg string) error {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "container not running"),
		strings.Contains(m, "no such process"),
		strings.Contains(m, "process already finished"):
		return errdefs.ErrNotFound
	case strings.Contains(m, "does not exist"):
		return errdefs.ErrNotFound
	}
	return nil
}

// killError classifies the error of a kill: a process that is already gone is NotFound,
// which containerd's client treats as success.
func (m logMark) killError(err error) error {
	if err == nil {
		return nil
	}
	if errdefs.IsNotFound(err) {
		return err
	}
	if errors.Is(err, unix.ESRCH) || errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("process already finished: %w", errdefs.ErrNotFound)
	}
	msg := m.lastError() + " " + err.Error()
	if classify(msg) != nil {
		return fmt.Errorf("process already finished: %s: %w", strings.TrimSpace(msg), errdefs.ErrNotFound)
	}
	return m.wrap(err, "OCI runtime kill failed")
}
