package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	dcontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"

	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/runtime"
	"github.com/berth-project/berth/internal/engine/sandbox"
)

// CreatePodContainer creates a container in a ready pod sandbox. o is described in
// Docker's terms (the CRI server translates), with o.Pod saying what the pod adds:
// the container joins the sandbox's namespaces, shares its resolver and hosts files,
// writes the CRI log, and lands in the pod's cgroup. Docker lists it as
// k8s_CONTAINER_POD_NAMESPACE_UID_ATTEMPT, the name dockershim gave pod containers.
func (e *Engine) CreatePodContainer(ctx context.Context, sandboxID string, o CreateOptions) (*container.Container, error) {
	if o.Pod == nil || o.Config == nil {
		return nil, errdefs.Invalid("a pod container needs its configuration")
	}
	sb, err := e.sandboxes.Get(sandboxID)
	if err != nil {
		return nil, err
	}
	if sb.State != sandbox.Ready {
		return nil, errdefs.Conflict(fmt.Sprintf("pod sandbox %s is not ready", sb.ID))
	}
	if o.Pod.Name == "" {
		return nil, errdefs.Invalid("a pod container needs a name")
	}
	pod := *o.Pod
	pod.Sandbox = sb.ID
	if pod.LogPath != "" && sb.LogDirectory != "" {
		pod.LogPath = filepath.Join(sb.LogDirectory, pod.LogPath)
	} else {
		pod.LogPath = ""
	}
	if pod.PID == "" {
		pod.PID = sandbox.ModeContainer
	}
	if pod.PID == sandbox.ModeTarget {
		t, err := e.ctrs.Get(pod.TargetPID)
		if err != nil {
			return nil, errdefs.Invalid(fmt.Sprintf("target container of the PID namespace: %v", err))
		}
		pod.TargetPID = t.ID
	}
	o.Pod = &pod
	o.Name = dockershimName(pod.Name, sb.Metadata, pod.Attempt)
	cfg := *o.Config
	cfg.Hostname = sb.Hostname
	o.Config = &cfg
	hc := dcontainer.HostConfig{}
	if o.HostConfig != nil {
		hc = *o.HostConfig
	}
	hc.NetworkMode = dcontainer.NetworkMode("pod:" + sb.ID)
	if sb.HostNetwork() {
		hc.NetworkMode = "host"
	}
	hc.RestartPolicy = dcontainer.RestartPolicy{Name: dcontainer.RestartPolicyDisabled} // the kubelet restarts
	hc.AutoRemove = false
	if hc.CgroupParent == "" {
		hc.CgroupParent = sb.CgroupParent
	}
	if len(sb.Sysctls) > 0 {
		sysctls := map[string]string{}
		for k, v := range sb.Sysctls {
			sysctls[k] = v
		}
		for k, v := range hc.Sysctls {
			sysctls[k] = v
		}
		hc.Sysctls = sysctls
	}
	// A host path that is not there is made a directory, as containerd does.
	for _, m := range hc.Mounts {
		if m.Type == mount.TypeBind && filepath.IsAbs(m.Source) {
			if _, err := os.Stat(m.Source); os.IsNotExist(err) {
				if err := os.MkdirAll(m.Source, 0o755); err != nil {
					return nil, errdefs.Invalid(fmt.Sprintf("create host path %s: %v", m.Source, err))
				}
			}
		}
	}
	o.HostConfig = &hc
	c, _, err := e.Create(ctx, o)
	return c, err
}

// joinSandbox puts a pod's container into its sandbox's namespaces, at start.
func (e *Engine) joinSandbox(c *container.Container, s *runtime.Spec) error {
	sb, err := e.sandboxes.Get(c.Pod.Sandbox)
	if err != nil {
		return err
	}
	if sb.State != sandbox.Ready || !sb.Infra.Alive() {
		return errdefs.Conflict(fmt.Sprintf("pod sandbox %s is not ready", sb.ID))
	}
	inf := sb.Infra
	if sb.HostNetwork() {
		s.HostNetwork = true
	} else {
		s.NetNS = sb.NetNS
		s.Linux.UTSNS = inf.NS("uts")
		s.Hostname = sb.Hostname
		c.Endpoint = &container.Endpoint{NetNS: sb.NetNS, IP: sb.IP, PrefixLen: sb.PrefixLen, Gateway: sb.Gateway}
	}
	if sb.IPC == sandbox.ModeNode {
		s.Linux.HostIPC = true
	} else {
		s.Linux.IPCNS = inf.NS("ipc")
	}
	switch c.Pod.PID {
	case sandbox.ModePod:
		if sb.PID == sandbox.ModePod {
			s.Linux.PIDNS = inf.NS("pid")
		}
	case sandbox.ModeNode:
		s.Linux.HostPID = true
	case sandbox.ModeTarget:
		t, err := e.ctrs.Get(c.Pod.TargetPID)
		if err != nil || !t.Running() {
			return errdefs.Conflict(fmt.Sprintf("the target container %s of the PID namespace is not running", c.Pod.TargetPID))
		}
		s.Linux.PIDNS = filepath.Join("/proc", strconv.Itoa(t.State.Pid), "ns", "pid")
	}
	s.Mounts = append(s.Mounts, sandboxMounts(sb)...)
	return nil
}
