package kubelet

import (
	"context"
	"sort"
	"strconv"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Labels and annotations the kubelet puts on sandboxes and containers; upstream's names, so
// crictl users and tools that know the kubelet's conventions recognise them.
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
	labelContainerType = "io.kubernetes.container.type" // "init" or "app": not upstream's, ours to tell them apart
	annotationHash     = "io.kubernetes.container.hash"
	annotationRestarts = "io.kubernetes.container.restartCount"
	annotationGrace    = "io.kubernetes.pod.terminationGracePeriod"
)

// podState is what the runtime holds for one pod: read fresh on every sync, never cached, so
// the kubelet carries no state across a restart that the runtime does not also have.
type podState struct {
	sandboxes  []*runtimeapi.PodSandbox     // newest first
	sandbox    *runtimeapi.PodSandboxStatus // the newest sandbox's status, nil when there is none
	containers []*container                 // every container of the pod, newest first
}

// container is a container's CRI status and the sandbox it belongs to (which only the list says).
type container struct {
	*runtimeapi.ContainerStatus
	sandboxID string
}

func (k *Kubelet) podState(ctx context.Context, uid types.UID) (*podState, error) {
	sel := map[string]string{labelPodUID: string(uid)}
	sbs, err := k.runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: sel}})
	if err != nil {
		return nil, err
	}
	st := &podState{sandboxes: sbs.Items}
	sort.Slice(st.sandboxes, func(i, j int) bool { return st.sandboxes[i].CreatedAt > st.sandboxes[j].CreatedAt })
	if len(st.sandboxes) > 0 {
		s, err := k.runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: st.sandboxes[0].Id})
		if err != nil {
			return nil, err
		}
		st.sandbox = s.Status
	}
	cs, err := k.runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: sel}})
	if err != nil {
		return nil, err
	}
	for _, c := range cs.Containers {
		s, err := k.runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.Id})
		if err != nil {
			continue // removed between the list and now
		}
		st.containers = append(st.containers, &container{s.Status, c.PodSandboxId})
	}
	sort.Slice(st.containers, func(i, j int) bool {
		a, b := st.containers[i], st.containers[j]
		if a.Metadata.GetAttempt() != b.Metadata.GetAttempt() {
			return a.Metadata.GetAttempt() > b.Metadata.GetAttempt()
		}
		return a.CreatedAt > b.CreatedAt
	})
	return st, nil
}

// ready reports whether the newest sandbox is running.
func (st *podState) ready() bool {
	return st.sandbox != nil && st.sandbox.State == runtimeapi.PodSandboxState_SANDBOX_READY
}

// instances returns every instance of the named container, in any sandbox, newest first.
func (st *podState) instances(name string) []*container {
	var out []*container
	for _, c := range st.containers {
		if c.Labels[labelContainerName] == name {
			out = append(out, c)
		}
	}
	return out
}

// latest is the newest instance of the named container, or nil.
func (st *podState) latest(name string) *container {
	if in := st.instances(name); len(in) > 0 {
		return in[0]
	}
	return nil
}

// current is the newest instance of the named container in the newest sandbox, or nil.
func (st *podState) current(name string) *container {
	if c := st.latest(name); c != nil && st.sandbox != nil && c.sandboxID == st.sandbox.Id {
		return c
	}
	return nil
}

// running lists the pod's running containers, in any sandbox.
func (st *podState) running() []*container {
	var out []*container
	for _, c := range st.containers {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			out = append(out, c)
		}
	}
	return out
}

func restartCount(c *container) int32 {
	if n, err := strconv.Atoi(c.Annotations[annotationRestarts]); err == nil {
		return int32(n)
	}
	return int32(c.Metadata.GetAttempt())
}
