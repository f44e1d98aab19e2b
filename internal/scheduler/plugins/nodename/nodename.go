// Package nodename keeps a pod that names a node (spec.nodeName) off every other node.
package nodename

import (
	"context"

	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "NodeName"

// ErrReason is the Filter's reason, as upstream words it.
const ErrReason = "node(s) didn't match the requested node name"

// NodeName is the plugin.
type NodeName struct{}

var (
	_ framework.FilterPlugin     = NodeName{}
	_ framework.EnqueueExtension = NodeName{}
)

func (NodeName) Name() string { return Name }

// Filter rejects every node but the one the pod names.
func (NodeName) Filter(_ context.Context, _ *framework.CycleState, pod *corev1.Pod, node *framework.NodeInfo) *framework.Status {
	if pod.Spec.NodeName != "" && pod.Spec.NodeName != node.Name() {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReason)
	}
	return nil
}

// EventsToRegister: only a new node can be the one named.
func (NodeName) EventsToRegister() framework.ClusterEvent { return framework.NodeAdd }
