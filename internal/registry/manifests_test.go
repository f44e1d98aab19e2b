package registry

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestManifestRoundTrip: each manifest type is kept and served byte for byte, with the
// Content-Type it was pushed with, by tag and by digest.
func TestManifestRoundTrip(t *testing.T) {
	r := newRegistry(t)
	img := r.pushImage("a", "", 2)
	cfg := r.pushBlob("a", []byte(`{"os":"linux"}`))
	layer := r.pushBlob("a", []byte("layer"))
	// Deliberately odd spacing: the registry must not re-encode what it was given.
	docker := []byte(`{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 14, "digest": "` + cfg.String() + `"},
   "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 5, "digest": "` + layer.String() + `"}]
}`)
	r.must(http.StatusCreated, "PUT", "/v2/a/manifests/docker", docker, "Content-Type", MediaTypeDockerManifest)
	dockerDigest := digest.FromBytes(docker)
	index := mustJSON(t, ociIndex{SchemaVersion: 2, MediaType: MediaTypeOCIIndex, Manifests: []Descriptor{
		{MediaType: MediaTypeOCIManifest, Digest: img.digest, Size: int64(len(img.manifest))}}})
	list := []byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeDockerList + `","manifests":[{"mediaType":"` +
		MediaTypeDockerManifest + `","digest":"` + dockerDigest.String() + `","size":` + strconv.Itoa(len(docker)) + `,"platform":{"os":"linux","architecture":"amd64"}}]}`)

	tests := []struct {
		tag, mediaType string
		body           []byte
	}{
		{"oci", MediaTypeOCIManifest, img.manifest},
		{"docker", MediaTypeDockerManifest, docker},
		{"index", MediaTypeOCIIndex, index},
		{"list", MediaTypeDockerList, list},
	}
	for _, tt := range tests {
		t.Run(tt.tag, func(t *testing.T) {
			d := digest.FromBytes(tt.body)
			res := r.must(http.StatusCreated, "PUT", "/v2/a/manifests/"+tt.tag, tt.body, "Content-Type", tt.mediaType)
			if res.Header.Get("Docker-Content-Digest") != d.String() || res.Header.Get("Location") != "/v2/a/manifests/"+d.String() {
				t.Errorf("PUT: Docker-Content-Digest %q, Location %q", res.Header.Get("Docker-Content-Digest"), res.Header.Get("Location"))
			}
			for _, ref := range []string{tt.tag, d.String()} {
				got := r.must(http.StatusOK, "GET", "/v2/a/manifests/"+ref, nil, "Accept", tt.mediaType)
				if !bytes.Equal(got.Body, tt.body) {
					t.Errorf("GET %s: the body differs from what was pushed", ref)
				}
				if got.Header.Get("Content-Type") != tt.mediaType || got.Header.Get("Docker-Content-Digest") != d.String() {
					t.Errorf("GET %s: Content-Type %q, Docker-Content-Digest %q", ref, got.Header.Get("Content-Type"), got.Header.Get("Docker-Content-Digest"))
				}
				head := r.must(http.StatusOK, "HEAD", "/v2/a/manifests/"+ref, nil)
				if len(head.Body) != 0 || head.Header.Get("Content-Length") != strconv.Itoa(len(tt.body)) || head.Header.Get("Docker-Content-Digest") != d.String() {
					t.Errorf("HEAD %s: %d body bytes, Content-Length %q", ref, len(head.Body), head.Header.Get("Content-Length"))
				}
			}
			// PUT by digest is accepted too.
			r.must(http.StatusCreated, "PUT", "/v2/a/manifests/"+d.String(), tt.body, "Content-Type", tt.mediaType)
		})
	}
}

