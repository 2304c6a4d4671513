package version

import (
	"runtime/debug"
	"testing"
)

func TestFromGit(t *testing.T) {
	const commit = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name     string
		describe string
		commit   string
		dirty    bool
		want     string
	}{
		{"tagged", "v0.2.0", commit, false, "v0.2.0"},
		{"tagged dirty", "v0.2.0", commit, true, "v0.2.0+dirty"},
		{"describe ends in a newline", "v0.2.0\n", commit, false, "v0.2.0"},
		{"pre-release tag", "v0.3.0-rc.1", commit, false, "v0.3.0-rc.1"},
		{"after a tag", "v0.2.0-3-g0123456789ab", commit, false, "v0.2.0-3-g0123456789ab"},
		{"after a tag, dirty", "v0.2.0-3-g0123456789ab", commit, true, "v0.2.0-3-g0123456789ab+dirty"},
		{"untagged", "", commit, false, "v0.0.0-untagged+0123456789ab"},
		{"untagged dirty", "", commit, true, "v0.0.0-untagged+0123456789ab.dirty"},
		{"no git at all", "", "", false, "v0.0.0-untagged+unknown"},
		{"no git, dirty", "", "", true, "v0.0.0-untagged+unknown.dirty"},
		{"short commit kept whole", "", "abc123", false, "v0.0.0-untagged+abc123"},
		// Tags that are not releases never pass for one.
		{"not semver", "v1.2", commit, false, "v0.0.0-untagged+0123456789ab"},
		{"no v", "0.2.0", commit, false, "v0.0.0-untagged+0123456789ab"},
		{"leading zero", "v0.02.0", commit, false, "v0.0.0-untagged+0123456789ab"},
		{"bare hash (describe --always)", "0123456", commit, false, "v0.0.0-untagged+0123456789ab"},
		{"other tag with metadata", "v0.2.0+build", commit, false, "v0.0.0-untagged+0123456789ab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FromGit(tt.describe, tt.commit, tt.dirty); got != tt.want {
				t.Fatalf("FromGit(%q, %q, %v) = %q, want %q", tt.describe, tt.commit, tt.dirty, got, tt.want)
			}
		})
	}
}

func TestFromBuildInfo(t *testing.T) {
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i+1 < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{"no build info", nil, false, "v0.0.0-untagged+unknown"},
		{"built with -buildvcs=false", &debug.BuildInfo{Settings: settings("-trimpath", "true")}, true, "v0.0.0-untagged+unknown"},
		{"clean checkout", &debug.BuildInfo{Settings: settings("vcs.revision", "fedcba9876543210fedcba9876543210fedcba98", "vcs.modified", "false")}, true, "v0.0.0-untagged+fedcba987654"},
		{"modified checkout", &debug.BuildInfo{Settings: settings("vcs.revision", "fedcba9876543210fedcba9876543210fedcba98", "vcs.modified", "true")}, true, "v0.0.0-untagged+fedcba987654.dirty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fromBuildInfo(tt.bi, tt.ok); got != tt.want {
				t.Fatalf("fromBuildInfo = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestModuleVersion(t *testing.T) {
	bi := &debug.BuildInfo{Deps: []*debug.Module{
		{Path: "github.com/containerd/ttrpc", Version: "v1.2.9"},
		{Path: ContainerdModule, Version: "v2.4.2"},
	}}
	if got := moduleVersion(bi, ContainerdModule); got != "v2.4.2" {
		t.Fatalf("moduleVersion = %q", got)
	}
	if got := moduleVersion(bi, "example.com/absent"); got != "unknown" {
		t.Fatalf("absent module: %q", got)
	}
	bi.Deps[1].Replace = &debug.Module{Path: "github.com/fork/containerd/v2", Version: "v2.4.3-fork.1"}
	if got := moduleVersion(bi, ContainerdModule); got != "v2.4.3-fork.1" {
		t.Fatalf("replaced by a module: %q", got)
	}
	bi.Deps[1].Replace = &debug.Module{Path: "../containerd"}
	if got := moduleVersion(bi, ContainerdModule); got != "(devel) ../containerd" {
		t.Fatalf("replaced by a directory: %q", got)
	}
}
