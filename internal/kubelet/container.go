package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Upstream's default masked and read-only paths (procMount Default). containerd 1.6 applies
// exactly what the request lists, so an empty list would unmask /proc/kcore and friends.
var (
	defaultMaskedPaths   = []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// containerHash fingerprints a container's spec: a running container whose spec changed (a new
// image) is replaced.
func containerHash(c *corev1.Container) string {
	b, _ := json.Marshal(c)
	h := fnv.New32a()
	h.Write(b)
	return strconv.FormatUint(uint64(h.Sum32()), 16)
}

// containerConfig is the CRI config for one container instance. image is the resolved image
// reference, mounts maps volume names to their host paths.
func (k *Kubelet) containerConfig(ctx context.Context, pod *corev1.Pod, c *corev1.Container, kind string, attempt uint32, image, podIP string, mounts map[string]string) (*runtimeapi.ContainerConfig, error) {
	env, err := k.env(ctx, pod, c, podIP)
	if err != nil {
		return nil, err
	}
	vals := envMap(env)
	cfg := &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: attempt},
		Image:      &runtimeapi.ImageSpec{Image: image, UserSpecifiedImage: c.Image},
		WorkingDir: c.WorkingDir,
		Labels: map[string]string{
			labelPodName: pod.Name, labelPodNamespace: pod.Namespace, labelPodUID: string(pod.UID),
			labelContainerName: c.Name, labelContainerType: kind,
		},
		Annotations: map[string]string{
			annotationHash:     containerHash(c),
			annotationRestarts: strconv.Itoa(int(attempt)),
			annotationGrace:    strconv.FormatInt(gracePeriod(pod), 10),
		},
		LogPath:   filepath.Join(c.Name, fmt.Sprintf("%d.log", attempt)),
		Stdin:     c.Stdin,
		StdinOnce: c.StdinOnce,
		Tty:       c.TTY,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       k.containerResources(pod, c),
			SecurityContext: containerSecurity(pod, c),
		},
	}
	for _, a := range c.Command {
		cfg.Command = append(cfg.Command, expand(a, vals))
	}
	for _, a := range c.Args {
		cfg.Args = append(cfg.Args, expand(a, vals))
	}
	for _, e := range env {
		cfg.Envs = append(cfg.Envs, &runtimeapi.KeyValue{Key: e.Name, Value: []byte(e.Value)})
	}
	m, err := k.containerMounts(pod, c, attempt, mounts, vals)
	if err != nil {
		return nil, err
	}
	cfg.Mounts = m
	return cfg, nil
}

// containerMounts binds the container's volumeMounts, the pod's /etc/hosts and the termination
// message file.
func (k *Kubelet) containerMounts(pod *corev1.Pod, c *corev1.Container, attempt uint32, volumes map[string]string, vals map[string]string) ([]*runtimeapi.Mount, error) {
	var out []*runtimeapi.Mount
	hasHosts := false
	for _, vm := range c.VolumeMounts {
		host, ok := volumes[vm.Name]
		if !ok {
			return nil, fmt.Errorf("volume mount %q: the pod has no volume by that name", vm.Name)
		}
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = expand(vm.SubPathExpr, vals)
		}
		if sub != "" {
			if filepath.IsAbs(sub) || !filepath.IsLocal(sub) {
				return nil, fmt.Errorf("volume mount %q: subPath %q must be a relative path inside the volume", vm.Name, sub)
			}
			host = filepath.Join(host, sub)
			if _, err := os.Lstat(host); os.IsNotExist(err) {
				if err := os.MkdirAll(host, 0o755); err != nil {
					return nil, err
				}
			}
		}
		prop := runtimeapi.MountPropagation_PROPAGATION_PRIVATE
		if vm.MountPropagation != nil {
			switch *vm.MountPropagation {
			case corev1.MountPropagationHostToContainer:
				prop = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
			case corev1.MountPropagationBidirectional:
				prop = runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
			}
		}
		if vm.MountPath == "/etc/hosts" {
			hasHosts = true
		}
		out = append(out, &runtimeapi.Mount{ContainerPath: vm.MountPath, HostPath: host, Readonly: vm.ReadOnly, Propagation: prop})
	}
	if !hasHosts && !pod.Spec.HostNetwork {
		out = append(out, &runtimeapi.Mount{ContainerPath: "/etc/hosts", HostPath: filepath.Join(k.podDir(pod.UID), "etc-hosts")})
	}
	if p := c.TerminationMessagePath; p != "" {
		dir := filepath.Join(k.podDir(pod.UID), "containers", c.Name)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, err
		}
		f := filepath.Join(dir, strconv.Itoa(int(attempt)))
		if err := os.WriteFile(f, nil, 0o666); err != nil {
			return nil, err
		}
		os.Chmod(f, 0o666) // the container may run as any user
		out = append(out, &runtimeapi.Mount{ContainerPath: p, HostPath: f})
	}
	return out, nil
}

