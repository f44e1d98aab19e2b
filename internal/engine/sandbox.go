package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	dcontainer "github.com/moby/moby/api/types/container"

	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/network"
	"github.com/berth-project/berth/internal/engine/runtime"
	"github.com/berth-project/berth/internal/engine/sandbox"
)

// SandboxConfig is a pod sandbox to run, as the CRI's PodSandboxConfig describes it.
type SandboxConfig struct {
	Metadata       sandbox.Metadata
	Hostname       string
	LogDirectory   string
	Labels         map[string]string
	Annotations    map[string]string
	Network        string // sandbox.ModePod or ModeNode
	PID, IPC       string // sandbox.ModePod, ModeContainer or ModeNode
	DNS            sandbox.DNS
	Ports          []sandbox.Port
	CgroupParent   string
	Sysctls        map[string]string
	RuntimeHandler string
}

// lockSandbox serialises the lifecycle of one sandbox; call the returned func to unlock.
func (e *Engine) lockSandbox(id string) func() {
	e.mu.Lock()
	l, ok := e.sbLocks[id]
	if !ok {
		l = &sync.Mutex{}
		e.sbLocks[id] = l
	}
	e.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// RunSandbox makes a pod sandbox and makes it ready: a network namespace on the pod
// network (or the host's), its resolver and hosts files, and the infra process that
// holds the namespaces its containers join.
func (e *Engine) RunSandbox(ctx context.Context, cfg SandboxConfig) (sb sandbox.Sandbox, err error) {
	t0 := time.Now()
	if cfg.Metadata.Name == "" || cfg.Metadata.Namespace == "" || cfg.Metadata.UID == "" {
		return sb, errdefs.Invalid("pod sandbox metadata needs a name, a namespace and a uid")
	}
	for _, m := range []*string{&cfg.Network, &cfg.PID, &cfg.IPC} {
		if *m == "" {
			*m = sandbox.ModePod
		}
	}
	if cfg.Network != sandbox.ModePod && cfg.Network != sandbox.ModeNode {
		return sb, errdefs.Invalid(fmt.Sprintf("pod network namespace mode %q is not supported", cfg.Network))
	}
	pn := e.podNetwork()
	if cfg.Network == sandbox.ModePod && pn == nil {
		return sb, errdefs.Unavailable("the pod network is not ready: no pod CIDR yet (--pod-cidr, or the kubelet's UpdateRuntimeConfig)")
	}
	hostname := cfg.Hostname
	if cfg.Network == sandbox.ModeNode {
		hostname, _ = os.Hostname()
	} else if hostname == "" {
		hostname = cfg.Metadata.Name
	}
	rec := &sandbox.Sandbox{
		ID: container.NewID(), Metadata: cfg.Metadata, Hostname: hostname, LogDirectory: cfg.LogDirectory,
		Labels: cfg.Labels, Annotations: cfg.Annotations, Created: time.Now().UTC(), State: sandbox.NotReady,
		RuntimeClass: cfg.RuntimeHandler, Network: cfg.Network, PID: cfg.PID, IPC: cfg.IPC, DNS: cfg.DNS,
		Ports: cfg.Ports, CgroupParent: cfg.CgroupParent, Sysctls: cfg.Sysctls,
	}
	unlock := e.lockSandbox(rec.ID)
	defer unlock()
	if err := e.sandboxes.Add(rec); err != nil {
		return sb, err
	}
	s := *rec
	defer func() {
		if err != nil {
			e.teardownSandbox(s)
			e.sandboxes.Delete(s.ID)
		}
	}()
	if !s.HostNetwork() {
		ep, err := pn.Attach(s.ID, nil)
		if err != nil {
			return sb, fmt.Errorf("pod network: %w", err)
		}
		s.NetNS, s.IP, s.PrefixLen, s.Gateway = ep.NetNS, ep.IP, ep.PrefixLen, ep.Gateway
		if _, err := pn.Publish(s.ID, s.Metadata.Name, podMappings(s.Ports, s.IP)); err != nil {
			return sb, err
		}
	}
	if err := writeSandboxFiles(s); err != nil {
		return sb, err
	}
	if s.IPC != sandbox.ModeNode {
		if err := mountShm(s); err != nil {
			return sb, err
		}
	}
	s.Infra, err = runtime.StartInfra(runtime.InfraOptions{
		Shim: filepath.Join(filepath.Dir(e.cfg.RuntimePath), "berth-shim"), Hostname: s.Hostname,
		NewUTS: !s.HostNetwork(), NewIPC: s.IPC != sandbox.ModeNode, NewPID: s.PID == sandbox.ModePod,
	})
	if err != nil {
		return sb, err
	}
	s.State = sandbox.Ready
	if err := e.sandboxes.Save(s); err != nil {
		return sb, err
	}
	e.log.Info("pod sandbox ready", "sandbox", s.ID[:12], "pod", s.Metadata.Namespace+"/"+s.Metadata.Name, "ip", s.IP, "took", time.Since(t0))
	return s, nil
}

func podMappings(ports []sandbox.Port, ip string) []network.Mapping {
	var out []network.Mapping
	for _, p := range ports {
		if p.HostPort == 0 {
			continue // only hostPorts are published; the rest is reached at the pod's IP
		}
		out = append(out, network.Mapping{Proto: p.Proto, HostIP: p.HostIP, HostPort: p.HostPort, CtrIP: ip, CtrPort: p.Port})
	}
	return out
}

// writeSandboxFiles writes the hostname, hosts and resolv.conf files the pod's containers share.
func writeSandboxFiles(s sandbox.Sandbox) error {
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
	if s.IP != "" {
		hosts += s.IP + "\t" + s.Hostname + "\n"
	}
	var servers []netip.Addr
	for _, a := range s.DNS.Servers {
		if ip, err := netip.ParseAddr(a); err == nil {
			servers = append(servers, ip)
		}
	}
	files := map[string]string{
		"hostname":    s.Hostname + "\n",
		"hosts":       hosts,
		"resolv.conf": resolvConf(s.HostNetwork(), false, servers, s.DNS.Searches, s.DNS.Options),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(s.Dir(), name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// StopSandbox stops the pod's containers at once (the kubelet has stopped them
// gracefully before), ends the infra process and frees the pod's address and ports.
// Stopping a stopped sandbox does nothing.
func (e *Engine) StopSandbox(ctx context.Context, ref string) error {
	s, err := e.sandboxes.Get(ref)
	if err != nil {
		return err
	}
	unlock := e.lockSandbox(s.ID)
	defer unlock()
	if s, err = e.sandboxes.Get(s.ID); err != nil {
		return err
	}
	zero := 0
	for _, c := range e.SandboxContainers(s.ID) {
		if c.Running() {
			if err := e.Stop(ctx, c.ID, "", &zero); err != nil && !errors.Is(err, errdefs.ErrNotModified) {
				return fmt.Errorf("stop container %s of pod sandbox %s: %w", c.ID[:12], s.ID[:12], err)
			}
		}
	}
	if err := e.teardownSandbox(s); err != nil {
		return err
	}
	if s.State == sandbox.NotReady && s.Infra.Pid == 0 && s.NetNS == "" {
		return nil
	}
	// The address goes back to the pool: a stopped pod no longer claims it.
	s.State, s.Infra, s.NetNS, s.IP = sandbox.NotReady, runtime.Infra{}, "", ""
	s.Stopped = time.Now().UTC()
	if err := e.sandboxes.Save(s); err != nil {
		return err
	}
	e.log.Info("pod sandbox stopped", "sandbox", s.ID[:12], "pod", s.Metadata.Namespace+"/"+s.Metadata.Name)
	return nil
}

// teardownSandbox ends what a ready sandbox holds; each step is safe to repeat.
func (e *Engine) teardownSandbox(s sandbox.Sandbox) error {
	if err := s.Infra.Kill(); err != nil {
		return err
	}
	if !s.HostNetwork() {
		if pn := e.podNetwork(); pn != nil {
			pn.Detach(s.ID)
		}
	}
	unmountShm(s)
	return nil
}

// RemoveSandbox stops a sandbox, removes its containers and forgets it. Removing a
// sandbox that is not there is not an error.
func (e *Engine) RemoveSandbox(ctx context.Context, ref string) error {
	s, err := e.sandboxes.Get(ref)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := e.StopSandbox(ctx, s.ID); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	unlock := e.lockSandbox(s.ID)
	defer unlock()
	for _, c := range e.SandboxContainers(s.ID) {
		if err := e.Remove(ctx, c.ID, RemoveOptions{Force: true, Volumes: true}); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("remove container %s of pod sandbox %s: %w", c.ID[:12], s.ID[:12], err)
		}
	}
	if err := e.sandboxes.Delete(s.ID); err != nil {
		return err
	}
	e.mu.Lock()
	delete(e.sbLocks, s.ID)
	e.mu.Unlock()
	e.log.Info("pod sandbox removed", "sandbox", s.ID[:12], "pod", s.Metadata.Namespace+"/"+s.Metadata.Name)
	return nil
}

// Sandbox finds a pod sandbox by id or unique id prefix.
func (e *Engine) Sandbox(ref string) (sandbox.Sandbox, error) { return e.sandboxes.Get(ref) }

// Sandboxes lists the pod sandboxes, newest first.
func (e *Engine) Sandboxes() []sandbox.Sandbox { return e.sandboxes.List() }

// SandboxContainers lists the containers of a pod sandbox, newest first.
func (e *Engine) SandboxContainers(id string) []*container.Container {
	var out []*container.Container
	for _, c := range e.ctrs.List() {
		if c.Pod != nil && c.Pod.Sandbox == id {
			out = append(out, c)
		}
	}
	return out
}

func (e *Engine) sandboxesReady() bool {
	for _, s := range e.sandboxes.List() {
		if s.State == sandbox.Ready {
			return true
		}
	}
	return false
}

// restoreSandboxes takes back the ready sandboxes after a restart: their hostPorts
// are published again; one whose infra process died meanwhile is stopped.
func (e *Engine) restoreSandboxes() {
	ports := map[string][]network.Mapping{}
	for _, s := range e.sandboxes.List() {
		if s.State != sandbox.Ready {
			continue
		}
		if !s.Infra.Alive() {
			e.log.Warn("pod sandbox lost its infra process while the engine was down", "sandbox", s.ID[:12])
			go e.StopSandbox(context.Background(), s.ID)
			continue
		}
		if m := podMappings(s.Ports, s.IP); len(m) > 0 && !s.HostNetwork() {
			ports[s.ID] = m
		}
		e.log.Info("re-attached pod sandbox", "sandbox", s.ID[:12], "pod", s.Metadata.Namespace+"/"+s.Metadata.Name, "ip", s.IP)
	}
	if pn := e.podNetwork(); pn != nil {
		if err := pn.Restore(ports); err != nil {
			e.log.Error("restore the pod network's rules", "err", err)
		}
	}
}

// sandboxName is the name the docker CLI shows for a pod sandbox: dockershim's name for
// a pod's pause container (see dockershimName).
func sandboxName(s sandbox.Sandbox) string {
	return dockershimName("POD", s.Metadata, s.Metadata.Attempt)
}

// dockershimName is k8s_CONTAINER_POD_NAMESPACE_UID_ATTEMPT, the name dockershim gave a
// pod's containers, "POD" being the pause container.
func dockershimName(ctr string, pod sandbox.Metadata, attempt uint32) string {
	return fmt.Sprintf("k8s_%s_%s_%s_%s_%d", ctr, pod.Name, pod.Namespace, pod.UID, attempt)
}

// ListWithSandboxes is List with the pod sandboxes shown as containers, newest first,
// as dockershim's pause containers were: `docker ps` lists a pod whole, and `docker rm
// -f` removes what `docker ps -a` lists. The sandboxes are views (see sandboxView):
// listing, inspecting (Inspectable), stopping, killing and removing apply to them
// (orSandbox), the rest is the kubelet's.
func (e *Engine) ListWithSandboxes() []*container.Container {
	out := e.ctrs.List()
	for _, s := range e.sandboxes.List() {
		out = append(out, sandboxView(s))
	}
	slices.SortStableFunc(out, func(a, b *container.Container) int { return b.Created.Compare(a.Created) })
	return out
}

// Inspectable is the container ref names or, if none, the view of the pod sandbox it
// names (view is then true).
func (e *Engine) Inspectable(ref string) (c *container.Container, view bool, err error) {
	c, err = e.ctrs.Get(ref)
	if err != nil {
		err = e.orSandbox(ref, err, func(s sandbox.Sandbox) error {
			c, view = sandboxView(s), true
			return nil
		})
	}
	return c, view, err
}

// sandboxView is s as the Docker API shows a container: named as dockershim named the
// pause container, with its labels, running while ready.
func sandboxView(s sandbox.Sandbox) *container.Container {
	labels := map[string]string{}
	for k, v := range s.Labels {
		labels[k] = v
	}
	// The labels dockershim gave pause containers.
	labels["io.kubernetes.docker.type"] = "podsandbox"
	labels["io.kubernetes.container.name"] = "POD"
	labels["io.kubernetes.pod.name"] = s.Metadata.Name
	labels["io.kubernetes.pod.namespace"] = s.Metadata.Namespace
	labels["io.kubernetes.pod.uid"] = s.Metadata.UID
	stopped := s.Stopped
	if stopped.IsZero() {
		stopped = s.Created // not ready yet, or recorded before stop times were
	}
	c := &container.Container{
		ID: s.ID, Name: sandboxName(s), Created: s.Created, Path: "berth-pause",
		Config:     &dcontainer.Config{Image: "berth-pause", Hostname: s.Hostname, Labels: labels},
		HostConfig: &dcontainer.HostConfig{NetworkMode: dcontainer.NetworkMode("pod:" + s.ID)},
		State:      container.State{Status: container.Exited, StartedAt: s.Created, FinishedAt: stopped},
	}
	if s.State == sandbox.Ready {
		c.State = container.State{Status: container.Running, Pid: s.Infra.Pid, StartedAt: s.Created}
	}
	if s.HostNetwork() {
		c.HostConfig.NetworkMode = "host"
	} else if s.IP != "" {
		c.Endpoint = &container.Endpoint{NetNS: s.NetNS, IP: s.IP, PrefixLen: s.PrefixLen, Gateway: s.Gateway}
	}
	return c
}

// sandboxRef finds the sandbox a Docker API reference names: its id, a unique id
// prefix, or its sandboxName. A prefix that more than one sandbox has is an error, as
// for containers.
func (e *Engine) sandboxRef(ref string) (sandbox.Sandbox, error) {
	s, err := e.sandboxes.Get(ref)
	if err == nil || !errors.Is(err, errdefs.ErrNotFound) {
		return s, err
	}
	name := strings.TrimPrefix(ref, "/")
	for _, s := range e.sandboxes.List() {
		if sandboxName(s) == name {
			return s, nil
		}
	}
	return sandbox.Sandbox{}, errdefs.NotFound("No such container: " + ref)
}

// orSandbox is what a Docker API operation on a container reference does when no
// container answers to it (err from the container store): if a sandbox does, op is done
// on it; else the container's error stands.
func (e *Engine) orSandbox(ref string, err error, op func(sandbox.Sandbox) error) error {
	if !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	s, serr := e.sandboxRef(ref)
	if errors.Is(serr, errdefs.ErrNotFound) {
		return err
	}
	if serr != nil {
		return serr
	}
	return op(s)
}

// removeSandboxRef is `docker rm` of a pod sandbox (see ListWithSandboxes): a ready one only
// with force, as a running container; it goes with its containers, as with crictl rmp -f.
func (e *Engine) removeSandboxRef(ctx context.Context, s sandbox.Sandbox, force bool) error {
	if s.State == sandbox.Ready && !force {
		return errdefs.Conflict(fmt.Sprintf("cannot remove container \"/%s\": container is running: stop the container before removing or force remove", sandboxName(s)))
	}
	return e.RemoveSandbox(ctx, s.ID)
}

// stopSandboxRef is `docker stop` of a pod sandbox: its running containers are stopped
// as `docker stop` stops a container (sig, then SIGKILL after the timeout; all at
// once), then the sandbox.
func (e *Engine) stopSandboxRef(ctx context.Context, s sandbox.Sandbox, sig string, timeout *int) error {
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for _, c := range e.SandboxContainers(s.ID) {
		if !c.Running() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.Stop(ctx, c.ID, sig, timeout); err != nil && !errors.Is(err, errdefs.ErrNotModified) && !errors.Is(err, errdefs.ErrNotFound) {
				select {
				case errs <- err:
				default:
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	return e.StopSandbox(ctx, s.ID)
}
