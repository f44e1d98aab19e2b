// Package registry is an OCI distribution (v1.1) registry: content-addressed storage on
// disk, uploads verified before they become visible, htpasswd users with a token
// endpoint Docker clients understand, and a garbage collector.
package registry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Config configures a Server.
type Config struct {
	// DataDir holds everything the registry stores (see Store).
	DataDir string
	// Htpasswd, if set, is an htpasswd file (bcrypt or apr1 lines); every request then
	// needs credentials or a token. Empty: no authentication.
	Htpasswd string
	// Logger receives errors at info level and one line per request at debug level.
	Logger *slog.Logger
	// UploadMaxAge is how long an untouched upload is kept (default 1h).
	UploadMaxAge time.Duration
	// MaxUploads bounds the uploads in progress (default 1000).
	MaxUploads int
}

// Server serves the distribution API from a Store it holds open (and locked) until Close.
type Server struct {
	store   *Store
	uploads *uploads
	auth    *authenticator // nil without htpasswd
	log     *slog.Logger
	maxAge  time.Duration

	stop chan struct{}
	wg   sync.WaitGroup
}

// New opens the store in cfg.DataDir, removes stale uploads and, with cfg.Htpasswd, loads
// the users and the token key.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.UploadMaxAge <= 0 {
		cfg.UploadMaxAge = time.Hour
	}
	if cfg.MaxUploads <= 0 {
		cfg.MaxUploads = 1000
	}
	st, err := Open(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	s := &Server{
		store:   st,
		uploads: newUploads(st.uploadsDir(), cfg.MaxUploads),
		log:     cfg.Logger,
		maxAge:  cfg.UploadMaxAge,
		stop:    make(chan struct{}),
	}
	if n := s.uploads.sweep(cfg.UploadMaxAge); n > 0 {
		s.log.Info("removed stale uploads", "count", n)
	}
	if cfg.Htpasswd != "" {
		if s.auth, err = newAuthenticator(cfg.Htpasswd, st.Dir(), cfg.Logger); err != nil {
			st.Close()
			return nil, err
		}
	}
	s.wg.Add(1)
	go s.janitor()
	return s, nil
}

// Close stops background work and releases the store.
func (s *Server) Close() error {
	close(s.stop)
	s.wg.Wait()
	return s.store.Close()
}

// janitor removes abandoned uploads now and then.
func (s *Server) janitor() {
	defer s.wg.Done()
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if n := s.uploads.sweep(s.maxAge); n > 0 {
				s.log.Info("removed stale uploads", "count", n)
			}
		}
	}
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, rt route) error

// handler returns the handler of an endpoint and method, or nil if the method is not
// allowed there.
func (s *Server) handler(kind routeKind, method string) handlerFunc {
	type key struct {
		k routeKind
		m string
	}
	switch (key{kind, method}) {
	case key{routeBase, http.MethodGet}, key{routeBase, http.MethodHead}:
		return s.base
	case key{routeCatalog, http.MethodGet}:
		return s.catalog
	case key{routeTags, http.MethodGet}:
		return s.tagsList
	case key{routeManifest, http.MethodGet}, key{routeManifest, http.MethodHead}:
		return s.getManifest
	case key{routeManifest, http.MethodPut}:
		return s.putManifest
	case key{routeManifest, http.MethodDelete}:
		return s.deleteManifest
	case key{routeBlob, http.MethodGet}, key{routeBlob, http.MethodHead}:
		return s.getBlob
	case key{routeBlob, http.MethodDelete}:
		return s.deleteBlob
	case key{routeUploadNew, http.MethodPost}:
		return s.startUpload
	case key{routeUpload, http.MethodGet}:
		return s.uploadStatus
	case key{routeUpload, http.MethodPatch}:
		return s.patchUpload
	case key{routeUpload, http.MethodPut}:
		return s.finishUpload
	case key{routeUpload, http.MethodDelete}:
		return s.cancelUpload
	case key{routeReferrers, http.MethodGet}:
		return s.referrersList
	}
	return nil
}

// ServeHTTP routes a request, checks its credentials and writes errors in the spec's shape.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	sw.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	err := s.serve(sw, r)
	if err != nil {
		var apiErr *Error
		switch {
		case errors.As(err, &apiErr): // the client's mistake: it is told, not logged
		case sw.wrote || errors.Is(err, context.Canceled):
			// The answer was under way, so the failure is the connection's (a client that
			// went away): worth a debug line, not an error.
			s.log.Debug("response failed", "method", r.Method, "path", r.URL.Path, "err", err)
		default:
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		if !sw.wrote {
			writeError(sw, err)
		}
	}
	// The path is logged, never the query or headers: they may carry credentials.
	s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "bytes", sw.n,
		"remote", r.RemoteAddr, "duration", time.Since(start).Round(time.Microsecond))
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) error {
	if r.URL.Path == "/token" {
		if s.auth == nil {
			return newError(CodeUnsupported, nil, "this registry has no authentication").withStatus(http.StatusNotFound)
		}
		return s.auth.serveToken(w, r)
	}
	rt, err := parseRoute(r.URL.EscapedPath())
	if err != nil {
		return err
	}
	if rt.kind == routeNone {
		return newError(CodeUnsupported, nil, "no such endpoint: %s", r.URL.Path).withStatus(http.StatusNotFound)
	}
	h := s.handler(rt.kind, r.Method)
	if h == nil {
		return newError(CodeUnsupported, nil, "method %s not allowed here", r.Method)
	}
	if s.auth != nil {
		g, err := s.auth.authorize(w, r, rt)
		if err != nil {
			return err
		}
		r = r.WithContext(withGrant(r.Context(), g))
	}
	return h(w, r, rt)
}

// base answers the version check: 200 means "this is a v2 registry and you may use it".
func (s *Server) base(w http.ResponseWriter, r *http.Request, _ route) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		io.WriteString(w, "{}")
	}
	return nil
}

func (e *Error) withStatus(status int) *Error {
	e.Status = status
	return e
}

// statusWriter records the status and size of a response for the request log. It passes
// ReadFrom through so that blob downloads keep using sendfile.
type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
	}
	w.n += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// location is the path of a repository's endpoint, for Location and Link headers.
func location(name string, parts ...string) string {
	p := "/v2/" + name
	for _, x := range parts {
		p += "/" + x
	}
	return p
}
