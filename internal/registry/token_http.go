package registry

import (
	"net/http"
	"time"
)

// tokenResponse is the token endpoint's answer. Docker reads "token", OAuth2 clients
// "access_token"; both carry the same token.
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// serveToken is the token endpoint of Docker's token auth spec:
//
//	GET /token?service=S&scope=A&scope=B with Basic credentials (Docker, containerd,
//	go-containerregistry), and
//	POST /token with an OAuth2 password grant form (grant_type=password, username, password,
//	service, scope with scopes separated by spaces).
//
// The token grants the requested scopes this registry allows (see parseScopes).
func (a *authenticator) serveToken(w http.ResponseWriter, r *http.Request) error {
	var user, password string
	var scopes []string
	switch r.Method {
	case http.MethodGet:
		var ok bool
		if user, password, ok = r.BasicAuth(); !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="`+service+`"`)
			return newError(CodeUnauthorized, nil, "the token endpoint needs Basic credentials")
		}
		scopes = r.URL.Query()["scope"]
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			return oauthError(w, http.StatusBadRequest, "invalid_request")
		}
		if gt := r.PostForm.Get("grant_type"); gt != "password" {
			return oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		}
		user, password = r.PostForm.Get("username"), r.PostForm.Get("password")
		scopes = r.PostForm["scope"]
	default:
		return newError(CodeUnsupported, nil, "method %s not allowed on the token endpoint", r.Method)
	}
	if err := a.login(r, user, password); err == errBadCredentials {
		if r.Method == http.MethodPost {
			return oauthError(w, http.StatusUnauthorized, "invalid_grant")
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="`+service+`"`)
		return err
	} else if err != nil {
		return err
	}
	now := a.tokens.now()
	c := claims{
		Issuer:    service,
		Subject:   user,
		Audience:  service,
		IssuedAt:  now.Unix(),
		ExpiresAt: now.Add(a.tokens.ttl).Unix(),
		Access:    parseScopes(scopes),
	}
	tok := a.tokens.sign(c)
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, "application/json", tokenResponse{
		Token:       tok,
		AccessToken: tok,
		ExpiresIn:   int(a.tokens.ttl / time.Second),
		IssuedAt:    now.UTC().Format(time.RFC3339),
	})
}

// oauthError answers a POST /token failure in OAuth2's shape ({"error": "..."}), which is
// what OAuth2 clients parse.
func oauthError(w http.ResponseWriter, status int, code string) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err := w.Write([]byte(`{"error":"` + code + `"}`))
	return err
}
