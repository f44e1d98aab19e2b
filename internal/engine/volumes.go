package engine

import (
	"fmt"

	"github.com/moby/moby/api/types/events"

	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/volume"
)

// VolumeCreate makes a named volume (or returns the existing one).
func (e *Engine) VolumeCreate(name string, labels, opts map[string]string) (*volume.Volume, error) {
	v, err := e.vols.Create(name, labels, opts)
	if err == nil {
		e.publish(events.VolumeEventType, events.ActionCreate, v.Name, map[string]string{"driver": "local"})
	}
	return v, err
}

// Volume finds a volume.
func (e *Engine) Volume(name string) (*volume.Volume, error) { return e.vols.Get(name) }

// Volumes lists volumes.
func (e *Engine) Volumes() ([]*volume.Volume, error) { return e.vols.List() }

// VolumeUsers counts the containers that mount a volume.
func (e *Engine) VolumeUsers(name string) []string {
	var ids []string
	for _, c := range e.ctrs.List() {
		for _, m := range c.Mounts {
			if m.Type == "volume" && m.Name == name {
				ids = append(ids, c.ID)
				break
			}
		}
	}
	return ids
}

func (e *Engine) volumeInUse(name string) bool { return len(e.VolumeUsers(name)) > 0 }

// VolumeRemove deletes a volume that no container uses.
func (e *Engine) VolumeRemove(name string, force bool) error {
	if _, err := e.vols.Get(name); err != nil {
		if force {
			return nil
		}
		return err
	}
	if users := e.VolumeUsers(name); len(users) > 0 {
		return errdefs.Conflict(fmt.Sprintf("remove %s: volume is in use - [%s]", name, joinIDs(users)))
	}
	if err := e.vols.Remove(name); err != nil {
		return err
	}
	e.publish(events.VolumeEventType, events.ActionDestroy, name, map[string]string{"driver": "local"})
	return nil
}

func joinIDs(ids []string) string {
	s := ""
	for i, id := range ids {
		if i > 0 {
			s += ", "
		}
		s += id
	}
	return s
}

// VolumePrune removes unused volumes; by default only anonymous ones, as Docker 23+ does.
func (e *Engine) VolumePrune(all bool, match func(*volume.Volume) bool) ([]string, uint64, error) {
	vs, err := e.vols.List()
	if err != nil {
		return nil, 0, err
	}
	var deleted []string
	var space uint64
	for _, v := range vs {
		if (!all && !v.Anonymous) || e.volumeInUse(v.Name) || (match != nil && !match(v)) {
			continue
		}
		size := v.Size()
		if e.vols.Remove(v.Name) == nil {
			deleted = append(deleted, v.Name)
			space += uint64(size)
		}
	}
	return deleted, space, nil
}
