package registry

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

// testRegistry is a Server behind an httptest.Server, with helpers to talk to it.
type testRegistry struct {
	t    *testing.T
	dir  string
	cfg  Config
	srv  *Server
	ts   *httptest.Server
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newRegistry starts a registry on a fresh data directory. opts adjust its Config.
func newRegistry(t *testing.T, opts ...func(*Config)) *testRegistry {
	t.Helper()
	r := &testRegistry{t: t, dir: t.TempDir(), logs: &syncBuffer{}}
	r.cfg = Config{DataDir: r.dir, Logger: slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, o := range opts {
		o(&r.cfg)
	}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *testRegistry) start() {
	r.t.Helper()
	srv, err := New(r.cfg)
	if err != nil {
		r.t.Fatalf("New: %v", err)
	}
	r.srv = srv
	r.ts = httptest.NewServer(srv)
}

func (r *testRegistry) stop() {
	if r.ts != nil {
		r.ts.Close()
		r.srv.Close()
		r.ts, r.srv = nil, nil
	}
}

// restart stops the server and starts a new one on the same directory.
func (r *testRegistry) restart() {
	r.stop()
	r.start()
}

// response is a finished HTTP exchange.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// errorCode is the first spec error code of the body, or "".
func (r response) errorCode() string {
	var e errorBody
	if json.Unmarshal(r.Body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

func (r response) String() string {
	return http.StatusText(r.Status) + " " + string(r.Body)
}

// do sends a request. path may be absolute ("/v2/...") and is sent as is, unnormalized.
// hdr holds header name/value pairs.
func (r *testRegistry) do(method, path string, body io.Reader, hdr ...string) response {
	r.t.Helper()
	u, _ := url.Parse(r.ts.URL)
	req, err := http.NewRequest(method, r.ts.URL, body)
	if err != nil {
		r.t.Fatal(err)
	}
	p, q, _ := strings.Cut(path, "?")
	req.URL = &url.URL{Scheme: u.Scheme, Host: u.Host, Opaque: p, RawQuery: q}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := r.ts.Client().Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		r.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// must sends a request and fails the test unless it answers status.
func (r *testRegistry) must(status int, method, path string, body []byte, hdr ...string) response {
	r.t.Helper()
	res := r.do(method, path, bytes.NewReader(body), hdr...)
	if res.Status != status {
		r.t.Fatalf("%s %s: got %d %s, want %d", method, path, res.Status, res.Body, status)
	}
	return res
}

// pushBlob uploads data to repository name monolithically and returns its digest.
func (r *testRegistry) pushBlob(name string, data []byte) digest.Digest {
	r.t.Helper()
	d := digest.FromBytes(data)
	r.must(http.StatusCreated, "POST", "/v2/"+name+"/blobs/uploads/?digest="+d.String(), data,
		"Content-Type", "application/octet-stream")
	return d
}

// pushManifest puts a manifest under ref with mediaType and returns the response.
func (r *testRegistry) pushManifest(name, ref, mediaType string, body []byte) response {
	r.t.Helper()
	return r.do("PUT", "/v2/"+name+"/manifests/"+ref, bytes.NewReader(body), "Content-Type", mediaType)
}

// image is a pushed image: its manifest and what it references.
type image struct {
	manifest []byte
	digest   digest.Digest
	config   digest.Digest
	layers   []digest.Digest
}

// pushImage pushes a config, n random layers and an OCI manifest tagged tag (or by digest
// when tag is "").
func (r *testRegistry) pushImage(name, tag string, n int) image {
	r.t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"n":"` + randomID() + `"}`)
	img := image{config: r.pushBlob(name, cfg)}
	m := ociManifest{SchemaVersion: 2, MediaType: MediaTypeOCIManifest,
		Config: Descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: img.config, Size: int64(len(cfg))},
		Layers: []Descriptor{}}
	for i := 0; i < n; i++ {
		data := randomBytes(1000 + i)
		d := r.pushBlob(name, data)
		img.layers = append(img.layers, d)
		m.Layers = append(m.Layers, Descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: d, Size: int64(len(data))})
	}
	img.manifest = mustJSON(r.t, m)
	img.digest = digest.FromBytes(img.manifest)
	ref := tag
	if ref == "" {
		ref = img.digest.String()
	}
	if res := r.pushManifest(name, ref, MediaTypeOCIManifest, img.manifest); res.Status != http.StatusCreated {
		r.t.Fatalf("push manifest %s:%s: %s", name, ref, res)
	}
	return img
}

// ociManifest builds image manifests in tests.
type ociManifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType,omitempty"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        Descriptor        `json:"config"`
	Layers        []Descriptor      `json:"layers"`
	Subject       *Descriptor       `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// ociIndex builds indexes in tests.
type ociIndex struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType,omitempty"`
	Manifests     []Descriptor `json:"manifests"`
	Subject       *Descriptor  `json:"subject,omitempty"`
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
