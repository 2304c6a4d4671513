//go:build linux

package pod

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// holderReportTimeout bounds the wait for the holder's report (it confines itself in a few
// dozen system calls; this matters only for a holder stopped or stuck in the kernel).
const holderReportTimeout = 5 * time.Second

// readReport reads the holder's report lines (holder.c: report) until "ok" or "fail <step>
// <errno>" and, when it forks into a new PID namespace (forked), "pid <pid>", which it
// returns. EOF first means it died (its exit status tells how).
func readReport(f *os.File, forked bool) (int, error) {
	_ = f.SetReadDeadline(time.Now().Add(holderReportTimeout))
	var buf []byte
	chunk := make([]byte, 256)
	pid, ok := 0, false
	for !ok || (forked && pid == 0) {
		line, rest, found := strings.Cut(string(buf), "\n")
		if !found {
			n, err := f.Read(chunk)
			if err != nil {
				return 0, fmt.Errorf("no report from the holder: %w", err)
			}
			buf = append(buf, chunk[:n]...)
			continue
		}
		buf = []byte(rest)
		fields := strings.Fields(line)
		switch {
		case len(fields) == 1 && fields[0] == "ok":
			ok = true
		case len(fields) == 2 && fields[0] == "pid":
			n, err := strconv.Atoi(fields[1])
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("holder report %q", line)
			}
			pid = n
		case len(fields) >= 3 && fields[0] == "fail":
			return 0, holderFailure(fields[1:])
		default:
			return 0, fmt.Errorf("holder report %q", line)
		}
	}
	return pid, nil
}

// holderFailure makes the error of a failed step: "<step words> <errno>", or "sysctl <index>
// <errno>" (the index of the sysctl in the configuration; the caller names it).
func holderFailure(fields []string) error {
	n, err := strconv.Atoi(fields[len(fields)-1])
	if err != nil {
		return fmt.Errorf("holder failed: %q", strings.Join(fields, " "))
	}
	errno := unix.Errno(n)
	if fields[0] == "sysctl" && len(fields) == 3 {
		i, _ := strconv.Atoi(fields[1])
		return &sysctlError{index: i, errno: errno}
	}
	return fmt.Errorf("holder failed to %s: %w", strings.Join(fields[:len(fields)-1], " "), errno)
}

// sysctlError is a sysctl the holder could not write: the index-th of its configuration.
type sysctlError struct {
	index int
	errno unix.Errno
}

func (e *sysctlError) Error() string {
	return fmt.Sprintf("holder failed to write sysctl %d: %v", e.index, e.errno)
}

func (e *sysctlError) Unwrap() error { return e.errno }
