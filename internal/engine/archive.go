package engine

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/events"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/image"
	"github.com/berth-project/berth/internal/engine/snapshot"
)

func openFile(p string) (*os.File, error) { return os.Open(p) }

type archiveManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// Load reads a docker-archive or OCI layout tarball (docker load) and reports each
// loaded image through progress.
func (e *Engine) Load(ctx context.Context, r io.Reader, progress func(string)) error {
	tmp, err := os.MkdirTemp(filepath.Join(e.cfg.DataDir, "image", "tmp"), "load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := extractArchive(tmp, r); err != nil {
		return err
	}
	var manifests []archiveManifest
	if data, err := os.ReadFile(filepath.Join(tmp, "manifest.json")); err == nil {
		if err := json.Unmarshal(data, &manifests); err != nil {
			return errdefs.Invalid("invalid manifest.json: " + err.Error())
		}
	} else if manifests, err = ociManifests(tmp); err != nil {
		return err
	}
	if len(manifests) == 0 {
		return errdefs.Invalid("no images found in the archive (no manifest.json or index.json)")
	}
	for _, m := range manifests {
		img, err := e.loadOne(tmp, m)
		if err != nil {
			return err
		}
		if len(m.RepoTags) == 0 {
			progress("Loaded image ID: " + img.ID.String())
		}
		for _, t := range m.RepoTags {
			if err := e.images.Tag(img.ID, t); err != nil {
				return err
			}
			progress("Loaded image: " + image.Familiar(mustNormal(t)))
		}
		e.publish(events.ImageEventType, events.ActionLoad, img.ID.String(), nil)
	}
	return nil
}

func mustNormal(t string) string {
	if r, err := image.ParseReference(t); err == nil {
		return r.String()
	}
	return t
}

// extractArchive unpacks the regular files of an image archive; anything else
// (links, devices, names that climb out) is refused.
func extractArchive(dir string, r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return errdefs.Invalid("invalid archive: " + err.Error())
		}
		name, err := snapshot.CleanEntryName(hdr.Name)
		if err != nil {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg, tar.TypeRegA:
		case tar.TypeSymlink:
			// docker save of old versions links identical layers; resolve within dir.
			target := path.Join(path.Dir(name), hdr.Linkname)
			if _, err := snapshot.CleanEntryName(target); err != nil || path.IsAbs(hdr.Linkname) {
				return errdefs.Invalid(fmt.Sprintf("invalid archive: link %q points outside the archive", hdr.Name))
			}
			p := filepath.Join(dir, name)
			os.MkdirAll(filepath.Dir(p), 0o700)
			if err := os.Symlink(hdr.Linkname, p); err != nil {
				return err
			}
			continue
		default:
			return errdefs.Invalid(fmt.Sprintf("invalid archive: entry %q has unsupported type", hdr.Name))
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, tr)
		f.Close()
		if err != nil {
			return errdefs.Invalid("invalid archive: " + err.Error())
		}
	}
}

// archivePath resolves a path named inside an archive, refusing to leave dir.
func archivePath(dir, name string) (string, error) {
	clean, err := snapshot.CleanEntryName(name)
	if err != nil || clean == "" {
		return "", errdefs.Invalid(fmt.Sprintf("invalid archive: path %q", name))
	}
	p := filepath.Join(dir, clean)
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", errdefs.Invalid(fmt.Sprintf("invalid archive: %s is missing", name))
	}
	if !strings.HasPrefix(real, dir+"/") {
		return "", errdefs.Invalid(fmt.Sprintf("invalid archive: %s points outside the archive", name))
	}
	return real, nil
}

func ociManifests(dir string) ([]archiveManifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, nil
	}
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, errdefs.Invalid("invalid index.json: " + err.Error())
	}
	var out []archiveManifest
	for _, d := range idx.Manifests {
		if d.Digest.Validate() != nil {
			return nil, errdefs.Invalid("invalid digest in index.json")
		}
		p, err := archivePath(dir, "blobs/"+d.Digest.Algorithm().String()+"/"+d.Digest.Encoded())
		if err != nil {
			return nil, err
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(raw, &m); err != nil || m.Config.Digest == "" {
			continue // an index inside the index (multi-platform) is not supported here
		}
		am := archiveManifest{Config: "blobs/sha256/" + m.Config.Digest.Encoded()}
		for _, l := range m.Layers {
			am.Layers = append(am.Layers, "blobs/sha256/"+l.Digest.Encoded())
		}
		if name := d.Annotations["io.containerd.image.name"]; name != "" {
			am.RepoTags = []string{name}
		}
		out = append(out, am)
	}
	return out, nil
}

