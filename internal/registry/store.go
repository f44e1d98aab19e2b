package registry

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// ErrLocked means another process (a running registry, or gc) holds the data directory.
var ErrLocked = errors.New("data directory is in use by another registry process")

// Store is a registry's content on disk. Layout under its directory:
//
//	lock                         flock'ed while a registry serves or gc runs
//	token.key                    HMAC key of bearer tokens (0600)
//	blobs/sha256/XX/HEX          content-addressed blobs and manifests, written once, by rename
//	uploads/UUID/{data,repo}     uploads in progress
//	repositories/NAME/_blobs/HEX            blobs linked into the repository (empty files)
//	repositories/NAME/_manifests/HEX        manifests of the repository (holds the media type)
//	repositories/NAME/_tags/TAG             the digest a tag points at
//	repositories/NAME/_referrers/SUBJ/HEX   manifests whose subject is SUBJ
//
// Metadata directories start with "_", which no repository name component can, so nested
// repositories ("a" and "a/b") never collide with them. Only one process opens a Store at a
// time: Open takes an exclusive flock on dir/lock and Close releases it.
type Store struct {
	dir  string
	lock *os.File
}

// Open opens (creating if needed) the store in dir and locks it. If another process holds
// the lock it fails with an error wrapping ErrLocked.
func Open(dir string) (*Store, error) {
	for _, d := range []string{dir, filepath.Join(dir, "blobs", "sha256"), filepath.Join(dir, "uploads"), filepath.Join(dir, "repositories")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("registry store: %w", err)
		}
	}
	lockPath := filepath.Join(dir, "lock")
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("registry store: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w (lock %s is held)", dir, ErrLocked, lockPath)
		}
		return nil, fmt.Errorf("registry store: lock %s: %w", lockPath, err)
	}
	return &Store{dir: dir, lock: f}, nil
}

// Close releases the lock.
func (s *Store) Close() error {
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close() // closing the descriptor drops the flock
	s.lock = nil
	return err
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) uploadsDir() string { return filepath.Join(s.dir, "uploads") }

func (s *Store) blobPath(d digest.Digest) string {
	h := d.Encoded()
	return filepath.Join(s.dir, "blobs", "sha256", h[:2], h)
}

// statBlob returns the size of a stored blob, or BLOB_UNKNOWN.
func (s *Store) statBlob(d digest.Digest) (int64, error) {
	fi, err := os.Stat(s.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, newError(CodeBlobUnknown, map[string]string{"digest": d.String()}, "blob %s unknown", d)
	}
	if err != nil {
		return 0, fmt.Errorf("stat blob %s: %w", d, err)
	}
	return fi.Size(), nil
}

// openBlob opens a stored blob for reading, or returns BLOB_UNKNOWN.
func (s *Store) openBlob(d digest.Digest) (*os.File, error) {
	f, err := os.Open(s.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, newError(CodeBlobUnknown, map[string]string{"digest": d.String()}, "blob %s unknown", d)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", d, err)
	}
	return f, nil
}

// readBlob reads a whole (small) blob, such as a manifest.
func (s *Store) readBlob(d digest.Digest) ([]byte, error) {
	b, err := os.ReadFile(s.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, newError(CodeBlobUnknown, map[string]string{"digest": d.String()}, "blob %s unknown", d)
	}
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", d, err)
	}
	return b, nil
}

// commitBlob makes the verified file at tmp the blob d. The caller has already checked the
// content against d. The file is fsynced before the rename, so a blob that is visible is
// complete even after a crash; if the blob already exists tmp is just removed.
func (s *Store) commitBlob(tmp string, d digest.Digest) error {
	dst := s.blobPath(d)
	if _, err := os.Stat(dst); err == nil {
		return os.Remove(tmp)
	}
	f, err := os.Open(tmp)
	if err != nil {
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("commit blob %s: fsync: %w", d, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	return nil
}

// putSmallBlob stores data (a manifest) under its digest d, atomically.
func (s *Store) putSmallBlob(d digest.Digest, data []byte) error {
	if _, err := os.Stat(s.blobPath(d)); err == nil {
		return nil
	}
	tmp := filepath.Join(s.dir, "uploads", ".manifest-"+randomID())
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store manifest %s: %w", d, err)
	}
	if err := s.commitBlob(tmp, d); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// removeBlob deletes a blob from the store (gc only).
func (s *Store) removeBlob(d digest.Digest) error {
	if err := os.Remove(s.blobPath(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove blob %s: %w", d, err)
	}
	return nil
}

// randomID returns 128 random bits in hex: upload ids and temporary file names.
func randomID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// writeFileAtomic replaces path with data through a temporary file and a rename, so readers
// see the old or the new content, never a partial one. Metadata is not fsynced: a tag or
// link lost in a crash is re-pushed by the client, while the blobs it points at are durable.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".tmp-"+randomID())
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
