package registry

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// uploads tracks blob uploads in progress. Each lives in dir/UUID: "data" (the bytes so
// far) and "repo" (the repository it belongs to). The running sha256 state stays in memory,
// so data is hashed once, as it streams in; after a restart an upload is resumed by hashing
// what is on disk again.
type uploads struct {
	dir string
	// max bounds the sessions held in memory; past it new uploads get TOOMANYREQUESTS.
	max int

	mu       sync.Mutex
	sessions map[string]*upload
}

// upload is one upload session. Its mutex is held for the duration of a request on it, so
// chunks of one upload are applied one at a time.
type upload struct {
	mu      sync.Mutex
	id      string
	repo    string
	dir     string
	h       hash.Hash
	size    int64
	touched time.Time
	done    bool // committed or cancelled: the session is gone
}

func newUploads(dir string, max int) *uploads {
	return &uploads{dir: dir, max: max, sessions: map[string]*upload{}}
}

func errUploadUnknown(id string) error {
	return newError(CodeBlobUploadUnknown, map[string]string{"uuid": id}, "upload %s unknown", id)
}

// start creates a new, empty upload for repo and returns it locked.
func (us *uploads) start(repo string) (*upload, error) {
	us.mu.Lock()
	if len(us.sessions) >= us.max {
		us.mu.Unlock()
		return nil, newError(CodeTooManyRequests, nil, "too many uploads in progress (%d)", us.max)
	}
	u := &upload{id: randomID(), repo: repo, h: sha256.New(), touched: time.Now()}
	u.dir = filepath.Join(us.dir, u.id)
	u.mu.Lock()
	us.sessions[u.id] = u
	us.mu.Unlock()

	err := os.Mkdir(u.dir, 0o755)
	if err == nil {
		err = os.WriteFile(filepath.Join(u.dir, "repo"), []byte(repo), 0o644)
	}
	if err == nil {
		var f *os.File
		if f, err = os.OpenFile(u.dataPath(), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err == nil {
			err = f.Close()
		}
	}
	if err != nil {
		us.finish(u)
		return nil, fmt.Errorf("start upload: %w", err)
	}
	return u, nil
}

// get returns upload id of repo, locked. An upload not in memory (the registry restarted)
// is resumed from disk.
func (us *uploads) get(repo, id string) (*upload, error) {
	if !validUploadID(id) {
		return nil, errUploadUnknown(id)
	}
	us.mu.Lock()
	u, ok := us.sessions[id]
	us.mu.Unlock()
	if !ok {
		// Hash outside the lock: resuming a large upload must not stall every other one.
		resumed, err := us.resume(id)
		if err != nil {
			return nil, err
		}
		us.mu.Lock()
		if u, ok = us.sessions[id]; !ok { // unless a concurrent request resumed it first
			u = resumed
			us.sessions[id] = u
		}
		us.mu.Unlock()
	}
	u.mu.Lock()
	if u.done || u.repo != repo {
		u.mu.Unlock()
		return nil, errUploadUnknown(id)
	}
	u.touched = time.Now()
	return u, nil
}

// resume rebuilds a session from disk by hashing its data again.
func (us *uploads) resume(id string) (*upload, error) {
	dir := filepath.Join(us.dir, id)
	repo, err := os.ReadFile(filepath.Join(dir, "repo"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errUploadUnknown(id)
	}
	if err != nil {
		return nil, fmt.Errorf("resume upload %s: %w", id, err)
	}
	u := &upload{id: id, repo: string(repo), dir: dir, h: sha256.New(), touched: time.Now()}
	f, err := os.Open(u.dataPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errUploadUnknown(id)
	}
	if err != nil {
		return nil, fmt.Errorf("resume upload %s: %w", id, err)
	}
	defer f.Close()
	if u.size, err = io.Copy(u.h, f); err != nil {
		return nil, fmt.Errorf("resume upload %s: %w", id, err)
	}
	return u, nil
}

// finish ends u (locked by the caller, and left locked and unusable) and removes its files.
// The files go before the session leaves the map, so that no request can resume it from
// disk meanwhile: a concurrent request finds the session, waits for its lock and sees done.
func (us *uploads) finish(u *upload) {
	u.done = true
	os.RemoveAll(u.dir)
	us.mu.Lock()
	delete(us.sessions, u.id)
	us.mu.Unlock()
}

// sweep removes uploads untouched for longer than maxAge, in memory and on disk (files left
// by a crash or a restart included). Sessions busy with a request are skipped.
func (us *uploads) sweep(maxAge time.Duration) (removed int) {
	cutoff := time.Now().Add(-maxAge)
	us.mu.Lock()
	var idle []*upload
	live := make(map[string]bool, len(us.sessions))
	for id, u := range us.sessions {
		live[id] = true
		if u.mu.TryLock() {
			if u.touched.Before(cutoff) {
				idle = append(idle, u)
			} else {
				u.mu.Unlock()
			}
		}
	}
	us.mu.Unlock()
	for _, u := range idle {
		us.finish(u)
		removed++
	}
	entries, _ := os.ReadDir(us.dir)
	for _, e := range entries {
		if live[e.Name()] {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		mod := fi.ModTime()
		if data, err := os.Stat(filepath.Join(us.dir, e.Name(), "data")); err == nil {
			mod = data.ModTime()
		}
		if mod.Before(cutoff) {
			os.RemoveAll(filepath.Join(us.dir, e.Name()))
			removed++
		}
	}
	return removed
}

func (u *upload) dataPath() string { return filepath.Join(u.dir, "data") }

func (u *upload) unlock() { u.mu.Unlock() }

// writebackEvery is how often an upload asks the kernel to start writing its data back,
// so that the fsync before the blob becomes visible has little left to do (~5 ms instead of
// ~70 ms for 256 MiB here).
const writebackEvery = 16 << 20

// append streams r onto the upload, hashing (on a hashPipe) what reached the file. On a
// read or write error the file is cut back to what was hashed, so the session stays
// consistent and the client may resume from the offset it is told.
func (u *upload) append(r io.Reader) (int64, error) {
	f, err := os.OpenFile(u.dataPath(), os.O_WRONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("upload %s: %w", u.id, err)
	}
	defer f.Close()
	if _, err := f.Seek(u.size, io.SeekStart); err != nil {
		return 0, fmt.Errorf("upload %s: %w", u.id, err)
	}
	hp := startHashPipe(u.h)
	start, flushed := u.size, u.size
	for err == nil {
		bp := hp.buffer()
		n, rerr := fill(r, *bp)
		if n > 0 {
			if _, werr := f.Write((*bp)[:n]); werr != nil {
				hp.recycle(bp)
				err = fmt.Errorf("upload %s: %w", u.id, werr)
				break
			}
			hp.submit(bp, n)
			u.size += int64(n)
			if u.size-flushed >= writebackEvery {
				// Best effort: starts write-back, does not wait for it.
				unix.SyncFileRange(int(f.Fd()), flushed, u.size-flushed, unix.SYNC_FILE_RANGE_WRITE)
				flushed = u.size
			}
		} else {
			hp.recycle(bp)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = newError(CodeBlobUploadInvalid, nil, "upload %s: reading the body: %v", u.id, rerr)
		}
	}
	hp.wait()
	if err != nil {
		f.Truncate(u.size) // a failed write may have left part of its buffer
	}
	return u.size - start, err
}

// digest is the digest of the data so far. It does not disturb the running hash.
func (u *upload) digest() digest.Digest {
	// hash.Hash.Sum appends without resetting, so the state carries on for further chunks.
	return digest.NewDigestFromBytes(digest.SHA256, u.h.Sum(nil))
}

// commit verifies the upload against want and moves it into the blob store.
func (u *upload) commit(s *Store, want digest.Digest) error {
	if got := u.digest(); got != want {
		return newError(CodeDigestInvalid, map[string]string{"digest": want.String(), "computed": got.String()},
			"digest mismatch: the upload's content has digest %s, not %s", got, want)
	}
	return s.commitBlob(u.dataPath(), want)
}

// validUploadID reports whether id is one randomID could have made (so never a path).
func validUploadID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
