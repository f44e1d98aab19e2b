package engine

import (
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/engine/sandbox"
)

// A pod's containers share its /dev/shm (they share its IPC namespace too): a tmpfs
// the sandbox holds in its directory, of Docker's default size.
func shmDir(s sandbox.Sandbox) string { return filepath.Join(s.Dir(), "shm") }

func mountShm(s sandbox.Sandbox) error {
	dir := shmDir(s)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("shm", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=67108864"); err != nil {
		return fmt.Errorf("mount the pod's /dev/shm: %w", err)
	}
	return nil
}

func unmountShm(s sandbox.Sandbox) {
	if s.Dir() != "" {
		unix.Unmount(shmDir(s), unix.MNT_DETACH)
	}
}

// sandboxMounts are the files of the sandbox every container of the pod sees. Mounts
// the kubelet gives for the same paths (its own /etc/hosts) come after, and win.
func sandboxMounts(s sandbox.Sandbox) []specs.Mount {
	var out []specs.Mount
	for _, name := range []string{"hostname", "hosts", "resolv.conf"} {
		out = append(out, specs.Mount{Destination: "/etc/" + name, Type: "bind",
			Source: filepath.Join(s.Dir(), name), Options: []string{"rbind", "rprivate"}})
	}
	if s.IPC != sandbox.ModeNode {
		out = append(out, specs.Mount{Destination: "/dev/shm", Type: "bind", Source: shmDir(s),
			Options: []string{"rbind", "rprivate", "nosuid", "nodev", "noexec"}})
	}
	return out
}
