//go:build linux

// Command custom-shim-install installs containerd-shim-custom-v1 on a node: the binary where
// containerd finds it, and the CRI runtime handlers as a drop-in of containerd's config (see
// package installer), or removes them again.
//
//	custom-shim-install install   [flags]   # binary + handlers; -restart to restart containerd
//	custom-shim-install uninstall [flags]   # undoes what install recorded in its drop-in
//
// Exit status: 0 done (or nothing to do), 2 refused with nothing changed (the message says
// what the operator must do), 1 any other failure (what was changed has been put back).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/custom-shim/containerd-shim-custom-v1/installer"
	"github.com/custom-shim/containerd-shim-custom-v1/version"
)

const usage = `usage: custom-shim-install install|uninstall [flags]

install     copy the shim binary into -bin-dir (atomically: running shims keep theirs) and add the
            runtime handlers to containerd's config as a drop-in file that the config imports
uninstall   remove what install recorded: drop-in, options file, binary
version     print the installer's version

flags:
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:]))
}

func run(ctx context.Context, args []string) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-v" || args[0] == "--version") {
			printVersion()
			return 0
		}
		fmt.Fprint(os.Stderr, usage)
		newFlags(&installer.Options{}, new(string), new(string), new(bool)).PrintDefaults()
		return 2
	}
	action := args[0]
	var o installer.Options
	var containerd, handlers string
	var wait bool
	fs := newFlags(&o, &containerd, &handlers, &wait)
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "custom-shim-install: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if handlers != "" {
		o.Handlers = strings.Split(handlers, ",")
	}
	o.Out = os.Stdout
	o.Version = version.Version
	var err error
	switch action {
	case "install":
		err = installer.Install(ctx, o, installer.Binary(containerd))
	case "uninstall":
		err = installer.Uninstall(ctx, o)
	case "version":
		printVersion()
		return 0
	default:
		fmt.Fprintf(os.Stderr, "custom-shim-install: unknown action %q\n%s", action, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "custom-shim-install %s: %v\n", action, err)
		if errors.Is(err, installer.ErrRefused) {
			return 2
		}
		return 1
	}
	if wait {
		waitForSignal(action)
	}
	return 0
}

func newFlags(o *installer.Options, containerd, handlers *string, wait *bool) *flag.FlagSet {
	fs := flag.NewFlagSet("custom-shim-install", flag.ContinueOnError)
	fs.StringVar(&o.Config, "config", "/etc/containerd/config.toml", "containerd's config file (never modified)")
	fs.StringVar(&o.BinDir, "bin-dir", "/usr/local/bin", "directory on containerd's PATH to install the shim into")
	fs.StringVar(&o.Shim, "shim", defaultShim(), "the shim binary to install")
	fs.StringVar(containerd, "containerd", "containerd", "containerd binary, run with --version and with config dump")
	fs.StringVar(&o.Line, "containerd-version", "", "containerd line (e.g. 2.4), instead of asking containerd --version")
	fs.StringVar(handlers, "handlers", "", "comma-separated handlers to install (default: custom, and custom-sandboxed on containerd 2.3 or later)")
	fs.StringVar(&o.SystemdCgroup, "systemd-cgroup", "auto", "SystemdCgroup option: auto (as the CRI's default runtime has it), true or false")
	fs.StringVar(&o.BinaryName, "runtime-binary", "", "OCI runtime for the handlers (BinaryName option; default runc)")
	fs.BoolVar(&o.Restart, "restart", false, "restart containerd if its config changed")
	fs.StringVar(&o.RestartCommand, "restart-command", "systemctl restart containerd", "how -restart restarts containerd (run by /bin/sh -c)")
	fs.BoolVar(&o.DryRun, "dry-run", false, "check and print the drop-in, change nothing")
	fs.BoolVar(&o.Force, "force", false, "uninstall even while shims run from the installed binary")
	fs.BoolVar(wait, "wait", false, "when done, wait for SIGTERM (the main process of a DaemonSet pod)")
	return fs
}

// defaultShim is the shim next to this binary (the layout of the release tarball's bin/).
func defaultShim() string {
	self, err := os.Executable()
	if err != nil {
		return installer.ShimName
	}
	return filepath.Join(filepath.Dir(self), installer.ShimName)
}

func printVersion() {
	fmt.Printf("custom-shim-install %s (revision %s, containerd-shim-custom-v1 node installer)\n",
		version.Version, version.GetRevision())
}

// waitForSignal blocks until SIGTERM or SIGINT, so that a DaemonSet pod stays Running once its
// node is done. Leaving undoes nothing: a DaemonSet pod ends on every rolling update, and the
// node must keep its runtime.
func waitForSignal(action string) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	fmt.Printf("%s done; waiting for SIGTERM (leaving undoes nothing)\n", action)
	<-ch
}
