package registry

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// newAuthRegistry is a registry with the users of testHtpasswd.
func newAuthRegistry(t *testing.T) *testRegistry {
	t.Helper()
	f := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(f, []byte(testHtpasswd), 0o600); err != nil {
		t.Fatal(err)
	}
	return newRegistry(t, func(c *Config) { c.Htpasswd = f })
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// token fetches a token as Docker does: GET /token with Basic credentials.
func (r *testRegistry) token(user, password string, scopes ...string) string {
	r.t.Helper()
	q := url.Values{"service": {service}, "scope": scopes}
	res := r.must(http.StatusOK, "GET", "/token?"+q.Encode(), nil, "Authorization", basic(user, password))
	var tr tokenResponse
	if err := json.Unmarshal(res.Body, &tr); err != nil {
		r.t.Fatal(err)
	}
	if tr.Token == "" || tr.AccessToken != tr.Token || tr.ExpiresIn != 300 {
		r.t.Fatalf("token response %s", res.Body)
	}
	if _, err := time.Parse(time.RFC3339, tr.IssuedAt); err != nil {
		r.t.Errorf("issued_at %q: %v", tr.IssuedAt, err)
	}
	return tr.Token
}

func TestAuthChallenges(t *testing.T) {
	r := newAuthRegistry(t)
	host := strings.TrimPrefix(r.ts.URL, "http://")
	realm := `Bearer realm="http://` + host + `/token",service="berth-registry"`
	for _, tt := range []struct {
		method, path, want string
	}{
		{"GET", "/v2/", realm},
		{"GET", "/v2/a/b/manifests/latest", realm + `,scope="repository:a/b:pull"`},
		{"HEAD", "/v2/a/blobs/sha256:0000", realm + `,scope="repository:a:pull"`},
		{"POST", "/v2/a/blobs/uploads/", realm + `,scope="repository:a:pull,push"`},
		{"PUT", "/v2/a/manifests/v1", realm + `,scope="repository:a:pull,push"`},
		{"DELETE", "/v2/a/manifests/v1", realm + `,scope="repository:a:delete"`},
		{"GET", "/v2/_catalog", realm + `,scope="registry:catalog:*"`},
	} {
		res := r.do(tt.method, tt.path, nil)
		if res.Status != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") != tt.want {
			t.Errorf("%s %s = %d, WWW-Authenticate %q; want 401, %q", tt.method, tt.path, res.Status, res.Header.Get("WWW-Authenticate"), tt.want)
		}
		if tt.method != "HEAD" && res.errorCode() != "UNAUTHORIZED" {
			t.Errorf("%s %s: code %q", tt.method, tt.path, res.errorCode())
		}
	}
	// Invalid names are refused before credentials are asked for.
	r.must(http.StatusBadRequest, "GET", "/v2/../x/manifests/y", nil)
}

// TestAuthBasicDirect: `curl -u` works on every endpoint without the token dance.
func TestAuthBasicDirect(t *testing.T) {
	r := newAuthRegistry(t)
	alice := []string{"Authorization", basic("alice", "wonderland")}
	bob := []string{"Authorization", basic("bob", "builder")}
	data := []byte("hello")
	r.must(http.StatusOK, "GET", "/v2/", nil, alice...)
	d := r.must(http.StatusCreated, "POST", "/v2/a/blobs/uploads/?digest="+digestOf(data), data, alice...).Header.Get("Docker-Content-Digest")
	r.must(http.StatusOK, "GET", "/v2/a/blobs/"+d, nil, bob...)
	r.must(http.StatusOK, "GET", "/v2/_catalog", nil, bob...)
	r.must(http.StatusOK, "GET", "/v2/a/tags/list", nil, alice...)
	r.must(http.StatusAccepted, "DELETE", "/v2/a/blobs/"+d, nil, bob...)
	r.must(http.StatusUnauthorized, "GET", "/v2/", nil, "Authorization", basic("alice", "wrong"))
	r.must(http.StatusUnauthorized, "GET", "/v2/", nil, "Authorization", basic("nobody", "wonderland"))
}

