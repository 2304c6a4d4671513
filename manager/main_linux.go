//go:build linux

package manager

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/custom-shim/containerd-shim-custom-v1/version"
)

// maxStdin bounds what start and -info read from stdin (pkg/shim's start uses the same limit).
const maxStdin = 10 << 20

// shimLogFifo is the fifo, in the bundle, that containerd reads the shim's log from.
const shimLogFifo = "log"

// Main runs the shim binary for the runtime type name (e.g. "io.containerd.custom.v1") and does
// not return. It handles -v/--version and the start action itself, in both bootstrap protocols,
// and hands every other invocation (serve, delete, -info, bad flags) to shim.RunShim with New(name).
// The task service must already be registered as a pkg/shim plugin (blank import in main).
func Main(ctx context.Context, name string) {
	f, err := parseFlags(os.Args[1:])
	if err == nil && f.version {
		printVersion(os.Stdout)
		os.Exit(0)
	}
	if err == nil && !f.info && f.action == "start" {
		os.Exit(mainStart(ctx, name, f))
	}
	shim.RunShim(ctx, New(name))
}

// printVersion prints this project's version (pkg/shim would print containerd's version package,
// which names the containerd library, not this build), and the containerd library it links.
func printVersion(w io.Writer) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:\n", filepath.Base(os.Args[0]))
	fmt.Fprintln(&b, "  Version: ", version.Version)
	fmt.Fprintln(&b, "  Revision:", version.GetRevision())
	fmt.Fprintln(&b, "  Go version:", runtime.Version())
	fmt.Fprintln(&b, "  containerd:", version.ContainerdModule, version.ContainerdVersion())
	fmt.Fprintln(&b)
	// -v exits 0 whether or not stdout took it, as pkg/shim's own -v: nothing to report to.
	_, _ = io.WriteString(w, b.String())
}

// mainStart runs the start action and returns the process exit code. Its log goes to the
// bundle's shim log fifo; a failure is reported on stderr, which containerd shows to the user.
func mainStart(ctx context.Context, name string, f *flags) int {
	closeLog := redirectStartLog(f.debug)
	defer closeLog()
	if err := runStart(ctx, f, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "%s: start: %v\n", name, err)
		return 1
	}
	return 0
}

// redirectStartLog points the process-wide logger at the bundle's shim log fifo, or discards the
// log if there is none. containerd reads start's stdout and stderr combined, so a warning on
// stderr would corrupt a successful reply. containerd opens that fifo read-write before running
// start (openShimLog), so a non-blocking open for writing succeeds, and our close never gives
// containerd's reader an EOF.
func redirectStartLog(debug bool) (closeLog func()) {
	if debug {
		_ = log.SetLevel("debug")
	}
	log.L.Logger.SetOutput(io.Discard)
	fi, err := os.Stat(shimLogFifo)
	if err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		return func() {}
	}
	lf, err := os.OpenFile(shimLogFifo, os.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return func() {}
	}
	log.L.Logger.SetOutput(lf)
	return func() { _ = lf.Close() }
}

// runStart reads the start input from stdin, starts (or reuses) the shim server and writes the
// reply in the protocol the input arrived in: a protobuf BootstrapResult for the new protocol,
// the plain socket address for the legacy one.
func runStart(ctx context.Context, f *flags, stdin io.Reader, stdout io.Writer) error {
	input, err := io.ReadAll(io.LimitReader(stdin, maxStdin+1))
	if err != nil {
		return fmt.Errorf("read start input from stdin: %w", err)
	}
	if len(input) > maxStdin {
		return fmt.Errorf("start input on stdin is larger than %d bytes", maxStdin)
	}
	req, err := parseStartInput(input, f.id, f.namespace)
	if err != nil {
		return err
	}
	if req.params != nil {
		return replyBootstrap(ctx, req, stdout)
	}
	return replyLegacy(ctx, f, req, stdout)
}

func replyBootstrap(ctx context.Context, req *startRequest, stdout io.Writer) error {
	res, err := startBootstrap(ctx, req.params)
	if err != nil {
		return err
	}
	data, err := proto.Marshal(res)
	if err != nil {
		return fmt.Errorf("marshal bootstrap result: %w", err)
	}
	if _, err := stdout.Write(data); err != nil {
		return fmt.Errorf("write bootstrap result: %w", err)
	}
	return nil
}

func replyLegacy(ctx context.Context, f *flags, req *startRequest, stdout io.Writer) error {
	opts, err := decodeOptionsAny(req.options)
	if err != nil {
		return err
	}
	addr, err := start(ctx, &startConfig{
		id:           f.id,
		namespace:    f.namespace,
		grpcAddress:  f.address,
		ttrpcAddress: os.Getenv(ttrpcAddressEnv),
		debug:        f.debug,
		options:      opts,
	})
	if err != nil {
		return err
	}
	// No newline: containerd 1.7 uses the reply verbatim as the address.
	if _, err := io.WriteString(stdout, addr); err != nil {
		return fmt.Errorf("write shim address: %w", err)
	}
	return nil
}
