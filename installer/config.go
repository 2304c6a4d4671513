//go:build linux

package installer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// DropInName is the file name of the drop-in in the imported directory.
const DropInName = "containerd-shim-custom-v1.toml"

// OptionsName is the file name of the runtime options file of containerd 1.6 (ConfigPath), next
// to the operator's config.
const OptionsName = "containerd-shim-custom-v1-options.toml"

// DefaultImport is containerd 2.x's drop-in pattern (`containerd config default` prints it in
// imports); install asks for <config dir>/conf.d/*.toml, which is this for the default config.
const DefaultImport = "/etc/containerd/conf.d/*.toml"

// ErrRefused marks a refusal to go on without the operator: nothing was changed, and the
// error says what to do.
var ErrRefused = errors.New("refused")

// refusal is an ErrRefused with a message for the operator.
type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return ErrRefused }

func refuse(format string, args ...any) error {
	return &refusal{msg: fmt.Sprintf(format, args...)}
}

// operatorConfig is what install reads of the operator's config file (and nothing else).
type operatorConfig struct {
	Version int      `toml:"version"`
	Imports []string `toml:"imports"`
}

// readOperatorConfig reads the version and imports of the config at path.
func readOperatorConfig(path string) (*operatorConfig, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, refuse("no containerd config at %s: containerd runs on its defaults there, and "+
			"follows no imports. Create one (containerd 2.x: `containerd config default > %s` writes "+
			"one that imports %s; 1.x: a file with `version = 2` and `imports = [%q]`), then run "+
			"install again", path, path, DefaultImport, DefaultImport)
	}
	if err != nil {
		return nil, err
	}
	var c operatorConfig
	if err := toml.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if c.Version < 2 {
		return nil, refuse("%s is a version %d containerd config: migrate it to version 2 or later "+
			"(`containerd config migrate`) first", path, c.Version)
	}
	return &c, nil
}

// DropInPath returns where the drop-in goes for the operator's config at configPath with these
// imports: in the directory of the first import that is a glob over one directory matching
// DropInName (e.g. /etc/containerd/conf.d/*.toml), or the import itself if it names exactly
// <dir>/DropInName. Relative imports are relative to the config's directory, as containerd
// resolves them. It returns "" if no import would load the drop-in.
func DropInPath(configPath string, imports []string) string {
	for _, imp := range imports {
		p := filepath.Clean(imp)
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(configPath), p)
		}
		dir, pattern := filepath.Split(p)
		if strings.ContainsAny(dir, "*?[") {
			continue // a wildcard directory: which one would be ours is not for us to decide
		}
		if ok, err := filepath.Match(pattern, DropInName); err == nil && ok {
			return filepath.Join(dir, DropInName)
		}
	}
	return ""
}

// noImportRefusal explains what to add when no import covers a drop-in.
func noImportRefusal(configPath string, imports []string) error {
	want := filepath.Join(filepath.Dir(configPath), "conf.d", "*.toml") // DefaultImport for /etc/containerd/config.toml
	importLine := fmt.Sprintf("imports = [%q]", want)
	if len(imports) > 0 {
		quoted := make([]string, 0, len(imports)+1)
		for _, imp := range imports {
			quoted = append(quoted, fmt.Sprintf("%q", imp))
		}
		importLine = fmt.Sprintf("imports = [%s, %q]", strings.Join(quoted, ", "), want)
	}
	return refuse("%s imports no directory for drop-in files, and this installer does not edit "+
		"that file. Put this line at its top level (before the first [table]), then run install "+
		"again:\n\n    %s\n\n(containerd 2.x lists %s in its built-in defaults, but follows only the "+
		"imports of the config files it loads.)", configPath, importLine, DefaultImport)
}

// optionsPath is the 1.6 runtime options file for the operator's config at configPath: next to
// it, unless an import of that config would load it as a config file.
func optionsPath(configPath string, imports []string) (string, error) {
	p := filepath.Join(filepath.Dir(configPath), OptionsName)
	for _, imp := range imports {
		pattern := filepath.Clean(imp)
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(filepath.Dir(configPath), pattern)
		}
		if ok, _ := filepath.Match(pattern, p); ok || pattern == p {
			return "", refuse("the runtime options file %s would be imported by %s as a containerd "+
				"config (import %q)", p, configPath, imp)
		}
	}
	return p, nil
}