// TestManifestRejected: bad manifests get the spec's codes and write nothing.
func TestManifestRejected(t *testing.T) {
	r := newRegistry(t)
	cfg := r.pushBlob("a", []byte(`{}`))
	good := func(mut func(*ociManifest)) []byte {
		m := ociManifest{SchemaVersion: 2, MediaType: MediaTypeOCIManifest,
			Config: Descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: cfg, Size: 2}, Layers: []Descriptor{}}
		if mut != nil {
			mut(&m)
		}
		return mustJSON(t, m)
	}
	unknown := digest.FromString("not pushed")
	valid := good(nil)
	tests := []struct {
		name, ref, contentType string
		body                   []byte
		status                 int
		code                   string
	}{
		{"garbage", "t", MediaTypeOCIManifest, []byte("\x00\xffnot json"), 400, "MANIFEST_INVALID"},
		{"json array", "t", MediaTypeOCIManifest, []byte(`[1,2]`), 400, "MANIFEST_INVALID"},
		{"two objects", "t", MediaTypeOCIManifest, append(append([]byte{}, valid...), valid...), 400, "MANIFEST_INVALID"},
		{"empty", "t", MediaTypeOCIManifest, nil, 400, "MANIFEST_INVALID"},
		{"unsupported media type", "t", "text/plain", valid, 400, "MANIFEST_INVALID"},
		{"schema1", "t", "application/vnd.docker.distribution.manifest.v1+prettyjws", valid, 400, "MANIFEST_INVALID"},
		{"mediaType disagrees with Content-Type", "t", MediaTypeDockerManifest, valid, 400, "MANIFEST_INVALID"},
		{"schemaVersion 1", "t", MediaTypeOCIManifest, good(func(m *ociManifest) { m.SchemaVersion = 1 }), 400, "MANIFEST_INVALID"},
		{"unknown config", "t", MediaTypeOCIManifest, good(func(m *ociManifest) { m.Config.Digest = unknown }), 400, "MANIFEST_BLOB_UNKNOWN"},
		{"unknown layer", "t", MediaTypeOCIManifest, good(func(m *ociManifest) {
			m.Layers = []Descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: unknown, Size: 1}}
		}), 400, "MANIFEST_BLOB_UNKNOWN"},
		{"wrong size", "t", MediaTypeOCIManifest, good(func(m *ociManifest) { m.Config.Size = 3 }), 400, "MANIFEST_INVALID"},
		{"malformed layer digest", "t", MediaTypeOCIManifest, good(func(m *ociManifest) {
			m.Layers = []Descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: "sha256:../../etc", Size: 1}}
		}), 400, "DIGEST_INVALID"},
		{"index with unknown manifest", "t", MediaTypeOCIIndex, mustJSON(t, ociIndex{SchemaVersion: 2, Manifests: []Descriptor{
			{MediaType: MediaTypeOCIManifest, Digest: unknown, Size: 10}}}), 400, "MANIFEST_BLOB_UNKNOWN"},
		{"digest reference does not match", unknown.String(), MediaTypeOCIManifest, valid, 400, "DIGEST_INVALID"},
		{"malformed digest reference", "sha256:1234", MediaTypeOCIManifest, valid, 400, "DIGEST_INVALID"},
		{"invalid tag", "-bad", MediaTypeOCIManifest, valid, 400, "MANIFEST_INVALID"},
		{"oversize", "t", MediaTypeOCIManifest, append(valid, bytes.Repeat([]byte(" "), maxManifestSize)...), 413, "SIZE_INVALID"},
	}
	before := countFiles(t, r.dir)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := r.do("PUT", "/v2/a/manifests/"+tt.ref, bytes.NewReader(tt.body), "Content-Type", tt.contentType)
			if res.Status != tt.status || res.errorCode() != tt.code {
				t.Errorf("PUT = %d %s, want %d %s", res.Status, res.Body, tt.status, tt.code)
			}
		})
	}
	if after := countFiles(t, r.dir); after != before {
		t.Errorf("rejected manifests wrote %d files", after-before)
	}
	r.must(http.StatusNotFound, "GET", "/v2/a/manifests/t", nil)
}

func TestManifestReadErrors(t *testing.T) {
	r := newRegistry(t)
	r.pushImage("a", "v1", 1)
	for _, tt := range []struct {
		path   string
		status int
		code   string
	}{
		{"/v2/a/manifests/nope", 404, "MANIFEST_UNKNOWN"},
		{"/v2/a/manifests/" + digest.FromString("x").String(), 404, "MANIFEST_UNKNOWN"},
		{"/v2/b/manifests/v1", 404, "MANIFEST_UNKNOWN"},
		{"/v2/a/manifests/-bad", 404, "MANIFEST_UNKNOWN"},
		{"/v2/a/manifests/sha256:zz", 400, "DIGEST_INVALID"},
	} {
		if res := r.do("GET", tt.path, nil); res.Status != tt.status || res.errorCode() != tt.code {
			t.Errorf("GET %s = %d %q, want %d %q", tt.path, res.Status, res.errorCode(), tt.status, tt.code)
		}
	}
}

func TestManifestDelete(t *testing.T) {
	r := newRegistry(t)
	img := r.pushImage("a", "v1", 1)
	r.pushManifest("a", "v2", MediaTypeOCIManifest, img.manifest)

	// DELETE by tag removes only the tag.
	r.must(http.StatusAccepted, "DELETE", "/v2/a/manifests/v2", nil)
	r.must(http.StatusNotFound, "GET", "/v2/a/manifests/v2", nil)
	r.must(http.StatusOK, "GET", "/v2/a/manifests/v1", nil)
	r.must(http.StatusNotFound, "DELETE", "/v2/a/manifests/v2", nil)

	// DELETE by digest removes the manifest and the tags on it.
	r.must(http.StatusAccepted, "DELETE", "/v2/a/manifests/"+img.digest.String(), nil)
	r.must(http.StatusNotFound, "GET", "/v2/a/manifests/"+img.digest.String(), nil)
	r.must(http.StatusNotFound, "GET", "/v2/a/manifests/v1", nil)
	if tags := r.must(http.StatusOK, "GET", "/v2/a/tags/list", nil); !strings.Contains(string(tags.Body), `"tags":[]`) {
		t.Errorf("tags after deleting the manifest: %s", tags.Body)
	}
	r.must(http.StatusNotFound, "DELETE", "/v2/a/manifests/"+img.digest.String(), nil)
	// Its blobs stay (until gc).
	r.must(http.StatusOK, "HEAD", "/v2/a/blobs/"+img.config.String(), nil)
}
