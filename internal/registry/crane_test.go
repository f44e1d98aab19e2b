package registry

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// requestLog records the requests a registry answered (with their queries, which the
// server's own log leaves out) to show what a real client did.
type requestLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		l.mu.Lock()
		l.lines = append(l.lines, r.Method+" "+r.URL.RequestURI()+" "+http.StatusText(rec.status))
		l.mu.Unlock()
	})
}

func (l *requestLog) count(substrings ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		all := true
		for _, s := range substrings {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

// newCraneRegistry serves a registry whose requests are recorded.
func newCraneRegistry(t *testing.T, auth bool) (*testRegistry, *requestLog, string) {
	r := newRegistry(t)
	if auth {
		r = newAuthRegistry(t)
	}
	log := &requestLog{}
	r.ts.Close()
	r.ts = httptest.NewServer(log.wrap(r.srv))
	return r, log, strings.TrimPrefix(r.ts.URL, "http://")
}

// TestCraneConformance: go-containerregistry, the client library Docker tooling and the
// engine use, pushes, pulls and copies images and indexes through the registry.
func TestCraneConformance(t *testing.T) {
	for _, tt := range []struct {
		name string
		auth bool
	}{{"anonymous", false}, {"htpasswd", true}} {
		t.Run(tt.name, func(t *testing.T) {
			r, log, host := newCraneRegistry(t, tt.auth)
			opts := []crane.Option{crane.Insecure}
			if tt.auth {
				opts = append(opts, crane.WithAuth(&authn.Basic{Username: "alice", Password: "wonderland"}))
			}

			img, err := random.Image(4096, 3)
			if err != nil {
				t.Fatal(err)
			}
			src := host + "/conformance/app:v1"
			if err := crane.Push(img, src, opts...); err != nil {
				t.Fatalf("crane.Push: %v", err)
			}
			pulled, err := crane.Pull(src, opts...)
			if err != nil {
				t.Fatalf("crane.Pull: %v", err)
			}
			sameImage(t, img, pulled)
			if d, err := crane.Digest(src, opts...); err != nil || d != mustDigest(t, img).String() {
				t.Errorf("crane.Digest = %s, %v", d, err)
			}

			// Copy to another repository: the layers are mounted, not uploaded again.
			dst := host + "/conformance/copy:v1"
			if err := crane.Copy(src, dst, opts...); err != nil {
				t.Fatalf("crane.Copy: %v", err)
			}
			if n := log.count("POST /v2/conformance/copy/blobs/uploads/?", "mount=", "from=conformance%2Fapp", "Created"); n < 3 {
				t.Errorf("crane.Copy mounted %d blobs, want the 3 layers at least; requests:\n%s", n, strings.Join(log.lines, "\n"))
			}
			if n := log.count("PATCH /v2/conformance/copy/"); n != 0 {
				t.Errorf("crane.Copy uploaded %d blobs instead of mounting them", n)
			}
			copied, err := crane.Pull(dst, opts...)
			if err != nil {
				t.Fatalf("crane.Pull of the copy: %v", err)
			}
			sameImage(t, img, copied)

			// An index with its images.
			idx, err := random.Index(2048, 2, 2)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := name.ParseReference(host+"/conformance/multi:v1", name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			ropts := []remote.Option{}
			if tt.auth {
				ropts = append(ropts, remote.WithAuth(&authn.Basic{Username: "bob", Password: "builder"}))
			}
			if err := remote.WriteIndex(ref, idx, ropts...); err != nil {
				t.Fatalf("remote.WriteIndex: %v", err)
			}
			got, err := remote.Index(ref, ropts...)
			if err != nil {
				t.Fatalf("remote.Index: %v", err)
			}
			want, _ := idx.Digest()
			if d, _ := got.Digest(); d != want {
				t.Errorf("index digest %s, want %s", d, want)
			}

			tags, err := crane.ListTags(host+"/conformance/app", opts...)
			if err != nil || strings.Join(tags, ",") != "v1" {
				t.Errorf("crane.ListTags = %v, %v", tags, err)
			}
			repos, err := crane.Catalog(host, opts...)
			if err != nil || strings.Join(repos, ",") != "conformance/app,conformance/copy,conformance/multi" {
				t.Errorf("crane.Catalog = %v, %v", repos, err)
			}
			if tt.auth && log.count("GET /token?") == 0 {
				t.Error("the client never fetched a token")
			}
			if err := crane.Delete(host+"/conformance/app@"+mustDigest(t, img).String(), opts...); err != nil {
				t.Errorf("crane.Delete: %v", err)
			}
			if _, err := crane.Pull(src, opts...); err == nil {
				t.Error("pulled a deleted image")
			}
			_ = r
		})
	}
}

func mustDigest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// sameImage compares manifests and layer digests, and reads every layer back.
func sameImage(t *testing.T, want, got v1.Image) {
	t.Helper()
	if w, g := mustDigest(t, want), mustDigest(t, got); w != g {
		t.Errorf("image digest %s, want %s", g, w)
	}
	wl, _ := want.Layers()
	gl, err := got.Layers()
	if err != nil || len(gl) != len(wl) {
		t.Fatalf("layers: %d, %v; want %d", len(gl), err, len(wl))
	}
	for i := range wl {
		wd, _ := wl[i].Digest()
		gd, _ := gl[i].Digest()
		if wd != gd {
			t.Errorf("layer %d: digest %s, want %s", i, gd, wd)
		}
		rc, err := gl[i].Compressed()
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		buf := make([]byte, 32<<10)
		for {
			if _, err := rc.Read(buf); err != nil {
				break
			}
		}
		if err := rc.Close(); err != nil {
			t.Errorf("layer %d does not verify: %v", i, err)
		}
	}
}
