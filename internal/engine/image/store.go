// Package image is the engine's image store: content-addressed blobs (image configs
// and layer tars, each stored once by digest), image records, and the references
// (tags) that name them.
package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/internal/engine/errdefs"
)

// Image is a stored image: its id (the digest of its config) and the parsed config.
type Image struct {
	ID     digest.Digest
	Config dockerspec.DockerOCIImage
	Raw    []byte
	// Parent is the image this one was built or committed on, if known locally.
	Parent digest.Digest
}

// Store keeps blobs under root/blobs/sha256 and references in root/repositories.json.
type Store struct {
	root string

	mu      sync.Mutex
	refs    map[string]digest.Digest // normalised reference -> image id
	digests map[string]digest.Digest // "repo@sha256:..." (a registry's manifest) -> image id
	images  map[digest.Digest]*Image
	meta    map[digest.Digest]imageMeta
	// layers remembers, per diff id, the compressed blob a registry knows the layer
	// by, so a push can ask whether the registry has it before compressing anything.
	layers map[digest.Digest]BlobInfo
}

// BlobInfo is a compressed layer as a registry stores it.
type BlobInfo struct {
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
	MediaType string        `json:"mediaType,omitempty"`
}

type imageMeta struct {
	Parent digest.Digest `json:"parent,omitempty"`
}

type repoFile struct {
	Refs    map[string]digest.Digest    `json:"refs"`
	Digests map[string]digest.Digest    `json:"digests,omitempty"`
	Images  map[digest.Digest]imageMeta `json:"images"`
	Layers  map[digest.Digest]BlobInfo  `json:"layers,omitempty"`
}

// Open loads the store at root, creating it if needed.
func Open(root string) (*Store, error) {
	s := &Store{root: root, refs: map[string]digest.Digest{}, digests: map[string]digest.Digest{},
		images: map[digest.Digest]*Image{}, meta: map[digest.Digest]imageMeta{}, layers: map[digest.Digest]BlobInfo{}}
	if err := os.MkdirAll(filepath.Join(root, "blobs", "sha256"), 0o700); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o700); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(root, "repositories.json"))
	if err == nil {
		var rf repoFile
		if err := json.Unmarshal(data, &rf); err != nil {
			return nil, fmt.Errorf("image store %s: %w", root, err)
		}
		if rf.Refs != nil {
			s.refs = rf.Refs
		}
		if rf.Images != nil {
			s.meta = rf.Images
		}
		if rf.Digests != nil {
			s.digests = rf.Digests
		}
		if rf.Layers != nil {
			s.layers = rf.Layers
		}
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	for id := range s.meta {
		img, err := s.readImage(id)
		if err != nil {
			delete(s.meta, id)
			continue
		}
		s.images[id] = img
	}
	return s, nil
}

func (s *Store) blobPath(d digest.Digest) string {
	return filepath.Join(s.root, "blobs", d.Algorithm().String(), d.Encoded())
}

// BlobPath is where the blob with digest d lives (it may not exist).
func (s *Store) BlobPath(d digest.Digest) string { return s.blobPath(d) }

// HasBlob reports whether a blob is stored.
func (s *Store) HasBlob(d digest.Digest) bool {
	_, err := os.Stat(s.blobPath(d))
	return err == nil
}

func (s *Store) readImage(id digest.Digest) (*Image, error) {
	raw, err := os.ReadFile(s.blobPath(id))
	if err != nil {
		return nil, err
	}
	img := &Image{ID: id, Raw: raw, Parent: s.meta[id].Parent}
	if err := json.Unmarshal(raw, &img.Config); err != nil {
		return nil, err
	}
	return img, nil
}

// save writes repositories.json atomically. Callers hold s.mu.
func (s *Store) save() error {
	data, err := json.Marshal(repoFile{Refs: s.refs, Digests: s.digests, Images: s.meta, Layers: s.layers})
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.root, "repositories.json"), data)
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Writer stores a blob while hashing it. Commit moves it into place under its digest.
type Writer struct {
	f    *os.File
	h    hash.Hash
	n    int64
	s    *Store
	done bool
}

