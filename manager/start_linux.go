//go:build linux

package manager

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/log"

	"github.com/custom-shim/containerd-shim-custom-v1/bundle"
	"github.com/custom-shim/containerd-shim-custom-v1/lifetime"
	"github.com/custom-shim/containerd-shim-custom-v1/process"
	"github.com/custom-shim/containerd-shim-custom-v1/tune"
)

// Environment variables containerd sets for a shim; the server's pkg/shim publisher reads TTRPC_ADDRESS.
const (
	ttrpcAddressEnv = "TTRPC_ADDRESS"
	grpcAddressEnv  = "GRPC_ADDRESS"
)

// Files start leaves in the bundle.
const (
	// addressFile holds the server's socket address. containerd 1.7 reloads shims from it after a
	// restart, containerd 2.x migrates from it, and pkg/shim's cleanupSockets in the server
	// removes the socket it names when the server exits.
	addressFile = "address"
	// socketDirLink points at the socket root containerd ≥ 2.3 chose (BootstrapParams.socket_dir);
	// pkg/shim's cleanupSockets reads it.
	socketDirLink = "s"
)

// defaultSocketRoot is where server sockets live unless containerd chose a directory
// (BootstrapParams.socket_dir). A variable so that tests can move it.
var defaultSocketRoot = filepath.Join(defaults.DefaultStateDir, "s")

// startConfig is what start needs, whichever protocol delivered it.
type startConfig struct {
	id           string // container id (-id, BootstrapParams.instance_id)
	namespace    string
	grpcAddress  string // containerd's gRPC address; part of the socket address hash
	ttrpcAddress string // containerd's ttrpc address, for the server's event publisher
	socketDir    string // socket root chosen by containerd; "" means /run/containerd/s
	debug        bool
	options      *process.Options
}

// start returns the socket address of the shim server for the container whose bundle is the
// working directory. If the container's group already has a live server it only records that
// server's address in the bundle, without forking; otherwise it creates the socket and forks
// this binary as the server. On failure nothing is left running and the socket is removed.
func start(ctx context.Context, cfg *startConfig) (string, error) {
	if cfg.id == "" || cfg.namespace == "" {
		return "", fmt.Errorf("start needs -id and -namespace, got id %q and namespace %q", cfg.id, cfg.namespace)
	}
	bundle, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("get bundle directory: %w", err)
	}
	group, err := groupID(bundle, cfg.id)
	if err != nil {
		return "", err
	}
	addr, err := socketAddress(ctx, cfg, bundle, group)
	if err != nil {
		return "", err
	}
	l, err := listenOrJoin(ctx, addr)
	if errors.Is(err, errServerRunning) {
		log.G(ctx).WithField("address", addr).Debug("joining the running shim server of the group")
		return addr, writeAddress(bundle, addr)
	}
	if err != nil {
		return "", err
	}
	if err := launch(ctx, cfg, &server{bundle: bundle, group: group, addr: addr}, l); err != nil {
		_ = shim.RemoveSocket(addr)
		return "", err
	}
	return addr, nil
}

// joinAttempts bounds how many times start finds a group's server gone between its checks.
const joinAttempts = 10

// listenOrJoin creates the group's socket at addr, or returns errServerRunning when a server
// that takes new containers listens there. A server that is shutting down is waited for, and
// one that went away between the checks is taken as gone (probeServer).
func listenOrJoin(ctx context.Context, addr string) (*net.UnixListener, error) {
	for range joinAttempts {
		l, err := listen(addr)
		if !errors.Is(err, errServerRunning) {
			return l, err
		}
		state, pid := probeServer(ctx, addr)
		switch state {
		case serverServing:
			return nil, errServerRunning
		case serverClosing:
			// The group's last server is on its way out, and removes the socket as it goes:
			// start a new one once it has exited.
			log.G(ctx).WithField("address", addr).WithField("pid", pid).Debug("the group's shim server is shutting down: waiting for it to exit")
			if !waitExited(pid) {
				return nil, fmt.Errorf("the shim server %d at %s is shutting down and did not exit within %s", pid, addr, closingWait)
			}
		}
	}
	// A server that answers no question but keeps listening: join it, as before the question.
	log.G(ctx).WithField("address", addr).Warn("the group's shim server does not answer the start's probe: joining it")
	return nil, errServerRunning
}

