// Command image builds the Meeting container image without a Docker daemon
// (make image runs it): the static meeting binary for each platform, on a
// scratch base assembled here from the build machine's CA certificates and
// time zone data, with an /etc/passwd whose user 65532 (nonroot) runs it. It
// writes an OCI image layout holding the multi-platform index (crane push,
// skopeo copy oci:) and a docker-archive of the build machine's platform
// (docker load, kind load image-archive, k3s ctr images import).
//
// It is its own Go module so that go-containerregistry stays out of the
// product's go.mod.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's user: distroless's nonroot, so that runAsNonRoot can check it.
const (
	uid      = 65532
	binPath  = "usr/local/bin/meeting"
	userName = "nonroot"
)

type config struct {
	root       string // the repository, where cmd/meeting is
	out        string // _output/image
	repository string // ghcr.io/meeting-dev/meeting
	version    string
	revision   string
	source     string
	created    time.Time
	platforms  []v1.Platform
	certs      string // CA bundle
	zoneinfo   string // time zone database directory
	log        *slog.Logger
}

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg, err := parseFlags(os.Args[1:])
	if err == nil {
		cfg.log = log
		err = build(cfg)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		log.Error("image build failed", "err", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	c := config{}
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.StringVar(&c.root, "root", "../..", "repository root (holds cmd/meeting)")
	fs.StringVar(&c.out, "out", "", "output directory (default ROOT/_output/image)")
	fs.StringVar(&c.repository, "repository", "ghcr.io/meeting-dev/meeting", "image repository; the tag is the version")
	fs.StringVar(&c.version, "version", "0.0.0-dev", "version stamped into the binary (main.version), the tag and the labels")
	fs.StringVar(&c.revision, "revision", "", "VCS revision stamped into the binary and the labels (required)")
	fs.StringVar(&c.source, "source", "https://github.com/meeting-dev/meeting", "org.opencontainers.image.source label")
	created := fs.String("created", "", "creation time, RFC 3339 (default: $SOURCE_DATE_EPOCH, else the Unix epoch, so rebuilds are identical)")
	platforms := fs.String("platforms", "linux/amd64,linux/arm64", "comma-separated platforms of the index")
	fs.StringVar(&c.certs, "ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "CA bundle copied to /etc/ssl/certs/ca-certificates.crt")
	fs.StringVar(&c.zoneinfo, "zoneinfo", "/usr/share/zoneinfo", "time zone database copied to /usr/share/zoneinfo")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() != 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.out == "" {
		c.out = filepath.Join(c.root, "_output", "image")
	}
	// Absolute: go build runs in root, and -o must not be taken relative to it.
	var err error
	if c.root, err = filepath.Abs(c.root); err != nil {
		return c, fmt.Errorf("--root: %w", err)
	}
	if c.out, err = filepath.Abs(c.out); err != nil {
		return c, fmt.Errorf("--out: %w", err)
	}
	if c.created, err = createdTime(*created); err != nil {
		return c, err
	}
	for _, p := range strings.Split(*platforms, ",") {
		os, arch, ok := strings.Cut(strings.TrimSpace(p), "/")
		if !ok || os == "" || arch == "" {
			return c, fmt.Errorf("platform %q: want OS/ARCH", p)
		}
		c.platforms = append(c.platforms, v1.Platform{OS: os, Architecture: arch})
	}
	return c, c.validate()
}

func createdTime(flagValue string) (time.Time, error) {
	if flagValue != "" {
		t, err := time.Parse(time.RFC3339, flagValue)
		if err != nil {
			return t, fmt.Errorf("--created: %w", err)
		}
		return t.UTC(), nil
	}
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		s, err := strconv.ParseInt(e, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", e, err)
		}
		return time.Unix(s, 0).UTC(), nil
	}
	return time.Unix(0, 0).UTC(), nil
}

func (c config) validate() error {
	var errs []error
	if c.revision == "" {
		errs = append(errs, errors.New("--revision is required (make image passes git's)"))
	}
	if c.version == "" || strings.ContainsAny(c.version, " /:") {
		errs = append(errs, fmt.Errorf("--version %q is not a tag", c.version))
	}
	if _, err := name.NewTag(c.repository+":"+c.version, name.StrictValidation); c.version != "" && err != nil {
		errs = append(errs, fmt.Errorf("image name %s:%s: %w", c.repository, c.version, err))
	}
	if len(c.platforms) == 0 {
		errs = append(errs, errors.New("no platform"))
	}
	for _, p := range []string{c.certs, c.zoneinfo, filepath.Join(c.root, "cmd", "meeting")} {
		if _, err := os.Stat(p); err != nil {
			errs = append(errs, fmt.Errorf("need %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

func build(c config) error {
	start := time.Now()
	tag, err := name.NewTag(c.repository+":"+c.version, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("image name: %w", err)
	}
	base, err := baseLayer(c)
	if err != nil {
		return err
	}
	binDir := filepath.Join(c.out, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}

	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var host v1.Image
	for _, p := range c.platforms {
		bin, err := goBuild(c, p, binDir)
		if err != nil {
			return err
		}
		img, err := platformImage(c, p, base, bin)
		if err != nil {
			return err
		}
		pc := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &pc}})
		if p.OS == "linux" && p.Architecture == runtime.GOARCH {
			host = img
		}
	}
	idx = mutate.Annotations(idx, c.labels()).(v1.ImageIndex)

	// The layout is written anew, so that it holds exactly this build.
	ociDir := filepath.Join(c.out, "oci")
	if err := os.RemoveAll(ociDir); err != nil {
		return fmt.Errorf("remove old layout: %w", err)
	}
	lp, err := layout.Write(ociDir, empty.Index)
	if err != nil {
		return fmt.Errorf("write OCI layout: %w", err)
	}
	// One entry, named by the tag, in index.json: crane push and skopeo take it.
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag.String(),
	})); err != nil {
		return fmt.Errorf("write OCI layout: %w", err)
	}
	digest, err := idx.Digest()
	if err != nil {
		return fmt.Errorf("index digest: %w", err)
	}

	archive := filepath.Join(c.out, "meeting.tar")
	if host == nil {
		c.log.Warn("no image for this machine's platform: no docker-archive written", "arch", runtime.GOARCH)
		_ = os.Remove(archive)
	} else {
		tmp := archive + ".tmp"
		if err := tarball.WriteToFile(tmp, tag, host); err != nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("write docker-archive: %w", err)
		}
		if err := os.Rename(tmp, archive); err != nil {
			return fmt.Errorf("write docker-archive: %w", err)
		}
	}
	c.log.Info("image built", "image", tag.String(), "index", digest.String(), "layout", ociDir,
		"archive", archive, "took", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// labels are the OCI labels of each image config and the index's annotations.
func (c config) labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":    "meeting",
		"org.opencontainers.image.source":   c.source,
		"org.opencontainers.image.version":  c.version,
		"org.opencontainers.image.revision": c.revision,
		"org.opencontainers.image.created":  c.created.Format(time.RFC3339),
	}
}

