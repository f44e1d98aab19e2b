package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
)

// Tokens are random bearer tokens (for joining nodes and for users), kept in a file
// (tokens.json, 0600) only as SHA-256 hashes: the file does not let anyone
// authenticate. A token has 256 random bits, so a fast hash is enough; a slow one would
// only slow down every request. One process owns the file.
type Tokens struct {
	path string
	mu   sync.RWMutex
	byID map[string]tokenEntry // hex SHA-256 of the token → who it is
}

type tokenEntry struct {
	User   string   `json:"user"`
	Groups []string `json:"groups,omitempty"`
}

// tokenPrefix marks Berth's tokens, so they are recognisable in a kubeconfig or a leak scan.
const tokenPrefix = "berth_"

// OpenTokens loads the token file at path, or starts an empty one there.
func OpenTokens(path string) (*Tokens, error) {
	t := &Tokens{path: path, byID: map[string]tokenEntry{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	if err := json.Unmarshal(data, &t.byID); err != nil {
		return nil, fmt.Errorf("tokens %s: %w", path, err)
	}
	return t, nil
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewToken makes a token for user in groups and saves its hash before returning it.
func (t *Tokens) NewToken(user string, groups []string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new token for %s: %w", user, err)
	}
	token := tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.byID[hashToken(token)] = tokenEntry{User: user, Groups: slices.Clone(groups)}
	if err := t.save(); err != nil {
		delete(t.byID, hashToken(token))
		return "", fmt.Errorf("new token for %s: %w", user, err)
	}
	return token, nil
}

// Lookup says whose token this is.
func (t *Tokens) Lookup(token string) (user string, groups []string, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e, ok := t.byID[hashToken(token)]
	if !ok {
		return "", nil, false
	}
	return e.User, slices.Clone(e.Groups), true
}

// Revoke forgets every token of user.
func (t *Tokens) Revoke(user string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	kept := make(map[string]tokenEntry, len(t.byID))
	for id, e := range t.byID {
		if e.User != user {
			kept[id] = e
		}
	}
	old := t.byID
	t.byID = kept
	if err := t.save(); err != nil {
		t.byID = old
		return fmt.Errorf("revoke tokens of %s: %w", user, err)
	}
	return nil
}

// save writes the file; called with mu held.
func (t *Tokens) save() error {
	data, err := json.MarshalIndent(t.byID, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(t.path, data, 0o600)
}
