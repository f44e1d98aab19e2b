package engine

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/sys/mountinfo"
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
	// An engine started again finds its own tmpfs (and takes it away when it stops).
	if again, err := mountRunDir(fresh); !again || err != nil {
		t.Fatalf("a second mountRunDir on the engine's tmpfs = %v, %v; want it found as the engine's", again, err)
	}
	if mounts, _ := mountinfo.GetMounts(mountinfo.SingleEntryFilter(fresh)); len(mounts) != 1 {
		t.Fatalf("%d mounts on the run dir after a second mountRunDir, want 1", len(mounts))
	}
	// A tmpfs that is not the engine's is left alone, and not taken for its own.
	other := filepath.Join(base, "other")
	os.Mkdir(other, 0o711)
	if err := unix.Mount("tmpfs", other, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(other, unix.MNT_DETACH) })
	if ours, err := mountRunDir(other); ours || err != nil {
		t.Fatalf("mountRunDir(someone else's tmpfs) = %v, %v; want it left alone", ours, err)
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
