package volume

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// emptyDir is a directory that lives as long as the pod; medium Memory makes it a tmpfs.
type emptyDir struct{}

func (emptyDir) Kind() string                  { return "kubernetes.io~empty-dir" }
func (emptyDir) Handles(v *corev1.Volume) bool { return v.EmptyDir != nil }

func (emptyDir) SetUp(_ context.Context, _ *corev1.Pod, v *corev1.Volume, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return "", err
	}
	os.Chmod(dir, 0o777) // writable by whichever user the containers run as, as upstream makes it
	if v.EmptyDir.Medium != corev1.StorageMediumMemory || mounted(dir) {
		return dir, nil
	}
	opts := "mode=0777"
	if l := v.EmptyDir.SizeLimit; l != nil && !l.IsZero() {
		opts += fmt.Sprintf(",size=%d", l.Value())
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return "", fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return dir, nil
}

func (emptyDir) TearDown(dir string) error {
	if !mounted(dir) {
		return nil
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}

// mounted reports whether dir is a mount point: it sits on another device than its parent.
func mounted(dir string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(dir, &st) != nil || unix.Lstat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// hostPath exposes a path of the node, checked (or created) according to its type.
type hostPath struct{}

func (hostPath) Kind() string                  { return "kubernetes.io~host-path" }
func (hostPath) Handles(v *corev1.Volume) bool { return v.HostPath != nil }

func (hostPath) SetUp(_ context.Context, _ *corev1.Pod, v *corev1.Volume, _ string) (string, error) {
	p := v.HostPath.Path
	t := corev1.HostPathUnset
	if v.HostPath.Type != nil {
		t = *v.HostPath.Type
	}
	fi, err := os.Stat(p)
	exists := err == nil
	switch t {
	case corev1.HostPathUnset:
		return p, nil
	case corev1.HostPathDirectoryOrCreate:
		if !exists {
			return p, os.MkdirAll(p, 0o755)
		}
		if !fi.IsDir() {
			return "", fmt.Errorf("hostPath type check failed: %s is not a directory", p)
		}
	case corev1.HostPathFileOrCreate:
		if !exists {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return "", err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY, 0o644)
			if err != nil {
				return "", err
			}
			return p, f.Close()
		}
		if fi.IsDir() {
			return "", fmt.Errorf("hostPath type check failed: %s is not a file", p)
		}
	default:
		if !exists {
			return "", fmt.Errorf("hostPath type check failed: %s does not exist", p)
		}
		if !hostPathIs(t, fi) {
			return "", fmt.Errorf("hostPath type check failed: %s is not a %s", p, t)
		}
	}
	return p, nil
}

func hostPathIs(t corev1.HostPathType, fi os.FileInfo) bool {
	m := fi.Mode()
	switch t {
	case corev1.HostPathDirectory:
		return fi.IsDir()
	case corev1.HostPathFile:
		return m.IsRegular()
	case corev1.HostPathSocket:
		return m&os.ModeSocket != 0
	case corev1.HostPathCharDev:
		return m&os.ModeCharDevice != 0
	case corev1.HostPathBlockDev:
		return m&os.ModeDevice != 0 && m&os.ModeCharDevice == 0
	}
	return false
}
