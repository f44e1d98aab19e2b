package build

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"

	digest "github.com/opencontainers/go-digest"
)

// CacheKey is the key of a build step: the image it starts from and what it does,
// with the content of the files it brings in folded into step. This is Docker's rule:
// the same parent and the same instruction over the same files give the same image.
func CacheKey(parent digest.Digest, step string) string {
	h := sha256.New()
	h.Write([]byte(parent))
	h.Write([]byte{0})
	h.Write([]byte(step))
	return hex.EncodeToString(h.Sum(nil))
}

// Cache maps step keys to the images the steps made. It is saved as one JSON file.
type Cache struct {
	path string

	mu      sync.Mutex
	entries map[string]digest.Digest
	dirty   bool
}

// OpenCache loads the cache at path (an absent file is an empty cache; so is a
// damaged one: a cache may always be forgotten).
func OpenCache(path string) (*Cache, error) {
	c := &Cache{path: path, entries: map[string]digest.Digest{}}
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	if len(data) > 0 && json.Unmarshal(data, &c.entries) != nil {
		c.entries = map[string]digest.Digest{}
	}
	return c, nil
}

// Get returns the image cached for key.
func (c *Cache) Get(key string) (digest.Digest, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.entries[key]
	return id, ok
}

// Put records that the step key made image id.
func (c *Cache) Put(key string, id digest.Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries[key] != id {
		c.entries[key] = id
		c.dirty = true
	}
}

// Images returns the distinct images the cache points at.
func (c *Cache) Images() []digest.Digest {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[digest.Digest]bool{}
	var out []digest.Digest
	for _, id := range c.entries {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// Prune forgets the entries keep rejects and returns how many went.
func (c *Cache) Prune(keep func(digest.Digest) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, id := range c.entries {
		if !keep(id) {
			delete(c.entries, k)
			n++
		}
	}
	if n > 0 {
		c.dirty = true
	}
	return n
}

// Save writes the cache if it changed, atomically.
func (c *Cache) Save() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty {
		return nil
	}
	data, err := json.Marshal(c.entries)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".cache-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), c.path); err != nil {
		return err
	}
	c.dirty = false
	return nil
}
