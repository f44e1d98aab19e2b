package cri

import (
	"context"
	"encoding/json"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/runtime"
)

// containerState is the CRI's view of a container's state. A container whose start
// failed has exited, as containerd reports it, so the kubelet makes a new attempt.
func containerState(c *container.Container) runtimeapi.ContainerState {
	switch c.State.Status {
	case container.Created:
		if startFailed(c) {
			return runtimeapi.ContainerState_CONTAINER_EXITED
		}
		return runtimeapi.ContainerState_CONTAINER_CREATED
	case container.Running, container.Paused, container.Restarting:
		return runtimeapi.ContainerState_CONTAINER_RUNNING
	case container.Exited, container.Dead:
		return runtimeapi.ContainerState_CONTAINER_EXITED
	}
	return runtimeapi.ContainerState_CONTAINER_UNKNOWN
}

// startFailed reports a container that was never started because its start failed.
func startFailed(c *container.Container) bool {
	return c.State.Status == container.Created && c.State.Error != "" && c.State.StartedAt.IsZero()
}

func containerMetadata(c *container.Container) *runtimeapi.ContainerMetadata {
	return &runtimeapi.ContainerMetadata{Name: c.Pod.Name, Attempt: c.Pod.Attempt}
}

// imageRef is how the kubelet pins the image: a registry digest, else the image id.
func (s *Server) imageRef(c *container.Container) string {
	img, err := s.eng.Images().Get(c.Image)
	if err == nil {
		if d := s.eng.Images().RepoDigestsOf(img.ID); len(d) > 0 {
			return d[0]
		}
	}
	return c.Image
}

func (s *runtimeService) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	c, err := s.podContainer(req.ContainerId)
	if err != nil {
		return nil, err
	}
	st := &runtimeapi.ContainerStatus{
		Id: c.ID, Metadata: containerMetadata(c), State: containerState(c), CreatedAt: c.Created.UnixNano(),
		Image: &runtimeapi.ImageSpec{Image: c.Pod.Image}, ImageRef: s.imageRef(c), ImageId: c.Image,
		Labels: c.Pod.Labels, Annotations: c.Pod.Annotations, LogPath: c.Pod.LogPath,
		Resources: &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{
			CpuShares: c.HostConfig.CPUShares, CpuQuota: c.HostConfig.CPUQuota, CpuPeriod: c.HostConfig.CPUPeriod,
			MemoryLimitInBytes: c.HostConfig.Memory, OomScoreAdj: int64(c.HostConfig.OomScoreAdj),
			CpusetCpus: c.HostConfig.CpusetCpus, CpusetMems: c.HostConfig.CpusetMems,
		}},
	}
	if !c.State.StartedAt.IsZero() {
		st.StartedAt = c.State.StartedAt.UnixNano()
	}
	if st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
		st.FinishedAt, st.ExitCode = c.State.FinishedAt.UnixNano(), int32(c.State.ExitCode)
		switch {
		case startFailed(c):
			st.Reason, st.FinishedAt = "StartError", c.Created.UnixNano()
		case c.State.OOMKilled:
			st.Reason = "OOMKilled"
		case c.State.ExitCode == 0 && c.State.Error == "":
			st.Reason = "Completed"
		default:
			st.Reason = "Error"
		}
		st.Message = c.State.Error
	}
	for _, m := range c.Mounts {
		if m.Type != "bind" {
			continue
		}
		cm := &runtimeapi.Mount{ContainerPath: m.Destination, HostPath: m.Source, Readonly: !m.RW}
		switch propagationOf(m.Mode) {
		case "rslave", "slave":
			cm.Propagation = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
		case "rshared", "shared":
			cm.Propagation = runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
		}
		st.Mounts = append(st.Mounts, cm)
	}
	resp := &runtimeapi.ContainerStatusResponse{Status: st}
	if req.Verbose {
		info, _ := json.Marshal(map[string]any{
			"pid": c.State.Pid, "sandboxID": c.Pod.Sandbox, "name": c.Name, "image": c.Config.Image,
			"command": append([]string{c.Path}, c.Args...), "user": c.Config.User, "privileged": c.HostConfig.Privileged,
		})
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

func propagationOf(mode string) string {
	for _, o := range strings.Split(mode, ",") {
		switch o {
		case "private", "rprivate", "shared", "rshared", "slave", "rslave":
			return o
		}
	}
	return ""
}

func (s *runtimeService) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	return &runtimeapi.ListContainersResponse{Containers: s.listContainers(req.Filter)}, nil
}

func (s *runtimeService) StreamContainers(req *runtimeapi.StreamContainersRequest, stream runtimeapi.RuntimeService_StreamContainersServer) error {
	return stream.Send(&runtimeapi.StreamContainersResponse{Containers: s.listContainers(req.Filter)})
}

func (s *runtimeService) listContainers(f *runtimeapi.ContainerFilter) []*runtimeapi.Container {
	out := []*runtimeapi.Container{}
	for _, c := range s.eng.List() {
		if c.Pod == nil {
			continue
		}
		if f != nil {
			if f.Id != "" && !strings.HasPrefix(c.ID, f.Id) ||
				f.PodSandboxId != "" && !strings.HasPrefix(c.Pod.Sandbox, f.PodSandboxId) ||
				f.State != nil && f.State.State != containerState(c) ||
				!labelsMatch(c.Pod.Labels, f.LabelSelector) {
				continue
			}
		}
		out = append(out, &runtimeapi.Container{
			Id: c.ID, PodSandboxId: c.Pod.Sandbox, Metadata: containerMetadata(c),
			Image: &runtimeapi.ImageSpec{Image: c.Pod.Image}, ImageRef: s.imageRef(c), ImageId: c.Image,
			State: containerState(c), CreatedAt: c.Created.UnixNano(), Labels: c.Pod.Labels, Annotations: c.Pod.Annotations,
		})
	}
	return out
}

// UpdateContainerResources sets the container's CPU and memory limits, now and for
// its next starts.
func (s *runtimeService) UpdateContainerResources(ctx context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	if _, err := s.podContainer(req.ContainerId); err != nil {
		return nil, err
	}
	l := req.Linux
	if l == nil {
		return &runtimeapi.UpdateContainerResourcesResponse{}, nil
	}
	r := runtime.Resources{CPUQuota: l.CpuQuota, CPUPeriod: uint64(l.CpuPeriod), Memory: l.MemoryLimitInBytes,
		CpusetCpus: l.CpusetCpus, CpusetMems: l.CpusetMems}
	if l.CpuShares > 0 {
		r.CPUShares = uint64(l.CpuShares)
	}
	if err := s.eng.UpdateResources(ctx, req.ContainerId, r); err != nil {
		return nil, err
	}
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}
