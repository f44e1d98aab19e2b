// Package volume keeps named volumes: directories at ROOT/NAME/_data, with labels and
// a creation time, as Docker's local driver keeps them.
package volume

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/berth-project/berth/internal/engine/errdefs"
)

// Volume is one named volume.
type Volume struct {
	Name       string            `json:"name"`
	Labels     map[string]string `json:"labels,omitempty"`
	Options    map[string]string `json:"options,omitempty"`
	CreatedAt  time.Time         `json:"createdAt"`
	Anonymous  bool              `json:"anonymous,omitempty"`
	Mountpoint string            `json:"-"`
}

// Store keeps volumes under root.
type Store struct {
	root string
	mu   sync.Mutex
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// Open prepares the volume store at root (Docker's D/volumes).
func Open(root string) (*Store, error) {
	return &Store{root: root}, os.MkdirAll(root, 0o701)
}

func (s *Store) dir(name string) string { return filepath.Join(s.root, name) }

// Create makes a volume; an existing volume of that name is returned as is, as Docker does.
// An empty name makes an anonymous volume with a random 64-hex name.
func (s *Store) Create(name string, labels, opts map[string]string) (*Volume, error) {
	anon := false
	if name == "" {
		b := make([]byte, 32)
		rand.Read(b)
		name, anon = hex.EncodeToString(b), true
	}
	if !validName.MatchString(name) {
		return nil, errdefs.Invalid(fmt.Sprintf("create %s: %q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path", name, name))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, err := s.get(name); err == nil {
		return v, nil
	}
	v := &Volume{Name: name, Labels: labels, Options: opts, CreatedAt: time.Now().UTC(), Anonymous: anon}
	if err := os.MkdirAll(filepath.Join(s.dir(name), "_data"), 0o755); err != nil {
		return nil, err
	}
	data, _ := json.Marshal(v)
	if err := os.WriteFile(filepath.Join(s.dir(name), "volume.json"), data, 0o600); err != nil {
		os.RemoveAll(s.dir(name))
		return nil, err
	}
	v.Mountpoint = filepath.Join(s.dir(name), "_data")
	return v, nil
}

func (s *Store) get(name string) (*Volume, error) {
	if !validName.MatchString(name) {
		return nil, errdefs.NotFound("get " + name + ": no such volume")
	}
	data, err := os.ReadFile(filepath.Join(s.dir(name), "volume.json"))
	if err != nil {
		return nil, errdefs.NotFound("get " + name + ": no such volume")
	}
	var v Volume
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	v.Mountpoint = filepath.Join(s.dir(name), "_data")
	return &v, nil
}

// Get finds a volume by name.
func (s *Store) Get(name string) (*Volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.get(name)
}

// List returns every volume, by name.
func (s *Store) List() ([]*Volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ents, err := os.ReadDir(s.root)
	if err != nil {
		return nil, err
	}
	var out []*Volume
	for _, e := range ents {
		if v, err := s.get(e.Name()); err == nil {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes a volume and its data. The caller checks it is not in use.
func (s *Store) Remove(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.get(name); err != nil {
		return err
	}
	return os.RemoveAll(s.dir(name))
}

// Size is the disk usage of a volume's data, in bytes.
func (v *Volume) Size() int64 {
	var n int64
	filepath.Walk(v.Mountpoint, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
