package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/registry"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/image"
	"github.com/berth-project/berth/internal/engine/snapshot"
)

// Pull fetches an image (by tag or digest; from an index, the host's platform) from
// its registry, and tags it. Layers come down three at a time and are unpacked as
// they arrive; each is checked against the digests the manifest and config give.
func (e *Engine) Pull(ctx context.Context, ref string, auth *registry.AuthConfig, progress ProgressFunc) (*image.Image, error) {
	named, err := image.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	rref, err := e.remoteRef(named)
	if err != nil {
		return nil, err
	}
	opts, err := e.remoteOptions(ctx, registryHost(named), auth)
	if err != nil {
		return nil, err
	}
	desc, err := remote.Get(rref, opts...)
	if err != nil {
		return nil, registryError("pull", named, err)
	}
	progress(Progress{ID: tagOrDigest(named), Status: "Pulling from " + reference.Path(named)})
	img, err := desc.Image()
	if err != nil {
		return nil, registryError("pull", named, err)
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return nil, registryError("pull", named, err)
	}
	var cfg dockerspec.DockerOCIImage
	if err := json.Unmarshal(rawCfg, &cfg); err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("pull %s: invalid image config: %v", reference.FamiliarString(named), err))
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, registryError("pull", named, err)
	}
	diffIDs := cfg.RootFS.DiffIDs
	if len(layers) != len(diffIDs) {
		return nil, errdefs.Invalid(fmt.Sprintf("pull %s: the manifest has %d layers, the config %d", reference.FamiliarString(named), len(layers), len(diffIDs)))
	}
	chains := snapshot.ChainIDs(diffIDs)
	id := digest.FromBytes(rawCfg)
	existed := false
	if _, err := e.images.Get(id.String()); err == nil {
		existed = true
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(3)
	for i, l := range layers {
		h, err := l.Digest()
		if err != nil {
			return nil, registryError("pull", named, err)
		}
		short := shortDigest(h)
		if e.images.HasBlob(diffIDs[i]) && e.snaps.Has(chains[i]) {
			progress(Progress{ID: short, Status: "Already exists"})
			continue
		}
		progress(Progress{ID: short, Status: "Pulling fs layer"})
		g.Go(func() error {
			return e.pullLayer(gctx, l, short, diffIDs[i], chains[i], progress)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, registryError("pull", named, err)
	}

	stored, err := e.images.PutImageRaw(rawCfg, "")
	if err != nil {
		return nil, err
	}
	manifest, _ := digest.Parse(desc.Digest.String())
	repo := reference.TrimNamed(named)
	moved := false
	if _, isDigest := named.(reference.Digested); !isDigest {
		if cur, err := e.images.Get(named.String()); err != nil || cur.ID != stored.ID {
			moved = true
		}
		if err := e.images.Tag(stored.ID, named.String()); err != nil {
			return nil, err
		}
	}
	if dig, err := reference.WithDigest(repo, manifest); err == nil {
		e.images.AddRepoDigest(stored.ID, dig.String())
	}
	progress(Progress{Status: "Digest: " + manifest.String()})
	if existed && !moved {
		progress(Progress{Status: "Status: Image is up to date for " + reference.FamiliarString(named)})
	} else {
		progress(Progress{Status: "Status: Downloaded newer image for " + reference.FamiliarString(named)})
	}
	e.publish(events.ImageEventType, events.ActionPull, reference.FamiliarString(named), map[string]string{"name": reference.FamiliarString(named)})
	return stored, nil
}

// pullLayer downloads one layer, decompressing it as it comes, and writes it twice at
// once: as the layer blob (which checks its diff id) and unpacked as a snapshot.
func (e *Engine) pullLayer(ctx context.Context, l v1.Layer, short string, diffID, chain digest.Digest, progress ProgressFunc) error {
	mt, _ := l.MediaType()
	size, _ := l.Size()
	had := e.snaps.Has(chain)
	if h, err := l.Digest(); err == nil {
		defer func() {
			d, _ := digest.Parse(h.String())
			e.images.SetLayerBlob(diffID, image.BlobInfo{Digest: d, Size: size, MediaType: string(mt)})
		}()
	}
	rc, err := l.Compressed() // checks the compressed digest as it is read
	if err != nil {
		return err
	}
	defer rc.Close()
	stop := context.AfterFunc(ctx, func() { rc.Close() })
	defer stop()
	counted := &countingReader{r: rc, every: func(n int64) {
		progress(Progress{ID: short, Status: "Downloading", Current: n, Total: size})
	}}
	var plain io.Reader
	switch mt {
	case types.DockerLayer, types.OCILayer, types.DockerForeignLayer, types.OCIRestrictedLayer:
		gz, err := gzip.NewReader(counted)
		if err != nil {
			return fmt.Errorf("layer %s: %w", short, err)
		}
		defer gz.Close()
		plain = gz
	case types.OCIUncompressedLayer, types.OCIUncompressedRestrictedLayer:
		plain = counted
	case types.OCILayerZStd:
		zr, err := zstd.NewReader(counted)
		if err != nil {
			return fmt.Errorf("layer %s: %w", short, err)
		}
		defer zr.Close()
		plain = zr
	default:
		return errdefs.Invalid(fmt.Sprintf("layer %s: unsupported media type %s", short, mt))
	}
	w, err := e.images.NewWriter()
	if err != nil {
		return err
	}
	defer w.Discard()
	pr, pw := io.Pipe()
	unpacked := make(chan error, 1)
	go func() {
		err := e.snaps.Unpack(chain, pr)
		if err == nil {
			// A tar may be padded past its end-of-archive blocks (GNU tar fills a
			// 10 KiB record): the blob keeps the padding, so read it to the end.
			_, err = io.Copy(io.Discard, pr)
		}
		pr.CloseWithError(err)
		unpacked <- err
	}()
	_, err = io.Copy(io.MultiWriter(w, pw), plain)
	pw.CloseWithError(err)
	if uerr := <-unpacked; err == nil {
		err = uerr
	}
	if err == nil && w.Digest() != diffID {
		err = errdefs.Invalid(fmt.Sprintf("layer %s: content digest %s does not match the config's %s", short, w.Digest(), diffID))
	}
	if err != nil {
		if !had {
			e.snaps.RemoveLayer(chain)
		}
		return err
	}
	progress(Progress{ID: short, Status: "Download complete"})
	if _, err := w.Commit(); err != nil {
		return err
	}
	progress(Progress{ID: short, Status: "Pull complete"})
	return nil
}
