package dockerapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	goruntime "runtime"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/registry"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/engine/errdefs"
)

func (s *Server) registryRoutes() {
	s.mux.HandleFunc("POST /auth", s.login)
	s.mux.HandleFunc("GET /images/search", s.searchImages)
}

// registryAuth decodes the X-Registry-Auth header: base64url JSON of the credentials.
// A missing or empty header means anonymous.
func registryAuth(r *http.Request) (*registry.AuthConfig, error) {
	h := strings.TrimSpace(r.Header.Get("X-Registry-Auth"))
	if h == "" || h == "e30=" || h == "e30" { // "{}"
		return nil, nil
	}
	raw, err := decodeBase64(h)
	if err != nil {
		return nil, errdefs.Invalid("invalid X-Registry-Auth header: not base64")
	}
	var a registry.AuthConfig
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, errdefs.Invalid("invalid X-Registry-Auth header: " + err.Error())
	}
	return &a, nil
}

// decodeBase64 reads the base64 the auth headers use (URL-safe, padded or not; some
// clients send the standard alphabet).
func decodeBase64(h string) ([]byte, error) {
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.RawURLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if raw, err = enc.DecodeString(strings.TrimSpace(h)); err == nil {
			return raw, nil
		}
	}
	return nil, err
}

// progressStream turns engine progress into Docker's JSON messages.
type progressStream struct{ lazyStream }

func (p *progressStream) progress(pr engine.Progress) {
	m := map[string]any{"status": pr.Status}
	if pr.ID != "" {
		m["id"] = pr.ID
	}
	if pr.Total > 0 || pr.Current > 0 {
		m["progressDetail"] = map[string]int64{"current": pr.Current, "total": pr.Total}
		m["progress"] = progressBar(pr.Current, pr.Total)
	} else if pr.ID != "" {
		m["progressDetail"] = map[string]any{}
	}
	p.send(m)
	if pr.Aux != nil {
		p.send(map[string]any{"progressDetail": map[string]any{}, "aux": pr.Aux})
	}
}

// progressBar draws Docker's "[=====>     ]  1.2MB/4.5MB".
func progressBar(cur, total int64) string {
	size := func(n int64) string { return units.HumanSize(float64(n)) }
	if total <= 0 {
		return size(cur)
	}
	width := 50
	done := int(float64(width) * float64(cur) / float64(total))
	done = max(0, min(done, width))
	bar := strings.Repeat("=", done)
	if done < width {
		bar += ">" + strings.Repeat(" ", width-done-1)
	}
	return fmt.Sprintf("[%s] %8s/%s", bar, size(cur), size(total))
}

func (s *Server) pullImage(w http.ResponseWriter, r *http.Request, from string) {
	q := r.URL.Query()
	ref := from
	if t := q.Get("tag"); t != "" {
		if strings.HasPrefix(t, "sha256:") {
			ref += "@" + t
		} else {
			ref += ":" + t
		}
	}
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		writeError(w, errdefs.Invalid("invalid reference format"))
		return
	}
	if p := q.Get("platform"); p != "" && p != "linux/"+goruntime.GOARCH && p != "linux" {
		writeError(w, errdefs.Invalid(fmt.Sprintf("image platform %s is not supported: Berth runs linux/%s", p, goruntime.GOARCH)))
		return
	}
	auth, err := registryAuth(r)
	if err != nil {
		writeError(w, err)
		return
	}
	out := &progressStream{lazyStream{w: w}}
	if _, err := s.e.Pull(r.Context(), ref, auth, out.progress); err != nil {
		out.fail(err)
	}
}

func (s *Server) pushImage(w http.ResponseWriter, r *http.Request, name string) {
	auth, err := registryAuth(r)
	if err != nil {
		writeError(w, err)
		return
	}
	out := &progressStream{lazyStream{w: w}}
	if err := s.e.Push(r.Context(), name, r.URL.Query().Get("tag"), auth, out.progress); err != nil {
		out.fail(err)
	}
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var a registry.AuthConfig
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&a); err != nil {
		writeError(w, errdefs.Invalid("invalid login request: "+err.Error()))
		return
	}
	if err := s.e.Login(r.Context(), a); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"Status": "Login Succeeded", "IdentityToken": ""})
}

func (s *Server) searchImages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	term := q.Get("term")
	if term == "" {
		writeError(w, errdefs.Invalid("search term is required"))
		return
	}
	limit := 25
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100 {
			writeError(w, errdefs.Invalid("limit must be between 1 and 100"))
			return
		}
		limit = n
	}
	auth, err := registryAuth(r)
	if err != nil {
		writeError(w, err)
		return
	}
	res, err := s.e.Search(r.Context(), term, limit, auth)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
