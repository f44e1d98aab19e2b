package registry

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// startUpload begins a session in name and returns its Location.
func (r *testRegistry) startUpload(name string) string {
	r.t.Helper()
	res := r.must(http.StatusAccepted, "POST", "/v2/"+name+"/blobs/uploads/", nil)
	loc := res.Header.Get("Location")
	if !strings.HasPrefix(loc, "/v2/"+name+"/blobs/uploads/") || res.Header.Get("Docker-Upload-UUID") == "" {
		r.t.Fatalf("POST: Location %q, Docker-Upload-UUID %q", loc, res.Header.Get("Docker-Upload-UUID"))
	}
	if got := res.Header.Get("Range"); got != "0-0" {
		r.t.Errorf("new upload: Range %q, want 0-0", got)
	}
	return loc
}

func TestUploadPostThenPut(t *testing.T) {
	r := newRegistry(t)
	data := randomBytes(5000)
	d := digest.FromBytes(data)
	loc := r.startUpload("a")
	res := r.must(http.StatusCreated, "PUT", loc+"?digest="+d.String(), data, "Content-Type", "application/octet-stream")
	if res.Header.Get("Location") != "/v2/a/blobs/"+d.String() || res.Header.Get("Docker-Content-Digest") != d.String() {
		t.Errorf("PUT: Location %q, Docker-Content-Digest %q", res.Header.Get("Location"), res.Header.Get("Docker-Content-Digest"))
	}
	if got := r.must(http.StatusOK, "GET", "/v2/a/blobs/"+d.String(), nil); !bytes.Equal(got.Body, data) {
		t.Error("the blob differs from what was uploaded")
	}
	// The session is over.
	r.must(http.StatusNotFound, "GET", loc, nil)
}

func TestUploadChunkedAndResumable(t *testing.T) {
	r := newRegistry(t)
	data := randomBytes(3000)
	d := digest.FromBytes(data)
	loc := r.startUpload("a")

	res := r.must(http.StatusAccepted, "PATCH", loc, data[:1000], "Content-Range", "0-999", "Content-Type", "application/octet-stream")
	if got := res.Header.Get("Range"); got != "0-999" {
		t.Errorf("after the first chunk: Range %q", got)
	}
	status := r.must(http.StatusNoContent, "GET", loc, nil)
	if status.Header.Get("Range") != "0-999" || status.Header.Get("Location") != loc {
		t.Errorf("status: Range %q, Location %q", status.Header.Get("Range"), status.Header.Get("Location"))
	}
	// A chunk that does not start where the upload ends is refused with 416.
	if res := r.must(http.StatusRequestedRangeNotSatisfiable, "PATCH", loc, data[500:1000], "Content-Range", "500-999"); res.errorCode() != "BLOB_UPLOAD_INVALID" {
		t.Errorf("out-of-order chunk: code %q", res.errorCode())
	}
	r.must(http.StatusRequestedRangeNotSatisfiable, "PATCH", loc, data[1000:2000], "Content-Range", "garbage")
	// Without Content-Range a chunk is appended (the streamed form).
	r.must(http.StatusAccepted, "PATCH", loc, data[1000:2000])
	// The last chunk comes with the PUT.
	r.must(http.StatusCreated, "PUT", loc+"?digest="+d.String(), data[2000:], "Content-Range", "2000-2999")
	if got := r.must(http.StatusOK, "GET", "/v2/a/blobs/"+d.String(), nil); !bytes.Equal(got.Body, data) {
		t.Error("the chunked blob differs from what was uploaded")
	}
}

