// Package version says which build of the shim this is: its version, the commit it was built
// from, and the containerd library it was built against.
//
// Releases are git tags vX.Y.Z. The Makefile computes the version with FromGit (through
// hack/version) and stamps Version and Revision with -ldflags -X. A binary built without them
// (a plain `go build`) gets its version from the VCS information Go embeds, so it still says
// whether it came from a known commit and a clean tree. The build never sets containerd's own
// version package: that names the containerd release whose packages are linked in
// (ContainerdVersion reads it from the module list instead).
package version

import (
	"regexp"
	"runtime/debug"
	"strings"
)

// ContainerdModule is the module path of the containerd library the shim is built on.
const ContainerdModule = "github.com/containerd/containerd/v2"

// Untagged is the version of a build from a tree with no release tag in its history
// (or with no git information at all); the short revision follows as build metadata.
const Untagged = "v0.0.0-untagged"

// shortRevLen is how many hex digits of a commit the version names.
const shortRevLen = 12

var (
	// Version is this build's version (see FromGit), stamped at build time; when the build did
	// not stamp it, the package initialisation derives it from the embedded VCS information.
	Version = ""
	// Revision is the full commit the build came from, stamped at build time; see GetRevision.
	Revision = ""
)

func init() {
	if Version == "" {
		Version = fromBuildInfo(debug.ReadBuildInfo())
	}
}

// tagPattern is what FromGit accepts from `git describe`: a release tag vX.Y.Z, optionally
// followed by a pre-release part, which is also how describe names a commit after a tag
// (v0.2.0-3-g0123456789ab: 3 commits after v0.2.0).
var tagPattern = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?$`)

// FromGit composes the version of a build from what git says about its tree:
//
//   - describe: the output of `git describe --tags --match 'v[0-9]*' --abbrev=12`, empty when no
//     tag is reachable (or git is not there);
//   - commit: the full commit hash (`git rev-parse HEAD`), empty if unknown;
//   - dirty: the tree has uncommitted changes to tracked files.
//
// A tagged commit gives the tag (v0.2.0), a commit after a tag what describe says
// (v0.2.0-3-g0123456789ab), anything else v0.0.0-untagged+<12-digit revision> (or +unknown). A
// dirty tree adds "dirty" as build metadata: v0.2.0+dirty, v0.0.0-untagged+0123456789ab.dirty.
// So a binary from an untagged or modified tree can never pass for a release.
func FromGit(describe, commit string, dirty bool) string {
	describe = strings.TrimSpace(describe)
	v := describe
	if !tagPattern.MatchString(describe) {
		v = Untagged + "+" + shortRev(commit)
	}
	if dirty {
		if strings.Contains(v, "+") {
			return v + ".dirty"
		}
		return v + "+dirty"
	}
	return v
}

// shortRev is the first shortRevLen digits of a commit hash, or "unknown".
func shortRev(commit string) string {
	commit = strings.TrimSpace(commit)
	if commit == "" {
		return "unknown"
	}
	if len(commit) > shortRevLen {
		return commit[:shortRevLen]
	}
	return commit
}

// fromBuildInfo is the version of a binary built without a stamped Version: untagged, with the
// revision and modified flag Go recorded (go build -buildvcs, the default in a git checkout).
func fromBuildInfo(bi *debug.BuildInfo, ok bool) string {
	commit, dirty := "", false
	if ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	return FromGit("", commit, dirty)
}

// GetRevision returns Revision, falling back to the VCS information Go embeds in the binary.
func GetRevision() string {
	if Revision != "" {
		return Revision
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// ContainerdVersion is the version of the containerd module (ContainerdModule) linked into this
// binary, from its module list: what containerd's version package would say if the build had not
// set it, but also right for a build with a replace directive (the replacement's version, or
// "(devel)" plus its path for a local one). "unknown" when the binary carries no module list.
func ContainerdVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return moduleVersion(bi, ContainerdModule)
}

// moduleVersion finds module path in bi's dependencies.
func moduleVersion(bi *debug.BuildInfo, path string) string {
	for _, m := range bi.Deps {
		if m.Path != path {
			continue
		}
		if r := m.Replace; r != nil {
			if r.Version != "" {
				return r.Version
			}
			return "(devel) " + r.Path
		}
		return m.Version
	}
	return "unknown"
}