func TestAuthFailureIsLoggedWithoutSecrets(t *testing.T) {
	r := newAuthRegistry(t)
	r.must(http.StatusUnauthorized, "GET", "/v2/", nil, "Authorization", basic("alice", "hunter2-secret"))
	r.must(http.StatusUnauthorized, "GET", "/token?scope=repository:a:pull", nil, "Authorization", basic("alice", "hunter2-secret"))
	tok := r.token("alice", "wonderland", "repository:a:pull")
	r.must(http.StatusOK, "GET", "/v2/", nil, "Authorization", "Bearer "+tok)
	logs := r.logs.String()
	if !strings.Contains(logs, "authentication failed") || !strings.Contains(logs, "user=alice") || !strings.Contains(logs, "remote=127.0.0.1") {
		t.Errorf("the failure is not logged with user and address:\n%s", logs)
	}
	for _, secret := range []string{"hunter2", "wonderland", basic("alice", "hunter2-secret")[6:], tok, "Authorization"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %q:\n%s", secret, logs)
		}
	}
}

// TestTokenFlow: what Docker does: 401 → GET /token with Basic → retry with Bearer.
func TestTokenFlow(t *testing.T) {
	r := newAuthRegistry(t)
	push := r.token("alice", "wonderland", "repository:a:pull,push")
	bearer := []string{"Authorization", "Bearer " + push}
	data := []byte("layer")
	r.must(http.StatusCreated, "POST", "/v2/a/blobs/uploads/?digest="+digestOf(data), data, bearer...)
	r.must(http.StatusOK, "GET", "/v2/a/blobs/"+digestOf(data), nil, bearer...)
	r.must(http.StatusOK, "GET", "/v2/", nil, bearer...)

	// The token grants only its scopes: another repository, or the catalog, is refused.
	res := r.must(http.StatusUnauthorized, "GET", "/v2/b/blobs/"+digestOf(data), nil, bearer...)
	if !strings.Contains(res.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Errorf("other repository: WWW-Authenticate %q", res.Header.Get("WWW-Authenticate"))
	}
	r.must(http.StatusUnauthorized, "GET", "/v2/_catalog", nil, bearer...)

	// A pull-only token cannot push.
	pull := r.token("bob", "builder", "repository:a:pull")
	res = r.must(http.StatusUnauthorized, "POST", "/v2/a/blobs/uploads/", nil, "Authorization", "Bearer "+pull)
	if want := `scope="repository:a:pull,push",error="insufficient_scope"`; !strings.HasSuffix(res.Header.Get("WWW-Authenticate"), want) {
		t.Errorf("push with a pull token: WWW-Authenticate %q, want ...%s", res.Header.Get("WWW-Authenticate"), want)
	}
	r.must(http.StatusOK, "GET", "/v2/a/blobs/"+digestOf(data), nil, "Authorization", "Bearer "+pull)

	// Several scopes in one token; the catalog scope.
	multi := r.token("alice", "wonderland", "repository:a:pull", "repository:b:push,pull", "registry:catalog:*")
	r.must(http.StatusOK, "GET", "/v2/_catalog", nil, "Authorization", "Bearer "+multi)
	r.must(http.StatusAccepted, "POST", "/v2/b/blobs/uploads/", nil, "Authorization", "Bearer "+multi)

	// Tampered, foreign and garbage tokens are invalid.
	for _, bad := range []string{push[:len(push)-2] + "xx", strings.Replace(push, ".", ".e30.", 1), "garbage", ""} {
		res := r.must(http.StatusUnauthorized, "GET", "/v2/a/blobs/"+digestOf(data), nil, "Authorization", "Bearer "+bad)
		if bad != "" && !strings.Contains(res.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("token %q: WWW-Authenticate %q", bad, res.Header.Get("WWW-Authenticate"))
		}
	}

	// The token endpoint itself wants valid credentials.
	r.must(http.StatusUnauthorized, "GET", "/token?scope=repository:a:pull", nil)
	r.must(http.StatusUnauthorized, "GET", "/token?scope=repository:a:pull", nil, "Authorization", basic("alice", "nope"))

	// Tokens survive a restart: the key is kept in the data directory, 0600.
	r.restart()
	r.must(http.StatusOK, "GET", "/v2/a/blobs/"+digestOf(data), nil, bearer...)
	if fi, err := os.Stat(filepath.Join(r.dir, "token.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("token.key: %v, mode %v", err, fi.Mode())
	}
}

func TestTokenExpires(t *testing.T) {
	r := newAuthRegistry(t)
	tok := r.token("alice", "wonderland", "repository:a:pull")
	r.srv.auth.tokens.now = func() time.Time { return time.Now().Add(6 * time.Minute) }
	res := r.must(http.StatusUnauthorized, "GET", "/v2/a/tags/list", nil, "Authorization", "Bearer "+tok)
	if !strings.Contains(res.Header.Get("WWW-Authenticate"), "invalid_token") {
		t.Errorf("expired token: WWW-Authenticate %q", res.Header.Get("WWW-Authenticate"))
	}
}

// TestTokenOAuth2PasswordGrant: POST /token, which go-containerregistry and OAuth2 clients use.
func TestTokenOAuth2PasswordGrant(t *testing.T) {
	r := newAuthRegistry(t)
	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"wonderland"},
		"service": {service}, "scope": {"repository:a:pull repository:b:pull,push"}, "client_id": {"test"}}
	res := r.must(http.StatusOK, "POST", "/token", []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
	var tr tokenResponse
	json.Unmarshal(res.Body, &tr)
	if tr.AccessToken == "" {
		t.Fatalf("POST /token: %s", res.Body)
	}
	r.must(http.StatusAccepted, "POST", "/v2/b/blobs/uploads/", nil, "Authorization", "Bearer "+tr.AccessToken)
	r.must(http.StatusUnauthorized, "POST", "/v2/a/blobs/uploads/", nil, "Authorization", "Bearer "+tr.AccessToken)

	form.Set("password", "wrong")
	if res := r.must(http.StatusUnauthorized, "POST", "/token", []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded"); !strings.Contains(string(res.Body), "invalid_grant") {
		t.Errorf("wrong password: %s", res.Body)
	}
	form.Set("grant_type", "refresh_token")
	r.must(http.StatusBadRequest, "POST", "/token", []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
}

func TestParseScopes(t *testing.T) {
	got := parseScopes([]string{
		"repository:a/b:pull,push",
		"repository:c:pull repository:d:delete,*",
		"registry:catalog:*",
		"repository:UPPER:pull", // invalid name
		"repository:e:frobnicate",
		"registry:catalog:pull",
		"nonsense",
		"repository:host:5000/x:pull", // a name cannot hold a port
	})
	want := []string{"repository:a/b:pull,push", "repository:c:pull", "repository:d:delete,*", "registry:catalog:*"}
	var gotS []string
	for _, a := range got {
		gotS = append(gotS, a.String())
	}
	if strings.Join(gotS, " ") != strings.Join(want, " ") {
		t.Errorf("parseScopes = %v, want %v", gotS, want)
	}
}

func TestNoTokenEndpointWithoutAuth(t *testing.T) {
	r := newRegistry(t)
	r.must(http.StatusNotFound, "GET", "/token", nil)
}

func digestOf(b []byte) string { return digest.FromBytes(b).String() }

// TestPasswordGuessingIsThrottled: after maxFailures failed logins in a minute an address
// is refused with TOOMANYREQUESTS, even with the right password, until the minute is up.
func TestPasswordGuessingIsThrottled(t *testing.T) {
	r := newAuthRegistry(t)
	for i := 0; i < maxFailures; i++ {
		r.must(http.StatusUnauthorized, "GET", "/v2/", nil, "Authorization", basic("alice", "guess"+strconv.Itoa(i)))
	}
	for _, path := range []string{"/v2/", "/token?scope=repository:a:pull"} {
		if code := r.must(http.StatusTooManyRequests, "GET", path, nil, "Authorization", basic("alice", "wonderland")).errorCode(); code != "TOOMANYREQUESTS" {
			t.Errorf("GET %s after %d failures: code %q", path, maxFailures, code)
		}
	}
	// A minute later the address may log in again.
	r.srv.auth.failures.m["127.0.0.1"].since = time.Now().Add(-failureWindow)
	r.must(http.StatusOK, "GET", "/v2/", nil, "Authorization", basic("bob", "builder"))
}
