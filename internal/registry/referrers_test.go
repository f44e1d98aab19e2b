package registry

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestReferrers(t *testing.T) {
	r := newRegistry(t)
	img := r.pushImage("a", "v1", 1)
	subject := &Descriptor{MediaType: MediaTypeOCIManifest, Digest: img.digest, Size: int64(len(img.manifest))}
	empty := r.pushBlob("a", []byte("{}"))
	emptyDesc := Descriptor{MediaType: "application/vnd.oci.empty.v1+json", Digest: empty, Size: 2}

	// A signature (artifactType field) and an SBOM (artifact type from its config).
	sig := mustJSON(t, ociManifest{SchemaVersion: 2, MediaType: MediaTypeOCIManifest, ArtifactType: "application/vnd.example.sig",
		Config: emptyDesc, Layers: []Descriptor{emptyDesc}, Subject: subject, Annotations: map[string]string{"who": "me"}})
	sbomCfg := r.pushBlob("a", []byte(`{"sbom":true}`))
	sbom := mustJSON(t, ociManifest{SchemaVersion: 2, MediaType: MediaTypeOCIManifest,
		Config: Descriptor{MediaType: "application/vnd.example.sbom", Digest: sbomCfg, Size: 13}, Layers: []Descriptor{}, Subject: subject})
	// An index may have a subject too.
	idx := mustJSON(t, ociIndex{SchemaVersion: 2, MediaType: MediaTypeOCIIndex, Manifests: []Descriptor{*subject}, Subject: subject})

	for _, m := range []struct {
		body []byte
		mt   string
	}{{sig, MediaTypeOCIManifest}, {sbom, MediaTypeOCIManifest}, {idx, MediaTypeOCIIndex}} {
		d := digest.FromBytes(m.body)
		res := r.must(http.StatusCreated, "PUT", "/v2/a/manifests/"+d.String(), m.body, "Content-Type", m.mt)
		if got := res.Header.Get("OCI-Subject"); got != img.digest.String() {
			t.Errorf("PUT of a manifest with a subject: OCI-Subject %q", got)
		}
	}
	if res := r.pushManifest("a", "plain", MediaTypeOCIManifest, img.manifest); res.Header.Get("OCI-Subject") != "" {
		t.Error("OCI-Subject set for a manifest without subject")
	}

	list := func(query string) (index, http.Header) {
		res := r.must(http.StatusOK, "GET", "/v2/a/referrers/"+img.digest.String()+query, nil)
		if ct := res.Header.Get("Content-Type"); ct != MediaTypeOCIIndex {
			t.Errorf("referrers Content-Type %q", ct)
		}
		var ix index
		if err := json.Unmarshal(res.Body, &ix); err != nil {
			t.Fatal(err)
		}
		return ix, res.Header
	}
	ix, _ := list("")
	byDigest := map[digest.Digest]Descriptor{}
	for _, d := range ix.Manifests {
		byDigest[d.Digest] = d
	}
	if len(ix.Manifests) != 3 || ix.SchemaVersion != 2 || ix.MediaType != MediaTypeOCIIndex {
		t.Fatalf("referrers = %+v, want 3 manifests", ix)
	}
	if d := byDigest[digest.FromBytes(sig)]; d.ArtifactType != "application/vnd.example.sig" || d.Annotations["who"] != "me" || d.Size != int64(len(sig)) || d.MediaType != MediaTypeOCIManifest {
		t.Errorf("signature descriptor = %+v", d)
	}
	if d := byDigest[digest.FromBytes(sbom)]; d.ArtifactType != "application/vnd.example.sbom" {
		t.Errorf("sbom descriptor = %+v", d)
	}
	if d := byDigest[digest.FromBytes(idx)]; d.MediaType != MediaTypeOCIIndex {
		t.Errorf("index descriptor = %+v", d)
	}

	filtered, hdr := list("?artifactType=application/vnd.example.sbom")
	if len(filtered.Manifests) != 1 || filtered.Manifests[0].Digest != digest.FromBytes(sbom) || hdr.Get("OCI-Filters-Applied") != "artifactType" {
		t.Errorf("filtered referrers = %+v, OCI-Filters-Applied %q", filtered, hdr.Get("OCI-Filters-Applied"))
	}

	// A deleted referrer disappears from the list.
	r.must(http.StatusAccepted, "DELETE", "/v2/a/manifests/"+digest.FromBytes(sig).String(), nil)
	if ix, _ := list(""); len(ix.Manifests) != 2 {
		t.Errorf("after deleting the signature: %d referrers, want 2", len(ix.Manifests))
	}

	// Unknown subjects and repositories have none (never 404); malformed digests are 400.
	for _, p := range []string{"/v2/a/referrers/" + digest.FromString("x").String(), "/v2/zzz/referrers/" + img.digest.String()} {
		res := r.must(http.StatusOK, "GET", p, nil)
		var ix index
		if json.Unmarshal(res.Body, &ix); len(ix.Manifests) != 0 || ix.Manifests == nil {
			t.Errorf("GET %s = %s, want an empty manifests list", p, res.Body)
		}
	}
	if code := r.must(http.StatusBadRequest, "GET", "/v2/a/referrers/sha256:nope", nil).errorCode(); code != "DIGEST_INVALID" {
		t.Errorf("malformed subject: code %q", code)
	}
}
