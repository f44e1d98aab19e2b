package engine

import (
	"os"
	"path/filepath"

	"github.com/moby/sys/mountinfo"
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

// runDirSource names the tmpfs the engine mounts on its run dir (a tmpfs's source is
// free text), so that an engine started again while containers ran finds the tmpfs an
// earlier one mounted and takes it away in its turn once none runs.
const runDirSource = "berth-run"

// mountRunDir mounts a tmpfs on dir if dir is not on one and holds no container's
// state. It reports whether dir is now on a tmpfs of the engine's own, mounted now or
// by an earlier engine.
func mountRunDir(dir string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, err
	}
	if st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC {
		return mountSource(dir) == runDirSource, nil
	}
	for _, name := range runDirState {
		if ents, err := os.ReadDir(filepath.Join(dir, name)); err == nil && len(ents) > 0 {
			return false, nil
		}
	}
	err := unix.Mount(runDirSource, dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0711,size=10%")
	return err == nil, err
}

// mountSource is the source of the mount on dir ("" if dir is not a mount point); of
// several stacked there, the last, which is the one in effect.
func mountSource(dir string) string {
	mounts, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(filepath.Clean(dir)))
	if err != nil || len(mounts) == 0 {
		return ""
	}
	return mounts[len(mounts)-1].Source
}

// unmountRunDir takes away the tmpfs mountRunDir made. Callers know no container runs.
func unmountRunDir(dir string) error {
	return unix.Unmount(dir, unix.MNT_DETACH)
}
