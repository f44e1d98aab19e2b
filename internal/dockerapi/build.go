package dockerapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/berth-project/berth/internal/engine/build"
	"github.com/berth-project/berth/internal/engine/errdefs"
)

func (s *Server) buildRoutes() {
	s.mux.HandleFunc("POST /build", s.build)
	s.mux.HandleFunc("POST /build/prune", s.pruneBuildCache)
	s.mux.HandleFunc("POST /build/cancel", s.cancelBuild)
}

// buildOptions reads docker build's flags from the query.
func buildOptions(r *http.Request) (build.Options, error) {
	q := r.URL.Query()
	o := build.Options{
		Dockerfile: q.Get("dockerfile"), Tags: q["t"], Target: q.Get("target"),
		NoCache: boolValue(r, "nocache"), Pull: boolValue(r, "pull"), Quiet: boolValue(r, "q"),
		NetworkMode: q.Get("networkmode"), Platform: q.Get("platform"), Remote: q.Get("remote"),
	}
	if v := q.Get("version"); v == "2" {
		return o, errdefs.Invalid("BuildKit builds (version=2) are not supported by Berth; use the classic builder (DOCKER_BUILDKIT=0)")
	}
	if v := q.Get("buildargs"); v != "" {
		if err := json.Unmarshal([]byte(v), &o.BuildArgs); err != nil {
			return o, errdefs.Invalid("invalid buildargs: " + err.Error())
		}
	}
	if h := r.Header.Get("X-Registry-Config"); h != "" {
		raw, err := decodeBase64(h)
		if err == nil {
			err = json.Unmarshal(raw, &o.Auth)
		}
		if err != nil {
			return o, errdefs.Invalid("invalid X-Registry-Config header: " + err.Error())
		}
	}
	if v := q.Get("labels"); v != "" {
		if err := json.Unmarshal([]byte(v), &o.Labels); err != nil {
			return o, errdefs.Invalid("invalid labels: " + err.Error())
		}
	}
	return o, nil
}

// buildStream is the build's output: text goes out as "stream" messages, and nothing
// is sent before the first, so an error before any step (a bad Dockerfile) is a plain
// HTTP error, as with Docker.
type buildStream struct{ lazyStream }

func (b *buildStream) Write(p []byte) (int, error) {
	b.send(map[string]string{"stream": string(p)})
	return len(p), nil
}

func (s *Server) build(w http.ResponseWriter, r *http.Request) {
	o, err := buildOptions(r)
	if err != nil {
		writeError(w, err)
		return
	}
	out := &buildStream{lazyStream{w: w}}
	id, err := s.e.Build(r.Context(), r.URL.Query().Get("buildid"), r.Body, o, out)
	if err != nil {
		var ee *build.ExitError
		if errors.As(err, &ee) {
			out.failCode(err, ee.Code)
		} else {
			out.fail(err)
		}
		return
	}
	out.send(map[string]any{"aux": map[string]string{"ID": id.String()}})
}

func (s *Server) pruneBuildCache(w http.ResponseWriter, r *http.Request) {
	if _, err := filters(r, "until", "id", "parent", "type", "description", "inuse", "shared", "private"); err != nil {
		writeError(w, err)
		return
	}
	deleted, space, err := s.e.PruneBuildCache(r.Context(), boolValue(r, "all"))
	if err != nil {
		writeError(w, err)
		return
	}
	if deleted == nil {
		deleted = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"CachesDeleted": deleted, "SpaceReclaimed": space})
}

func (s *Server) cancelBuild(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSpace(r.URL.Query().Get("id"))
	if id == "" {
		writeError(w, errdefs.Invalid("build ID not provided"))
		return
	}
	if !s.e.CancelBuild(id) {
		writeError(w, errdefs.NotFound(fmt.Sprintf("no such build: %s", id)))
		return
	}
	w.WriteHeader(http.StatusOK)
}
