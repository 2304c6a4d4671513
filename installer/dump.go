//go:build linux

package installer

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// dump is a parsed `containerd config dump` of one line.
type dump struct {
	line Line
	doc  map[string]any
}

func parseDump(l Line, raw []byte) (*dump, error) {
	var doc map[string]any
	if err := toml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("parse `containerd config dump`: %w", err)
	}
	return &dump{line: l, doc: doc}, nil
}

// lookup walks tables by key; nil if a table is missing.
func lookup(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		t, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = t[k]
	}
	return v
}

// criTable is the CRI plugin's table (nil if containerd has none, e.g. it is disabled).
func (d *dump) criTable() map[string]any {
	t, _ := lookup(d.doc, "plugins", d.line.criPlugin()).(map[string]any)
	return t
}

// runtimes is the CRI plugin's runtimes table.
func (d *dump) runtimes() map[string]any {
	t, _ := lookup(d.doc, "plugins", d.line.criPlugin(), "containerd", "runtimes").(map[string]any)
	return t
}

// defaultSystemdCgroup is SystemdCgroup of the CRI's default runtime (runc on a kubeadm node):
// the cgroup driver the node's kubelet is set up for.
func (d *dump) defaultSystemdCgroup() bool {
	name, _ := lookup(d.doc, "plugins", d.line.criPlugin(), "containerd", "default_runtime_name").(string)
	if name == "" {
		return false
	}
	on, _ := lookup(d.runtimes(), name, "options", "SystemdCgroup").(bool)
	return on
}

// checkAdded compares the dumps taken before and after writing the drop-in: after must have each
// handler as the drop-in defines it, and, those tables and the list of imported files aside,
// nothing may differ. So the drop-in neither lost an operator setting nor changed a default.
func checkAdded(before, after *dump, d *dropIn) error {
	rts := after.runtimes()
	var problems []string
	for _, h := range d.handlers {
		t, _ := rts[h].(map[string]any)
		if t == nil {
			problems = append(problems, fmt.Sprintf("handler %q is missing", h))
			continue
		}
		if got := t["runtime_type"]; got != RuntimeType {
			problems = append(problems, fmt.Sprintf("handler %q has runtime_type %v", h, got))
		}
		if h == HandlerSandboxed && t["sandboxer"] != "shim" {
			problems = append(problems, fmt.Sprintf("handler %q has sandboxer %v", h, t["sandboxer"]))
		}
		if d.line.optionsByPath() && lookup(t, "options", "ConfigPath") != d.optionsFile {
			problems = append(problems, fmt.Sprintf("handler %q has options %v", h, t["options"]))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("containerd does not load the drop-in as written: %s", strings.Join(problems, "; "))
	}
	a := deepCopy(after.doc)
	b := deepCopy(before.doc)
	delete(a, "imports")
	delete(b, "imports")
	if rts, _ := lookup(a, "plugins", d.line.criPlugin(), "containerd", "runtimes").(map[string]any); rts != nil {
		for _, h := range d.handlers {
			delete(rts, h)
		}
	}
	if diffs := differences("", b, a); len(diffs) > 0 {
		const show = 10
		more := ""
		if len(diffs) > show {
			more = fmt.Sprintf(" (and %d more)", len(diffs)-show)
			diffs = diffs[:show]
		}
		return fmt.Errorf("the drop-in would change containerd's config beyond adding the handlers: %s%s",
			strings.Join(diffs, ", "), more)
	}
	return nil
}

// differences lists the dotted keys whose values differ between a and b.
func differences(prefix string, a, b map[string]any) []string {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	var out []string
	for _, k := range sorted {
		va, inA := a[k]
		vb, inB := b[k]
		ta, aTable := va.(map[string]any)
		tb, bTable := vb.(map[string]any)
		switch {
		case aTable && bTable:
			out = append(out, differences(prefix+k+".", ta, tb)...)
		case !inA:
			out = append(out, prefix+k+" added")
		case !inB:
			out = append(out, prefix+k+" removed")
		case !reflect.DeepEqual(va, vb):
			out = append(out, fmt.Sprintf("%s%s %v → %v", prefix, k, va, vb))
		}
	}
	return out
}

// conflicts lists the handlers the config defines already (not through our drop-in, which is
// set aside when the dump is taken).
func (d *dump) conflicts(handlers []string) []string {
	rts := d.runtimes()
	var out []string
	for _, h := range handlers {
		if _, ok := rts[h]; ok {
			out = append(out, h)
		}
	}
	return slices.Clip(out)
}
