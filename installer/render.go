//go:build linux

package installer

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// RuntimeType is the runtime type of every handler installed.
const RuntimeType = "io.containerd.custom.v1"

// Handlers (the names a RuntimeClass's `handler` uses; deploy/runtimeclass.yaml).
const (
	// HandlerCustom runs pods the usual CRI way: a pause container, then the app containers,
	// all in one shim.
	HandlerCustom = "custom"
	// HandlerSandboxed runs pods through the shim's sandbox API, without a pause container
	// (sandboxer = "shim"): containerd 2.3 and later. 2.0-2.2 know the option, but their sandbox
	// controller passes a nil spec to the bundle code and containerd panics on the first
	// RunPodSandbox of such a handler (core/runtime/v2 NewBundle; fixed in 2.3).
	HandlerSandboxed = "custom-sandboxed"
)

// HandlersFor lists the handlers line l can run, the default set of install.
func HandlersFor(l Line) []string {
	if l.AtLeast(2, 3) {
		return []string{HandlerCustom, HandlerSandboxed}
	}
	return []string{HandlerCustom}
}

// checkHandlers refuses handlers l cannot run or this installer does not know.
func checkHandlers(l Line, handlers []string) error {
	if len(handlers) == 0 {
		return refuse("no handler to install")
	}
	for _, h := range handlers {
		switch {
		case h != HandlerCustom && h != HandlerSandboxed:
			return refuse("unknown handler %q (known: %s, %s)", h, HandlerCustom, HandlerSandboxed)
		case !slices.Contains(HandlersFor(l), h):
			return refuse("handler %q needs containerd 2.3 or later (the sandbox API; 2.0-2.2 crash on it); this is containerd %s", h, l)
		}
	}
	return nil
}

// RuntimeOptions are the shim's runtime options install sets (the fields of containerd's runc
// Options that make sense per node).
type RuntimeOptions struct {
	SystemdCgroup bool
	BinaryName    string // OCI runtime; "" means runc
}

// table is the options as a TOML table body.
func (o RuntimeOptions) table() map[string]any {
	t := map[string]any{"SystemdCgroup": o.SystemdCgroup}
	if o.BinaryName != "" {
		t["BinaryName"] = o.BinaryName
	}
	return t
}

// Record is what install did that uninstall must undo, kept in the drop-in's header.
type Record struct {
	Installer    string // installer version that wrote it
	Line         string // containerd line it was written for
	Binary       string // the installed shim
	BinarySHA256 string // its digest: uninstall removes it only if it is still this file
	OptionsFile  string // 1.6's runtime options file, if any
	CreatedDir   string // the drop-in directory, if install created it
}

// recordPrefix starts every header line carrying a Record field.
const recordPrefix = "# custom-shim-install: "

// marker is the first line of every drop-in: install and uninstall touch no file without it.
const marker = "# Managed by custom-shim-install (containerd-shim-custom-v1). Do not edit:"

func (r Record) header(l Line) string {
	var b strings.Builder
	b.WriteString(marker + "\n")
	b.WriteString("# `custom-shim-install install` rewrites this file, `custom-shim-install uninstall` removes it.\n")
	if !l.mergesPluginTables() {
		fmt.Fprintf(&b, "# containerd %s replaces a plugin's whole table with an imported one, so this file holds\n", l)
		b.WriteString("# the whole CRI table as containerd resolved it at install time, plus the handlers:\n")
		b.WriteString("# after editing CRI settings in the main config, run install again.\n")
	}
	for _, kv := range [][2]string{
		{"installer", r.Installer}, {"line", r.Line}, {"binary", r.Binary}, {"binary-sha256", r.BinarySHA256},
		{"options-file", r.OptionsFile}, {"created-dir", r.CreatedDir},
	} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "%s%s = %s\n", recordPrefix, kv[0], kv[1])
		}
	}
	return b.String()
}

// parseRecord reads the header of a drop-in; ok is false if the file is not ours.
func parseRecord(data []byte) (r Record, ok bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	if !sc.Scan() || sc.Text() != marker {
		return Record{}, false
	}
	fields := map[string]*string{
		"installer": &r.Installer, "line": &r.Line, "binary": &r.Binary, "binary-sha256": &r.BinarySHA256,
		"options-file": &r.OptionsFile, "created-dir": &r.CreatedDir,
	}
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "#") {
			break
		}
		k, v, found := strings.Cut(strings.TrimPrefix(line, recordPrefix), " = ")
		if f := fields[k]; found && strings.HasPrefix(line, recordPrefix) && f != nil {
			*f = v
		}
	}
	return r, true
}