// socketAddress computes the socket address of group under the socket root, linking bundle/s
// to a socket root chosen by containerd.
func socketAddress(ctx context.Context, cfg *startConfig, bundle, group string) (string, error) {
	root := defaultSocketRoot
	if cfg.socketDir != "" {
		root = cfg.socketDir
		if err := linkSocketDir(bundle, root); err != nil {
			return "", err
		}
	}
	ctx = namespaces.WithNamespace(ctx, cfg.namespace)
	addr, err := shim.CreateSocketAddress(ctx, root, cfg.grpcAddress, group, false)
	if err != nil {
		return "", fmt.Errorf("compute shim socket address: %w", err)
	}
	return addr, nil
}

// server is the shim server start forks.
type server struct {
	bundle string // its working directory: the bundle of the group's first container
	group  string // the group it serves, and its -id
	addr   string // its socket address
}

// launch forks the server srv on listener l, moves it into the shim cgroup, adjusts its OOM
// score and records its address in the bundle. It kills the server if a later step fails.
func launch(ctx context.Context, cfg *startConfig, srv *server, l *net.UnixListener) (retErr error) {
	lf, err := detach(l)
	if err != nil {
		return err
	}
	defer func() { _ = lf.Close() }() // our copy: the server got its own at fork
	cmd, err := forkServer(cfg, srv, lf)
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			_ = cmd.Process.Kill()
		}
	}()
	pid := cmd.Process.Pid
	if err := joinShimCgroup(cfg.options.ShimCgroup, pid); err != nil {
		return err
	}
	if err := adjustOOMScore(ctx, pid); err != nil {
		return err
	}
	return writeAddress(srv.bundle, srv.addr)
}

// forkServer starts this binary as the shim server: no action, cwd = the bundle, the listening
// socket as fd 3 (pkg/shim serves the inherited listener when -socket is empty), in its own
// process group so that signals sent to containerd's group do not reach it.
//
// Its -id is the group id and the start's pid, "<group>@<pid>" (containerd's runc shim passes
// the container id). pkg/shim uses -id in serve mode only to derive a socket to remove at exit
// when the bundle's address file is unreadable; that must never be the group's socket, which
// the server leaves as soon as it decides to exit (lifetime.retiredSocket): by the time it exits, the
// group's next server may listen there. The server learns its socket's address from
// lifetime.SocketEnv.
func forkServer(cfg *startConfig, srv *server, listener *os.File) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find shim executable: %w", err)
	}
	args := []string{"-namespace", cfg.namespace, "-id", srv.group + "@" + strconv.Itoa(os.Getpid()), "-address", cfg.grpcAddress}
	if cfg.debug {
		args = append(append(args, "-debug"), debugSocketArgs(cfg, srv.group)...)
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = srv.bundle
	cmd.Env = setEnv(serverEnv(os.Environ(), cfg), lifetime.SocketEnv, srv.addr)
	cmd.ExtraFiles = []*os.File{listener}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start shim server %s: %w", self, err)
	}
	go func() { _ = cmd.Wait() }() // reap it if it dies while start is still running
	return cmd, nil
}

// serverEnv is env with containerd's addresses from cfg (the new protocol carries them in
// BootstrapParams, not only in the environment) and the server's GOMAXPROCS (serverProcsEnv).
func serverEnv(env []string, cfg *startConfig) []string {
	if cfg.ttrpcAddress != "" {
		env = setEnv(env, ttrpcAddressEnv, cfg.ttrpcAddress)
	}
	if cfg.grpcAddress != "" {
		env = setEnv(env, grpcAddressEnv, cfg.grpcAddress)
	}
	return tune.ServerProcsEnv(env)
}

// setEnv returns env with every key=… entry replaced by one key=value.
func setEnv(env []string, key, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}

// writeAddress atomically writes addr, without a newline, to dir/address (0644, as pkg/shim
// writes its address files: a socket address is no secret).
func writeAddress(dir, addr string) error {
	if err := bundle.ReplaceFile(filepath.Join(dir, addressFile), []byte(addr), 0o644, false); err != nil {
		return fmt.Errorf("write shim address file: %w", err)
	}
	return nil
}

// linkSocketDir makes bundle/s a symlink to dir, replacing an existing one.
func linkSocketDir(bundle, dir string) error {
	link := filepath.Join(bundle, socketDirLink)
	if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("replace socket dir link %s: %w", link, err)
	}
	if err := os.Symlink(dir, link); err != nil {
		return fmt.Errorf("link socket dir %s: %w", dir, err)
	}
	return nil
}
