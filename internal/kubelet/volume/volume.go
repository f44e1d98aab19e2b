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
	"sync"

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

// ReadOnly is a Plugin whose volumes containers may only read: the atomically written ones
// (configMap, secret, downwardAPI, projected) and claims marked readOnly.
type ReadOnly interface {
	ReadOnly(v *corev1.Volume) bool
}

// Mount is a volume set up on the node: the host path containers bind, and whether they must
// bind it read-only whatever their volumeMount says.
type Mount struct {
	Path     string
	ReadOnly bool
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

	mu   sync.Mutex
	good map[types.UID]map[string]string // pod -> volume -> the path of its last good set-up
}

// NewSet returns the built-in plugins: emptyDir, hostPath, configMap, secret, downwardAPI,
// projected and persistentVolumeClaim (of hostPath and local PVs).
func NewSet(client kubernetes.Interface, root string, log *slog.Logger) *Set {
	src := &sources{client: client}
	return &Set{root: root, log: log, good: map[types.UID]map[string]string{}, plugins: []Plugin{
		emptyDir{}, hostPath{},
		&configMap{src}, &secret{src}, &downwardAPI{}, &projected{src}, &claim{client},
	}}
}

// SetUp sets up every volume of the pod and returns each one's mount by volume name. A
// volume that fails is an error, but the others are still set up and every path is returned:
// a running pod whose configMap went away keeps the files it had and its containers restart.
func (s *Set) SetUp(ctx context.Context, pod *corev1.Pod) (map[string]Mount, error) {
	out := make(map[string]Mount, len(pod.Spec.Volumes))
	var errs []error
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		p := s.plugin(v)
		if p == nil {
			errs = append(errs, fmt.Errorf("volume %q: this kind of volume is not supported yet", v.Name))
			continue
		}
		dir := filepath.Join(s.root, string(pod.UID), "volumes", p.Kind(), v.Name)
		host, err := p.SetUp(ctx, pod, v, dir)
		if err != nil {
			errs = append(errs, fmt.Errorf("MountVolume.SetUp failed for volume %q: %w", v.Name, err))
			host = s.lastGood(pod.UID, v.Name, dir)
		} else {
			s.remember(pod.UID, v.Name, host)
		}
		ro, _ := p.(ReadOnly)
		out[v.Name] = Mount{Path: host, ReadOnly: ro != nil && ro.ReadOnly(v)}
	}
	return out, errors.Join(errs...)
}

func (s *Set) plugin(v *corev1.Volume) Plugin {
	for _, p := range s.plugins {
		if p.Handles(v) {
			return p
		}
	}
	return nil
}

// lastGood is where the volume was set up the last time that worked (a claim's PV,
// a configMap's files), or dir if it never did.
func (s *Set) lastGood(uid types.UID, name, dir string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.good[uid][name]; ok {
		return p
	}
	return dir
}

func (s *Set) remember(uid types.UID, name, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.good[uid] == nil {
		s.good[uid] = map[string]string{}
	}
	s.good[uid][name] = path
}

// TearDown undoes the pod's volumes (unmounting memory-backed emptyDirs) and removes their
// directories. A mount that will not go leaves everything in place and is an error, so a
// later RemoveAll can never reach through it.
func (s *Set) TearDown(uid types.UID) error {
	s.mu.Lock()
	delete(s.good, uid)
	s.mu.Unlock()
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
