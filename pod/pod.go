//go:build linux

package pod

// This file is the package's API (fixed): the types and functions package sandbox, package task
// and the delete action use. Implementations live in the other files of the package.

import (
	"time"
)

// NamespaceMode is CRI's NamespaceMode (k8s.io/cri-api runtime.v1): where a pod's namespace comes from.
type NamespaceMode int32

// The namespace modes, with CRI's values.
const (
	ModePod       NamespaceMode = 0 // a namespace of the pod's own, shared by its containers
	ModeContainer NamespaceMode = 1 // each container its own (PID: no shareProcessNamespace)
	ModeNode      NamespaceMode = 2 // the host's
	ModeTarget    NamespaceMode = 3 // another container's (PID only)
)

// DNSConfig is the pod's DNS configuration, written to its resolv.conf.
type DNSConfig struct {
	Servers, Searches, Options []string
}

// Config is what the shim uses of CRI's PodSandboxConfig, the options of CreateSandbox.
type Config struct {
	Name, UID, Namespace string // metadata
	Hostname             string
	DNS                  *DNSConfig // nil: the host's resolv.conf
	CgroupParent         string
	Sysctls              map[string]string
	Network, PID, IPC    NamespaceMode
	// Userns is the user namespace mode; HasUserns is false when the pod asked for none. With
	// ModePod, UIDs and GIDs map the pod's ids to the host's (CRI's UserNamespace).
	Userns     NamespaceMode
	HasUserns  bool
	UIDs, GIDs []IDMap
}

// IDMap maps Length ids from ContainerID in a pod's user namespace to HostID on the host.
type IDMap struct {
	ContainerID, HostID, Length uint32
}

// Options describe a pod to create.
type Options struct {
	ID string
	// Bundle is the sandbox's bundle directory (CreateSandboxRequest.bundle_path): the pod's
	// files and its /dev/shm mount live there.
	Bundle string
	// NetNSPath is the network namespace CRI created for the pod; "" means the host's network.
	NetNSPath string
	Config    *Config
}

// State is where a pod is in its life.
type State int

// A pod's states: Created → Ready → Stopped, or Created → Stopped.
const (
	Created State = iota // files written, nothing running
	Ready                // the holder runs: members may join its namespaces
	Stopped              // the holder has exited (or was never started); files remain
)

// Status is what SandboxStatus reports.
type Status struct {
	ID        string
	Pid       int // the holder's pid; 0 before Start
	State     State
	CreatedAt time.Time
	ExitedAt  time.Time // zero until stopped
	ExitCode  int
	NetNSPath string
}
