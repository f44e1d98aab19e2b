package registry

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// service is the token service name in challenges and tokens.
const service = "berth-registry"

// grant answers whether a request may do action on a resource ("repository", NAME, "pull").
type grant interface {
	allows(typ, name, action string) bool
}

// allowAll is the grant of a request with valid Basic credentials, or of any request when
// the registry has no authentication: every user may do everything.
type allowAll struct{}

func (allowAll) allows(string, string, string) bool { return true }

type grantKey struct{}

func withGrant(ctx context.Context, g grant) context.Context {
	return context.WithValue(ctx, grantKey{}, g)
}

func grantOf(ctx context.Context) grant {
	if g, ok := ctx.Value(grantKey{}).(grant); ok {
		return g
	}
	return allowAll{}
}

// authenticator checks Basic credentials against htpasswd users and Bearer tokens it
// issued. It never logs passwords, Authorization headers or tokens.
type authenticator struct {
	users  htpasswd
	tokens *tokenSigner
	log    *slog.Logger

	// verified caches recently checked Basic credentials (by a salted hash), because bcrypt
	// takes tens of milliseconds and `curl -u` sends them with every request.
	mu       sync.Mutex
	salt     string
	verified map[[32]byte]time.Time

	failures failures
}

const (
	tokenTTL       = 5 * time.Minute
	credentialTTL  = 5 * time.Minute
	maxCredentials = 10000
)

func newAuthenticator(htpasswdPath, dataDir string, log *slog.Logger) (*authenticator, error) {
	users, err := loadHtpasswd(htpasswdPath)
	if err != nil {
		return nil, err
	}
	key, err := loadTokenKey(dataDir)
	if err != nil {
		return nil, err
	}
	return &authenticator{
		users:    users,
		tokens:   &tokenSigner{key: key, ttl: tokenTTL, now: time.Now},
		log:      log,
		salt:     randomID(),
		verified: map[[32]byte]time.Time{},
	}, nil
}

// errBadCredentials is a wrong user name or password.
var errBadCredentials = newError(CodeUnauthorized, nil, "invalid username or password")

// login verifies credentials: nil, errBadCredentials, or TOOMANYREQUESTS when the client's
// address failed too often lately. Failures are logged with user and address only.
func (a *authenticator) login(r *http.Request, user, password string) error {
	k := sha256.Sum256([]byte(a.salt + "\x00" + user + "\x00" + password))
	now := time.Now()
	a.mu.Lock()
	exp, ok := a.verified[k]
	a.mu.Unlock()
	if ok && now.Before(exp) {
		return nil
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	if a.failures.blocked(host, now) {
		return newError(CodeTooManyRequests, nil, "too many failed logins from %s; wait a minute", host)
	}
	if !a.users.verify(user, password) {
		a.failures.add(host, now)
		a.log.Warn("authentication failed", "user", user, "remote", r.RemoteAddr)
		return errBadCredentials
	}
	a.mu.Lock()
	if len(a.verified) >= maxCredentials {
		clear(a.verified)
	}
	a.verified[k] = now.Add(credentialTTL)
	a.mu.Unlock()
	return nil
}

// failureWindow and maxFailures bound password guessing: an address with maxFailures failed
// logins in a window is refused until the window ends. (htpasswd -B's default bcrypt cost
// checks a password in ~2 ms, so without this guessing is cheap.)
const (
	failureWindow = time.Minute
	maxFailures   = 10
	maxTracked    = 10000
)

// failures counts recent failed logins per client address.
type failures struct {
	mu sync.Mutex
	m  map[string]*failureCount
}

type failureCount struct {
	n     int
	since time.Time
}

func (f *failures) blocked(host string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.m[host]
	return c != nil && c.n >= maxFailures && now.Sub(c.since) < failureWindow
}

func (f *failures) add(host string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil || len(f.m) >= maxTracked {
		f.m = map[string]*failureCount{}
	}
	c := f.m[host]
	if c == nil || now.Sub(c.since) >= failureWindow {
		c = &failureCount{since: now}
		f.m[host] = c
	}
	c.n++
}

// required is what a request on rt needs: nothing beyond a valid identity for /v2/, the
// catalog scope for /v2/_catalog, and pull, push or delete on the repository otherwise.
func required(rt route, method string) *access {
	switch rt.kind {
	case routeBase:
		return nil
	case routeCatalog:
		return &access{Type: "registry", Name: "catalog", Actions: []string{"*"}}
	}
	switch method {
	case http.MethodGet, http.MethodHead:
		return &access{Type: "repository", Name: rt.name, Actions: []string{"pull"}}
	case http.MethodDelete:
		return &access{Type: "repository", Name: rt.name, Actions: []string{"delete"}}
	}
	return &access{Type: "repository", Name: rt.name, Actions: []string{"push"}}
}

// authorize accepts Basic credentials directly or a Bearer token with the scope the request
// needs; otherwise it sets a Bearer challenge naming that scope and returns UNAUTHORIZED.
func (a *authenticator) authorize(w http.ResponseWriter, r *http.Request, rt route) (grant, error) {
	need := required(rt, r.Method)
	if user, password, ok := r.BasicAuth(); ok {
		switch err := a.login(r, user, password); err {
		case nil:
			return allowAll{}, nil
		case errBadCredentials:
			return nil, a.challenge(w, r, need, "")
		default:
			return nil, err
		}
	}
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return nil, a.challenge(w, r, need, "")
	}
	c, err := a.tokens.verify(strings.TrimSpace(tok))
	if err != nil {
		return nil, a.challenge(w, r, need, "invalid_token")
	}
	if need != nil && !c.allows(need.Type, need.Name, need.Actions[0]) {
		return nil, a.challenge(w, r, need, "insufficient_scope")
	}
	return c, nil
}

// challenge sets WWW-Authenticate for the token flow Docker clients follow: the realm is
// this server's /token, as the client reached it. A push is challenged for "pull,push",
// the scope Docker clients themselves ask for when pushing.
func (a *authenticator) challenge(w http.ResponseWriter, r *http.Request, need *access, errCode string) error {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	v := fmt.Sprintf(`Bearer realm="%s://%s/token",service="%s"`, scheme, r.Host, service)
	var detail any
	if need != nil {
		scope := *need
		if scope.Actions[0] == "push" {
			scope.Actions = []string{"pull", "push"}
		}
		v += fmt.Sprintf(`,scope="%s"`, scope.String())
		detail = []access{scope}
	}
	if errCode != "" {
		v += fmt.Sprintf(`,error="%s"`, errCode)
	}
	w.Header().Set("WWW-Authenticate", v)
	msg := "authentication required"
	if errCode == "insufficient_scope" {
		msg = "the token does not grant " + need.String()
	}
	return &Error{Code: CodeUnauthorized, Message: msg, Detail: detail}
}
