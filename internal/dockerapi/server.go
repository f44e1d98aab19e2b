// Package dockerapi serves the Docker Engine API over HTTP and translates it to calls
// of the engine. It holds no state and no policy: requests in, engine calls, Docker's
// wire shapes out (including its error wording and status codes).
package dockerapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/engine/errdefs"
)

// APIVersion is the newest Docker API version served; MinAPIVersion the oldest.
const (
	APIVersion    = "1.50"
	MinAPIVersion = "1.24"
)

// Server is the Docker API's HTTP handler.
type Server struct {
	e       *engine.Engine
	log     *slog.Logger
	mux     *http.ServeMux
	version string
}

// New returns the API handler for an engine. version is Berth's own version string.
func New(e *engine.Engine, log *slog.Logger, version string) *Server {
	s := &Server{e: e, log: log, mux: http.NewServeMux(), version: version}
	s.routes()
	return s
}

var versionPrefix = regexp.MustCompile(`^/v([0-9]+\.[0-9]+)(/.*)$`)

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if m := versionPrefix.FindStringSubmatch(r.URL.Path); m != nil {
		if versionLess(m[1], MinAPIVersion) {
			writeError(w, errdefs.Invalid(fmt.Sprintf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", m[1], MinAPIVersion)))
			return
		}
		if versionLess(APIVersion, m[1]) {
			writeError(w, errdefs.Invalid(fmt.Sprintf("client version %s is too new. Maximum supported API version is %s", m[1], APIVersion)))
			return
		}
		r.URL.Path = m[2]
	}
	w.Header().Set("Api-Version", APIVersion)
	w.Header().Set("Server", "Docker/"+s.version+" (linux)")
	w.Header().Set("Ostype", "linux")
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		t := time.Now()
		defer func() { s.log.Debug("api", "method", r.Method, "path", r.URL.Path, "took", time.Since(t)) }()
	}
	s.mux.ServeHTTP(w, r)
}

func versionLess(a, b string) bool {
	pa, pb := strings.SplitN(a, ".", 2), strings.SplitN(b, ".", 2)
	for i := 0; i < 2; i++ {
		x, _ := strconv.Atoi(pa[i])
		y, _ := strconv.Atoi(pb[i])
		if x != y {
			return x < y
		}
	}
	return false
}

func (s *Server) routes() {
	s.systemRoutes()
	s.containerRoutes()
	s.imageRoutes()
	s.volumeRoutes()
	s.execRoutes()
	s.networkRoutes()
	s.buildRoutes()
	s.registryRoutes()
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errdefs.NotFound(fmt.Sprintf("page not found: %s %s", r.Method, r.URL.Path)))
	})
}

