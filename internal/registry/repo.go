package registry

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
)

// repo is one repository's links into the blob store. Its name has been validated.
type repo struct {
	s    *Store
	name string
	dir  string
}

func (s *Store) repo(name string) repo {
	return repo{s: s, name: name, dir: filepath.Join(s.dir, "repositories", filepath.FromSlash(name))}
}

// exists reports whether anything was ever pushed to the repository.
func (r repo) exists() bool {
	for _, sub := range []string{"_manifests", "_blobs"} {
		if _, err := os.Stat(filepath.Join(r.dir, sub)); err == nil {
			return true
		}
	}
	return false
}

func (r repo) blobLink(d digest.Digest) string { return filepath.Join(r.dir, "_blobs", d.Encoded()) }

// linkBlob makes blob d visible in the repository.
func (r repo) linkBlob(d digest.Digest) error {
	p := r.blobLink(d)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("link blob %s into %s: %w", d, r.name, err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("link blob %s into %s: %w", d, r.name, err)
	}
	return f.Close()
}

// hasBlob reports whether blob d was pushed or mounted into the repository.
func (r repo) hasBlob(d digest.Digest) bool {
	_, err := os.Stat(r.blobLink(d))
	return err == nil
}

// unlinkBlob removes blob d from the repository (the data stays until gc).
func (r repo) unlinkBlob(d digest.Digest) error {
	err := os.Remove(r.blobLink(d))
	if errors.Is(err, fs.ErrNotExist) {
		return newError(CodeBlobUnknown, map[string]string{"digest": d.String()}, "blob %s unknown to repository %s", d, r.name)
	}
	return err
}

func (r repo) manifestLink(d digest.Digest) string {
	return filepath.Join(r.dir, "_manifests", d.Encoded())
}

// linkManifest records manifest d, with the media type it was pushed with, in the repository.
func (r repo) linkManifest(d digest.Digest, mediaType string) error {
	if err := writeFileAtomic(r.manifestLink(d), []byte(mediaType)); err != nil {
		return fmt.Errorf("link manifest %s into %s: %w", d, r.name, err)
	}
	return nil
}

// manifestType returns the media type manifest d was pushed with, or MANIFEST_UNKNOWN.
func (r repo) manifestType(d digest.Digest) (string, error) {
	b, err := os.ReadFile(r.manifestLink(d))
	if errors.Is(err, fs.ErrNotExist) {
		return "", newError(CodeManifestUnknown, map[string]string{"digest": d.String()}, "manifest %s unknown to repository %s", d, r.name)
	}
	if err != nil {
		return "", fmt.Errorf("manifest %s in %s: %w", d, r.name, err)
	}
	return string(b), nil
}

// unlinkManifest removes manifest d from the repository.
func (r repo) unlinkManifest(d digest.Digest) error {
	err := os.Remove(r.manifestLink(d))
	if errors.Is(err, fs.ErrNotExist) {
		return newError(CodeManifestUnknown, map[string]string{"digest": d.String()}, "manifest %s unknown to repository %s", d, r.name)
	}
	return err
}

// manifests lists the digests of the repository's manifests.
func (r repo) manifests() ([]digest.Digest, error) {
	return listDigests(filepath.Join(r.dir, "_manifests"))
}

// blobs lists the digests linked into the repository.
func (r repo) blobs() ([]digest.Digest, error) {
	return listDigests(filepath.Join(r.dir, "_blobs"))
}

func (r repo) tagPath(tag string) string { return filepath.Join(r.dir, "_tags", tag) }

// setTag points tag at manifest d.
func (r repo) setTag(tag string, d digest.Digest) error {
	if err := writeFileAtomic(r.tagPath(tag), []byte(d.String())); err != nil {
		return fmt.Errorf("tag %s:%s: %w", r.name, tag, err)
	}
	return nil
}

