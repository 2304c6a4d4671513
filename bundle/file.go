//go:build linux

package bundle

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ReplaceFile replaces the file at path with data, atomically: a reader sees the old file or the
// new one, never a part (a temporary file in the same directory, renamed over path). The file
// gets mode. durable syncs the file and its directory, so that the new content survives a crash
// of the node (the installer's configs); a file on the shim's state (a tmpfs) needs no sync.
// The temporary name starts with a dot and ends in neither .json nor .toml: a glob does not pick
// it up, even if a crash leaves it behind.
func ReplaceFile(path string, data []byte, mode os.FileMode, durable bool) error {
	return ReplaceFileFunc(path, mode, durable, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// ReplaceFileFunc is ReplaceFile with the content written by fill (a copy of another file, say).
func ReplaceFileFunc(path string, mode os.FileMode, durable bool, fill func(io.Writer) error) (retErr error) {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if retErr != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := fill(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if durable {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if durable {
		return syncDir(dir)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	if dir == "" {
		dir = "."
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	return d.Sync()
}
