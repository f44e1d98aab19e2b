package registry

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestTraversalWritesNothing: names and references that try to leave the data directory are
// NAME_INVALID (or unknown) and no request writes a file, anywhere.
func TestTraversalWritesNothing(t *testing.T) {
	outside := t.TempDir()
	r := newRegistry(t, func(c *Config) { c.DataDir = filepath.Join(outside, "data") })
	r.pushImage("a", "v1", 1)
	body := []byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":{"mediaType":"x","digest":"` + digest.FromString("x").String() + `","size":1},"layers":[]}`)
	d := digest.FromString("blob").String()
	paths := []string{
		"/v2/../../etc/manifests/latest",
		"/v2/a/../../../x/manifests/latest",
		"/v2/%2e%2e/%2e%2e/x/manifests/latest",
		"/v2/a/%2E%2E/%2E%2E/x/blobs/uploads/",
		"/v2/a%2f..%2f..%2fx/manifests/latest",
		"/v2/a%2F..%2F..%2Fx/tags/list",
		"/v2/a/manifests/..%2f..%2fx",
		"/v2/a/blobs/uploads/..%2f..%2f..%2fx",
		"/v2/a/blobs/uploads/../../x",
		"/v2/./a/manifests/latest",
		"/v2/a\\..\\x/manifests/latest",
		"/v2/a/manifests/../../../../tmp/x",
	}
	before := snapshot(t, outside)
	for _, p := range paths {
		for _, m := range []string{"PUT", "POST", "PATCH", "DELETE", "GET"} {
			res := r.do(m, p+"?digest="+d, strings.NewReader(string(body)), "Content-Type", MediaTypeOCIManifest)
			if res.Status < 400 {
				t.Errorf("%s %s = %d, want an error", m, p, res.Status)
			}
			if strings.Contains(p, "%") && res.errorCode() != "NAME_INVALID" {
				t.Errorf("%s %s: code %q, want NAME_INVALID", m, p, res.errorCode())
			}
		}
	}
	if after := snapshot(t, outside); !slices.Equal(before, after) {
		t.Errorf("requests changed the disk:\nbefore %v\nafter  %v", before, after)
	}
}

// snapshot lists every path under dir with its size.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Name() != "lock" {
			out = append(out, fmt.Sprintf("%s %v %d", p, fi.Mode(), fi.Size()))
		}
		return nil
	})
	return out
}
