package cri

import (
	"context"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/sandbox"
)

// containerStats reads one container's counters. The kubelet derives CPU rates
// (usage_nano_cores) from successive readings itself.
func (s *Server) containerStats(ctx context.Context, c *container.Container) *runtimeapi.ContainerStats {
	now := time.Now().UnixNano()
	cs := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{Id: c.ID, Metadata: containerMetadata(c), Labels: c.Pod.Labels, Annotations: c.Pod.Annotations},
		Cpu:        &runtimeapi.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{}},
		Memory:     &runtimeapi.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtimeapi.UInt64Value{}, UsageBytes: &runtimeapi.UInt64Value{}},
	}
	if _, st, err := s.eng.Stats(ctx, c.ID); err == nil && st != nil {
		cs.Cpu.UsageCoreNanoSeconds.Value = st.CPUTotal
		ws := st.MemoryUsage
		if st.MemoryInactiveFile < ws {
			ws -= st.MemoryInactiveFile
		} else {
			ws = 0
		}
		cs.Memory.WorkingSetBytes.Value, cs.Memory.UsageBytes.Value = ws, st.MemoryUsage
		if st.MemoryLimit > 0 && st.MemoryLimit < 1<<62 && st.MemoryLimit > ws {
			cs.Memory.AvailableBytes = &runtimeapi.UInt64Value{Value: st.MemoryLimit - ws}
		}
	}
	l := s.eng.WritableLayer(c)
	cs.WritableLayer = &runtimeapi.FilesystemUsage{Timestamp: now, FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: l.Mountpoint},
		UsedBytes: &runtimeapi.UInt64Value{Value: l.Bytes}, InodesUsed: &runtimeapi.UInt64Value{Value: l.Inodes}}
	return cs
}

func (s *runtimeService) ContainerStats(ctx context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	c, err := s.podContainer(req.ContainerId)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ContainerStatsResponse{Stats: s.containerStats(ctx, c)}, nil
}

func (s *runtimeService) ListContainerStats(ctx context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	return &runtimeapi.ListContainerStatsResponse{Stats: s.listContainerStats(ctx, req.Filter)}, nil
}

func (s *runtimeService) StreamContainerStats(req *runtimeapi.StreamContainerStatsRequest, stream runtimeapi.RuntimeService_StreamContainerStatsServer) error {
	return stream.Send(&runtimeapi.StreamContainerStatsResponse{ContainerStats: s.listContainerStats(stream.Context(), req.Filter)})
}

func (s *runtimeService) listContainerStats(ctx context.Context, f *runtimeapi.ContainerStatsFilter) []*runtimeapi.ContainerStats {
	out := []*runtimeapi.ContainerStats{}
	for _, c := range s.eng.List() {
		if c.Pod == nil || !c.Running() {
			continue
		}
		if f != nil && (f.Id != "" && !strings.HasPrefix(c.ID, f.Id) ||
			f.PodSandboxId != "" && !strings.HasPrefix(c.Pod.Sandbox, f.PodSandboxId) ||
			!labelsMatch(c.Pod.Labels, f.LabelSelector)) {
			continue
		}
		out = append(out, s.containerStats(ctx, c))
	}
	return out
}

// sandboxStats sums the pod's running containers and adds its network counters.
func (s *Server) sandboxStats(ctx context.Context, sb sandbox.Sandbox) *runtimeapi.PodSandboxStats {
	now := time.Now().UnixNano()
	lx := &runtimeapi.LinuxPodSandboxStats{
		Cpu:     &runtimeapi.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{}},
		Memory:  &runtimeapi.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtimeapi.UInt64Value{}, UsageBytes: &runtimeapi.UInt64Value{}},
		Process: &runtimeapi.ProcessUsage{Timestamp: now, ProcessCount: &runtimeapi.UInt64Value{}},
	}
	for _, c := range s.eng.SandboxContainers(sb.ID) {
		if !c.Running() {
			continue
		}
		cs := s.containerStats(ctx, c)
		lx.Containers = append(lx.Containers, cs)
		lx.Cpu.UsageCoreNanoSeconds.Value += cs.Cpu.UsageCoreNanoSeconds.Value
		lx.Memory.WorkingSetBytes.Value += cs.Memory.WorkingSetBytes.Value
		lx.Memory.UsageBytes.Value += cs.Memory.UsageBytes.Value
		lx.Process.ProcessCount.Value++
	}
	if !sb.HostNetwork() && sb.State == sandbox.Ready {
		rx, tx := s.eng.SandboxNetwork(sb.ID)
		eth0 := &runtimeapi.NetworkInterfaceUsage{Name: "eth0", RxBytes: &runtimeapi.UInt64Value{Value: rx}, TxBytes: &runtimeapi.UInt64Value{Value: tx}}
		lx.Network = &runtimeapi.NetworkUsage{Timestamp: now, DefaultInterface: eth0, Interfaces: []*runtimeapi.NetworkInterfaceUsage{eth0}}
	}
	return &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{Id: sb.ID, Metadata: sandboxMetadata(sb), Labels: sb.Labels, Annotations: sb.Annotations},
		Linux:      lx,
	}
}

func (s *runtimeService) PodSandboxStats(ctx context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	sb, err := s.eng.Sandbox(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: s.sandboxStats(ctx, sb)}, nil
}

func (s *runtimeService) ListPodSandboxStats(ctx context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: s.listSandboxStats(ctx, req.Filter)}, nil
}

func (s *runtimeService) StreamPodSandboxStats(req *runtimeapi.StreamPodSandboxStatsRequest, stream runtimeapi.RuntimeService_StreamPodSandboxStatsServer) error {
	return stream.Send(&runtimeapi.StreamPodSandboxStatsResponse{PodSandboxStats: s.listSandboxStats(stream.Context(), req.Filter)})
}

func (s *runtimeService) listSandboxStats(ctx context.Context, f *runtimeapi.PodSandboxStatsFilter) []*runtimeapi.PodSandboxStats {
	out := []*runtimeapi.PodSandboxStats{}
	for _, sb := range s.eng.Sandboxes() {
		if sb.State != sandbox.Ready {
			continue
		}
		if f != nil && (f.Id != "" && !strings.HasPrefix(sb.ID, f.Id) || !labelsMatch(sb.Labels, f.LabelSelector)) {
			continue
		}
		out = append(out, s.sandboxStats(ctx, sb))
	}
	return out
}