// NewWriter starts a blob.
func (s *Store) NewWriter() (*Writer, error) {
	f, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "blob-")
	if err != nil {
		return nil, err
	}
	return &Writer{f: f, h: sha256.New(), s: s}, nil
}

func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// Digest is the digest of what was written so far.
func (w *Writer) Digest() digest.Digest {
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(w.h.Sum(nil)))
}

// Size is the number of bytes written.
func (w *Writer) Size() int64 { return w.n }

// Path is the temporary file being written, for readers that need it before Commit.
func (w *Writer) Path() string { return w.f.Name() }

// Commit stores the blob under its digest; it always closes the writer.
func (w *Writer) Commit() (digest.Digest, error) {
	d := w.Digest()
	w.done = true
	if err := w.f.Close(); err != nil {
		os.Remove(w.f.Name())
		return "", err
	}
	if w.s.HasBlob(d) {
		os.Remove(w.f.Name())
		return d, nil
	}
	return d, os.Rename(w.f.Name(), w.s.blobPath(d))
}

// Discard drops an uncommitted blob.
func (w *Writer) Discard() {
	if !w.done {
		w.done = true
		w.f.Close()
		os.Remove(w.f.Name())
	}
}

// PutBlob stores p and returns its digest.
func (s *Store) PutBlob(p []byte) (digest.Digest, error) {
	w, err := s.NewWriter()
	if err != nil {
		return "", err
	}
	if _, err := w.Write(p); err != nil {
		w.Discard()
		return "", err
	}
	return w.Commit()
}

// OpenBlob opens a stored blob.
func (s *Store) OpenBlob(d digest.Digest) (*os.File, error) {
	f, err := os.Open(s.blobPath(d))
	if os.IsNotExist(err) {
		return nil, fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
	}
	return f, err
}

// PutImage stores an image config (its layers must already be stored) and returns the image.
func (s *Store) PutImage(cfg dockerspec.DockerOCIImage, parent digest.Digest) (*Image, error) {
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	return s.PutImageRaw(raw, parent)
}

// PutImageRaw stores a config exactly as given, so its digest (the image id) is kept.
func (s *Store) PutImageRaw(raw []byte, parent digest.Digest) (*Image, error) {
	var cfg dockerspec.DockerOCIImage
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, errdefs.Invalid("invalid image config: " + err.Error())
	}
	for _, l := range cfg.RootFS.DiffIDs {
		if l.Validate() != nil {
			return nil, errdefs.Invalid("invalid layer digest " + string(l))
		}
		if !s.HasBlob(l) {
			return nil, fmt.Errorf("layer %s: %w", l, errdefs.ErrNotFound)
		}
	}
	id, err := s.PutBlob(raw)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.images[id]; !ok || parent != "" {
		s.meta[id] = imageMeta{Parent: parent}
	}
	img := &Image{ID: id, Config: cfg, Raw: raw, Parent: s.meta[id].Parent}
	s.images[id] = img
	return img, s.save()
}

// Get finds an image by reference, full id, or unique id prefix.
func (s *Store) Get(name string) (*Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.getLocked(name)
}

func (s *Store) getLocked(name string) (*Image, error) {
	if ref, err := ParseReference(name); err == nil {
		if id, ok := s.refs[ref.String()]; ok {
			return s.images[id], nil
		}
		if id, ok := s.digests[ref.String()]; ok {
			return s.images[id], nil
		}
	}
	if IsID(name) {
		hexs := strings.TrimPrefix(name, "sha256:")
		var found *Image
		for id, img := range s.images {
			if strings.HasPrefix(id.Encoded(), hexs) {
				if found != nil {
					return nil, errdefs.NotFound("No such image: " + name)
				}
				found = img
			}
		}
		if found != nil {
			return found, nil
		}
	}
	return nil, errdefs.NotFound("No such image: " + name)
}

// Tag points ref at the image id.
func (s *Store) Tag(id digest.Digest, ref string) error {
	named, err := ParseReference(ref)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.images[id]; !ok {
		return errdefs.NotFound("No such image: " + id.String())
	}
	s.refs[named.String()] = id
	return s.save()
}

