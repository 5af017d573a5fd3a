// Package image tests the container image that make image builds (hack/image):
// it builds one into a temporary directory and reads the OCI layout and the
// docker-archive with the standard library alone, as a registry or docker load would.
package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"meeting.dev/meeting/internal/testenv"
)

const (
	testVersion  = "9.8.7-test"
	testRevision = "0123456789ab"
	repository   = "ghcr.io/meeting-dev/meeting"
	entrypoint   = "/usr/local/bin/meeting"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
	Platform    *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

type manifest struct {
	MediaType string       `json:"mediaType"`
	Config    descriptor   `json:"config"`
	Layers    []descriptor `json:"layers"`
}

type imageConfig struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Config       struct {
		User       string            `json:"User"`
		Entrypoint []string          `json:"Entrypoint"`
		Cmd        []string          `json:"Cmd"`
		Labels     map[string]string `json:"Labels"`
	} `json:"config"`
}

func TestImage(t *testing.T) {
	out := t.TempDir()
	cmd := exec.CommandContext(t.Context(), "go", "run", ".", "--root", testenv.Root(), "--out", out,
		"--version", testVersion, "--revision", testRevision)
	cmd.Dir = filepath.Join(testenv.Root(), "hack", "image")
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/image: %v\n%s", err, b)
	}
	layout := filepath.Join(out, "oci")
	blob := func(digest string) []byte {
		t.Helper()
		alg, hex, ok := strings.Cut(digest, ":")
		if !ok {
			t.Fatalf("digest %q", digest)
		}
		b, err := os.ReadFile(filepath.Join(layout, "blobs", alg, hex))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	decode := func(b []byte, v any) {
		t.Helper()
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%v in %s", err, b)
		}
	}

	if b, err := os.ReadFile(filepath.Join(layout, "oci-layout")); err != nil || !strings.Contains(string(b), `"imageLayoutVersion"`) {
		t.Fatalf("oci-layout: %v %s", err, b)
	}
	// index.json: one entry, the multi-platform index, named by the tag.
	var top index
	b, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	decode(b, &top)
	if len(top.Manifests) != 1 || top.Manifests[0].MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Fatalf("index.json: want one image index, got %s", b)
	}
	if got := top.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; got != repository+":"+testVersion {
		t.Errorf("ref.name = %q, want %s:%s", got, repository, testVersion)
	}
	var idx index
	decode(blob(top.Manifests[0].Digest), &idx)
	var platforms []string
	var amd64 manifest
	for _, m := range idx.Manifests {
		if m.Platform == nil {
			t.Fatalf("index entry without platform: %+v", m)
		}
		p := m.Platform.OS + "/" + m.Platform.Architecture
		platforms = append(platforms, p)
		var man manifest
		decode(blob(m.Digest), &man)
		if man.MediaType != "application/vnd.oci.image.manifest.v1+json" || man.Config.MediaType != "application/vnd.oci.image.config.v1+json" {
			t.Errorf("%s: manifest %s, config %s: want OCI media types", p, man.MediaType, man.Config.MediaType)
		}
		var cfg imageConfig
		decode(blob(man.Config.Digest), &cfg)
		checkConfig(t, p, cfg)
		if p == "linux/amd64" {
			amd64 = man
		}
	}
	slices.Sort(platforms)
	if !slices.Equal(platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Fatalf("platforms %v, want linux/amd64 and linux/arm64", platforms)
	}

	// The amd64 file system: user, certificates, zones, and a static binary that runs.
	files := map[string][]byte{}
	modes := map[string]int64{}
	for _, l := range amd64.Layers {
		if l.MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
			t.Errorf("layer media type %s", l.MediaType)
		}
		readLayer(t, bytes.NewReader(blob(l.Digest)), true, files, modes)
	}
	if !strings.Contains(string(files["etc/passwd"]), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd lacks user 65532:\n%s", files["etc/passwd"])
	}
	if !strings.Contains(string(files["etc/ssl/certs/ca-certificates.crt"]), "BEGIN CERTIFICATE") {
		t.Error("no CA certificates in /etc/ssl/certs/ca-certificates.crt")
	}
	if _, ok := files["usr/share/zoneinfo/Europe/Berlin"]; !ok {
		t.Error("no time zone data (/usr/share/zoneinfo/Europe/Berlin)")
	}
	bin := files[strings.TrimPrefix(entrypoint, "/")]
	if modes[strings.TrimPrefix(entrypoint, "/")]&0o111 == 0 {
		t.Fatalf("%s missing or not executable", entrypoint)
	}
	checkStatic(t, bin)
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		path := filepath.Join(t.TempDir(), "meeting")
		if err := os.WriteFile(path, bin, 0o755); err != nil {
			t.Fatal(err)
		}
		got, err := exec.Command(path, "--version").CombinedOutput()
		if want := "meeting " + testVersion + " (" + testRevision + ")\n"; err != nil || string(got) != want {
			t.Errorf("%s --version = %q, %v; want %q", entrypoint, got, err, want)
		}
	}

	checkDockerArchive(t, filepath.Join(out, "meeting.tar"))
}

func checkConfig(t *testing.T, p string, cfg imageConfig) {
	t.Helper()
	if cfg.OS+"/"+cfg.Architecture != p {
		t.Errorf("%s: config says %s/%s", p, cfg.OS, cfg.Architecture)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("%s: User = %q, want 65532:65532 (non-root)", p, cfg.Config.User)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{entrypoint}) || len(cfg.Config.Cmd) != 0 {
		t.Errorf("%s: Entrypoint %q Cmd %q, want [%s] and none", p, cfg.Config.Entrypoint, cfg.Config.Cmd, entrypoint)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.source":   "https://github.com/meeting-dev/meeting",
		"org.opencontainers.image.version":  testVersion,
		"org.opencontainers.image.revision": testRevision,
	} {
		if got := cfg.Config.Labels[k]; got != want {
			t.Errorf("%s: label %s = %q, want %q", p, k, got, want)
		}
	}
}

// readLayer adds a layer's regular files to files.
func readLayer(t *testing.T, r io.Reader, gzipped bool, files map[string][]byte, modes map[string]int64) {
	t.Helper()
	if gzipped {
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = b
			modes[h.Name] = h.Mode
		}
	}
}

// checkStatic: no dynamic loader, so the binary runs on a scratch base.
func checkStatic(t *testing.T, bin []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("binary is not ELF: %v", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary is dynamically linked (has PT_INTERP)")
		}
	}
	if f.Section(".debug_info") != nil || f.Section(".symtab") != nil {
		t.Error("binary is not stripped (-s -w)")
	}
}

// checkDockerArchive reads meeting.tar as docker load does: manifest.json
// names the tag, the config and the layers.
func checkDockerArchive(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	readLayer(t, f, false, files, map[string]int64{})
	var m []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &m); err != nil || len(m) != 1 {
		t.Fatalf("docker-archive manifest.json: %v %s", err, files["manifest.json"])
	}
	if !slices.Equal(m[0].RepoTags, []string{repository + ":" + testVersion}) {
		t.Errorf("RepoTags %v, want %s:%s", m[0].RepoTags, repository, testVersion)
	}
	var cfg imageConfig
	if err := json.Unmarshal(files[m[0].Config], &cfg); err != nil {
		t.Fatalf("docker-archive config %s: %v", m[0].Config, err)
	}
	checkConfig(t, "linux/"+runtime.GOARCH, cfg)
	for _, l := range m[0].Layers {
		if _, ok := files[l]; !ok {
			t.Errorf("docker-archive lacks layer %s", l)
		}
	}
}
