// Package snapshot keeps image layers unpacked on disk and mounts them with overlayfs.
// Each layer is unpacked once, into a directory named by its chain id, and shared by
// every image and container that uses it. A container gets an upper and work directory
// of its own on top.
package snapshot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/program"
)

// ChainIDs computes the OCI chain ids of a stack of layers (bottom first):
// chain(0) = diff(0), chain(n) = sha256(chain(n-1) + " " + diff(n)).
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}

// Store holds layers under root/layers and container layers under root/active;
// root/tmp holds unpacks in progress and removed container layers being deleted;
// root/init is the layer of mount points every container has on top of its image.
type Store struct {
	root string
	bg   sync.WaitGroup // deletions in the background
}

// Open prepares a store at root. What an earlier run left in root/tmp (an unpack cut
// short, a removal not finished) is deleted in the background.
func Open(root string) (*Store, error) {
	for _, d := range []string{"layers", "active", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, err
		}
	}
	s := &Store{root: root}
	if err := makeInitLayer(s.initDir()); err != nil {
		return nil, fmt.Errorf("init layer: %w", err)
	}
	if left, _ := os.ReadDir(filepath.Join(root, "tmp")); len(left) > 0 {
		s.bg.Add(1)
		program.Background(func() {
			defer s.bg.Done()
			for _, d := range left {
				removeTrash(filepath.Join(root, "tmp", d.Name()))
			}
		})
	}
	return s, nil
}

// Wait returns once the deletions running in the background are done.
func (s *Store) Wait() { s.bg.Wait() }

func (s *Store) layerDir(chain digest.Digest) string {
	return filepath.Join(s.root, "layers", chain.Encoded())
}

// Has reports whether a layer is unpacked.
func (s *Store) Has(chain digest.Digest) bool {
	_, err := os.Stat(s.layerDir(chain))
	return err == nil
}

// Unpack lays a layer tar into the directory for chain. A layer that is already
// unpacked is left alone. The layer becomes visible only once it is complete.
func (s *Store) Unpack(chain digest.Digest, r io.Reader) error {
	if s.Has(chain) {
		io.Copy(io.Discard, r)
		return nil
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "unpack-")
	if err != nil {
		return err
	}
	if _, err := Apply(tmp, r, ApplyOptions{Whiteouts: true}); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	os.Chmod(tmp, 0o755)
	if err := os.Rename(tmp, s.layerDir(chain)); err != nil {
		os.RemoveAll(tmp)
		if s.Has(chain) {
			return nil
		}
		return err
	}
	return nil
}

// RemoveLayer deletes an unpacked layer.
func (s *Store) RemoveLayer(chain digest.Digest) error {
	return os.RemoveAll(s.layerDir(chain))
}

// Active is a container's writable layer.
type Active struct {
	Dir    string
	Upper  string
	Work   string
	Merged string
	Lower  []string // top first, as overlayfs wants them
}

// Prepare creates (or finds) the writable layer key on top of the chain (bottom first).
func (s *Store) Prepare(key string, chain []digest.Digest) (*Active, error) {
	dir := filepath.Join(s.root, "active", key)
	a := &Active{Dir: dir, Upper: filepath.Join(dir, "upper"), Work: filepath.Join(dir, "work"), Merged: filepath.Join(dir, "merged")}
	a.Lower = []string{s.initDir()}
	for i := len(chain) - 1; i >= 0; i-- {
		a.Lower = append(a.Lower, s.layerDir(chain[i]))
	}
	for _, d := range []string{a.Upper, a.Work, a.Merged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Mount mounts the container layer at a.Merged, unless it is already mounted.
func (a *Active) Mount() error {
	// The root of an overlay has a device of its own (Mounted, for any kind of mount,
	// reads the whole mount table when the devices match, as they do where nothing is
	// mounted: too dear on every start).
	if differentDevice(a.Merged) {
		return nil
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(a.Lower, ":"), a.Upper, a.Work)
	if len(opts) > unix.Getpagesize()-64 {
		return errors.New("too many layers for one overlay mount")
	}
	if err := unix.Mount("overlay", a.Merged, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay at %s: %w", a.Merged, err)
	}
	return nil
}

// Unmount unmounts the merged view; it is not an error if it was not mounted.
func (a *Active) Unmount() error {
	if err := unix.Unmount(a.Merged, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return err
	}
	return nil
}

// Remove unmounts and deletes the writable layer key. The layer is gone from
// root/active when Remove returns: it is renamed aside, its root still mounted (a
// directory with a mount below it can be renamed), and unmounted and deleted in the
// background. `docker run --rm` waits for the removal, and the unmount of an overlay
// costs a millisecond or more (it syncs its upper filesystem); the files can be many.
func (s *Store) Remove(key string) error {
	dir := filepath.Join(s.root, "active", key)
	trash, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "removed-")
	if err != nil {
		return removeLayer(dir)
	}
	if err := os.Rename(dir, filepath.Join(trash, "layer")); err != nil {
		os.Remove(trash)
		return removeLayer(dir)
	}
	s.bg.Add(1)
	program.Background(func() {
		defer s.bg.Done()
		removeTrash(trash)
	})
	return nil
}

// removeLayer unmounts a writable layer's root, if mounted, and deletes the layer.
func removeLayer(dir string) error {
	(&Active{Merged: filepath.Join(dir, "merged")}).Unmount()
	return os.RemoveAll(dir)
}

// removeTrash deletes a directory of root/tmp, unmounting first the root of the layer
// renamed into it: a removal cut short by a crash may have left it mounted.
func removeTrash(dir string) {
	removeLayer(filepath.Join(dir, "layer"))
	os.RemoveAll(dir)
}

// differentDevice reports whether path is on another device than its parent: the
// root of a mount of another filesystem.
func differentDevice(path string) bool {
	var st, pst unix.Stat_t
	return unix.Lstat(path, &st) == nil && unix.Lstat(filepath.Dir(path), &pst) == nil && st.Dev != pst.Dev
}

// Mounted reports whether path is a mount point.
func Mounted(path string) bool {
	if differentDevice(path) {
		return true
	}
	// Same device can still be a mount (bind mounts); check mountinfo.
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}
