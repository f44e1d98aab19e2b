package registry

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// access is one granted scope, in the shape of Docker's token claims.
type access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// String formats the scope as clients write it: "repository:NAME:pull,push".
func (a access) String() string {
	return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
}

// claims is what a bearer token carries.
type claims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  string   `json:"aud"`
	IssuedAt  int64    `json:"iat"`
	ExpiresAt int64    `json:"exp"`
	Access    []access `json:"access"`
}

// allows reports whether the claims grant action on the resource. "*" grants every action;
// a delete is also allowed by push.
func (c claims) allows(typ, name, action string) bool {
	for _, a := range c.Access {
		if a.Type != typ || a.Name != name {
			continue
		}
		if slices.Contains(a.Actions, action) || slices.Contains(a.Actions, "*") ||
			action == "delete" && slices.Contains(a.Actions, "push") {
			return true
		}
	}
	return false
}

// tokenSigner issues and checks HS256 JWTs. Clients treat tokens as opaque; the JWT shape
// only makes them easy to inspect.
type tokenSigner struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

func (t *tokenSigner) sign(c claims) string {
	payload, _ := json.Marshal(c)
	msg := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	return msg + "." + base64.RawURLEncoding.EncodeToString(t.mac(msg))
}

func (t *tokenSigner) mac(msg string) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

var errBadToken = errors.New("invalid token")

// verify checks a token's signature and expiry and returns its claims.
func (t *tokenSigner) verify(tok string) (claims, error) {
	var c claims
	i := strings.LastIndexByte(tok, '.')
	if i < 0 || !strings.HasPrefix(tok, jwtHeader+".") {
		return c, errBadToken
	}
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil || !hmac.Equal(sig, t.mac(tok[:i])) {
		return c, errBadToken
	}
	payload, err := base64.RawURLEncoding.DecodeString(tok[len(jwtHeader)+1 : i])
	if err != nil || json.Unmarshal(payload, &c) != nil {
		return c, errBadToken
	}
	if t.now().Unix() >= c.ExpiresAt {
		return c, fmt.Errorf("%w: expired", errBadToken)
	}
	return c, nil
}

// loadTokenKey reads the signing key from dir/token.key, creating it (32 random bytes,
// 0600) on first use, so tokens stay valid across restarts.
func loadTokenKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, "token.key")
	key, err := os.ReadFile(path)
	if err == nil {
		if len(key) < 32 {
			return nil, fmt.Errorf("token key %s: too short (%d bytes); remove it to make a new one", path, len(key))
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() != 0o600 {
			if err := os.Chmod(path, 0o600); err != nil {
				return nil, fmt.Errorf("token key %s: %w", path, err)
			}
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("token key: %w", err)
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	_, err = f.Write(key)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("token key: %w", err)
	}
	return key, nil
}

// parseScopes parses token request scopes ("repository:NAME:pull,push", "registry:catalog:*";
// a value may hold several separated by spaces, as OAuth2 clients send them) and keeps what
// this registry grants: every user may pull, push and delete in every repository and read
// the catalog. Malformed and unknown scopes are dropped, as the token spec allows.
func parseScopes(values []string) []access {
	var out []access
	for _, v := range values {
		for _, sc := range strings.Fields(v) {
			typ, rest, ok := strings.Cut(sc, ":")
			i := strings.LastIndexByte(rest, ':')
			if !ok || i < 0 {
				continue
			}
			name, actions := rest[:i], strings.Split(rest[i+1:], ",")
			var allowed []string
			switch {
			case typ == "repository" && validName(name):
				allowed = []string{"pull", "push", "delete", "*"}
			case typ == "registry" && name == "catalog":
				allowed = []string{"*"}
			}
			var granted []string
			for _, a := range actions {
				if slices.Contains(allowed, a) && !slices.Contains(granted, a) {
					granted = append(granted, a)
				}
			}
			if len(granted) > 0 {
				out = append(out, access{Type: typ, Name: name, Actions: granted})
			}
		}
	}
	return out
}
