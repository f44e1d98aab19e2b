package engine

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"sort"
	"strings"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/events"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/image"
	"github.com/berth-project/berth/internal/engine/snapshot"
)

// decompress returns a reader of the plain tar, whether r is a tar or a gzipped tar.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, errdefs.Invalid("invalid gzip stream: " + err.Error())
		}
		return gz, func() { gz.Close() }, nil
	}
	return br, func() {}, nil
}

// addLayer stores a layer tar (plain or gzipped) as a blob, checks and unpacks it on
// top of parent, and returns its diff id and chain id. A hostile archive is refused
// before anything becomes visible.
func (e *Engine) addLayer(r io.Reader, parent digest.Digest) (diffID, chain digest.Digest, err error) {
	plain, done, err := decompress(r)
	if err != nil {
		return "", "", err
	}
	defer done()
	w, err := e.images.NewWriter()
	if err != nil {
		return "", "", err
	}
	defer w.Discard()
	if _, err := io.Copy(w, plain); err != nil {
		return "", "", errdefs.Invalid("reading layer: " + err.Error())
	}
	diffID = w.Digest()
	chain = diffID
	if parent != "" {
		chain = digest.FromString(parent.String() + " " + diffID.String())
	}
	if !e.snaps.Has(chain) {
		f, err := openFile(w.Path())
		if err != nil {
			return "", "", err
		}
		err = e.snaps.Unpack(chain, f)
		f.Close()
		if err != nil {
			return "", "", err
		}
	}
	if _, err := w.Commit(); err != nil {
		return "", "", err
	}
	return diffID, chain, nil
}

// ImportOptions is docker import's request.
type ImportOptions struct {
	Ref     string   // repo[:tag] to tag the image with, may be empty
	Changes []string // Dockerfile instructions: CMD, ENTRYPOINT, ENV, ...
	Message string
	Source  string // shown in history ("-" for stdin)
}

// Import makes a one-layer image from a rootfs tarball.
func (e *Engine) Import(ctx context.Context, r io.Reader, o ImportOptions) (*image.Image, error) {
	if o.Ref != "" {
		if _, err := image.ParseReference(o.Ref); err != nil {
			return nil, err
		}
	}
	cfg := dockerspec.DockerOCIImage{}
	cfg.Architecture, cfg.OS = goruntime.GOARCH, "linux"
	if err := applyChanges(&cfg.Config, o.Changes); err != nil {
		return nil, err
	}
	diffID, _, err := e.addLayer(r, "")
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	cfg.Created = &now
	cfg.RootFS = ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}}
	comment := o.Message
	if comment == "" {
		comment = "Imported from " + o.Source
	}
	cfg.History = []ocispec.History{{Created: &now, Comment: comment}}
	img, err := e.images.PutImage(cfg, "")
	if err != nil {
		return nil, err
	}
	if o.Ref != "" {
		if err := e.images.Tag(img.ID, o.Ref); err != nil {
			return nil, err
		}
	}
	e.publish(events.ImageEventType, events.ActionImport, img.ID.String(), nil)
	return img, nil
}

// applyChanges applies Dockerfile-style instructions (docker import/commit -c).
func applyChanges(c *dockerspec.DockerOCIImageConfig, changes []string) error {
	for _, ch := range changes {
		ch = strings.TrimSpace(ch)
		if ch == "" {
			continue
		}
		instr, rest, _ := strings.Cut(ch, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "CMD":
			c.Cmd = parseCommand(rest)
		case "ENTRYPOINT":
			c.Entrypoint = parseCommand(rest)
		case "ENV":
			for _, kv := range parseKV(rest) {
				k, _, _ := strings.Cut(kv, "=")
				replaced := false
				for i, old := range c.Env {
					if strings.HasPrefix(old, k+"=") {
						c.Env[i], replaced = kv, true
					}
				}
				if !replaced {
					c.Env = append(c.Env, kv)
				}
			}
		case "LABEL":
			if c.Labels == nil {
				c.Labels = map[string]string{}
			}
			for _, kv := range parseKV(rest) {
				k, v, _ := strings.Cut(kv, "=")
				c.Labels[k] = v
			}
		case "EXPOSE":
			if c.ExposedPorts == nil {
				c.ExposedPorts = map[string]struct{}{}
			}
			for _, p := range strings.Fields(rest) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				c.ExposedPorts[p] = struct{}{}
			}
		case "USER":
			c.User = rest
		case "WORKDIR":
			c.WorkingDir = rest
		case "STOPSIGNAL":
			c.StopSignal = rest
		case "VOLUME":
			if c.Volumes == nil {
				c.Volumes = map[string]struct{}{}
			}
			vols := parseCommand(rest)
			if strings.HasPrefix(rest, "[") {
				for _, v := range vols {
					c.Volumes[v] = struct{}{}
				}
			} else {
				for _, v := range strings.Fields(rest) {
					c.Volumes[v] = struct{}{}
				}
			}
		case "ONBUILD":
			c.OnBuild = append(c.OnBuild, rest)
		default:
			return errdefs.Invalid(fmt.Sprintf("%s is not a valid change command", instr))
		}
	}
	return nil
}