func TestUploadErrors(t *testing.T) {
	r := newRegistry(t)
	loc := r.startUpload("a")
	r.must(http.StatusAccepted, "PATCH", loc, []byte("abc"))
	other := strings.Replace(loc, "/v2/a/", "/v2/b/", 1)
	tests := []struct {
		name, method, path string
		body               string
		status             int
		code               string
	}{
		{"PUT without digest", "PUT", loc, "", 400, "DIGEST_INVALID"},
		{"PUT with a malformed digest", "PUT", loc + "?digest=sha256:zz", "", 400, "DIGEST_INVALID"},
		{"POST with a malformed digest", "POST", "/v2/a/blobs/uploads/?digest=nope", "x", 400, "DIGEST_INVALID"},
		{"unknown upload", "GET", "/v2/a/blobs/uploads/0123456789abcdef0123456789abcdef", "", 404, "BLOB_UPLOAD_UNKNOWN"},
		{"malformed upload id", "PATCH", "/v2/a/blobs/uploads/nope", "x", 404, "BLOB_UPLOAD_UNKNOWN"},
		{"upload of another repository", "PATCH", other, "x", 404, "BLOB_UPLOAD_UNKNOWN"},
		{"chunk length disagrees with Content-Range", "PATCH", loc, "xy", 400, "SIZE_INVALID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.code == "SIZE_INVALID" {
				hdr = []string{"Content-Range", "3-9"}
			}
			res := r.do(tt.method, tt.path, strings.NewReader(tt.body), hdr...)
			if res.Status != tt.status || res.errorCode() != tt.code {
				t.Errorf("%s %s = %d %q, want %d %q", tt.method, tt.path, res.Status, res.errorCode(), tt.status, tt.code)
			}
		})
	}
	// The session survived the bad requests.
	if got := r.must(http.StatusNoContent, "GET", loc, nil).Header.Get("Range"); got != "0-2" {
		t.Errorf("Range after the errors = %q, want 0-2", got)
	}
	r.must(http.StatusNoContent, "DELETE", loc, nil)
	r.must(http.StatusNotFound, "GET", loc, nil)
}

func TestUploadDigestMismatchIsNotVisible(t *testing.T) {
	r := newRegistry(t)
	data := []byte("the real content")
	claimed := digest.FromString("something else")
	res := r.must(http.StatusBadRequest, "POST", "/v2/a/blobs/uploads/?digest="+claimed.String(), data)
	if res.errorCode() != "DIGEST_INVALID" {
		t.Errorf("mismatch: code %q", res.errorCode())
	}
	loc := r.startUpload("a")
	r.must(http.StatusBadRequest, "PUT", loc+"?digest="+claimed.String(), data)
	r.must(http.StatusNotFound, "GET", loc, nil) // a failed commit ends the session
	for _, d := range []digest.Digest{claimed, digest.FromBytes(data)} {
		r.must(http.StatusNotFound, "HEAD", "/v2/a/blobs/"+d.String(), nil)
	}
	if n := countFiles(t, filepath.Join(r.dir, "blobs")); n != 0 {
		t.Errorf("%d files in blobs/ after failed uploads", n)
	}
	if n := countFiles(t, filepath.Join(r.dir, "uploads")); n != 0 {
		t.Errorf("%d files left in uploads/", n)
	}
}

func TestCrossRepositoryMount(t *testing.T) {
	r := newRegistry(t)
	d := r.pushBlob("src", []byte("layer"))
	res := r.must(http.StatusCreated, "POST", "/v2/dst/blobs/uploads/?mount="+d.String()+"&from=src", nil)
	if res.Header.Get("Location") != "/v2/dst/blobs/"+d.String() || res.Header.Get("Docker-Content-Digest") != d.String() {
		t.Errorf("mount: Location %q, Docker-Content-Digest %q", res.Header.Get("Location"), res.Header.Get("Docker-Content-Digest"))
	}
	r.must(http.StatusOK, "GET", "/v2/dst/blobs/"+d.String(), nil)

	// A blob the source does not have (or a bad source) starts an ordinary upload instead.
	for _, q := range []string{"mount=" + d.String() + "&from=elsewhere", "mount=" + d.String() + "&from=..%2Fx", "mount=" + d.String()} {
		res := r.must(http.StatusAccepted, "POST", "/v2/other/blobs/uploads/?"+q, nil)
		if !strings.Contains(res.Header.Get("Location"), "/blobs/uploads/") {
			t.Errorf("failed mount (%s): Location %q", q, res.Header.Get("Location"))
		}
	}
	r.must(http.StatusNotFound, "GET", "/v2/other/blobs/"+d.String(), nil)
	if code := r.must(http.StatusBadRequest, "POST", "/v2/dst/blobs/uploads/?mount=bad&from=src", nil).errorCode(); code != "DIGEST_INVALID" {
		t.Errorf("mount of a malformed digest: code %q", code)
	}
}

