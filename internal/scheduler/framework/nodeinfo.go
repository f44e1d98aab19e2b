package framework

import (
	corev1 "k8s.io/api/core/v1"
)

// HostnameLabel is the node label whose value is the node's name.
const HostnameLabel = "kubernetes.io/hostname"

// NodeInfo is a node with the pods placed on it (bound, or assumed by this scheduler
// while their binding is in flight) and the totals scheduling reads.
type NodeInfo struct {
	node *corev1.Node

	Pods []*PodInfo
	// PodsWithAffinity are the pods with any pod (anti-)affinity term;
	// PodsWithRequiredAntiAffinity those with a required anti-affinity term.
	PodsWithAffinity             []*PodInfo
	PodsWithRequiredAntiAffinity []*PodInfo

	UsedPorts []HostPort
	// Requested sums the pods' requests; NonZeroRequested counts request-less
	// containers at the scoring defaults.
	Requested        Resource
	NonZeroRequested Resource
	Allocatable      Resource

	// Generation moves on every change, so a snapshot copies only changed nodes.
	Generation int64
}

// NewNodeInfo returns the NodeInfo of node with pods on it.
func NewNodeInfo(node *corev1.Node, pods ...*corev1.Pod) *NodeInfo {
	n := &NodeInfo{}
	if node != nil {
		n.SetNode(node)
	}
	for _, p := range pods {
		n.AddPod(NewPodInfo(p))
	}
	return n
}

// Node is the node object; nil while only pods bound to an unknown node are known.
func (n *NodeInfo) Node() *corev1.Node { return n.node }

// Name is the node's name.
func (n *NodeInfo) Name() string {
	if n.node == nil {
		return ""
	}
	return n.node.Name
}

// SetNode sets (or replaces) the node object.
func (n *NodeInfo) SetNode(node *corev1.Node) {
	n.node = node
	n.Allocatable = NewResource(node.Status.Allocatable)
}

// TopologyValue is the node's value of a topology label. The hostname label falls
// back to the node's name, which is what the kubelet would have set.
func (n *NodeInfo) TopologyValue(key string) (string, bool) {
	if n.node == nil {
		return "", false
	}
	v, ok := n.node.Labels[key]
	if !ok && key == HostnameLabel {
		return n.node.Name, true
	}
	return v, ok
}

// AddPod places a pod on the node.
func (n *NodeInfo) AddPod(pi *PodInfo) {
	n.Pods = append(n.Pods, pi)
	if pi.HasAffinity() {
		n.PodsWithAffinity = append(n.PodsWithAffinity, pi)
	}
	if len(pi.RequiredAntiAffinity) > 0 {
		n.PodsWithRequiredAntiAffinity = append(n.PodsWithRequiredAntiAffinity, pi)
	}
	n.UsedPorts = append(n.UsedPorts, pi.HostPorts...)
	n.Requested.Add(pi.Requests)
	n.NonZeroRequested.Add(pi.NonZero)
}

// RemovePod takes the pod with pod's UID off the node; false if it was not there.
func (n *NodeInfo) RemovePod(pod *corev1.Pod) bool {
	i := indexOf(n.Pods, pod)
	if i < 0 {
		return false
	}
	pi := n.Pods[i]
	n.Pods = removeAt(n.Pods, i)
	if j := indexOf(n.PodsWithAffinity, pod); j >= 0 {
		n.PodsWithAffinity = removeAt(n.PodsWithAffinity, j)
	}
	if j := indexOf(n.PodsWithRequiredAntiAffinity, pod); j >= 0 {
		n.PodsWithRequiredAntiAffinity = removeAt(n.PodsWithRequiredAntiAffinity, j)
	}
	for _, hp := range pi.HostPorts {
		for j, used := range n.UsedPorts {
			if used == hp {
				n.UsedPorts = append(n.UsedPorts[:j], n.UsedPorts[j+1:]...)
				break
			}
		}
	}
	n.Requested.Sub(pi.Requests)
	n.NonZeroRequested.Sub(pi.NonZero)
	return true
}

func indexOf(list []*PodInfo, pod *corev1.Pod) int {
	for i, pi := range list {
		if pi.Pod.UID == pod.UID {
			return i
		}
	}
	return -1
}

// removeAt removes element i; the order of the rest is not kept.
func removeAt(list []*PodInfo, i int) []*PodInfo {
	last := len(list) - 1
	list[i] = list[last]
	list[last] = nil
	return list[:last]
}

// Clone returns a copy that later changes to n do not reach (PodInfos are shared:
// they are never modified).
func (n *NodeInfo) Clone() *NodeInfo {
	c := *n
	c.Pods = append([]*PodInfo(nil), n.Pods...)
	c.PodsWithAffinity = append([]*PodInfo(nil), n.PodsWithAffinity...)
	c.PodsWithRequiredAntiAffinity = append([]*PodInfo(nil), n.PodsWithRequiredAntiAffinity...)
	c.UsedPorts = append([]HostPort(nil), n.UsedPorts...)
	c.Requested = n.Requested.Clone()
	c.NonZeroRequested = n.NonZeroRequested.Clone()
	c.Allocatable = n.Allocatable.Clone()
	return &c
}