// Untag removes a reference and returns the image it named.
func (s *Store) Untag(ref string) (digest.Digest, error) {
	named, err := ParseReference(ref)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.refs[named.String()]
	if !ok {
		return "", errdefs.NotFound("No such image: " + ref)
	}
	delete(s.refs, named.String())
	return id, s.save()
}

// RefsOf lists the normalised references (tags) of an image, sorted.
func (s *Store) RefsOf(id digest.Digest) []string { return s.namesOf(s.refs, id) }

// namesOf lists, sorted, the names m gives to id.
func (s *Store) namesOf(m map[string]digest.Digest, id digest.Digest) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for r, i := range m {
		if i == id {
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out
}

// AddRepoDigest records that the registry serves image id as ref ("repo@sha256:...").
// A repository keeps one digest per image, as Docker shows them.
func (s *Store) AddRepoDigest(id digest.Digest, ref string) error {
	named, err := ParseReference(ref)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.images[id]; !ok {
		return errdefs.NotFound("No such image: " + id.String())
	}
	repo := named.Name()
	for r, i := range s.digests {
		if i == id && strings.HasPrefix(r, repo+"@") {
			delete(s.digests, r)
		}
	}
	s.digests[named.String()] = id
	return s.save()
}

// RepoDigestsOf lists the "repo@digest" references of an image, sorted.
func (s *Store) RepoDigestsOf(id digest.Digest) []string { return s.namesOf(s.digests, id) }

// SetLayerBlob remembers the compressed blob a layer was pulled or pushed as.
func (s *Store) SetLayerBlob(diffID digest.Digest, b BlobInfo) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.layers[diffID] == b {
		return nil
	}
	s.layers[diffID] = b
	return s.save()
}

// LayerBlob returns the compressed blob last seen for a layer.
func (s *Store) LayerBlob(diffID digest.Digest) (BlobInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.layers[diffID]
	return b, ok
}

// List returns every image.
func (s *Store) List() []*Image {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Image, 0, len(s.images))
	for _, img := range s.images {
		out = append(out, img)
	}
	created := func(img *Image) time.Time {
		if img.Config.Created == nil {
			return time.Time{}
		}
		return *img.Config.Created
	}
	sort.Slice(out, func(i, j int) bool { return created(out[i]).After(created(out[j])) })
	return out
}

// Children lists images whose parent is id.
func (s *Store) Children(id digest.Digest) []digest.Digest {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []digest.Digest
	for cid, m := range s.meta {
		if m.Parent == id {
			out = append(out, cid)
		}
	}
	return out
}

// Delete removes an image record and its config blob, and any layer blob no other
// image uses. It returns the layers that were removed, so snapshots can go too.
func (s *Store) Delete(id digest.Digest) ([]digest.Digest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	img, ok := s.images[id]
	if !ok {
		return nil, errdefs.NotFound("No such image: " + id.String())
	}
	for r, i := range s.refs {
		if i == id {
			delete(s.refs, r)
		}
	}
	for r, i := range s.digests {
		if i == id {
			delete(s.digests, r)
		}
	}
	delete(s.images, id)
	delete(s.meta, id)
	for cid, m := range s.meta {
		if m.Parent == id {
			m.Parent = img.Parent
			s.meta[cid] = m
		}
	}
	if err := s.save(); err != nil {
		return nil, err
	}
	used := map[digest.Digest]bool{}
	for _, other := range s.images {
		used[other.ID] = true
		for _, l := range other.Config.RootFS.DiffIDs {
			used[l] = true
		}
	}
	var removed []digest.Digest
	if !used[id] {
		os.Remove(s.blobPath(id))
	}
	for _, l := range img.Config.RootFS.DiffIDs {
		if !used[l] {
			used[l] = true
			delete(s.layers, l)
			os.Remove(s.blobPath(l))
			removed = append(removed, l)
		}
	}
	return removed, nil
}

// Size is the sum of an image's layer blob sizes.
func (s *Store) Size(img *Image) int64 {
	var n int64
	for _, l := range img.Config.RootFS.DiffIDs {
		if fi, err := os.Stat(s.blobPath(l)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// CopyBlob streams a blob to w.
func (s *Store) CopyBlob(w io.Writer, d digest.Digest) error {
	f, err := s.OpenBlob(d)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}
