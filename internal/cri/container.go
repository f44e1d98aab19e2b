package cri

import (
	"context"
	"errors"
	"strconv"
	"strings"

	dcontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/errdefs"
)

// CreateContainer makes a container in a pod sandbox (engine.CreatePodContainer).
func (s *runtimeService) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	o, err := createOptions(req.GetConfig())
	if err != nil {
		return nil, err
	}
	ctr, err := s.eng.CreatePodContainer(ctx, req.PodSandboxId, o)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.CreateContainerResponse{ContainerId: ctr.ID}, nil
}

// createOptions translates the CRI's container config into Docker's terms, which the
// engine's containers speak, plus what the pod adds.
func createOptions(c *runtimeapi.ContainerConfig) (engine.CreateOptions, error) {
	if c == nil || c.Metadata == nil || c.Image == nil || c.Image.Image == "" {
		return engine.CreateOptions{}, invalid("container config with metadata and image is required")
	}
	cfg := &dcontainer.Config{
		Image: c.Image.Image, Cmd: c.Args, WorkingDir: c.WorkingDir, Labels: c.Labels,
		Tty: c.Tty, OpenStdin: c.Stdin, StdinOnce: c.StdinOnce, AttachStdin: c.Stdin,
	}
	if len(c.Command) > 0 {
		cfg.Entrypoint = c.Command
	}
	for _, kv := range c.Envs {
		cfg.Env = append(cfg.Env, kv.Key+"="+string(kv.Value))
	}
	if c.StopSignal != runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		cfg.StopSignal = strings.TrimPrefix(c.StopSignal.String(), "SIGNAL_")
	}
	hc := &dcontainer.HostConfig{}
	for _, m := range c.Mounts {
		if m.HostPath == "" || m.ContainerPath == "" {
			if m.Image != nil {
				return engine.CreateOptions{}, errdefs.New(errdefs.ErrNotImplemented, "image volumes are not supported")
			}
			return engine.CreateOptions{}, invalid("a mount needs a host path and a container path")
		}
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeBind, Source: m.HostPath, Target: m.ContainerPath,
			ReadOnly: m.Readonly || m.RecursiveReadOnly, BindOptions: &mount.BindOptions{Propagation: propagation(m.Propagation)}})
	}
	for _, d := range c.Devices {
		hc.Devices = append(hc.Devices, dcontainer.DeviceMapping{PathOnHost: d.HostPath, PathInContainer: d.ContainerPath, CgroupPermissions: d.Permissions})
	}
	pod := &container.Pod{
		Name: c.Metadata.Name, Attempt: c.Metadata.Attempt, Labels: c.Labels, Annotations: c.Annotations,
		LogPath: c.LogPath, Image: c.Image.UserSpecifiedImage,
	}
	if pod.Image == "" {
		pod.Image = c.Image.Image
	}
	if l := c.Linux; l != nil {
		resources(hc, l.Resources)
		if sc := l.SecurityContext; sc != nil {
			cfg.User = user(sc)
			for _, g := range sc.SupplementalGroups {
				hc.GroupAdd = append(hc.GroupAdd, strconv.FormatInt(g, 10))
			}
			hc.Privileged, hc.ReadonlyRootfs = sc.Privileged, sc.ReadonlyRootfs
			if caps := sc.Capabilities; caps != nil {
				hc.CapAdd, hc.CapDrop = caps.AddCapabilities, caps.DropCapabilities
			}
			if sc.NoNewPrivs {
				hc.SecurityOpt = append(hc.SecurityOpt, "no-new-privileges")
			}
			hc.MaskedPaths, hc.ReadonlyPaths = sc.MaskedPaths, sc.ReadonlyPaths
		}
	}
	// POD is the CRI's default (its zero value): the pod's shared PID namespace.
	ns := c.GetLinux().GetSecurityContext().GetNamespaceOptions()
	pod.PID, pod.TargetPID = mode(ns.GetPid()), ns.GetTargetId()
	return engine.CreateOptions{Config: cfg, HostConfig: hc, Pod: pod}, nil
}

func propagation(p runtimeapi.MountPropagation) mount.Propagation {
	switch p {
	case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		return mount.PropagationRSlave
	case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		return mount.PropagationRShared
	}
	return mount.PropagationRPrivate
}

// user is Docker's "user[:group]" for the security context's identity.
func user(sc *runtimeapi.LinuxContainerSecurityContext) string {
	u := sc.RunAsUsername
	if sc.RunAsUser != nil {
		u = strconv.FormatInt(sc.RunAsUser.Value, 10)
	}
	if u != "" && sc.RunAsGroup != nil {
		u += ":" + strconv.FormatInt(sc.RunAsGroup.Value, 10)
	}
	return u
}

// resources puts the CRI's cgroup settings in a host config.
func resources(hc *dcontainer.HostConfig, r *runtimeapi.LinuxContainerResources) {
	if r == nil {
		return
	}
	hc.CPUShares, hc.CPUQuota, hc.CPUPeriod = r.CpuShares, r.CpuQuota, r.CpuPeriod
	hc.Memory, hc.OomScoreAdj = r.MemoryLimitInBytes, int(r.OomScoreAdj)
	hc.CpusetCpus, hc.CpusetMems = r.CpusetCpus, r.CpusetMems
}

func (s *runtimeService) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	if _, err := s.podContainer(req.ContainerId); err != nil {
		return nil, err
	}
	if err := s.eng.Start(ctx, req.ContainerId); err != nil {
		return nil, err
	}
	return &runtimeapi.StartContainerResponse{}, nil
}

// StopContainer sends the stop signal (the config's, else the image's, else SIGTERM)
// and SIGKILL after the timeout. A stopped container stays stopped without error.
func (s *runtimeService) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	if _, err := s.podContainer(req.ContainerId); err != nil {
		return nil, err
	}
	timeout := int(req.Timeout)
	if err := s.eng.Stop(ctx, req.ContainerId, "", &timeout); err != nil && !errors.Is(err, errdefs.ErrNotModified) {
		return nil, err
	}
	return &runtimeapi.StopContainerResponse{}, nil
}

// RemoveContainer removes a container, running or not; one already gone is no error.
func (s *runtimeService) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	_, err := s.podContainer(req.ContainerId)
	if errors.Is(err, errdefs.ErrNotFound) {
		return &runtimeapi.RemoveContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.eng.Remove(ctx, req.ContainerId, engine.RemoveOptions{Force: true, Volumes: true}); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}

// podContainer finds a container of a pod sandbox by id or id prefix; containers made
// through the Docker API are not the CRI's to see.
func (s *runtimeService) podContainer(ref string) (*container.Container, error) {
	if ref == "" {
		return nil, invalid("container id is required")
	}
	c, err := s.eng.Get(ref)
	if err != nil {
		return nil, err
	}
	if c.Pod == nil || !strings.HasPrefix(c.ID, ref) {
		return nil, errdefs.NotFound("container " + ref + " not found")
	}
	return c, nil
}

func (s *runtimeService) ReopenContainerLog(ctx context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	if _, err := s.podContainer(req.ContainerId); err != nil {
		return nil, err
	}
	if err := s.eng.ReopenLog(ctx, req.ContainerId); err != nil {
		return nil, err
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}
