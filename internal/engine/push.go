package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/pgzip"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/registry"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/image"
)

// PushResult is what a pushed tag became in the registry.
type PushResult struct {
	Tag    string
	Digest string
	Size   int
}

// Push sends the image tagged name:tag (every tag of the repository when tag is "")
// to its registry. A layer the registry already has is not sent ("Layer already
// exists"); the others are compressed with gzip on every core and uploaded together.
func (e *Engine) Push(ctx context.Context, repoName, tag string, auth *registry.AuthConfig, progress ProgressFunc) error {
	named, err := reference.ParseNormalizedNamed(repoName)
	if err != nil {
		return errdefs.Invalid("invalid reference format: " + repoName)
	}
	repo := reference.TrimNamed(named)
	var tags []reference.NamedTagged
	if tag != "" {
		t, err := reference.WithTag(repo, tag)
		if err != nil {
			return errdefs.Invalid(err.Error())
		}
		tags = append(tags, t)
	} else if t, ok := named.(reference.NamedTagged); ok {
		tags = append(tags, t)
	} else {
		for _, img := range e.images.List() {
			for _, r := range e.images.RefsOf(img.ID) {
				if n, err := reference.ParseNormalizedNamed(r); err == nil && n.Name() == repo.Name() {
					if t, ok := n.(reference.NamedTagged); ok {
						tags = append(tags, t)
					}
				}
			}
		}
		sort.Slice(tags, func(i, j int) bool { return tags[i].Tag() < tags[j].Tag() })
	}
	if len(tags) == 0 {
		return errdefs.NotFound("An image does not exist locally with the tag: " + reference.FamiliarName(repo))
	}
	for _, t := range tags {
		if _, err := e.images.Get(t.String()); err != nil {
			return errdefs.NotFound("An image does not exist locally with the tag: " + reference.FamiliarString(t))
		}
	}
	progress(Progress{Status: "The push refers to repository [" + repo.String() + "]"})
	opts, err := e.remoteOptions(ctx, registryHost(repo), auth)
	if err != nil {
		return err
	}
	pusher, err := remote.NewPusher(opts...)
	if err != nil {
		return err
	}
	puller, err := remote.NewPuller(opts...)
	if err != nil {
		return err
	}
	for _, t := range tags {
		if err := e.pushTag(ctx, t, pusher, puller, progress); err != nil {
			return registryError("push", t, err)
		}
	}
	return nil
}