// goBuild cross-compiles a static, stripped meeting for p. Go's build cache
// makes a rebuild with unchanged sources quick.
func goBuild(c config, p v1.Platform, dir string) (string, error) {
	out := filepath.Join(dir, "meeting-"+p.OS+"-"+p.Architecture)
	ldflags := fmt.Sprintf("-s -w -X main.version=%s -X main.revision=%s", c.version, c.revision)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, "./cmd/meeting")
	cmd.Dir = c.root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture, "GOWORK=off")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	t := time.Now()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build for %s/%s: %w", p.OS, p.Architecture, err)
	}
	c.log.Info("built meeting", "platform", p.OS+"/"+p.Architecture, "took", time.Since(t).Round(100*time.Millisecond))
	return out, nil
}

func platformImage(c config, p v1.Platform, base v1.Layer, bin string) (v1.Image, error) {
	binLayer, err := binaryLayer(c, bin)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, base, binLayer)
	if err != nil {
		return nil, fmt.Errorf("layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: c.created}
	cf.Author = "Meeting"
	cf.Config.User = fmt.Sprintf("%d:%d", uid, uid)
	cf.Config.Entrypoint = []string{"/" + binPath}
	cf.Config.Cmd = nil
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
	}
	cf.Config.Labels = c.labels()
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return mutate.CreatedAt(img, v1.Time{Time: c.created})
}

// tarWriter writes a layer's entries with fixed times and owners, so the same
// inputs give the same digest.
type tarWriter struct {
	tw    *tar.Writer
	mtime time.Time
	dirs  map[string]bool
}

