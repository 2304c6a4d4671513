// Command mkimage writes the OCI image tarballs the integration tests and the demo import with
// `ctr images import`: no registry is reachable, so images are built from local files.
//
//	busybox.tar  localhost/busybox:test  /bin/busybox (static) + a /bin link per applet, cmd ["sh"],
//	                                     and /bin/cst-probe (hack/probe) for the security rows
//	pause.tar    localhost/pause:test    the busybox rootfs + /pause (hack/pause), entrypoint ["/pause"],
//	                                     user 65535:65535 (as Kubernetes' pause image)
//
// Each tarball is an OCI image layout (oci-layout, index.json, blobs/sha256/...) with one gzip'd
// layer. The output is reproducible: fixed timestamps, sorted entries, no gzip header time.
// index.json names each manifest twice: io.containerd.image.name (the full name, which every ctr
// since 1.x uses as is) and org.opencontainers.image.ref.name (the tag, per the OCI spec).
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

const (
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
	defaultPath       = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// epoch is the mtime of every file and the "created" time of every image, for reproducible digests.
var epoch = time.Unix(0, 0).UTC()

func main() {
	out := flag.String("out", "tests/testdata/images", "directory to write busybox.tar and pause.tar into")
	busybox := flag.String("busybox", "/bin/busybox", "a statically linked busybox (Debian: busybox-static)")
	pause := flag.String("pause", "", "static pause binary for pause.tar (built from hack/pause); empty: skip pause.tar")
	probe := flag.String("probe", "", "static cst-probe binary for the busybox image (built from hack/probe); empty: none")
	flag.Parse()
	if err := run(*out, *busybox, *pause, *probe); err != nil {
		log.Fatalf("mkimage: %v", err)
	}
}

func run(out, busybox, pause, probe string) error {
	if err := os.MkdirAll(out, 0o755); err != nil { //nolint:gosec // a directory of the repo's tree, like its others
		return err
	}
	base, err := busyboxRootfs(busybox)
	if err != nil {
		return err
	}
	if probe != "" {
		if base, err = withFile(base, probe, "bin/cst-probe"); err != nil {
			return err
		}
	}
	images := []image{{
		name:   "localhost/busybox:test",
		files:  base,
		config: imageConfig{Env: []string{defaultPath}, Cmd: []string{"sh"}, WorkingDir: "/"},
		path:   filepath.Join(out, "busybox.tar"),
	}}
	if pause != "" {
		files, err := withFile(base, pause, "pause")
		if err != nil {
			return err
		}
		images = append(images, image{
			name:   "localhost/pause:test",
			files:  files,
			config: imageConfig{Env: []string{defaultPath}, Entrypoint: []string{"/pause"}, WorkingDir: "/", User: pauseUser},
			path:   filepath.Join(out, "pause.tar"),
		})
	}
	for _, img := range images {
		if err := img.write(); err != nil {
			return fmt.Errorf("write %s: %w", img.path, err)
		}
		fmt.Printf("wrote %s (%s)\n", img.path, img.name)
	}
	return nil
}

// entry is one file of a layer; exactly one of data, link or dir describes it.
type entry struct {
	path string // relative, no leading slash
	mode int64
	dir  bool
	link string // symlink target
	data []byte
}

func busyboxRootfs(busybox string) ([]entry, error) {
	if err := requireStatic(busybox); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		return nil, err
	}
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busybox, err)
	}
	files := []entry{
		{path: "bin", mode: 0o755, dir: true},
		{path: "dev", mode: 0o755, dir: true},
		{path: "etc", mode: 0o755, dir: true},
		{path: "proc", mode: 0o555, dir: true},
		{path: "root", mode: 0o700, dir: true},
		{path: "sys", mode: 0o555, dir: true},
		{path: "tmp", mode: 0o1777, dir: true},
		{path: "var", mode: 0o755, dir: true},
		{path: "bin/busybox", mode: 0o755, data: data},
		{path: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{path: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnogroup:x:65534:\n")},
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		files = append(files, entry{path: "bin/" + applet, mode: 0o777, link: "busybox"})
	}
	return files, nil
}

// requireStatic fails unless path is an ELF file without a program interpreter.
func requireStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer func() { _ = f.Close() }()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked: install busybox-static", path)
		}
	}
	return nil
}