// parseCommand reads an exec-form JSON array, or wraps shell form in /bin/sh -c.
func parseCommand(s string) []string {
	if strings.HasPrefix(s, "[") {
		var argv []string
		if json.Unmarshal([]byte(s), &argv) == nil {
			return argv
		}
	}
	return []string{"/bin/sh", "-c", s}
}

// parseKV reads "k=v k2=\"v 2\"" or the legacy "k v" form.
func parseKV(s string) []string {
	if !strings.Contains(s, "=") {
		k, v, _ := strings.Cut(s, " ")
		return []string{k + "=" + strings.TrimSpace(v)}
	}
	var out []string
	var cur strings.Builder
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote != 0 && ch == quote:
			quote = 0
		case quote == 0 && (ch == '"' || ch == '\''):
			quote = ch
		case quote == 0 && ch == ' ':
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		case ch == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		default:
			cur.WriteByte(ch)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// Tag names an image.
func (e *Engine) Tag(src, ref string) error {
	img, err := e.images.Get(src)
	if err != nil {
		return err
	}
	if err := e.images.Tag(img.ID, ref); err != nil {
		return err
	}
	e.publish(events.ImageEventType, events.ActionTag, img.ID.String(), map[string]string{"name": ref})
	return nil
}

// ImageDeleted is one line of docker rmi's answer.
type ImageDeleted struct{ Untagged, Deleted string }

func (e *Engine) containersUsing(id digest.Digest) (running, stopped *container.Container) {
	for _, c := range e.ctrs.List() {
		if c.Image != id.String() {
			continue
		}
		if c.Running() || c.State.Status == container.Restarting {
			running = c
		} else {
			stopped = c
		}
	}
	return
}

// RemoveImage is docker rmi: by reference it untags (and deletes the image with its
// last reference); by id it deletes the image and all its references.
func (e *Engine) RemoveImage(ctx context.Context, name string, force, noprune bool) ([]ImageDeleted, error) {
	e.imageMu.Lock()
	defer e.imageMu.Unlock()
	img, err := e.images.Get(name)
	if err != nil {
		return nil, err
	}
	short := image.ShortID(img.ID)
	refs := e.images.RefsOf(img.ID)
	var out []ImageDeleted
	byRef := false
	if ref, err := image.ParseReference(name); err == nil {
		for _, r := range refs {
			if r == ref.String() {
				byRef = true
			}
		}
	}
	running, stopped := e.containersUsing(img.ID)
	if e.held[img.ID] > 0 && !(byRef && len(refs) > 1) {
		return nil, errdefs.Conflict(fmt.Sprintf("conflict: unable to delete %s (cannot be forced) - image is being used by a running build", short))
	}
	if byRef {
		ref, _ := image.ParseReference(name)
		if len(refs) > 1 {
			e.images.Untag(ref.String())
			e.publish(events.ImageEventType, events.ActionUnTag, img.ID.String(), map[string]string{"name": ref.String()})
			return []ImageDeleted{{Untagged: image.Familiar(ref.String())}}, nil
		}
		if user := firstOf(running, stopped); user != nil {
			if !force {
				return nil, errdefs.Conflict(fmt.Sprintf("conflict: unable to remove repository reference %q (must force) - container %s is using its referenced image %s", name, user.ID[:12], short))
			}
			e.images.Untag(ref.String())
			return []ImageDeleted{{Untagged: image.Familiar(ref.String())}}, nil
		}
	} else {
		if len(refs) > 1 && !force {
			return nil, errdefs.Conflict(fmt.Sprintf("conflict: unable to delete %s (must be forced) - image is referenced in multiple repositories", short))
		}
		if running != nil {
			return nil, errdefs.Conflict(fmt.Sprintf("conflict: unable to delete %s (cannot be forced) - image is being used by running container %s", short, running.ID[:12]))
		}
		if stopped != nil {
			if !force {
				return nil, errdefs.Conflict(fmt.Sprintf("conflict: unable to delete %s (must be forced) - image is being used by stopped container %s", short, stopped.ID[:12]))
			}
			for _, r := range refs {
				e.images.Untag(r)
				out = append(out, ImageDeleted{Untagged: image.Familiar(r)})
			}
			return out, nil
		}
	}
	if len(e.images.Children(img.ID)) > 0 {
		for _, r := range refs {
			e.images.Untag(r)
			out = append(out, ImageDeleted{Untagged: image.Familiar(r)})
		}
		if len(out) > 0 {
			return out, nil
		}
		return nil, errdefs.Conflict(fmt.Sprintf("conflict: unable to delete %s (cannot be forced) - image has dependent child images", short))
	}
	for _, r := range refs {
		out = append(out, ImageDeleted{Untagged: image.Familiar(r)})
		e.publish(events.ImageEventType, events.ActionUnTag, img.ID.String(), map[string]string{"name": r})
	}
	if noprune {
		del, _ := e.deleteImage(img)
		return append(out, del...), nil
	}
	del, _ := e.deleteWithParents(img)
	return append(out, del...), nil
}

// removable reports whether img could go without anyone noticing: no tag, no child
// image, no container.
func (e *Engine) removable(img *image.Image) bool {
	if e.held[img.ID] > 0 || len(e.images.RefsOf(img.ID)) > 0 || len(e.images.Children(img.ID)) > 0 {
		return false
	}
	r, s := e.containersUsing(img.ID)
	return r == nil && s == nil
}

// deleteWithParents deletes img, then its parent images (a build's intermediate
// steps) for as long as they are removable, as Docker prunes parents on delete. It
// returns what went and the bytes freed.
func (e *Engine) deleteWithParents(img *image.Image) ([]ImageDeleted, int64) {
	out, freed := e.deleteImage(img)
	for parent := img.Parent; parent != "" && len(out) > 0; {
		p, err := e.images.Get(parent.String())
		if err != nil || !e.removable(p) {
			break
		}
		del, n := e.deleteImage(p)
		out, freed = append(out, del...), freed+n
		parent = p.Parent
	}
	return out, freed
}

// deleteImage removes an image record and the layers only it used, and returns the
// bytes that freed. Callers hold imageMu.
func (e *Engine) deleteImage(img *image.Image) ([]ImageDeleted, int64) {
	sizes := map[digest.Digest]int64{}
	for _, l := range img.Config.RootFS.DiffIDs {
		if fi, err := os.Stat(e.images.BlobPath(l)); err == nil {
			sizes[l] = fi.Size()
		}
	}
	chains := snapshot.ChainIDs(img.Config.RootFS.DiffIDs)
	removed, err := e.images.Delete(img.ID)
	if err != nil {
		return nil, 0
	}
	var freed int64
	for _, l := range removed {
		freed += sizes[l]
	}
	used := map[digest.Digest]bool{}
	for _, other := range e.images.List() {
		for _, ch := range snapshot.ChainIDs(other.Config.RootFS.DiffIDs) {
			used[ch] = true
		}
	}
	for _, ch := range chains {
		if !used[ch] {
			e.snaps.RemoveLayer(ch)
		}
	}
	e.publish(events.ImageEventType, events.ActionDelete, img.ID.String(), nil)
	return []ImageDeleted{{Deleted: img.ID.String()}}, freed
}

// PruneImages removes dangling images (all unused ones with all) that no container uses.
func (e *Engine) PruneImages(ctx context.Context, all bool, match func(*image.Image) bool) ([]ImageDeleted, uint64) {
	e.imageMu.Lock()
	defer e.imageMu.Unlock()
	var out []ImageDeleted
	var space uint64
	for _, img := range e.images.List() {
		refs := e.images.RefsOf(img.ID)
		if (!all && len(refs) > 0) || (match != nil && !match(img)) {
			continue
		}
		if r, s := e.containersUsing(img.ID); r != nil || s != nil {
			continue
		}
		if len(e.images.Children(img.ID)) > 0 || e.held[img.ID] > 0 {
			continue
		}
		for _, r := range refs {
			out = append(out, ImageDeleted{Untagged: image.Familiar(r)})
		}
		del, freed := e.deleteWithParents(img)
		space += uint64(freed)
		out = append(out, del...)
	}
	return out, space
}

// HistoryItem is one line of docker history.
type HistoryItem struct {
	ID        string
	Created   int64
	CreatedBy string
	Tags      []string
	Size      int64
	Comment   string
}

// History lists how an image was made, newest step first.
func (e *Engine) History(name string) ([]HistoryItem, error) {
	img, err := e.images.Get(name)
	if err != nil {
		return nil, err
	}
	var out []HistoryItem
	layer := 0
	for _, h := range img.Config.History {
		it := HistoryItem{ID: "<missing>", CreatedBy: h.CreatedBy, Comment: h.Comment}
		if h.Created != nil {
			it.Created = h.Created.Unix()
		}
		if !h.EmptyLayer && layer < len(img.Config.RootFS.DiffIDs) {
			it.Size = e.images.Size(&image.Image{Config: dockerspec.DockerOCIImage{Image: ocispec.Image{RootFS: ocispec.RootFS{DiffIDs: img.Config.RootFS.DiffIDs[layer : layer+1]}}}})
			layer++
		}
		out = append(out, it)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if len(out) == 0 {
		out = append(out, HistoryItem{})
	}
	// Each step of a local build is an image whose parent is the step before: walk
	// the parents to name the steps, as Docker does; the rest stay <missing>.
	cur := img
	for i := range out {
		out[i].ID = cur.ID.String()
		for _, r := range e.images.RefsOf(cur.ID) {
			out[i].Tags = append(out[i].Tags, image.Familiar(r))
		}
		sort.Strings(out[i].Tags)
		if cur.Parent == "" {
			break
		}
		next, err := e.images.Get(cur.Parent.String())
		if err != nil {
			break
		}
		cur = next
	}
	return out, nil
}

func firstOf(a, b *container.Container) *container.Container {
	if a != nil {
		return a
	}
	return b
}
