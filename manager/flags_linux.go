//go:build linux

package manager

import (
	"flag"
	"io"
)

// flags mirrors the command line of containerd's pkg/shim (parseFlags), so that Main can decide
// what to do before handing the same os.Args to shim.RunShim.
type flags struct {
	debug         bool
	version       bool
	info          bool
	namespace     string
	id            string
	socket        string
	debugSocket   string
	bundle        string
	address       string
	publishBinary string
	action        string // first positional argument: "start", "delete" or "" (serve)
}

// parseFlags parses args (os.Args[1:]) with a private FlagSet, leaving the global flag set and
// os.Args untouched for pkg/shim. A parse error is returned without printing anything.
func parseFlags(args []string) (*flags, error) {
	var f flags
	fs := flag.NewFlagSet("containerd-shim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&f.debug, "debug", false, "")
	fs.BoolVar(&f.version, "v", false, "")
	fs.BoolVar(&f.version, "version", false, "")
	fs.BoolVar(&f.info, "info", false, "")
	fs.StringVar(&f.namespace, "namespace", "", "")
	fs.StringVar(&f.id, "id", "", "")
	fs.StringVar(&f.socket, "socket", "", "")
	fs.StringVar(&f.debugSocket, "debug-socket", "", "")
	fs.StringVar(&f.bundle, "bundle", "", "")
	fs.StringVar(&f.address, "address", "", "")
	fs.StringVar(&f.publishBinary, "publish-binary", "", "")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	f.action = fs.Arg(0)
	return &f, nil
}
