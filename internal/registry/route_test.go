package registry

import (
	"errors"
	"testing"
)

func TestParseRoute(t *testing.T) {
	const dg = "sha256:2ab457a723dc6b7002e1a8a6b021db5c7800fbcd1d14ce1cd1a19698ba226bd6"
	tests := []struct {
		path     string
		want     route
		wantCode string // a spec error code, or "" for success
	}{
		{"/v2", route{kind: routeBase}, ""},
		{"/v2/", route{kind: routeBase}, ""},
		{"/v2/_catalog", route{kind: routeCatalog}, ""},
		{"/v2/library/alpine/tags/list", route{kind: routeTags, name: "library/alpine"}, ""},
		{"/v2/a/manifests/latest", route{kind: routeManifest, name: "a", arg: "latest"}, ""},
		{"/v2/a/b/c/manifests/" + dg, route{kind: routeManifest, name: "a/b/c", arg: dg}, ""},
		{"/v2/a/manifests/sha256%3Aabc", route{kind: routeManifest, name: "a", arg: "sha256:abc"}, ""},
		{"/v2/a/blobs/" + dg, route{kind: routeBlob, name: "a", arg: dg}, ""},
		{"/v2/a/blobs/uploads/", route{kind: routeUploadNew, name: "a"}, ""},
		{"/v2/a/blobs/uploads", route{kind: routeUploadNew, name: "a"}, ""},
		{"/v2/a/blobs/uploads/0123", route{kind: routeUpload, name: "a", arg: "0123"}, ""},
		{"/v2/a/referrers/" + dg, route{kind: routeReferrers, name: "a", arg: dg}, ""},
		// Names that contain endpoint keywords: the last keyword wins.
		{"/v2/blobs/manifests/x", route{kind: routeManifest, name: "blobs", arg: "x"}, ""},
		{"/v2/a/manifests/b/blobs/uploads/id", route{kind: routeUpload, name: "a/manifests/b", arg: "id"}, ""},
		{"/v2/a/blobs/uploads/x/manifests/latest", route{kind: routeManifest, name: "a/blobs/uploads/x", arg: "latest"}, ""},
		{"/v2/tags/list/tags/list", route{kind: routeTags, name: "tags/list"}, ""},
		// Not endpoints.
		{"/", route{}, ""},
		{"/v2x", route{}, ""},
		{"/v3/a/manifests/x", route{}, ""},
		{"/v2/a", route{}, ""},
		{"/v2/a/manifests/", route{}, ""},
		{"/v2/a/manifests/x/y", route{}, ""},
		// Invalid names, traversal and escapes.
		{"/v2/../etc/manifests/x", route{}, "NAME_INVALID"},
		{"/v2/a/../b/manifests/x", route{}, "NAME_INVALID"},
		{"/v2/a/%2e%2e/b/manifests/x", route{}, "NAME_INVALID"},
		{"/v2/a%2fb/manifests/x", route{}, "NAME_INVALID"},
		{"/v2/a%2Fb/blobs/uploads/", route{}, "NAME_INVALID"},
		{"/v2/a/manifests/%2e%2e", route{}, "NAME_INVALID"},
		{"/v2/A/manifests/x", route{}, "NAME_INVALID"},
		{"/v2//manifests/x", route{}, "NAME_INVALID"},
		{"/v2/a//b/manifests/x", route{}, "NAME_INVALID"},
		{"/v2/_x/manifests/x", route{}, "NAME_INVALID"},
		{"/v2/a./manifests/x", route{}, "NAME_INVALID"},
		{"/v2/-a/tags/list", route{}, "NAME_INVALID"},
	}
	for _, tt := range tests {
		got, err := parseRoute(tt.path)
		var code string
		var e *Error
		if errors.As(err, &e) {
			code = e.Code.Name
		} else if err != nil {
			t.Errorf("parseRoute(%q): non-spec error %v", tt.path, err)
		}
		if code != tt.wantCode || got != tt.want {
			t.Errorf("parseRoute(%q) = %+v, %q; want %+v, %q", tt.path, got, code, tt.want, tt.wantCode)
		}
	}
}

func TestNamesAndTags(t *testing.T) {
	for name, want := range map[string]bool{
		"a": true, "library/alpine": true, "a.b_c__d-e---f/g": true, "0/1/2": true,
		"": false, "A": false, "a/": false, "/a": false, "a..b": false, "a/../b": false, "..": false,
		"a___b": false, "a_": false, "a/_b": false, "a b": false, "a%2fb": false,
		string(make([]byte, 300)): false,
	} {
		if got := validName(name); got != want {
			t.Errorf("validName(%q) = %v, want %v", name, got, want)
		}
	}
	for tag, want := range map[string]bool{
		"latest": true, "v1.2.3-rc_1": true, "_x": true, "A": true,
		"": false, ".x": false, "-x": false, "..": false, "a/b": false, "a:b": false,
		"x" + string(make([]byte, 128)): false,
	} {
		if got := validTag(tag); got != want {
			t.Errorf("validTag(%q) = %v, want %v", tag, got, want)
		}
	}
}

func TestParseDigest(t *testing.T) {
	for s, ok := range map[string]bool{
		"sha256:2ab457a723dc6b7002e1a8a6b021db5c7800fbcd1d14ce1cd1a19698ba226bd6": true,
		"sha256:2AB457A723DC6B7002E1A8A6B021DB5C7800FBCD1D14CE1CD1A19698BA226BD6": false,
		"sha256:2ab457":                        false,
		"sha256:../../x":                       false,
		"md5:d41d8cd98f00b204e9800998ecf8427e": false,
		"sha512:" + string(make([]byte, 128)):  false,
		"2ab457a723dc6b7002e1a8a6b021db5c7800fbcd1d14ce1cd1a19698ba226bd6": false,
		"": false,
	} {
		_, err := parseDigest(s)
		if (err == nil) != ok {
			t.Errorf("parseDigest(%q): err = %v, want ok=%v", s, err, ok)
		}
	}
}
