// Package version holds the build's version and revision, stamped with -ldflags -X.
package version

import "runtime/debug"

var (
	// Version is the project's release version, set at build time.
	Version = "0.1.0+unknown"
	// Revision is the VCS revision the binary was built from, set at build time.
	Revision = ""
)

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