// statusOf maps an engine error to Docker's status code.
func statusOf(err error) int {
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, errdefs.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, errdefs.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, errdefs.ErrNotModified):
		return http.StatusNotModified
	case errors.Is(err, errdefs.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, errdefs.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, errdefs.ErrNotImplemented):
		return http.StatusNotImplemented
	case errors.Is(err, errdefs.ErrUnauthorized):
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, err error) {
	code := statusOf(err)
	if code == http.StatusNotModified {
		w.WriteHeader(code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"message": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	// Encoded whole first: one write with a Content-Length, rather than 4 KB chunks the
	// client reads one wake-up at a time (docker ps of 50 containers is 40 KB).
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// decodeBody reads a JSON body into v; malformed JSON is the client's error (400).
func decodeBody(r *http.Request, v any) error {
	if r.Body == nil || r.ContentLength == 0 {
		return nil
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<20))
	if err := dec.Decode(v); err != nil {
		if err == io.EOF {
			return nil
		}
		return errdefs.Invalid("invalid JSON: " + err.Error())
	}
	return nil
}

func boolValue(r *http.Request, k string) bool {
	v := strings.ToLower(r.URL.Query().Get(k))
	return v != "" && v != "0" && v != "false" && v != "no"
}

func intValue(r *http.Request, k string, def int) (int, error) {
	v := r.URL.Query().Get(k)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, errdefs.Invalid(fmt.Sprintf("invalid value for %s: %q", k, v))
	}
	return n, nil
}

// filters parses the "filters" query parameter in both of Docker's encodings:
// {"name":{"x":true}} and the older {"name":["x"]}. With allowed keys given, any other
// key is refused as Docker refuses it.
func filters(r *http.Request, allowed ...string) (map[string][]string, error) {
	f, err := parseFilters(r)
	if err != nil || len(allowed) == 0 {
		return f, err
	}
	for k := range f {
		if !contains(allowed, k) {
			return nil, errdefs.Invalid(fmt.Sprintf("invalid filter '%s'", k))
		}
	}
	return f, nil
}

func parseFilters(r *http.Request) (map[string][]string, error) {
	out := map[string][]string{}
	raw := r.URL.Query().Get("filters")
	if raw == "" {
		return out, nil
	}
	var m map[string]map[string]bool
	if err := json.Unmarshal([]byte(raw), &m); err == nil {
		for k, vs := range m {
			for v, ok := range vs {
				if ok {
					out[k] = append(out[k], v)
				}
			}
		}
		return out, nil
	}
	var l map[string][]string
	if err := json.Unmarshal([]byte(raw), &l); err != nil {
		return nil, errdefs.Invalid("invalid filter: " + err.Error())
	}
	return l, nil
}

// hijack takes over the connection for a raw stream (attach, exec start): 101 when
// the client asked to upgrade, else 200, then the stream.
func hijack(w http.ResponseWriter, r *http.Request, contentType string) (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be hijacked")
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	if r.Header.Get("Upgrade") != "" {
		fmt.Fprintf(rw, "HTTP/1.1 101 UPGRADED\r\nContent-Type: %s\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nApi-Version: %s\r\n\r\n", contentType, APIVersion)
	} else {
		fmt.Fprintf(rw, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nApi-Version: %s\r\n\r\n", contentType, APIVersion)
	}
	if err := rw.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, rw, nil
}

// flushWriter flushes after every write, for streams the client reads as they come.
type flushWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func newFlushWriter(w http.ResponseWriter) *flushWriter {
	f, _ := w.(http.Flusher)
	return &flushWriter{w: w, f: f}
}

func (fw *flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	if fw.f != nil {
		fw.f.Flush()
	}
	return n, err
}

func (fw *flushWriter) Flush() {
	if fw.f != nil {
		fw.f.Flush()
	}
}

// jsonStream writes Docker's JSON progress messages.
type jsonStream struct {
	w   *flushWriter
	enc *json.Encoder
}

func newJSONStream(w http.ResponseWriter) *jsonStream {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fw := newFlushWriter(w)
	return &jsonStream{w: fw, enc: json.NewEncoder(fw)}
}

func (j *jsonStream) send(v any) { j.enc.Encode(v) }

func (j *jsonStream) error(err error) {
	j.enc.Encode(map[string]any{"errorDetail": map[string]string{"message": err.Error()}, "error": err.Error()})
}

// lazyStream is a JSON message stream whose headers go out with the first message, so
// a failure before it is a plain HTTP error (status and {"message"}), and one after it
// an error message in the stream, as Docker's streaming endpoints do.
type lazyStream struct {
	w  http.ResponseWriter
	mu sync.Mutex
	js *jsonStream
}

func (l *lazyStream) send(v any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.js == nil {
		l.js = newJSONStream(l.w)
	}
	l.js.send(v)
}

func (l *lazyStream) fail(err error) { l.failCode(err, 0) }

// failCode ends the stream with err; a non-zero code (a build step's exit status)
// becomes the client's exit status.
func (l *lazyStream) failCode(err error, code int) {
	l.mu.Lock()
	started := l.js != nil
	l.mu.Unlock()
	if !started {
		writeError(l.w, err)
		return
	}
	detail := map[string]any{"message": err.Error()}
	if code != 0 {
		detail["code"] = code
	}
	l.send(map[string]any{"errorDetail": detail, "error": err.Error()})
}
