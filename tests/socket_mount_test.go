//go:build integration && linux

package tests

// A bind mount whose source is a host UNIX socket: a container reaches a host
// service through it.

import (
	"bufio"
	"net"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/custom-shim/containerd-shim-custom-v1/tests/harness"
)

func init() {
	apiScenarios = append(apiScenarios, scenario{"bind-mount-socket", scenarioBindMountSocket})
}

// The container gets a host socket, with a server behind it, bind-mounted at /run/host.sock.
func scenarioBindMountSocket(r *row) *observation {
	a := newAPIRow(r)
	sock := filepath.Join(a.t.TempDir(), "host.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		a.t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Write([]byte("host got " + strings.TrimSpace(line) + "\n"))
			c.Close()
		}
	}()
	id := a.id("sockmount")
	mount := oci.WithMounts([]specs.Mount{{Destination: "/run/host.sock", Type: "bind", Source: sock, Options: []string{"rbind", "rw"}}})
	ctr, err := a.NewContainer(a.ctx, a.c, id, a.runtime, []oci.SpecOpts{mount},
		"sh", "-c", "test -S /run/host.sock && echo socket")
	if err != nil {
		a.t.Fatalf("new container %s: %v", id, err)
	}
	var out syncBuffer
	task, err := ctr.NewTask(a.ctx, cio.NewCreator(cio.WithStreams(nil, &out, &out), cio.WithFIFODir(a.FifoDir)))
	a.note("create with a socket bind mount: %s", class(err))
	if err != nil {
		a.t.Errorf("create a container with a host socket bind-mounted: %v", err)
		a.deleteContainer(ctr)
		return a.observation()
	}
	code := a.runCreated(task, nil)
	a.note("exit %d, output %q", code, out.String())
	a.deleteContainer(ctr)
	return a.observation()
}

func init() {
	apiScenarios = append(apiScenarios, scenario{"ctr-mount-socket", scenarioCtrMountSocket})
}

// The same through ctr: `ctr run --mount type=bind,src=<socket>,...`.
func scenarioCtrMountSocket(r *row) *observation {
	sock := filepath.Join(r.t.TempDir(), "host.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		r.t.Fatal(err)
	}
	defer l.Close()
	id := r.id("ctrsock")
	res := r.ctr(nil, r.runArgs("--rm", "--mount", "type=bind,src="+sock+",dst=/run/host.sock,options=rbind:rw",
		"--fifo-dir", r.FifoDir, harness.ImageBusybox.Ref, id, "sh", "-c", "test -S /run/host.sock && echo socket")...)
	r.expect(res, 0, "socket\n")
	return r.observe(res, id)
}
