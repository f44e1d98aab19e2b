package volume

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func visible(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name()[0] == '.' {
			continue
		}
		top, err := filepath.EvalSymlinks(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(top, p)
			out[filepath.Join(e.Name(), rel)] = string(b)
			return nil
		})
	}
	return out
}

func TestWriteAtomicSwapsContentsThroughDataLink(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	if err := writeAtomic(dir, map[string]file{"a": {[]byte("1"), 0o644}, "sub/b": {[]byte("2"), 0o400}}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"a": "1", "sub/b": "2"}, visible(t, dir)); diff != "" {
		t.Errorf("first write (-want +got):\n%s", diff)
	}
	if target, _ := os.Readlink(filepath.Join(dir, "a")); target != "..data/a" {
		t.Errorf("a links to %q", target)
	}
	fi, _ := os.Stat(filepath.Join(dir, "sub", "b"))
	if fi.Mode().Perm() != 0o400 {
		t.Errorf("mode %v", fi.Mode())
	}
	first, _ := os.Readlink(filepath.Join(dir, "..data"))
	// The same content changes nothing.
	if err := writeAtomic(dir, map[string]file{"a": {[]byte("1"), 0o644}, "sub/b": {[]byte("2"), 0o400}}); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.Readlink(filepath.Join(dir, "..data")); again != first {
		t.Errorf("unchanged content was rewritten: %s -> %s", first, again)
	}
	// An update replaces the data directory, adds and removes names.
	if err := writeAtomic(dir, map[string]file{"a": {[]byte("changed"), 0o644}, "c": {[]byte("3"), 0o644}}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"a": "changed", "c": "3"}, visible(t, dir)); diff != "" {
		t.Errorf("after update (-want +got):\n%s", diff)
	}
	var hidden []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name()[0] == '.' {
			hidden = append(hidden, e.Name())
		}
	}
	sort.Strings(hidden)
	if len(hidden) != 2 || hidden[1] != "..data" {
		t.Errorf("old data directories left behind: %v", hidden)
	}
}

func TestWriteAtomicRefusesPathsOutsideTheVolume(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"../escape", "/abs", "..data"} {
		if err := writeAtomic(dir, map[string]file{p: {[]byte("x"), 0o644}}); err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
}