// dropIn is what render needs to write a drop-in.
type dropIn struct {
	line     Line
	handlers []string
	options  RuntimeOptions
	// optionsFile is 1.6's ConfigPath target.
	optionsFile string
	// criTable is the CRI plugin's table from the dump taken before the install (1.x only).
	criTable map[string]any
	record   Record
	// before is the dump without the drop-in, for checkAdded.
	before *dump
}

// render returns the drop-in's bytes: the header, then the TOML.
func (d *dropIn) render() ([]byte, error) {
	runtimes := map[string]any{}
	for _, h := range d.handlers {
		runtimes[h] = d.handlerTable(h)
	}
	var cri map[string]any
	if d.line.mergesPluginTables() {
		cri = map[string]any{"containerd": map[string]any{"runtimes": runtimes}}
	} else {
		cri = deepCopy(d.criTable)
		ctrd, _ := cri["containerd"].(map[string]any)
		if ctrd == nil {
			ctrd = map[string]any{}
			cri["containerd"] = ctrd
		}
		rts, _ := ctrd["runtimes"].(map[string]any)
		if rts == nil {
			rts = map[string]any{}
			ctrd["runtimes"] = rts
		}
		for h, t := range runtimes {
			rts[h] = t
		}
	}
	doc := map[string]any{
		"version": d.line.configVersion(),
		"plugins": map[string]any{d.line.criPlugin(): cri},
	}
	body, err := marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("render drop-in: %w", err)
	}
	return append([]byte(d.record.header(d.line)+"\n"), body...), nil
}

// marshal encodes doc as TOML (keys sorted, so the same input gives the same bytes), indented,
// without the headers of tables that only hold other tables ([plugins] before
// [plugins.'io.containerd.cri.v1.runtime']): TOML defines those implicitly.
func marshal(doc map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	enc := toml.NewEncoder(&buf)
	enc.SetIndentTables(true)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	lines := strings.Split(buf.String(), "\n")
	var out []string
	for i, l := range lines {
		h := strings.TrimSpace(l)
		if strings.HasPrefix(h, "[") && !strings.HasPrefix(h, "[[") {
			if next := nextNonBlank(lines, i+1); strings.HasPrefix(next, strings.TrimSuffix(h, "]")+".") {
				continue
			}
		}
		out = append(out, l)
	}
	// Indent from the first table kept, not from the pruned ones.
	indent := 0
	for _, l := range out {
		if t := strings.TrimLeft(l, " "); strings.HasPrefix(t, "[") {
			indent = len(l) - len(t)
			break
		}
	}
	for i, l := range out {
		out[i] = strings.TrimPrefix(l, strings.Repeat(" ", min(indent, len(l)-len(strings.TrimLeft(l, " ")))))
	}
	return []byte(strings.Join(out, "\n")), nil
}

func nextNonBlank(lines []string, from int) string {
	for _, l := range lines[from:] {
		if t := strings.TrimSpace(l); t != "" {
			return t
		}
	}
	return ""
}

// handlerTable is the runtimes.<h> table.
func (d *dropIn) handlerTable(h string) map[string]any {
	t := map[string]any{"runtime_type": RuntimeType}
	if h == HandlerSandboxed {
		// The shim is the sandbox: containerd asks it, not the pause-container path, to run the pod.
		t["sandboxer"] = "shim"
		if d.line.AtLeast(2, 4) {
			// 2.4 pre-pulls the pause image for every handler unless told not to.
			t["disable_pause_image_pull"] = true
		}
	}
	if d.line.optionsByPath() {
		t["options"] = map[string]any{"ConfigPath": d.optionsFile}
	} else {
		t["options"] = d.options.table()
	}
	return t
}

// optionsFileContent is 1.6's runtime options file.
func (d *dropIn) optionsFileContent() ([]byte, error) {
	body, err := toml.Marshal(d.options.table())
	if err != nil {
		return nil, err
	}
	head := "# Runtime options of the containerd-shim-custom-v1 handlers (containerd 1.6 reads them\n" +
		"# through ConfigPath). Managed by custom-shim-install: do not edit, run install again.\n"
	return append([]byte(head), body...), nil
}

// deepCopy copies the maps and slices of a decoded TOML document.
func deepCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = copyValue(v)
	}
	return out
}

func copyValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return deepCopy(v)
	case []any:
		s := make([]any, len(v))
		for i := range v {
			s[i] = copyValue(v[i])
		}
		return s
	}
	return v
}
