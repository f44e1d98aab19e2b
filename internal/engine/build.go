package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	dcontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/registry"
	digest "github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/internal/engine/build"
	"github.com/berth-project/berth/internal/engine/image"
	"github.com/berth-project/berth/internal/engine/snapshot"
)

// Build runs docker build: body is the context (a tar, or a bare Dockerfile), out gets
// the classic builder's progress text. It returns the id of the image made. id names
// the build for CancelBuild.
func (e *Engine) Build(ctx context.Context, id string, body io.Reader, o build.Options, out io.Writer) (digest.Digest, error) {
	return e.builder.Build(ctx, id, body, o, out)
}

// CancelBuild stops a running build.
func (e *Engine) CancelBuild(id string) bool { return e.builder.Cancel(id) }

// PruneBuildCache removes the images that only the build cache holds (untagged,
// unused, with no children) and forgets cache entries of images that are gone; with
// all it forgets every entry, so the next build runs each step again.
func (e *Engine) PruneBuildCache(ctx context.Context, all bool) ([]string, uint64, error) {
	cache := e.builder.Cache()
	e.imageMu.Lock()
	var deleted []string
	var space uint64
	for _, id := range cache.Images() {
		img, err := e.images.Get(id.String())
		if err != nil || !e.removable(img) {
			continue
		}
		del, freed := e.deleteWithParents(img)
		for _, d := range del {
			if d.Deleted != "" {
				deleted = append(deleted, d.Deleted)
			}
		}
		space += uint64(freed)
	}
	e.imageMu.Unlock()
	cache.Prune(func(id digest.Digest) bool {
		if all {
			return false
		}
		_, err := e.images.Get(id.String())
		return err == nil
	})
	return deleted, space, cache.Save()
}

// buildBackend is the engine as the builder sees it.
type buildBackend struct{ e *Engine }

var _ build.Backend = buildBackend{}

func (b buildBackend) Image(ref string) (*image.Image, error) { return b.e.images.Get(ref) }

func (b buildBackend) PutImage(cfg dockerspec.DockerOCIImage, parent digest.Digest) (*image.Image, error) {
	return b.e.images.PutImage(cfg, parent)
}

func (b buildBackend) Tag(id digest.Digest, ref string) error {
	if err := b.e.images.Tag(id, ref); err != nil {
		return err
	}
	b.e.publish(events.ImageEventType, events.ActionTag, id.String(), map[string]string{"name": ref})
	return nil
}

// Pull pulls a base image for a build, with the credentials the client sent for its
// registry, writing Docker's short progress lines.
func (b buildBackend) Pull(ctx context.Context, ref string, auth map[string]registry.AuthConfig, out io.Writer) (*image.Image, error) {
	var a *registry.AuthConfig
	if named, err := image.ParseReference(ref); err == nil {
		host := registryHost(named)
		for addr, cfg := range auth {
			if registryOf(addr) == host {
				a = &cfg
				break
			}
		}
	}
	return b.e.Pull(ctx, ref, a, func(p Progress) {
		if p.Current > 0 || p.Total > 0 {
			return // byte counts are for terminals
		}
		if p.ID != "" {
			fmt.Fprintf(out, "%s: %s\n", p.ID, p.Status)
		} else {
			fmt.Fprintln(out, p.Status)
		}
	})
}

func (b buildBackend) Hold(id digest.Digest) func() { return b.e.hold(id) }

// hold keeps an image from prunes and removals (a build or push stands on it) until
// the returned release is called; release may be called more than once.
func (e *Engine) hold(id digest.Digest) func() {
	e.imageMu.Lock()
	e.held[id]++
	e.imageMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			e.imageMu.Lock()
			if e.held[id]--; e.held[id] <= 0 {
				delete(e.held, id)
			}
			e.imageMu.Unlock()
		})
	}
}

// Run runs a RUN step as a container of the engine and commits its changes.
func (b buildBackend) Run(ctx context.Context, img *image.Image, r build.RunRequest, out io.Writer) (digest.Digest, error) {
	e := b.e
	network := r.Network
	if network == "" || network == "default" {
		network = "bridge"
	}
	c, _, err := e.Create(ctx, CreateOptions{
		Config: &dcontainer.Config{
			Image: img.ID.String(), Cmd: r.Cmd, Entrypoint: []string{}, Env: r.Env, User: r.User,
			WorkingDir: r.WorkingDir, AttachStdout: true, AttachStderr: true,
		},
		HostConfig: &dcontainer.HostConfig{NetworkMode: dcontainer.NetworkMode(network), Binds: r.Binds},
	})
	if err != nil {
		return "", err
	}
	defer e.Remove(context.Background(), c.ID, RemoveOptions{Force: true, Volumes: true})
	if r.Started != nil {
		r.Started(c.ID)
	}
	// Attach before the start, so no output is lost.
	l := e.liveOf(c.ID)
	ch := make(chan *net.UnixConn, 1)
	l.mu.Lock()
	l.pending = append(l.pending, ch)
	l.mu.Unlock()
	if err := e.Start(ctx, c.ID); err != nil {
		return "", err
	}
	if conn := <-ch; conn != nil {
		stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
		pump(conn, Streams{Out: out, Stdout: true, Stderr: true})
		stop()
		conn.Close()
	}
	code, err := e.Wait(ctx, c.ID, WaitNotRunning, nil)
	if err != nil {
		return "", err
	}
	if code != 0 {
		return "", &build.ExitError{Cmd: r.Cmd, Code: code}
	}
	act, err := e.activeOf(c)
	if err != nil {
		return "", err
	}
	return e.commitUpper(act, img)
}

// Change lets fn change a scratch copy of img's root filesystem and commits the result.
func (b buildBackend) Change(ctx context.Context, img *image.Image, fn func(root string) error) (digest.Digest, error) {
	var layer digest.Digest
	err := b.e.withScratch(img, func(act *snapshot.Active) error {
		if err := fn(act.Merged); err != nil {
			return err
		}
		if err := act.Unmount(); err != nil {
			return err
		}
		if empty, err := dirEmpty(act.Upper); err != nil || empty {
			return err
		}
		var err error
		layer, err = b.e.commitUpper(act, img)
		return err
	})
	return layer, err
}

// View mounts img's root filesystem for fn; what fn writes is thrown away.
func (b buildBackend) View(ctx context.Context, img *image.Image, fn func(root string) error) error {
	return b.e.withScratch(img, func(act *snapshot.Active) error { return fn(act.Merged) })
}

// withScratch mounts a throwaway writable layer on img for fn, and removes it after.
func (e *Engine) withScratch(img *image.Image, fn func(act *snapshot.Active) error) error {
	var rnd [8]byte
	rand.Read(rnd[:])
	key := "build-" + hex.EncodeToString(rnd[:])
	act, err := e.snaps.Prepare(key, snapshot.ChainIDs(img.Config.RootFS.DiffIDs))
	if err != nil {
		return err
	}
	defer e.snaps.Remove(key)
	if err := act.Mount(); err != nil {
		return err
	}
	defer act.Unmount()
	return fn(act)
}

// commitUpper stores the writable layer of act, made on img, as a layer and returns
// its diff id.
func (e *Engine) commitUpper(act *snapshot.Active, img *image.Image) (digest.Digest, error) {
	var parent digest.Digest
	if chains := snapshot.ChainIDs(img.Config.RootFS.DiffIDs); len(chains) > 0 {
		parent = chains[len(chains)-1]
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(act.WriteDiff(pw)) }()
	diffID, _, err := e.addLayer(pr, parent)
	pr.Close()
	return diffID, err
}

func dirEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}
