package engine

import (
	"os"
	"path/filepath"

	"github.com/berth-project/berth/internal/engine/container"
)

// LayerUsage is what a container's writable layer takes on disk.
type LayerUsage struct {
	Mountpoint    string // the upper directory
	Bytes, Inodes uint64
}

// WritableLayer measures a container's writable layer.
func (e *Engine) WritableLayer(c *container.Container) LayerUsage {
	act, err := e.activeOf(c)
	if err != nil {
		return LayerUsage{}
	}
	u := LayerUsage{Mountpoint: act.Upper}
	filepath.Walk(act.Upper, func(_ string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		u.Inodes++
		if fi.Mode().IsRegular() {
			u.Bytes += uint64(fi.Size())
		}
		return nil
	})
	return u
}

// SandboxNetwork returns the bytes a pod sandbox received and sent on the pod network.
func (e *Engine) SandboxNetwork(id string) (rx, tx uint64) {
	if pn := e.podNetwork(); pn != nil {
		return pn.Counters(id)
	}
	return 0, 0
}

// ImageFsUsage is what the images take: their directory and bytes (the layers' sizes).
func (e *Engine) ImageFsUsage() (dir string, bytes uint64) {
	for _, img := range e.images.List() {
		bytes += uint64(e.images.Size(img))
	}
	return filepath.Join(e.cfg.DataDir, "overlay"), bytes
}
