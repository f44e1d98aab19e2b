package framework

import (
	corev1 "k8s.io/api/core/v1"
)

// Defaults counted for a container without requests when spreading by load, as
// upstream does, so that many request-less pods do not all land on one node.
const (
	DefaultMilliCPURequest int64 = 100               // 0.1 core
	DefaultMemoryRequest   int64 = 200 * 1024 * 1024 // 200 MiB
)

// Resource is an amount of each schedulable resource.
type Resource struct {
	MilliCPU         int64
	Memory           int64
	EphemeralStorage int64
	Pods             int64
	// Scalar holds extended resources (example.com/gpu), hugepages and the like.
	Scalar map[corev1.ResourceName]int64
}

// NewResource converts a ResourceList.
func NewResource(list corev1.ResourceList) Resource {
	var r Resource
	r.AddList(list)
	return r
}

// AddList adds a ResourceList.
func (r *Resource) AddList(list corev1.ResourceList) {
	for name, q := range list {
		switch name {
		case corev1.ResourceCPU:
			r.MilliCPU += q.MilliValue()
		case corev1.ResourceMemory:
			r.Memory += q.Value()
		case corev1.ResourceEphemeralStorage:
			r.EphemeralStorage += q.Value()
		case corev1.ResourcePods:
			r.Pods += q.Value()
		default:
			r.addScalar(name, q.Value())
		}
	}
}

func (r *Resource) addScalar(name corev1.ResourceName, v int64) {
	if r.Scalar == nil {
		r.Scalar = map[corev1.ResourceName]int64{}
	}
	r.Scalar[name] += v
}

// Add adds o to r.
func (r *Resource) Add(o Resource) {
	r.MilliCPU += o.MilliCPU
	r.Memory += o.Memory
	r.EphemeralStorage += o.EphemeralStorage
	r.Pods += o.Pods
	for name, v := range o.Scalar {
		r.addScalar(name, v)
	}
}

// Sub subtracts o from r.
func (r *Resource) Sub(o Resource) {
	r.MilliCPU -= o.MilliCPU
	r.Memory -= o.Memory
	r.EphemeralStorage -= o.EphemeralStorage
	r.Pods -= o.Pods
	for name, v := range o.Scalar {
		r.addScalar(name, -v)
	}
}

// max raises each amount of r to o's where o's is larger.
func (r *Resource) max(o Resource) {
	r.MilliCPU = max(r.MilliCPU, o.MilliCPU)
	r.Memory = max(r.Memory, o.Memory)
	r.EphemeralStorage = max(r.EphemeralStorage, o.EphemeralStorage)
	for name, v := range o.Scalar {
		if v > r.Scalar[name] {
			r.addScalar(name, v-r.Scalar[name])
		}
	}
}

// Clone returns a copy that shares nothing with r.
func (r Resource) Clone() Resource {
	if r.Scalar != nil {
		s := make(map[corev1.ResourceName]int64, len(r.Scalar))
		for k, v := range r.Scalar {
			s[k] = v
		}
		r.Scalar = s
	}
	return r
}

// PodRequests is what a pod asks of a node, as upstream computes it: the larger of the
// sum of its app containers (plus restartable init containers, which keep running)
// and each init container (plus the restartable ones started before it), plus the
// pod overhead. A pod-level resources stanza replaces the container sum for the
// resources it names. Pods counts 1.
//
// A container with a limit but no request asks for its limit: that is the request
// upstream's defaulting would have written.
func PodRequests(pod *corev1.Pod) Resource {
	return podRequests(pod, false)
}

// PodNonZeroRequests is PodRequests with DefaultMilliCPURequest and DefaultMemoryRequest
// for containers that request no cpu or memory; scoring uses it.
func PodNonZeroRequests(pod *corev1.Pod) Resource {
	return podRequests(pod, true)
}

func podRequests(pod *corev1.Pod, nonZero bool) Resource {
	var apps, sidecars Resource
	for i := range pod.Spec.Containers {
		apps.Add(containerRequests(&pod.Spec.Containers[i], nonZero))
	}
	var initMax Resource
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		req := containerRequests(c, nonZero)
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars.Add(req)
			initMax.max(sidecars)
			continue
		}
		req.Add(sidecars)
		initMax.max(req)
	}
	total := apps
	total.Add(sidecars)
	total.max(initMax)
	if pr := pod.Spec.Resources; pr != nil && len(pr.Requests)+len(pr.Limits) > 0 {
		level := requestsOf(pr.Requests, pr.Limits)
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := level[name]; !ok {
				continue
			}
			q := level[name]
			switch name {
			case corev1.ResourceCPU:
				total.MilliCPU = q.MilliValue()
			case corev1.ResourceMemory:
				total.Memory = q.Value()
			}
		}
	}
	total.AddList(pod.Spec.Overhead)
	total.Pods = 1
	return total
}

func containerRequests(c *corev1.Container, nonZero bool) Resource {
	r := NewResource(requestsOf(c.Resources.Requests, c.Resources.Limits))
	if nonZero {
		if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok && c.Resources.Limits.Cpu().IsZero() {
			r.MilliCPU = DefaultMilliCPURequest
		}
		if _, ok := c.Resources.Requests[corev1.ResourceMemory]; !ok && c.Resources.Limits.Memory().IsZero() {
			r.Memory = DefaultMemoryRequest
		}
	}
	return r
}

// requestsOf is requests with each limit that has no request filled in as its request.
func requestsOf(requests, limits corev1.ResourceList) corev1.ResourceList {
	missing := false
	for name := range limits {
		if _, ok := requests[name]; !ok {
			missing = true
			break
		}
	}
	if !missing {
		return requests
	}
	out := make(corev1.ResourceList, len(requests)+len(limits))
	for name, q := range limits {
		out[name] = q
	}
	for name, q := range requests {
		out[name] = q
	}
	return out
}
