package storage

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Transformer turns values into what is stored in etcd and back; encryption at rest.
// The key is the etcd key, which implementations may bind the stored value to.
type Transformer interface {
	ToStorage(key string, plain []byte) ([]byte, error)
	FromStorage(key string, stored []byte) ([]byte, error)
}

// aesgcmPrefix marks an encrypted value, in kube-apiserver's format
// "k8s:enc:aesgcm:v1:<key name>:" followed by the nonce and the sealed value.
const (
	encPrefix    = "k8s:enc:"
	aesgcmPrefix = "k8s:enc:aesgcm:v1:berth:"
	aesKeySize   = 32
)

// ErrDecrypt: a stored value could not be decrypted (another key, or tampered with).
var ErrDecrypt = errors.New("cannot decrypt stored value")

type aesGCM struct {
	aead     cipher.AEAD
	prefixes []string
}

// NewAESGCM encrypts the values of keys that start with one of prefixes with AES-256-GCM
// under the key in keyFile, which is created (32 random bytes, mode 0600) on first use.
// Each value gets a random nonce and is bound to its etcd key (the key is the additional
// authenticated data), so a value copied to another key does not decrypt. Values without
// the encryption prefix are read as they are: objects written before encryption was on.
func NewAESGCM(keyFile string, prefixes []string) (Transformer, error) {
	key, err := loadOrCreateKey(keyFile)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("encryption key %s: %w", keyFile, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("encryption key %s: %w", keyFile, err)
	}
	return &aesGCM{aead: aead, prefixes: append([]string(nil), prefixes...)}, nil
}

func loadOrCreateKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	if len(key) != aesKeySize {
		return nil, fmt.Errorf("encryption key %s: %d bytes, want %d", path, len(key), aesKeySize)
	}
	return key, nil
}

// createKey writes a new key under a temporary name and links it into place, so two
// processes starting at once agree on one key and nobody reads a half-written file.
func createKey(path string) ([]byte, error) {
	key := make([]byte, aesKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".key-*")
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(key)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return nil, fmt.Errorf("encryption key %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return loadOrCreateKey(path)
	} else if err != nil {
		return nil, fmt.Errorf("encryption key %s: %w", path, err)
	}
	return key, nil
}

func (t *aesGCM) encrypts(key string) bool {
	for _, p := range t.prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

func (t *aesGCM) ToStorage(key string, plain []byte) ([]byte, error) {
	if !t.encrypts(key) {
		return plain, nil
	}
	out := make([]byte, len(aesgcmPrefix), len(aesgcmPrefix)+t.aead.NonceSize()+len(plain)+t.aead.Overhead())
	copy(out, aesgcmPrefix)
	nonce := out[len(out) : len(out)+t.aead.NonceSize()]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("encrypt %s: %w", key, err)
	}
	out = out[:len(out)+len(nonce)]
	return t.aead.Seal(out, nonce, plain, []byte(key)), nil
}

func (t *aesGCM) FromStorage(key string, stored []byte) ([]byte, error) {
	if !bytes.HasPrefix(stored, []byte(encPrefix)) {
		return stored, nil
	}
	if !bytes.HasPrefix(stored, []byte(aesgcmPrefix)) {
		return nil, fmt.Errorf("%s: unknown encryption %.40q: %w", key, stored, ErrDecrypt)
	}
	sealed := stored[len(aesgcmPrefix):]
	if len(sealed) < t.aead.NonceSize() {
		return nil, fmt.Errorf("%s: value too short: %w", key, ErrDecrypt)
	}
	nonce, sealed := sealed[:t.aead.NonceSize()], sealed[t.aead.NonceSize():]
	plain, err := t.aead.Open(nil, nonce, sealed, []byte(key))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, ErrDecrypt)
	}
	return plain, nil
}

// identity stores values as they are.
type identity struct{}

func (identity) ToStorage(_ string, plain []byte) ([]byte, error)    { return plain, nil }
func (identity) FromStorage(_ string, stored []byte) ([]byte, error) { return stored, nil }
