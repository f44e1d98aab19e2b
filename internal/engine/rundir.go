package engine

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The run dir holds state that lives only as long as the containers do: the shims'
// bundles and sockets, libcontainer's state, the network namespaces. Every container
// start and exit writes, renames and deletes files there, which on a disk filesystem
// costs journal and writeback work (and ext4 skips recently deleted inodes when it
// allocates new ones, a scan that grows with the churn). /run is a tmpfs on most
// systems; where the run dir is on a disk instead, the engine mounts a tmpfs of its own
// on it, as long as nothing a running container needs is there already.

// runDirState names the run dir's entries that belong to running containers.
var runDirState = []string{"containers", "s", "runc", "network"}

// mountRunDir mounts a tmpfs on dir if dir is not on one and holds no container's
// state. It reports whether it mounted one.
func mountRunDir(dir string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, err
	}
	if st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC {
		return false, nil
	}
	for _, name := range runDirState {
		if ents, err := os.ReadDir(filepath.Join(dir, name)); err == nil && len(ents) > 0 {
			return false, nil
		}
	}
	err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0711,size=10%")
	return err == nil, err
}

// unmountRunDir takes away the tmpfs mountRunDir made. Callers know no container runs.
func unmountRunDir(dir string) error {
	return unix.Unmount(dir, unix.MNT_DETACH)
}
