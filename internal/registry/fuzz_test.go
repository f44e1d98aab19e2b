package registry

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Run one with: go test ./internal/registry -run '^$' -fuzz FuzzParseManifest -fuzztime 30s

func FuzzParseManifest(f *testing.F) {
	const d = "sha256:2ab457a723dc6b7002e1a8a6b021db5c7800fbcd1d14ce1cd1a19698ba226bd6"
	f.Add(MediaTypeOCIManifest, `{"schemaVersion":2,"config":{"mediaType":"x","digest":"`+d+`","size":1},"layers":[]}`)
	f.Add(MediaTypeDockerManifest, `{"schemaVersion":2,"mediaType":"`+MediaTypeDockerManifest+`","config":{"mediaType":"x","digest":"`+d+`","size":1},"layers":[{"mediaType":"y","digest":"`+d+`","size":2}]}`)
	f.Add(MediaTypeOCIIndex, `{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"`+d+`","size":1}],"subject":{"mediaType":"x","digest":"`+d+`","size":1}}`)
	f.Add(MediaTypeDockerList+"; charset=utf-8", `{"schemaVersion":2,"mediaType":"`+MediaTypeDockerList+`","manifests":[]}`)
	f.Add("", `{"schemaVersion":2,"mediaType":"`+MediaTypeOCIManifest+`","config":{"mediaType":"x","digest":"sha256:../x","size":-1}}`)
	f.Add("text/plain", `[]`)
	f.Add(MediaTypeOCIManifest, `{"schemaVersion":2.5}`)
	f.Fuzz(func(t *testing.T, contentType, body string) {
		m, err := ParseManifest(contentType, []byte(body))
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (e.Code != CodeManifestInvalid && e.Code != CodeDigestInvalid) {
				t.Fatalf("ParseManifest error is not MANIFEST_INVALID or DIGEST_INVALID: %v", err)
			}
			return
		}
		switch m.MediaType {
		case MediaTypeOCIManifest, MediaTypeDockerManifest:
			if m.Config == nil || m.Manifests != nil {
				t.Fatalf("image manifest without config or with manifests: %+v", m)
			}
		case MediaTypeOCIIndex, MediaTypeDockerList:
			if m.Config != nil || m.Layers != nil {
				t.Fatalf("index with config or layers: %+v", m)
			}
		default:
			t.Fatalf("accepted media type %q", m.MediaType)
		}
		descs := append(append([]Descriptor{}, m.Layers...), m.Manifests...)
		if m.Config != nil {
			descs = append(descs, *m.Config)
		}
		if m.Subject != nil {
			descs = append(descs, *m.Subject)
		}
		for _, d := range descs {
			// Accepted digests are safe to use as file names.
			if d.Digest.Validate() != nil || d.Size < 0 || strings.ContainsAny(d.Digest.Encoded(), "/.") {
				t.Fatalf("accepted descriptor %+v", d)
			}
		}
	})
}

func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{
		"/v2/", "/v2/_catalog", "/v2/a/b/manifests/latest", "/v2/a/blobs/uploads/", "/v2/a/blobs/uploads/abc",
		"/v2/a/referrers/sha256:00", "/v2/../x/manifests/y", "/v2/a/%2e%2e/manifests/x", "/v2/a%2fb/tags/list",
		"/v2/a/manifests/sha256%3Aabc", "/v2//blobs/x", "/v2/blobs/blobs/blobs/uploads/x",
	} {
		f.Add(s)
	}
	root := "/data/repositories"
	f.Fuzz(func(t *testing.T, path string) {
		rt, err := parseRoute(path)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeNameInvalid {
				t.Fatalf("parseRoute(%q) error is not NAME_INVALID: %v", path, err)
			}
			return
		}
		switch rt.kind {
		case routeNone, routeBase, routeCatalog:
			if rt.name != "" {
				t.Fatalf("parseRoute(%q) = %+v", path, rt)
			}
			return
		}
		if !validName(rt.name) {
			t.Fatalf("parseRoute(%q) accepted name %q", path, rt.name)
		}
		// The repository's directory is always inside the repositories root.
		dir := filepath.Join(root, filepath.FromSlash(rt.name))
		if !strings.HasPrefix(dir, root+"/") || strings.Contains(rt.name, "..") || strings.Contains(rt.arg, "/") {
			t.Fatalf("parseRoute(%q) = %+v escapes %s", path, rt, root)
		}
		if ref, err := parseReference(rt.arg); err == nil && ref.tag != "" {
			if strings.ContainsAny(ref.tag, "/:") || strings.HasPrefix(ref.tag, ".") {
				t.Fatalf("tag %q is not a safe file name", ref.tag)
			}
		}
	})
}

func FuzzParseReference(f *testing.F) {
	for _, s := range []string{"latest", "v1.0", "sha256:2ab457a723dc6b7002e1a8a6b021db5c7800fbcd1d14ce1cd1a19698ba226bd6", "..", "a:b", ".hidden", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := parseReference(s)
		if err != nil {
			return
		}
		if (ref.tag == "") == (ref.digest == "") {
			t.Fatalf("parseReference(%q) = %+v: exactly one of tag and digest must be set", s, ref)
		}
		if ref.digest != "" && (ref.digest.Validate() != nil || len(ref.digest.Encoded()) != 64) {
			t.Fatalf("parseReference(%q) accepted digest %q", s, ref.digest)
		}
		if ref.String() != s {
			t.Fatalf("parseReference(%q).String() = %q", s, ref.String())
		}
	})
}

func FuzzTokenVerify(f *testing.F) {
	ts := &tokenSigner{key: []byte("0123456789abcdef0123456789abcdef"), ttl: time.Minute, now: time.Now}
	f.Add(ts.sign(claims{Subject: "a", ExpiresAt: time.Now().Add(time.Hour).Unix()}))
	f.Add("a.b.c")
	f.Add(jwtHeader + "..")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := ts.verify(tok)
		if err == nil && ts.sign(c) == "" {
			t.Fatal("unreachable")
		}
	})
}
