package cri

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/engine/sandbox"
)

func (s *runtimeService) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	c := req.GetConfig()
	if c == nil || c.Metadata == nil {
		return nil, invalid("pod sandbox config with metadata is required")
	}
	if req.RuntimeHandler != "" {
		return nil, invalid("runtime handler " + req.RuntimeHandler + " is not known: berth has only the default one")
	}
	cfg := engine.SandboxConfig{
		Metadata:       sandbox.Metadata{Name: c.Metadata.Name, Namespace: c.Metadata.Namespace, UID: c.Metadata.Uid, Attempt: c.Metadata.Attempt},
		Hostname:       c.Hostname,
		LogDirectory:   c.LogDirectory,
		Labels:         c.Labels,
		Annotations:    c.Annotations,
		RuntimeHandler: req.RuntimeHandler,
	}
	if d := c.DnsConfig; d != nil {
		cfg.DNS = sandbox.DNS{Servers: d.Servers, Searches: d.Searches, Options: d.Options}
	}
	for _, p := range c.PortMappings {
		proto := "tcp"
		switch p.Protocol {
		case runtimeapi.Protocol_UDP:
			proto = "udp"
		case runtimeapi.Protocol_SCTP:
			continue // not published: nftables DNAT here covers TCP and UDP
		}
		if p.ContainerPort <= 0 || p.ContainerPort > 65535 || p.HostPort < 0 || p.HostPort > 65535 {
			return nil, invalid("port mapping out of range")
		}
		cfg.Ports = append(cfg.Ports, sandbox.Port{Proto: proto, Port: uint16(p.ContainerPort), HostIP: p.HostIp, HostPort: uint16(p.HostPort)})
	}
	if l := c.Linux; l != nil {
		cfg.CgroupParent, cfg.Sysctls = l.CgroupParent, l.Sysctls
		if ns := l.GetSecurityContext().GetNamespaceOptions(); ns != nil {
			cfg.Network, cfg.PID, cfg.IPC = mode(ns.Network), mode(ns.Pid), mode(ns.Ipc)
		}
	}
	sb, err := s.eng.RunSandbox(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: sb.ID}, nil
}

// mode names a CRI namespace mode in the engine's terms.
func mode(m runtimeapi.NamespaceMode) string {
	switch m {
	case runtimeapi.NamespaceMode_CONTAINER:
		return sandbox.ModeContainer
	case runtimeapi.NamespaceMode_NODE:
		return sandbox.ModeNode
	case runtimeapi.NamespaceMode_TARGET:
		return sandbox.ModeTarget
	}
	return sandbox.ModePod
}

func criMode(m string) runtimeapi.NamespaceMode {
	switch m {
	case sandbox.ModeContainer:
		return runtimeapi.NamespaceMode_CONTAINER
	case sandbox.ModeNode:
		return runtimeapi.NamespaceMode_NODE
	case sandbox.ModeTarget:
		return runtimeapi.NamespaceMode_TARGET
	}
	return runtimeapi.NamespaceMode_POD
}

func (s *runtimeService) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	if err := s.eng.StopSandbox(ctx, req.PodSandboxId); err != nil {
		return nil, err
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (s *runtimeService) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	if err := s.eng.RemoveSandbox(ctx, req.PodSandboxId); err != nil {
		return nil, err
	}
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

func sandboxState(sb sandbox.Sandbox) runtimeapi.PodSandboxState {
	if sb.State == sandbox.Ready {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

func sandboxMetadata(sb sandbox.Sandbox) *runtimeapi.PodSandboxMetadata {
	m := sb.Metadata
	return &runtimeapi.PodSandboxMetadata{Name: m.Name, Namespace: m.Namespace, Uid: m.UID, Attempt: m.Attempt}
}

func (s *runtimeService) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	sb, err := s.eng.Sandbox(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	st := &runtimeapi.PodSandboxStatus{
		Id: sb.ID, Metadata: sandboxMetadata(sb), State: sandboxState(sb), CreatedAt: sb.Created.UnixNano(),
		Network: &runtimeapi.PodSandboxNetworkStatus{Ip: sb.IP},
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: &runtimeapi.NamespaceOption{
			Network: criMode(sb.Network), Pid: criMode(sb.PID), Ipc: criMode(sb.IPC),
		}}},
		Labels: sb.Labels, Annotations: sb.Annotations, RuntimeHandler: sb.RuntimeClass,
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: st, Timestamp: time.Now().UnixNano()}
	if req.Verbose {
		info, _ := json.Marshal(map[string]any{
			"pid": sb.Infra.Pid, "netns": sb.NetNS, "hostname": sb.Hostname, "gateway": sb.Gateway,
			"cgroupParent": sb.CgroupParent, "dns": sb.DNS, "ports": sb.Ports,
		})
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

func (s *runtimeService) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	return &runtimeapi.ListPodSandboxResponse{Items: s.listSandboxes(req.Filter)}, nil
}

func (s *runtimeService) StreamPodSandboxes(req *runtimeapi.StreamPodSandboxesRequest, stream runtimeapi.RuntimeService_StreamPodSandboxesServer) error {
	return stream.Send(&runtimeapi.StreamPodSandboxesResponse{PodSandboxes: s.listSandboxes(req.Filter)})
}

func (s *runtimeService) listSandboxes(f *runtimeapi.PodSandboxFilter) []*runtimeapi.PodSandbox {
	out := []*runtimeapi.PodSandbox{}
	for _, sb := range s.eng.Sandboxes() {
		if f != nil {
			if f.Id != "" && !strings.HasPrefix(sb.ID, f.Id) ||
				f.State != nil && f.State.State != sandboxState(sb) ||
				!labelsMatch(sb.Labels, f.LabelSelector) {
				continue
			}
		}
		out = append(out, &runtimeapi.PodSandbox{
			Id: sb.ID, Metadata: sandboxMetadata(sb), State: sandboxState(sb), CreatedAt: sb.Created.UnixNano(),
			Labels: sb.Labels, Annotations: sb.Annotations, RuntimeHandler: sb.RuntimeClass,
		})
	}
	return out
}

// labelsMatch reports whether labels has every key and value of the selector.
func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
