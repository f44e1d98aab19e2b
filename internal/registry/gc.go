package registry

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
)

// GCOptions says what garbage collection may delete.
type GCOptions struct {
	// DeleteUntagged also deletes manifests that no tag reaches, directly or through an
	// index. Manifests whose subject is a kept manifest (signatures, SBOMs: referrers,
	// which are untagged by nature) are kept with their subject.
	DeleteUntagged bool
	// DryRun reports what would be deleted and deletes nothing.
	DryRun bool
}

// GCResult is what a collection deleted (or, in a dry run, would delete).
type GCResult struct {
	Manifests  []string // "NAME@DIGEST"
	Blobs      []digest.Digest
	BytesFreed int64
	Uploads    int // stale uploads removed
}

// GC collects garbage in the registry data directory dir: blobs that no manifest references
// (image manifests reference their config and layers, indexes their manifests) and, with
// DeleteUntagged, untagged manifests. It takes the store's lock, so it refuses to run while
// a registry serves dir, and a registry cannot start while it runs.
func GC(dir string, opts GCOptions) (*GCResult, error) {
	if _, err := os.Stat(filepath.Join(dir, "blobs")); err != nil {
		return nil, fmt.Errorf("gc: %s is not a registry data directory: %w", dir, err)
	}
	st, err := Open(dir)
	if err != nil {
		if errors.Is(err, ErrLocked) {
			return nil, fmt.Errorf("gc: refusing to run: %w; stop the registry first", err)
		}
		return nil, fmt.Errorf("gc: %w", err)
	}
	defer st.Close()
	return st.collect(opts)
}

// collect marks everything kept manifests reference, then sweeps. Nothing is deleted until
// every manifest has been read, so an unreadable manifest stops gc before it deletes a
// blob that manifest might need.
func (s *Store) collect(opts GCOptions) (*GCResult, error) {
	res := &GCResult{}
	repos, err := s.Repositories()
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	marked := map[digest.Digest]bool{}
	var doomed []func() error
	for _, name := range repos {
		rp := s.repo(name)
		manifests, err := s.loadManifests(rp)
		if err != nil {
			return nil, fmt.Errorf("gc: %w", err)
		}
		keep := map[digest.Digest]bool{}
		if opts.DeleteUntagged {
			if keep, err = reachable(rp, manifests); err != nil {
				return nil, fmt.Errorf("gc: %w", err)
			}
		} else {
			for d := range manifests {
				keep[d] = true
			}
		}
		for d, m := range manifests {
			if !keep[d] {
				res.Manifests = append(res.Manifests, name+"@"+d.String())
				doomed = append(doomed, func() error { return rp.removeManifest(d) })
				continue
			}
			marked[d] = true
			if m.Config != nil {
				marked[m.Config.Digest] = true
			}
			for _, l := range m.Layers {
				marked[l.Digest] = true
			}
		}
	}

	blobs, err := s.allBlobs()
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	for d, size := range blobs {
		if !marked[d] {
			res.Blobs = append(res.Blobs, d)
			res.BytesFreed += size
			doomed = append(doomed, func() error { return s.removeBlob(d) })
		}
	}
	if opts.DryRun {
		return res, nil
	}
	for _, del := range doomed {
		if err := del(); err != nil {
			return res, fmt.Errorf("gc: %w", err)
		}
	}
	// Links to deleted blobs would make them look present to manifest pushes.
	for _, name := range repos {
		rp := s.repo(name)
		linked, err := rp.blobs()
		if err != nil {
			return res, fmt.Errorf("gc: %w", err)
		}
		for _, d := range linked {
			if _, ok := blobs[d]; !ok || !marked[d] {
				os.Remove(rp.blobLink(d))
			}
		}
	}
	res.Uploads = newUploads(s.uploadsDir(), 0).sweep(time.Hour)
	return res, nil
}

// loadManifests reads and parses every manifest of rp. A link whose blob is gone is
// skipped (it can be served no more); a manifest that does not parse is an error.
func (s *Store) loadManifests(rp repo) (map[digest.Digest]*Manifest, error) {
	ds, err := rp.manifests()
	if err != nil {
		return nil, err
	}
	out := make(map[digest.Digest]*Manifest, len(ds))
	for _, d := range ds {
		mt, err := rp.manifestType(d)
		if err != nil {
			return nil, err
		}
		body, err := s.readBlob(d)
		var apiErr *Error
		if errors.As(err, &apiErr) && apiErr.Code == CodeBlobUnknown {
			continue
		}
		if err != nil {
			return nil, err
		}
		m, err := ParseManifest(mt, body)
		if err != nil {
			return nil, fmt.Errorf("manifest %s@%s does not parse, refusing to guess what it references: %w", rp.name, d, err)
		}
		out[d] = m
	}
	return out, nil
}

// reachable is the set of rp's manifests that its tags reach, through indexes, plus the
// referrers of what is reached.
func reachable(rp repo, manifests map[digest.Digest]*Manifest) (map[digest.Digest]bool, error) {
	keep := map[digest.Digest]bool{}
	var visit func(d digest.Digest)
	visit = func(d digest.Digest) {
		m, ok := manifests[d]
		if !ok || keep[d] {
			return
		}
		keep[d] = true
		for _, c := range m.Manifests {
			visit(c.Digest)
		}
	}
	tags, err := rp.tags()
	if err != nil {
		return nil, err
	}
	for _, t := range tags {
		if d, err := rp.resolveTag(t); err == nil {
			visit(d)
		}
	}
	for changed := true; changed; {
		changed = false
		for d, m := range manifests {
			if !keep[d] && m.Subject != nil && keep[m.Subject.Digest] {
				visit(d)
				changed = true
			}
		}
	}
	return keep, nil
}

// allBlobs lists every stored blob with its size.
func (s *Store) allBlobs() (map[digest.Digest]int64, error) {
	out := map[digest.Digest]int64{}
	root := filepath.Join(s.dir, "blobs", "sha256")
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() != nil {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		out[d] = fi.Size()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list blobs: %w", err)
	}
	return out, nil
}