func (e *Engine) pushTag(ctx context.Context, t reference.NamedTagged, pusher *remote.Pusher, puller *remote.Puller, progress ProgressFunc) error {
	img, err := e.images.Get(t.String())
	if err != nil {
		return err
	}
	release := e.hold(img.ID)
	defer release()
	rref, err := e.remoteRef(t)
	if err != nil {
		return err
	}
	repo := rref.Context()
	diffIDs := img.Config.RootFS.DiffIDs
	for _, d := range diffIDs {
		progress(Progress{ID: image.ShortID(d), Status: "Preparing"})
	}
	descs := make([]v1.Descriptor, len(diffIDs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2) // compression already uses every core
	for i, d := range diffIDs {
		g.Go(func() error {
			desc, err := e.pushLayer(gctx, repo, d, pusher, puller, progress)
			descs[i] = desc
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	cfg := static.NewLayer(img.Raw, types.DockerConfigJSON)
	if err := pusher.Upload(ctx, repo, cfg); err != nil {
		return err
	}
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     types.DockerManifestSchema2,
		"config":        v1.Descriptor{MediaType: types.DockerConfigJSON, Size: int64(len(img.Raw)), Digest: mustHash(img.ID)},
		"layers":        descs,
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := pusher.Put(ctx, rref, rawManifest(raw)); err != nil {
		return err
	}
	md := digest.FromBytes(raw)
	if dig, err := reference.WithDigest(reference.TrimNamed(t), md); err == nil {
		e.images.AddRepoDigest(img.ID, dig.String())
	}
	progress(Progress{Status: fmt.Sprintf("%s: digest: %s size: %d", t.Tag(), md, len(raw)),
		Aux: PushResult{Tag: t.Tag(), Digest: md.String(), Size: len(raw)}})
	e.publish(events.ImageEventType, events.ActionPush, reference.FamiliarString(t), map[string]string{"name": reference.FamiliarString(t)})
	return nil
}

// pushLayer makes sure the registry has the layer and returns its descriptor. A layer
// pushed or pulled before is looked up by its known digest first, without compressing.
func (e *Engine) pushLayer(ctx context.Context, repo name.Repository, diffID digest.Digest, pusher *remote.Pusher, puller *remote.Puller, progress ProgressFunc) (v1.Descriptor, error) {
	short := image.ShortID(diffID)
	exists := func(info image.BlobInfo) bool {
		l, err := puller.Layer(ctx, repo.Digest(info.Digest.String()))
		if err != nil {
			return false
		}
		ex, ok := l.(interface{ Exists() (bool, error) })
		if !ok {
			return false
		}
		found, err := ex.Exists()
		return err == nil && found
	}
	descOf := func(info image.BlobInfo) v1.Descriptor {
		mt := types.MediaType(info.MediaType)
		if mt == "" {
			mt = types.DockerLayer
		}
		return v1.Descriptor{MediaType: mt, Size: info.Size, Digest: mustHash(info.Digest)}
	}
	if info, ok := e.images.LayerBlob(diffID); ok && exists(info) {
		progress(Progress{ID: short, Status: "Layer already exists"})
		return descOf(info), nil
	}
	t0 := time.Now()
	f, info, err := e.compressLayer(diffID)
	if err != nil {
		return v1.Descriptor{}, err
	}
	t1 := time.Now()
	defer os.Remove(f)
	l := &fileLayer{path: f, info: info, diffID: diffID, onRead: func(n int64) {
		progress(Progress{ID: short, Status: "Pushing", Current: n, Total: info.Size})
	}}
	if err := pusher.Upload(ctx, repo, l); err != nil {
		return v1.Descriptor{}, err
	}
	e.log.Debug("pushed layer", "layer", short, "bytes", info.Size, "compress", t1.Sub(t0), "upload", time.Since(t1))
	if l.read {
		progress(Progress{ID: short, Status: "Pushed"})
	} else {
		progress(Progress{ID: short, Status: "Layer already exists"})
	}
	e.images.SetLayerBlob(diffID, info)
	return descOf(info), nil
}

// compressLayer gzips a layer blob into a temporary file, hashing as it writes.
func (e *Engine) compressLayer(diffID digest.Digest) (string, image.BlobInfo, error) {
	src, err := e.images.OpenBlob(diffID)
	if err != nil {
		return "", image.BlobInfo{}, err
	}
	defer src.Close()
	f, err := os.CreateTemp(filepath.Join(e.cfg.DataDir, "image", "tmp"), "push-")
	if err != nil {
		return "", image.BlobInfo{}, err
	}
	h := sha256.New()
	counter := &countingWriter{}
	zw := pgzip.NewWriter(io.MultiWriter(f, h, counter))
	zw.SetConcurrency(1<<20, 2*goruntime.NumCPU())
	_, err = io.Copy(zw, src)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", image.BlobInfo{}, err
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil)))
	return f.Name(), image.BlobInfo{Digest: d, Size: counter.n, MediaType: string(types.DockerLayer)}, nil
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// fileLayer is a compressed layer in a temporary file, as go-containerregistry uploads it.
type fileLayer struct {
	path   string
	info   image.BlobInfo
	diffID digest.Digest
	onRead func(int64)
	read   bool // the registry lacked it, so it was read for upload
}

func (l *fileLayer) Digest() (v1.Hash, error) { return v1.NewHash(l.info.Digest.String()) }
func (l *fileLayer) DiffID() (v1.Hash, error) { return v1.NewHash(l.diffID.String()) }
func (l *fileLayer) Size() (int64, error)     { return l.info.Size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.info.MediaType), nil
}
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) {
	return nil, errdefs.Invalid("not supported")
}
func (l *fileLayer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	l.read = true
	return readCloser{&countingReader{r: f, every: l.onRead}, f}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// rawManifest is a manifest to PUT as it is.
type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error)        { return m, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.DockerManifestSchema2, nil }

func mustHash(d digest.Digest) v1.Hash {
	h, _ := v1.NewHash(d.String())
	return h
}