func withFile(base []entry, src, dst string) ([]entry, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return nil, err
	}
	if err := requireStatic(src); err != nil {
		return nil, err
	}
	return append(append([]entry(nil), base...), entry{path: dst, mode: 0o755, data: data}), nil
}

// pauseUser is the user of the pause image: Kubernetes' pause image runs as 65535:65535.
const pauseUser = "65535:65535"

type imageConfig struct {
	User       string   `json:"User,omitempty"`
	Env        []string `json:"Env,omitempty"`
	Entrypoint []string `json:"Entrypoint,omitempty"`
	Cmd        []string `json:"Cmd,omitempty"`
	WorkingDir string   `json:"WorkingDir,omitempty"`
}

type image struct {
	name   string
	files  []entry
	config imageConfig
	path   string
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// blobs collects content-addressed blobs in insertion order.
type blobs struct {
	order []string
	data  map[string][]byte
}

func (b *blobs) add(mediaType string, data []byte) descriptor {
	d := fmt.Sprintf("sha256:%x", sha256.Sum256(data))
	if b.data == nil {
		b.data = map[string][]byte{}
	}
	if _, ok := b.data[d]; !ok {
		b.order = append(b.order, d)
		b.data[d] = data
	}
	return descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

func (img image) write() error {
	layer, err := tarball(img.files)
	if err != nil {
		return err
	}
	diffID := fmt.Sprintf("sha256:%x", sha256.Sum256(layer))
	gz, err := gzipped(layer)
	if err != nil {
		return err
	}
	var bs blobs
	layerDesc := bs.add(mediaTypeLayer, gz)
	plat := platform{Architecture: runtime.GOARCH, OS: "linux"}
	configJSON, err := json.Marshal(map[string]any{
		"created":      epoch.Format(time.RFC3339),
		"architecture": plat.Architecture,
		"os":           plat.OS,
		"config":       img.config,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		"history":      []map[string]string{{"created": epoch.Format(time.RFC3339), "created_by": "hack/mkimage"}},
	})
	if err != nil {
		return err
	}
	configDesc := bs.add(mediaTypeConfig, configJSON)
	manifestJSON, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaTypeManifest,
		"config":        configDesc,
		"layers":        []descriptor{layerDesc},
	})
	if err != nil {
		return err
	}
	manifestDesc := bs.add(mediaTypeManifest, manifestJSON)
	tag := img.name[strings.LastIndex(img.name, ":")+1:]
	manifestDesc.Annotations = map[string]string{
		"io.containerd.image.name":          img.name,
		"org.opencontainers.image.ref.name": tag,
	}
	manifestDesc.Platform = &plat
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     []descriptor{manifestDesc},
	})
	if err != nil {
		return err
	}
	layout := []entry{
		{path: "blobs", mode: 0o755, dir: true},
		{path: "blobs/sha256", mode: 0o755, dir: true},
		{path: "oci-layout", mode: 0o644, data: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{path: "index.json", mode: 0o644, data: index},
	}
	for _, d := range bs.order {
		layout = append(layout, entry{path: "blobs/sha256/" + strings.TrimPrefix(d, "sha256:"), mode: 0o644, data: bs.data[d]})
	}
	archive, err := tarball(layout)
	if err != nil {
		return err
	}
	tmp := img.path + ".tmp"
	if err := os.WriteFile(tmp, archive, 0o644); err != nil { //nolint:gosec // a public test image, not a secret
		return err
	}
	return os.Rename(tmp, img.path)
}

// tarball writes entries sorted by path, owned by root, with the fixed epoch as mtime.
func tarball(files []entry) ([]byte, error) {
	sorted := append([]entry(nil), files...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].path < sorted[j].path })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i, f := range sorted {
		if i > 0 && sorted[i-1].path == f.path {
			return nil, fmt.Errorf("duplicate path %s", f.path)
		}
		hdr := &tar.Header{Name: f.path, Mode: f.mode, ModTime: epoch}
		switch {
		case f.dir:
			hdr.Typeflag, hdr.Name = tar.TypeDir, f.path+"/"
		case f.link != "":
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, f.link
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func gzipped(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(data); err != nil {
		return nil, errors.Join(err, zw.Close())
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
