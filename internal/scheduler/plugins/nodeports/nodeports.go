// Package nodeports keeps a pod off nodes where a host port it asks for is taken.
package nodeports

import (
	"context"

	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "NodePorts"

// ErrReason is the Filter's reason, as upstream words it.
const ErrReason = "node(s) didn't have free ports for the requested pod ports"

// NodePorts is the plugin.
type NodePorts struct{}

var (
	_ framework.PreFilterPlugin  = NodePorts{}
	_ framework.FilterPlugin     = NodePorts{}
	_ framework.EnqueueExtension = NodePorts{}
)

func (NodePorts) Name() string { return Name }

const preFilterKey framework.StateKey = "PreFilter" + Name

// PreFilter collects the pod's host ports; it skips pods without any.
func (NodePorts) PreFilter(_ context.Context, state *framework.CycleState, pod *corev1.Pod, _ *framework.Snapshot) *framework.Status {
	ports := framework.PodInfoOf(state, pod).HostPorts
	if len(ports) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	state.Write(preFilterKey, ports)
	return nil
}

// Filter rejects a node where one of the ports is taken on a clashing address.
func (NodePorts) Filter(_ context.Context, state *framework.CycleState, pod *corev1.Pod, node *framework.NodeInfo) *framework.Status {
	ports, ok := framework.ReadState[[]framework.HostPort](state, preFilterKey)
	if !ok {
		ports = framework.NewPodInfo(pod).HostPorts
	}
	for _, want := range ports {
		for _, used := range node.UsedPorts {
			if want.Conflicts(used) {
				return framework.NewStatus(framework.Unschedulable, ErrReason)
			}
		}
	}
	return nil
}

// EventsToRegister: a pod going frees its ports; a new node has all of them free.
func (NodePorts) EventsToRegister() framework.ClusterEvent {
	return framework.NodeAdd | framework.AssignedPodDelete
}
