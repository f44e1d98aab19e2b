package registry

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestBaseEndpoint(t *testing.T) {
	r := newRegistry(t)
	for _, m := range []string{"GET", "HEAD"} {
		res := r.must(http.StatusOK, m, "/v2/", nil)
		if got := res.Header.Get("Docker-Distribution-API-Version"); got != "registry/2.0" {
			t.Errorf("%s /v2/: Docker-Distribution-API-Version = %q", m, got)
		}
	}
	// Errors carry the header too: Docker checks it on a 401 from /v2/.
	res := r.must(http.StatusNotFound, "GET", "/v2/a/manifests/x", nil)
	if res.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Error("an error response lacks Docker-Distribution-API-Version")
	}
	r.must(http.StatusNotFound, "GET", "/nope", nil)
	if code := r.must(http.StatusMethodNotAllowed, "POST", "/v2/a/manifests/x", nil).errorCode(); code != "UNSUPPORTED" {
		t.Errorf("POST of a manifest: code %q, want UNSUPPORTED", code)
	}
}

func TestBlobFetch(t *testing.T) {
	r := newRegistry(t)
	data := randomBytes(100000)
	d := r.pushBlob("a/b", data)
	path := "/v2/a/b/blobs/" + d.String()

	head := r.must(http.StatusOK, "HEAD", path, nil)
	for k, want := range map[string]string{
		"Content-Length":        strconv.Itoa(len(data)),
		"Docker-Content-Digest": d.String(),
		"Etag":                  `"` + d.String() + `"`,
		"Content-Type":          "application/octet-stream",
	} {
		if got := head.Header.Get(k); got != want {
			t.Errorf("HEAD %s = %q, want %q", k, got, want)
		}
	}
	if len(head.Body) != 0 {
		t.Errorf("HEAD returned a body of %d bytes", len(head.Body))
	}
	if got := r.must(http.StatusOK, "GET", path, nil); !bytes.Equal(got.Body, data) {
		t.Error("GET returned other bytes than were pushed")
	}
	part := r.must(http.StatusPartialContent, "GET", path, nil, "Range", "bytes=10-19")
	if !bytes.Equal(part.Body, data[10:20]) || part.Header.Get("Content-Range") != "bytes 10-19/100000" {
		t.Errorf("Range: got %d bytes, Content-Range %q", len(part.Body), part.Header.Get("Content-Range"))
	}
	r.must(http.StatusNotModified, "GET", path, nil, "If-None-Match", `"`+d.String()+`"`)
	r.must(http.StatusRequestedRangeNotSatisfiable, "GET", path, nil, "Range", "bytes=200000-")
}

func TestBlobErrors(t *testing.T) {
	r := newRegistry(t)
	d := r.pushBlob("a", []byte("hello"))
	unknown := digest.FromString("nothing").String()
	tests := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"unknown digest", "GET", "/v2/a/blobs/" + unknown, 404, "BLOB_UNKNOWN"},
		{"unknown digest HEAD", "HEAD", "/v2/a/blobs/" + unknown, 404, ""},
		{"other repository", "GET", "/v2/b/blobs/" + d.String(), 404, "BLOB_UNKNOWN"},
		{"malformed digest", "GET", "/v2/a/blobs/sha256:xyz", 400, "DIGEST_INVALID"},
		{"upper-case hex", "GET", "/v2/a/blobs/sha256:" + string(bytes.ToUpper([]byte(d.Encoded()))), 400, "DIGEST_INVALID"},
		{"unsupported algorithm", "GET", "/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", 400, "DIGEST_INVALID"},
		{"no algorithm", "GET", "/v2/a/blobs/" + d.Encoded(), 400, "DIGEST_INVALID"},
		{"delete unknown", "DELETE", "/v2/a/blobs/" + unknown, 404, "BLOB_UNKNOWN"},
		{"delete malformed", "DELETE", "/v2/a/blobs/sha256:zz", 400, "DIGEST_INVALID"},
		{"invalid name", "GET", "/v2/A/blobs/" + d.String(), 400, "NAME_INVALID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := r.do(tt.method, tt.path, nil)
			if res.Status != tt.status || res.errorCode() != tt.code {
				t.Errorf("%s %s = %d %q, want %d %q", tt.method, tt.path, res.Status, res.errorCode(), tt.status, tt.code)
			}
		})
	}
}

func TestBlobDeleteUnlinksFromRepository(t *testing.T) {
	r := newRegistry(t)
	data := []byte("shared")
	d := r.pushBlob("a", data)
	r.pushBlob("b", data)
	r.must(http.StatusAccepted, "DELETE", "/v2/a/blobs/"+d.String(), nil)
	r.must(http.StatusNotFound, "GET", "/v2/a/blobs/"+d.String(), nil)
	r.must(http.StatusNotFound, "DELETE", "/v2/a/blobs/"+d.String(), nil)
	// The other repository still has it.
	r.must(http.StatusOK, "GET", "/v2/b/blobs/"+d.String(), nil)
}
