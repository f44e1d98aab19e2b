package kubelet

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The test images, built locally (no registry is reachable) and imported into containerd.
const (
	pauseImage   = "berth.test/pause:1"
	busyboxImage = "berth.test/busybox:1"
)

// buildImages writes docker-archive tars of the pause image (a static Go program that waits
// for SIGTERM) and a busybox image (Debian's busybox-static with every applet linked).
func buildImages(dir string) ([]string, error) {
	pauseBin := filepath.Join(dir, "pause")
	cmd := exec.Command("go", "build", "-o", pauseBin, "./testdata/pause/main.go")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building pause: %v\n%s", err, out)
	}
	pause, err := os.ReadFile(pauseBin)
	if err != nil {
		return nil, err
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return nil, fmt.Errorf("busybox-static is needed: %w", err)
	}
	list, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	bbFiles := []tfile{
		{name: "bin/", dir: true}, {name: "tmp/", dir: true, mode: 0o1777}, {name: "etc/", dir: true}, {name: "root/", dir: true},
		{name: "bin/busybox", data: bb, mode: 0o755},
		{name: "etc/passwd", data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")},
		{name: "etc/group", data: []byte("root:x:0:\nnogroup:x:65534:\n")},
	}
	for _, a := range strings.Fields(string(list)) {
		if a != "busybox" {
			bbFiles = append(bbFiles, tfile{name: "bin/" + a, link: "busybox"})
		}
	}
	var out []string
	for _, im := range []struct {
		ref   string
		files []tfile
		cmd   []string
	}{
		{pauseImage, []tfile{{name: "pause", data: pause, mode: 0o755}}, []string{"/pause"}},
		{busyboxImage, bbFiles, []string{"/bin/sh"}},
	} {
		p := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(im.ref)+".tar")
		if err := writeImage(p, im.ref, im.files, im.cmd); err != nil {
			return nil, fmt.Errorf("image %s: %w", im.ref, err)
		}
		out = append(out, p)
	}
	return out, nil
}

type tfile struct {
	name string
	data []byte
	mode int64
	dir  bool
	link string
}

func writeImage(path, ref string, files []tfile, cmd []string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), Typeflag: tar.TypeReg}
		switch {
		case f.dir:
			h.Typeflag, h.Size = tar.TypeDir, 0
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		case f.link != "":
			h.Typeflag, h.Linkname, h.Size, h.Mode = tar.TypeSymlink, f.link, 0, 0o777
		case h.Mode == 0:
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(f.data)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerBytes)), nil })
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: "amd64", OS: "linux",
		Config: v1.Config{Cmd: cmd, Env: []string{"PATH=/bin"}},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: mustDiffIDs(img)},
	})
	if err != nil {
		return err
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(path, tag, img)
}

func mustDiffIDs(img v1.Image) []v1.Hash {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil
	}
	return cf.RootFS.DiffIDs
}
