package registry

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
)

// gc stops the registry, collects, and starts it again.
func (r *testRegistry) gc(opts GCOptions) *GCResult {
	r.t.Helper()
	r.stop()
	res, err := GC(r.dir, opts)
	if err != nil {
		r.t.Fatalf("GC: %v", err)
	}
	r.start()
	return res
}

func TestGCRemovesUnreferencedBlobs(t *testing.T) {
	r := newRegistry(t)
	img := r.pushImage("a", "v1", 2)
	orphan := r.pushBlob("a", []byte("nobody references me"))
	shared := r.pushBlob("b", img.manifest[:10]) // only linked, never referenced

	dry := r.gc(GCOptions{DryRun: true})
	if !slices.Contains(dry.Blobs, orphan) || len(dry.Blobs) != 2 {
		t.Errorf("dry run would delete %v, want the 2 unreferenced blobs", dry.Blobs)
	}
	r.must(http.StatusOK, "HEAD", "/v2/a/blobs/"+orphan.String(), nil) // dry run deleted nothing

	res := r.gc(GCOptions{})
	if len(res.Blobs) != 2 || !slices.Contains(res.Blobs, orphan) || !slices.Contains(res.Blobs, shared) || len(res.Manifests) != 0 {
		t.Errorf("gc deleted blobs %v, manifests %v", res.Blobs, res.Manifests)
	}
	r.must(http.StatusNotFound, "HEAD", "/v2/a/blobs/"+orphan.String(), nil)
	r.must(http.StatusNotFound, "HEAD", "/v2/b/blobs/"+shared.String(), nil)
	// The image is intact.
	r.must(http.StatusOK, "GET", "/v2/a/manifests/v1", nil)
	for _, d := range append(img.layers, img.config) {
		r.must(http.StatusOK, "GET", "/v2/a/blobs/"+d.String(), nil)
	}
	// Without --delete-untagged an untagged manifest keeps its blobs.
	r.must(http.StatusAccepted, "DELETE", "/v2/a/manifests/v1", nil)
	if res := r.gc(GCOptions{}); len(res.Blobs) != 0 {
		t.Errorf("gc deleted %v of an untagged manifest", res.Blobs)
	}
	r.must(http.StatusOK, "GET", "/v2/a/manifests/"+img.digest.String(), nil)
}

func TestGCDeleteUntagged(t *testing.T) {
	r := newRegistry(t)
	tagged := r.pushImage("a", "v1", 1)
	untagged := r.pushImage("a", "", 1)
	child := r.pushImage("a", "", 1)
	index := mustJSON(t, ociIndex{SchemaVersion: 2, MediaType: MediaTypeOCIIndex,
		Manifests: []Descriptor{{MediaType: MediaTypeOCIManifest, Digest: child.digest, Size: int64(len(child.manifest))}}})
	r.must(http.StatusCreated, "PUT", "/v2/a/manifests/multi", index, "Content-Type", MediaTypeOCIIndex)
	// A signature of the tagged image: untagged by nature, kept with its subject.
	empty := r.pushBlob("a", []byte("{}"))
	sig := mustJSON(t, ociManifest{SchemaVersion: 2, MediaType: MediaTypeOCIManifest, ArtifactType: "application/vnd.example.sig",
		Config:  Descriptor{MediaType: "application/vnd.oci.empty.v1+json", Digest: empty, Size: 2},
		Layers:  []Descriptor{},
		Subject: &Descriptor{MediaType: MediaTypeOCIManifest, Digest: tagged.digest, Size: int64(len(tagged.manifest))}})
	sigDigest := digest.FromBytes(sig)
	r.must(http.StatusCreated, "PUT", "/v2/a/manifests/"+sigDigest.String(), sig, "Content-Type", MediaTypeOCIManifest)

	res := r.gc(GCOptions{DeleteUntagged: true})
	if want := []string{"a@" + untagged.digest.String()}; !slices.Equal(res.Manifests, want) {
		t.Errorf("deleted manifests %v, want %v", res.Manifests, want)
	}
	wantBlobs := append([]digest.Digest{untagged.digest, untagged.config}, untagged.layers...)
	slices.Sort(wantBlobs)
	slices.Sort(res.Blobs)
	if !slices.Equal(res.Blobs, wantBlobs) {
		t.Errorf("deleted blobs %v, want %v", res.Blobs, wantBlobs)
	}
	r.must(http.StatusNotFound, "GET", "/v2/a/manifests/"+untagged.digest.String(), nil)
	for _, d := range []digest.Digest{tagged.digest, child.digest, sigDigest} {
		r.must(http.StatusOK, "GET", "/v2/a/manifests/"+d.String(), nil)
	}
	r.must(http.StatusOK, "GET", "/v2/a/blobs/"+child.layers[0].String(), nil)
	r.must(http.StatusOK, "GET", "/v2/a/blobs/"+empty.String(), nil)
}

func TestGCRefusesWhileRegistryServes(t *testing.T) {
	r := newRegistry(t)
	orphan := r.pushBlob("a", []byte("x"))
	_, err := GC(r.dir, GCOptions{})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("GC while serving: %v, want ErrLocked", err)
	}
	r.must(http.StatusOK, "HEAD", "/v2/a/blobs/"+orphan.String(), nil)
	// And a registry cannot start on a directory gc (or another registry) holds.
	if _, err := New(Config{DataDir: r.dir}); !errors.Is(err, ErrLocked) {
		t.Errorf("second registry on the same directory: %v, want ErrLocked", err)
	}
}

func TestGCOnMissingDirectory(t *testing.T) {
	if _, err := GC(t.TempDir()+"/nothing", GCOptions{}); err == nil {
		t.Error("gc of a directory that holds no registry succeeded")
	}
}

// TestPersistence: a new Server on the same directory serves what the old one stored.
func TestPersistence(t *testing.T) {
	r := newRegistry(t)
	img := r.pushImage("lib/app", "v1", 2)
	r.restart()
	got := r.must(http.StatusOK, "GET", "/v2/lib/app/manifests/v1", nil)
	if string(got.Body) != string(img.manifest) || got.Header.Get("Content-Type") != MediaTypeOCIManifest {
		t.Errorf("manifest after restart: %q %s", got.Header.Get("Content-Type"), got.Body)
	}
	for _, d := range append(img.layers, img.config) {
		r.must(http.StatusOK, "GET", "/v2/lib/app/blobs/"+d.String(), nil)
	}
	if tags := r.must(http.StatusOK, "GET", "/v2/lib/app/tags/list", nil); string(tags.Body) != `{"name":"lib/app","tags":["v1"]}` {
		t.Errorf("tags after restart: %s", tags.Body)
	}
	if cat := r.must(http.StatusOK, "GET", "/v2/_catalog", nil); string(cat.Body) != `{"repositories":["lib/app"]}` {
		t.Errorf("catalog after restart: %s", cat.Body)
	}
}
