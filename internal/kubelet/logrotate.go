package kubelet

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const logRotatePeriod = 10 * time.Second

// runLogRotation keeps each running container's log under ContainerLogMaxSize, keeping at most
// ContainerLogMaxFiles files, as upstream's container log manager does: the runtime writes
// forever to the path it was given, so the kubelet renames the file and asks the runtime
// (ReopenContainerLog) to start a new one.
func (k *Kubelet) runLogRotation(ctx context.Context) error {
	tick := time.NewTicker(logRotatePeriod)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		k.rotateLogs(ctx)
	}
}

func (k *Kubelet) rotateLogs(ctx context.Context) {
	cs, err := k.runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}})
	if err != nil {
		return
	}
	for _, c := range cs.Containers {
		if c.Labels[labelPodUID] == "" {
			continue
		}
		st, err := k.runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.Id})
		if err != nil || st.Status.LogPath == "" {
			continue
		}
		path := st.Status.LogPath
		fi, err := os.Stat(path)
		if err != nil || fi.Size() < k.cfg.ContainerLogMaxSize {
			continue
		}
		rotated := path + "." + time.Now().UTC().Format("20060102-150405.000000000")
		if err := os.Rename(path, rotated); err != nil {
			k.log.Warn("rotating container log", "id", c.Id, "err", err)
			continue
		}
		if _, err := k.runtime.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: c.Id}); err != nil {
			os.Rename(rotated, path) // the runtime still writes the old file: keep its name
			k.log.Warn("reopening container log", "id", c.Id, "err", err)
			continue
		}
		k.log.Debug("container log rotated", "id", c.Id, "size", fi.Size())
		old, _ := filepath.Glob(path + ".*")
		sort.Strings(old) // timestamps sort in time order
		for len(old) > k.cfg.ContainerLogMaxFiles-1 {
			if !strings.HasSuffix(old[0], ".tmp") {
				os.Remove(old[0])
			}
			old = old[1:]
		}
	}
}
