package engine

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRunDirGoesOnATmpfsWhenItHoldsNoContainersState(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	isTmpfs := func(dir string) bool {
		var st unix.Statfs_t
		return unix.Statfs(dir, &st) == nil && st.Type == unix.TMPFS_MAGIC
	}
	base := t.TempDir()
	if isTmpfs(base) {
		t.Skip("the temp dir is a tmpfs already")
	}

	fresh := filepath.Join(base, "fresh")
	os.Mkdir(fresh, 0o711)
	mounted, err := mountRunDir(fresh)
	if err != nil || !mounted {
		t.Fatalf("mountRunDir(empty dir) = %v, %v; want a tmpfs", mounted, err)
	}
	t.Cleanup(func() { unmountRunDir(fresh) })
	if !isTmpfs(fresh) {
		t.Fatal("the run dir is not a tmpfs after mountRunDir")
	}
	if again, err := mountRunDir(fresh); again || err != nil {
		t.Fatalf("a second mountRunDir on the tmpfs = %v, %v; want nothing done", again, err)
	}

	// A run dir on disk with a container's bundle in it (an older engine's) stays as it is:
	// a tmpfs on top would hide the running shims' sockets.
	busy := filepath.Join(base, "busy")
	os.MkdirAll(filepath.Join(busy, "containers", "abc"), 0o700)
	if mounted, err := mountRunDir(busy); mounted || err != nil {
		t.Fatalf("mountRunDir(dir with a bundle) = %v, %v; want it left alone", mounted, err)
	}
	if _, err := os.Stat(filepath.Join(busy, "containers", "abc")); err != nil {
		t.Fatalf("the bundle is hidden: %v", err)
	}

	if err := unmountRunDir(fresh); err != nil {
		t.Fatal(err)
	}
	if isTmpfs(fresh) {
		t.Fatal("still a tmpfs after unmountRunDir")
	}
}