func (w *tarWriter) dir(path string, mode int64, owner int) error {
	if w.dirs[path] {
		return nil
	}
	if parent := filepath.Dir(path); parent != "." && parent != "/" {
		if err := w.dir(parent, 0o755, 0); err != nil {
			return err
		}
	}
	w.dirs[path] = true
	return w.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: path + "/", Mode: mode,
		Uid: owner, Gid: owner, ModTime: w.mtime, Format: tar.FormatPAX})
}

func (w *tarWriter) file(path string, mode int64, data []byte) error {
	if err := w.dir(filepath.Dir(path), 0o755, 0); err != nil {
		return err
	}
	if err := w.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path, Mode: mode, Size: int64(len(data)),
		ModTime: w.mtime, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := w.tw.Write(data)
	return err
}

func (w *tarWriter) symlink(path, target string) error {
	if err := w.dir(filepath.Dir(path), 0o755, 0); err != nil {
		return err
	}
	return w.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: path, Linkname: target, Mode: 0o777,
		ModTime: w.mtime, Format: tar.FormatPAX})
}

func newLayer(build func(*tarWriter) error, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	w := &tarWriter{tw: tar.NewWriter(&buf), mtime: mtime, dirs: map[string]bool{}}
	if err := build(w); err != nil {
		return nil, err
	}
	if err := w.tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}

// baseLayer is the scratch base: the nonroot user, CA certificates, time zone
// data, and writable /tmp and home directories (for a read-only root file
// system Kubernetes mounts an emptyDir there instead).
func baseLayer(c config) (v1.Layer, error) {
	certs, err := os.ReadFile(c.certs)
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	l, err := newLayer(func(w *tarWriter) error {
		passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:/home/%s:/sbin/nologin\n",
			userName, uid, uid, userName, userName)
		group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", userName, uid)
		for _, f := range []struct {
			path string
			data []byte
		}{
			{"etc/passwd", []byte(passwd)},
			{"etc/group", []byte(group)},
			{"etc/nsswitch.conf", []byte("hosts: files dns\n")},
			{"etc/ssl/certs/ca-certificates.crt", certs},
		} {
			if err := w.file(f.path, 0o644, f.data); err != nil {
				return err
			}
		}
		if err := w.dir("tmp", 0o1777, 0); err != nil {
			return err
		}
		if err := w.dir("root", 0o700, 0); err != nil {
			return err
		}
		if err := w.dir("home/"+userName, 0o700, uid); err != nil {
			return err
		}
		return addTree(w, c.zoneinfo, "usr/share/zoneinfo")
	}, c.created)
	if err != nil {
		return nil, fmt.Errorf("base layer: %w", err)
	}
	return l, nil
}

// addTree copies a directory's files and symlinks (relative ones, kept inside
// it) under dst, in a fixed order.
func addTree(w *tarWriter, src, dst string) error {
	var paths []string
	if err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	}); err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	slices.Sort(paths)
	for _, p := range paths {
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.ToSlash(filepath.Join(dst, rel))
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			err = w.dir(target, 0o755, 0)
		case fi.Mode()&fs.ModeSymlink != 0:
			var link string
			if link, err = os.Readlink(p); err == nil {
				if filepath.IsAbs(link) {
					// Debian links some zones to absolute paths: keep them inside the tree.
					if r, rerr := filepath.Rel(src, link); rerr == nil && !strings.HasPrefix(r, "..") {
						link, err = filepath.Rel(filepath.Dir(p), link)
					} else {
						continue
					}
				}
				if err == nil {
					err = w.symlink(target, filepath.ToSlash(link))
				}
			}
		case fi.Mode().IsRegular():
			var data []byte
			if data, err = os.ReadFile(p); err == nil {
				err = w.file(target, 0o644, data)
			}
		}
		if err != nil {
			return fmt.Errorf("add %s: %w", p, err)
		}
	}
	return nil
}

func binaryLayer(c config, bin string) (v1.Layer, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("binary: %w", err)
	}
	l, err := newLayer(func(w *tarWriter) error { return w.file(binPath, 0o755, data) }, c.created)
	if err != nil {
		return nil, fmt.Errorf("binary layer: %w", err)
	}
	return l, nil
}
