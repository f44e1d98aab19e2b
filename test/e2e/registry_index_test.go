package e2e

import (
	"bytes"
	"io"
	"net/http"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestRegistryPullIndexPicksPlatform: a multi-platform index (pushed with go-containerregistry)
// pulls as the host's platform: the image runs, its architecture is the host's, and the repo
// digest is the index's.
func TestRegistryPullIndexPicksPlatform(t *testing.T) {
	e := needEngine(t)
	reg := newTestRegistry(t, e)
	reg.login(t, e)
	data, err := busyboxTar()
	if err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	host, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := host.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", goruntime.GOARCH
	cf.Config.Cmd = []string{"/bin/sh"}
	if host, err = mutate.ConfigFile(host, cf); err != nil {
		t.Fatal(err)
	}
	other, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	otherArch := "arm64"
	if goruntime.GOARCH == "arm64" {
		otherArch = "amd64"
	}
	ocf, _ := other.ConfigFile()
	ocf = ocf.DeepCopy()
	ocf.OS, ocf.Architecture = "linux", otherArch
	if other, err = mutate.ConfigFile(other, ocf); err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: otherArch}}},
		mutate.IndexAddendum{Add: host, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: goruntime.GOARCH}}},
	)
	ref := reg.addr + "/" + uniq("multi") + ":1"
	e.rmiOnCleanup(t, ref)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	tr := reg.client().Transport.(*http.Transport)
	if err := remote.WriteIndex(r, idx, remote.WithAuth(&authn.Basic{Username: reg.user, Password: reg.pass}), remote.WithTransport(tr)); err != nil {
		t.Fatalf("pushing the index: %v", err)
	}
	idxDigest, _ := idx.Digest()
	hostID, _ := host.ConfigName()

	e.ok(t, "pull", ref)
	mustEqual(t, "the image pulled is the host's", e.inspect(t, "{{.Id}}", ref), hostID.String())
	mustEqual(t, "its architecture", e.inspect(t, "{{.Architecture}}", ref), goruntime.GOARCH)
	if dig := e.inspect(t, "{{index .RepoDigests 0}}", ref); !strings.HasSuffix(dig, "@"+idxDigest.String()) {
		t.Fatalf("RepoDigests[0] = %s, want the index digest %s", dig, idxDigest)
	}
	mustContain(t, "it runs", e.ok(t, "run", "--rm", ref, "cat", "/www/index.html"), "hello from busybox")
}