func (e *Engine) loadOne(dir string, m archiveManifest) (*image.Image, error) {
	cp, err := archivePath(dir, m.Config)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(cp)
	if err != nil {
		return nil, err
	}
	var cfg dockerspec.DockerOCIImage
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, errdefs.Invalid("invalid image config in archive: " + err.Error())
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, errdefs.Invalid("invalid archive: the image config lists a different number of layers than the manifest")
	}
	var parent digest.Digest
	for i, l := range m.Layers {
		lp, err := archivePath(dir, l)
		if err != nil {
			return nil, err
		}
		f, err := os.Open(lp)
		if err != nil {
			return nil, err
		}
		diffID, chain, err := e.addLayer(f, parent)
		f.Close()
		if err != nil {
			return nil, err
		}
		if diffID != cfg.RootFS.DiffIDs[i] {
			return nil, errdefs.Invalid(fmt.Sprintf("invalid archive: layer %s has diff id %s, the config says %s", l, diffID, cfg.RootFS.DiffIDs[i]))
		}
		parent = chain
	}
	return e.images.PutImageRaw(raw, "")
}

// Save writes images as one tarball that is both a docker-archive (manifest.json)
// and an OCI image layout (index.json), as Docker 25+ does.
func (e *Engine) Save(ctx context.Context, names []string, w io.Writer) error {
	type item struct {
		img  *image.Image
		tags []string
	}
	var items []item
	for _, n := range names {
		img, err := e.images.Get(n)
		if err != nil {
			return err
		}
		var tags []string
		if ref, err := image.ParseReference(n); err == nil && !image.IsID(n) {
			tags = []string{ref.String()}
		} else if !image.IsID(n) {
			tags = e.images.RefsOf(img.ID)
		}
		items = append(items, item{img, tags})
	}
	tw := tar.NewWriter(w)
	written := map[digest.Digest]bool{}
	now := time.Unix(0, 0)
	writeFile := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	writeBlob := func(d digest.Digest) error {
		if written[d] {
			return nil
		}
		written[d] = true
		f, err := e.images.OpenBlob(d)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, _ := f.Stat()
		if err := tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + d.Encoded(), Mode: 0o644, Size: fi.Size(), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = io.Copy(tw, f)
		return err
	}
	tw.WriteHeader(&tar.Header{Name: "blobs/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now})
	tw.WriteHeader(&tar.Header{Name: "blobs/sha256/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now})
	var manifests []archiveManifest
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	for _, it := range items {
		if err := writeBlob(it.img.ID); err != nil {
			return err
		}
		m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
			Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: it.img.ID, Size: int64(len(it.img.Raw))}}
		m.SchemaVersion = 2
		am := archiveManifest{Config: "blobs/sha256/" + it.img.ID.Encoded()}
		for _, l := range it.img.Config.RootFS.DiffIDs {
			if err := writeBlob(l); err != nil {
				return err
			}
			fi, _ := os.Stat(e.images.BlobPath(l))
			m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: l, Size: fi.Size()})
			am.Layers = append(am.Layers, "blobs/sha256/"+l.Encoded())
		}
		mraw, _ := json.Marshal(m)
		md := digest.FromBytes(mraw)
		if !written[md] {
			written[md] = true
			if err := writeFile("blobs/sha256/"+md.Encoded(), mraw); err != nil {
				return err
			}
		}
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: md, Size: int64(len(mraw))}
		for _, t := range it.tags {
			am.RepoTags = append(am.RepoTags, image.Familiar(t))
			d := desc
			_, tag, _ := strings.Cut(t[strings.LastIndex(t, "/")+1:], ":")
			d.Annotations = map[string]string{"io.containerd.image.name": t, ocispec.AnnotationRefName: tag}
			idx.Manifests = append(idx.Manifests, d)
		}
		if len(it.tags) == 0 {
			idx.Manifests = append(idx.Manifests, desc)
		}
		manifests = append(manifests, am)
		e.publish(events.ImageEventType, events.ActionSave, it.img.ID.String(), nil)
	}
	mj, _ := json.Marshal(manifests)
	ij, _ := json.Marshal(idx)
	if err := writeFile("manifest.json", mj); err != nil {
		return err
	}
	if err := writeFile("index.json", ij); err != nil {
		return err
	}
	if err := writeFile("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	return tw.Close()
}