// resolveTag returns the digest tag points at, or MANIFEST_UNKNOWN.
func (r repo) resolveTag(tag string) (digest.Digest, error) {
	b, err := os.ReadFile(r.tagPath(tag))
	if errors.Is(err, fs.ErrNotExist) {
		return "", newError(CodeManifestUnknown, map[string]string{"tag": tag}, "manifest %s:%s unknown", r.name, tag)
	}
	if err != nil {
		return "", fmt.Errorf("tag %s:%s: %w", r.name, tag, err)
	}
	d, err := digest.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return "", fmt.Errorf("tag %s:%s: corrupt: %w", r.name, tag, err)
	}
	return d, nil
}

// deleteTag removes tag, or returns MANIFEST_UNKNOWN.
func (r repo) deleteTag(tag string) error {
	err := os.Remove(r.tagPath(tag))
	if errors.Is(err, fs.ErrNotExist) {
		return newError(CodeManifestUnknown, map[string]string{"tag": tag}, "manifest %s:%s unknown", r.name, tag)
	}
	return err
}

// tags lists the repository's tags, sorted.
func (r repo) tags() ([]string, error) {
	names, err := listNames(filepath.Join(r.dir, "_tags"))
	if err != nil {
		return nil, fmt.Errorf("tags of %s: %w", r.name, err)
	}
	return names, nil
}

// untagManifest removes every tag that points at d.
func (r repo) untagManifest(d digest.Digest) error {
	tags, err := r.tags()
	if err != nil {
		return err
	}
	for _, t := range tags {
		if td, err := r.resolveTag(t); err == nil && td == d {
			if err := r.deleteTag(t); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeManifest unlinks manifest d from the repository, with the tags that point at it
// and its entry in its subject's referrers.
func (r repo) removeManifest(d digest.Digest) error {
	mt, err := r.manifestType(d)
	if err != nil {
		return err
	}
	if body, err := r.s.readBlob(d); err == nil {
		if m, err := ParseManifest(mt, body); err == nil && m.Subject != nil {
			if err := r.removeReferrer(m.Subject.Digest, d); err != nil {
				return err
			}
		}
	}
	if err := r.untagManifest(d); err != nil {
		return err
	}
	return r.unlinkManifest(d)
}

func (r repo) referrerLink(subject, d digest.Digest) string {
	return filepath.Join(r.dir, "_referrers", subject.Encoded(), d.Encoded())
}

// addReferrer records that manifest d has subject.
func (r repo) addReferrer(subject, d digest.Digest) error {
	p := r.referrerLink(subject, d)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("referrer of %s in %s: %w", subject, r.name, err)
	}
	return os.WriteFile(p, nil, 0o644)
}

// removeReferrer forgets that manifest d has subject.
func (r repo) removeReferrer(subject, d digest.Digest) error {
	err := os.Remove(r.referrerLink(subject, d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// referrers lists the manifests recorded with subject.
func (r repo) referrers(subject digest.Digest) ([]digest.Digest, error) {
	return listDigests(filepath.Join(r.dir, "_referrers", subject.Encoded()))
}

// listNames lists the entries of dir, sorted, skipping temporary files; a missing dir is empty.
func listNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// listDigests lists a directory of sha256 link files as digests, skipping foreign names.
func listDigests(dir string) ([]digest.Digest, error) {
	names, err := listNames(dir)
	if err != nil {
		return nil, err
	}
	out := make([]digest.Digest, 0, len(names))
	for _, n := range names {
		d := digest.NewDigestFromEncoded(digest.SHA256, n)
		if d.Validate() == nil {
			out = append(out, d)
		}
	}
	return out, nil
}

// Repositories lists every repository with a manifest or a blob, sorted.
func (s *Store) Repositories() ([]string, error) {
	root := filepath.Join(s.dir, "repositories")
	var names []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() || p == root {
			return nil
		}
		if strings.HasPrefix(e.Name(), "_") {
			return fs.SkipDir
		}
		name, _ := filepath.Rel(root, p)
		name = filepath.ToSlash(name)
		if s.repo(name).exists() {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	slices.Sort(names)
	return names, nil
}