func TestTooManyUploads(t *testing.T) {
	r := newRegistry(t, func(c *Config) { c.MaxUploads = 2 })
	r.startUpload("a")
	r.startUpload("a")
	if code := r.must(http.StatusTooManyRequests, "POST", "/v2/a/blobs/uploads/", nil).errorCode(); code != "TOOMANYREQUESTS" {
		t.Errorf("code %q, want TOOMANYREQUESTS", code)
	}
}

// failingReader yields n bytes of data, then fails as a dropped connection would.
type failingReader struct {
	data []byte
	n    int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection dropped")
	}
	k := copy(p, f.data[len(f.data)-f.n:])
	k = min(k, f.n)
	f.n -= k
	return k, nil
}

// TestInterruptedUploadLeavesNoBlob: an upload cut off mid-stream (and files a crash left
// behind) never become a visible blob, and a new upload of the same blob succeeds.
func TestInterruptedUploadLeavesNoBlob(t *testing.T) {
	r := newRegistry(t)
	data := randomBytes(4 << 20)
	d := digest.FromBytes(data)

	req, _ := http.NewRequest("POST", r.ts.URL+"/v2/a/blobs/uploads/?digest="+d.String(), &failingReader{data: data, n: 2 << 20})
	req.ContentLength = int64(len(data))
	if res, err := r.ts.Client().Do(req); err == nil {
		res.Body.Close()
		if res.StatusCode == http.StatusCreated {
			t.Fatal("an interrupted upload was accepted")
		}
	}
	r.must(http.StatusNotFound, "HEAD", "/v2/a/blobs/"+d.String(), nil)

	// A crash mid-upload leaves a partial session on disk; after a restart it is not a blob.
	partial := filepath.Join(r.dir, "uploads", "0123456789abcdef0123456789abcdef")
	os.MkdirAll(partial, 0o755)
	os.WriteFile(filepath.Join(partial, "repo"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(partial, "data"), data[:1<<20], 0o644)
	r.restart()
	r.must(http.StatusNotFound, "HEAD", "/v2/a/blobs/"+d.String(), nil)
	if n := countFiles(t, filepath.Join(r.dir, "blobs")); n != 0 {
		t.Errorf("%d blobs stored after interrupted uploads", n)
	}

	r.pushBlob("a", data)
	if got := r.must(http.StatusOK, "GET", "/v2/a/blobs/"+d.String(), nil); !bytes.Equal(got.Body, data) {
		t.Error("the retried upload stored other bytes")
	}
}

// TestUploadResumesAfterRestart: a session outlives the registry process; the client asks
// where it stands and carries on.
func TestUploadResumesAfterRestart(t *testing.T) {
	r := newRegistry(t)
	data := randomBytes(10000)
	d := digest.FromBytes(data)
	loc := r.startUpload("a")
	r.must(http.StatusAccepted, "PATCH", loc, data[:6000])
	r.restart()
	if got := r.must(http.StatusNoContent, "GET", loc, nil).Header.Get("Range"); got != "0-5999" {
		t.Fatalf("Range after restart = %q, want 0-5999", got)
	}
	r.must(http.StatusAccepted, "PATCH", loc, data[6000:], "Content-Range", "6000-9999")
	r.must(http.StatusCreated, "PUT", loc+"?digest="+d.String(), nil)
	if got := r.must(http.StatusOK, "GET", "/v2/a/blobs/"+d.String(), nil); !bytes.Equal(got.Body, data) {
		t.Error("the resumed upload stored other bytes")
	}
}

func TestStaleUploadsRemovedAtStart(t *testing.T) {
	r := newRegistry(t)
	old := filepath.Join(r.dir, "uploads", "00000000000000000000000000000000")
	fresh := filepath.Join(r.dir, "uploads", "11111111111111111111111111111111")
	for _, dir := range []string{old, fresh} {
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "repo"), []byte("a"), 0o644)
		os.WriteFile(filepath.Join(dir, "data"), []byte("partial"), 0o644)
	}
	past := time.Now().Add(-2 * time.Hour)
	os.Chtimes(filepath.Join(old, "data"), past, past)
	r.restart()
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Error("an upload untouched for 2h survived a restart")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Error("a recent upload was removed at start")
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n++
		}
		return nil
	})
	return n
}
