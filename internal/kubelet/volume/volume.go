// Package volume sets up a pod's volumes on the node, each kind behind a small plugin, so that
// persistent volumes can slot in as one more plugin later.
package volume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Plugin mounts one kind of volume source.
type Plugin interface {
	// Kind names the plugin's directory under a pod's volumes, upstream's "kubernetes.io~empty-dir".
	Kind() string
	// Handles reports whether the plugin sets up this volume.
	Handles(v *corev1.Volume) bool
	// SetUp makes the volume ready and returns the host path containers bind-mount: dir (its
	// directory under the pod, which SetUp creates when it needs it) or a path of its own
	// (hostPath). It runs on every sync of the pod, so it must be idempotent; sources that
	// change (configMaps, secrets) are refreshed by it.
	SetUp(ctx context.Context, pod *corev1.Pod, v *corev1.Volume, dir string) (string, error)
}

// TearDowner is a Plugin that must undo more than removing the volume's directory.
type TearDowner interface {
	TearDown(dir string) error
}

// Set is the node's volume plugins, and where pods' volumes live (ROOT/UID/volumes/KIND/NAME).
type Set struct {
	root    string
	plugins []Plugin
	log     *slog.Logger
}

// NewSet returns the built-in plugins: emptyDir, hostPath, configMap, secret, downwardAPI and
// projected. hostIP is what downwardAPI files report as status.hostIP.
func NewSet(client kubernetes.Interface, root string, log *slog.Logger) *Set {
	src := &sources{client: client}
	return &Set{root: root, log: log, plugins: []Plugin{
		emptyDir{}, hostPath{},
		&configMap{src}, &secret{src}, &downwardAPI{}, &projected{src},
	}}
}

// SetUp sets up every volume of the pod and returns each one's host path by volume name.
func (s *Set) SetUp(ctx context.Context, pod *corev1.Pod) (map[string]string, error) {
	out := make(map[string]string, len(pod.Spec.Volumes))
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		p := s.plugin(v)
		if p == nil {
			return nil, fmt.Errorf("volume %q: this kind of volume is not supported yet", v.Name)
		}
		dir := filepath.Join(s.root, string(pod.UID), "volumes", p.Kind(), v.Name)
		host, err := p.SetUp(ctx, pod, v, dir)
		if err != nil {
			return nil, fmt.Errorf("MountVolume.SetUp failed for volume %q: %w", v.Name, err)
		}
		out[v.Name] = host
	}
	return out, nil
}

func (s *Set) plugin(v *corev1.Volume) Plugin {
	for _, p := range s.plugins {
		if p.Handles(v) {
			return p
		}
	}
	return nil
}

// TearDown undoes the pod's volumes (unmounting memory-backed emptyDirs) and removes their
// directories. A mount that will not go leaves everything in place and is an error, so a
// later RemoveAll can never reach through it.
func (s *Set) TearDown(uid types.UID) error {
	base := filepath.Join(s.root, string(uid), "volumes")
	kinds, err := os.ReadDir(base)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, kind := range kinds {
		vols, _ := os.ReadDir(filepath.Join(base, kind.Name()))
		for _, v := range vols {
			dir := filepath.Join(base, kind.Name(), v.Name())
			for _, p := range s.plugins {
				if td, ok := p.(TearDowner); ok && p.Kind() == kind.Name() {
					if err := td.TearDown(dir); err != nil {
						return fmt.Errorf("tearing down volume %s: %w", dir, err)
					}
				}
			}
			if mounted(dir) {
				return fmt.Errorf("tearing down volume %s: still mounted", dir)
			}
		}
	}
	return os.RemoveAll(base)
}
