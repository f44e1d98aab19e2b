package registry

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// htpasswd holds users and password hashes from an Apache htpasswd file. Only the formats
// `htpasswd -B` (bcrypt: $2y$, also $2a$ and $2b$) and `htpasswd -m` (apr1 MD5-crypt)
// write are accepted; plain-text, crypt and {SHA} lines are refused when loading rather
// than silently never matching.
type htpasswd map[string]string

// dummyBcrypt is compared against when the user does not exist, so that the answer takes
// as long as for a wrong password and does not reveal which users exist.
var dummyBcrypt = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte(randomID()), bcrypt.DefaultCost)
	return h
})

func loadHtpasswd(path string) (htpasswd, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("htpasswd: %w", err)
	}
	return parseHtpasswd(path, data)
}

func parseHtpasswd(path string, data []byte) (htpasswd, error) {
	users := htpasswd{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("htpasswd %s:%d: expected USER:HASH", path, n)
		}
		switch {
		case strings.HasPrefix(hash, "$2y$"), strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"):
			if _, err := bcrypt.Cost([]byte(hash)); err != nil {
				return nil, fmt.Errorf("htpasswd %s:%d: user %s: bad bcrypt hash: %v", path, n, user, err)
			}
		case strings.HasPrefix(hash, "$apr1$"):
			if strings.Count(hash, "$") != 3 {
				return nil, fmt.Errorf("htpasswd %s:%d: user %s: bad apr1 hash", path, n, user)
			}
		default:
			return nil, fmt.Errorf("htpasswd %s:%d: user %s: unsupported hash (use htpasswd -B or -m)", path, n, user)
		}
		users[user] = hash
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("htpasswd %s: %w", path, err)
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("htpasswd %s: no users", path)
	}
	return users, nil
}

// verify reports whether password is user's.
func (h htpasswd) verify(user, password string) bool {
	hash, ok := h[user]
	if !ok {
		bcrypt.CompareHashAndPassword(dummyBcrypt(), []byte(password))
		return false
	}
	if strings.HasPrefix(hash, "$apr1$") {
		salt := strings.TrimPrefix(hash, "$apr1$")
		return subtle.ConstantTimeCompare([]byte(apr1(password, salt)), []byte(hash)) == 1
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}
