package snapshot

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/sys/mountinfo"
	digest "github.com/opencontainers/go-digest"
)

// A mounted container layer is gone from active/ when Remove returns, and once the
// background work is done it is neither mounted nor on disk; a store opened over what a
// crash left (a layer renamed aside, still mounted) unmounts and deletes it.
func TestRemoveUnmountsAndDeletesAMountedLayer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts overlayfs")
	}
	root := t.TempDir()
	defer unmountAll(root)
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	chain := digest.FromString("base")
	if err := s.Unpack(chain, bytes.NewReader(mkTar(t, entry{name: "f", typ: '0', body: "hi"}))); err != nil {
		t.Fatal(err)
	}
	mounted := func(key string) *Active {
		t.Helper()
		a, err := s.Prepare(key, []digest.Digest{chain})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Mount(); err != nil {
			t.Fatal(err)
		}
		if data, err := os.ReadFile(filepath.Join(a.Merged, "f")); err != nil || string(data) != "hi" {
			t.Fatalf("the mounted layer shows f = %q, %v", data, err)
		}
		return a
	}

	a := mounted("one")
	os.WriteFile(filepath.Join(a.Merged, "written"), []byte("x"), 0o644)
	if err := s.Remove("one"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.Dir); !os.IsNotExist(err) {
		t.Fatalf("active/one is still there after Remove: %v", err)
	}
	s.Wait()
	if m := mountsUnder(root); len(m) > 0 {
		t.Fatalf("mounts left after Remove: %v", m)
	}
	if left, _ := os.ReadDir(filepath.Join(root, "tmp")); len(left) > 0 {
		t.Fatalf("tmp/ still holds %d entries", len(left))
	}

	// A crash between the rename and the background unmount.
	b := mounted("two")
	aside := filepath.Join(root, "tmp", "removed-crash")
	if err := os.MkdirAll(aside, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(b.Dir, filepath.Join(aside, "layer")); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	s2.Wait()
	if m := mountsUnder(root); len(m) > 0 {
		t.Fatalf("mounts left after reopening: %v", m)
	}
	if _, err := os.Stat(aside); !os.IsNotExist(err) {
		t.Fatalf("the crashed removal is still there: %v", err)
	}
	if data, err := os.ReadFile(filepath.Join(s.layerDir(chain), "f")); err != nil || string(data) != "hi" {
		t.Fatalf("the image layer under it was touched: %q, %v", data, err)
	}
}

// mountsUnder lists the mount points below dir.
func mountsUnder(dir string) []string {
	mounts, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(dir + "/"))
	var out []string
	for _, m := range mounts {
		out = append(out, m.Mountpoint)
	}
	return out
}

func unmountAll(dir string) {
	for _, m := range mountsUnder(dir) {
		(&Active{Merged: m}).Unmount()
	}
}
