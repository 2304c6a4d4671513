//go:build linux

package installer

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/custom-shim/containerd-shim-custom-v1/bundle"
)

// ShimName is the shim's binary name: containerd derives it from the runtime type.
const ShimName = "containerd-shim-custom-v1"

// configMode is the mode of the files the installer writes into containerd's configuration (the
// drop-in, the runtime options file): world-readable, as containerd's own config.toml.
const configMode = 0o644

// writeAtomic writes data to path through a temp file in the same directory and a rename, so a
// reader (containerd loading its config, a shim being exec'd) sees the old file or the new one,
// never a part, synced (bundle.ReplaceFile). The temp name starts with a dot and does not end in
// .toml: an import glob such as *.toml does not pick it up, even if a crash leaves it behind.
// The file gets configMode.
func writeAtomic(path string, data []byte) error {
	return bundle.ReplaceFile(path, data, configMode, true)
}

// fileSHA256 is the hex sha256 of the file at path.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// installBinary copies src to dst atomically (executable, 0755), unless dst already has digest
// sum. A shim running from the old dst keeps its inode: the rename only changes which file the
// name points to. It reports whether it replaced anything.
func installBinary(src, dst, sum string) (bool, error) {
	if have, err := fileSHA256(dst); err == nil && have == sum {
		return false, nil
	}
	in, err := os.Open(src)
	if err != nil {
		return false, fmt.Errorf("install %s: %w", dst, err)
	}
	defer func() { _ = in.Close() }()
	err = bundle.ReplaceFileFunc(dst, 0o755, true, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
	return err == nil, err
}

// readIfExists returns the file's content, or nil if it does not exist.
func readIfExists(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// runningFrom lists the pids whose executable is the file at path, or was before it was
// replaced or removed (/proc/<pid>/exe then reads "<path> (deleted)"). Only processes in this
// PID namespace are seen.
func runningFrom(path string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil {
			continue
		}
		if exe == path || strings.TrimSuffix(exe, " (deleted)") == path {
			pids = append(pids, pid)
		}
	}
	return pids
}