// terminationMessage reads what the container wrote to its termination message file.
func (k *Kubelet) terminationMessage(uid any, name string, attempt uint32) string {
	b, err := os.ReadFile(filepath.Join(k.podDir(uid), "containers", name, strconv.Itoa(int(attempt))))
	if err != nil {
		return ""
	}
	if len(b) > 4096 {
		b = b[:4096]
	}
	return string(b)
}

// containerResources turns requests and limits into cgroup settings, as upstream does:
// shares from the CPU request, a CFS quota from the CPU limit, the memory limit, and an OOM
// score from the pod's QoS class.
func (k *Kubelet) containerResources(pod *corev1.Pod, c *corev1.Container) *runtimeapi.LinuxContainerResources {
	r := &runtimeapi.LinuxContainerResources{CpuShares: 2}
	req, lim := c.Resources.Requests, c.Resources.Limits
	cpuReq, hasReq := req[corev1.ResourceCPU]
	cpuLim, hasLim := lim[corev1.ResourceCPU]
	if !hasReq && hasLim {
		cpuReq, hasReq = cpuLim, true
	}
	if hasReq {
		r.CpuShares = max(cpuReq.MilliValue()*1024/1000, 2)
	}
	if hasLim {
		r.CpuPeriod = 100000
		r.CpuQuota = max(cpuLim.MilliValue()*r.CpuPeriod/1000, 1000)
	}
	if m, ok := lim[corev1.ResourceMemory]; ok {
		r.MemoryLimitInBytes = m.Value()
	}
	switch qosClass(pod) {
	case corev1.PodQOSGuaranteed:
		r.OomScoreAdj = -997
	case corev1.PodQOSBestEffort:
		r.OomScoreAdj = 1000
	default:
		memCap := k.capacity()[corev1.ResourceMemory]
		adj := int64(1000)
		if m, ok := req[corev1.ResourceMemory]; ok && memCap.Value() > 0 {
			adj = 1000 - 1000*m.Value()/memCap.Value()
		}
		r.OomScoreAdj = min(max(adj, 2), 999)
	}
	return r
}

// containerSecurity merges the pod's and the container's securityContext (the container wins).
func containerSecurity(pod *corev1.Pod, c *corev1.Container) *runtimeapi.LinuxContainerSecurityContext {
	s := &runtimeapi.LinuxContainerSecurityContext{
		NamespaceOptions: namespaceOptions(pod),
		MaskedPaths:      defaultMaskedPaths,
		ReadonlyPaths:    defaultReadonlyPaths,
	}
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.RunAsUser != nil {
			s.RunAsUser = &runtimeapi.Int64Value{Value: *psc.RunAsUser}
		}
		if psc.RunAsGroup != nil {
			s.RunAsGroup = &runtimeapi.Int64Value{Value: *psc.RunAsGroup}
		}
		s.SupplementalGroups = append(s.SupplementalGroups, psc.SupplementalGroups...)
		if psc.FSGroup != nil {
			s.SupplementalGroups = append(s.SupplementalGroups, *psc.FSGroup)
		}
	}
	sc := c.SecurityContext
	if sc == nil {
		return s
	}
	if sc.RunAsUser != nil {
		s.RunAsUser = &runtimeapi.Int64Value{Value: *sc.RunAsUser}
	}
	if sc.RunAsGroup != nil {
		s.RunAsGroup = &runtimeapi.Int64Value{Value: *sc.RunAsGroup}
	}
	if sc.Privileged != nil && *sc.Privileged {
		s.Privileged = true
		s.MaskedPaths, s.ReadonlyPaths = nil, nil
	}
	if sc.ReadOnlyRootFilesystem != nil {
		s.ReadonlyRootfs = *sc.ReadOnlyRootFilesystem
	}
	if sc.AllowPrivilegeEscalation != nil {
		s.NoNewPrivs = !*sc.AllowPrivilegeEscalation
	}
	if sc.ProcMount != nil && *sc.ProcMount == corev1.UnmaskedProcMount {
		s.MaskedPaths, s.ReadonlyPaths = nil, nil
	}
	if caps := sc.Capabilities; caps != nil {
		s.Capabilities = &runtimeapi.Capability{}
		for _, c := range caps.Add {
			s.Capabilities.AddCapabilities = append(s.Capabilities.AddCapabilities, string(c))
		}
		for _, c := range caps.Drop {
			s.Capabilities.DropCapabilities = append(s.Capabilities.DropCapabilities, string(c))
		}
	}
	return s
}

// qosClass is the pod's quality-of-service class: Guaranteed when every container's requests
// equal its limits for both cpu and memory, BestEffort when nothing is requested or limited.
func qosClass(pod *corev1.Pod) corev1.PodQOSClass {
	all := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	any, guaranteed := false, true
	for _, c := range all {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[r]
			lim, hasLim := c.Resources.Limits[r]
			if (hasReq && !req.IsZero()) || (hasLim && !lim.IsZero()) {
				any = true
			}
			if !hasLim || (hasReq && req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case !any:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

// gracePeriod is the pod's termination grace period in seconds (30 when unset).
func gracePeriod(pod *corev1.Pod) int64 {
	if pod.DeletionGracePeriodSeconds != nil {
		return *pod.DeletionGracePeriodSeconds
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return 30
}
