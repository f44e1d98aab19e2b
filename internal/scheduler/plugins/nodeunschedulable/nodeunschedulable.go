// Package nodeunschedulable keeps pods off cordoned nodes (spec.unschedulable), unless
// they tolerate the node.kubernetes.io/unschedulable:NoSchedule taint.
package nodeunschedulable

import (
	"context"

	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "NodeUnschedulable"

// ErrReason is the Filter's reason, as upstream words it.
const ErrReason = "node(s) were unschedulable"

// NodeUnschedulable is the plugin.
type NodeUnschedulable struct{}

var (
	_ framework.FilterPlugin     = NodeUnschedulable{}
	_ framework.EnqueueExtension = NodeUnschedulable{}
)

func (NodeUnschedulable) Name() string { return Name }

var unschedulableTaint = corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}

// Filter rejects cordoned nodes.
func (NodeUnschedulable) Filter(_ context.Context, _ *framework.CycleState, pod *corev1.Pod, node *framework.NodeInfo) *framework.Status {
	if !node.Node().Spec.Unschedulable || framework.Tolerates(pod.Spec.Tolerations, &unschedulableTaint, false) {
		return nil
	}
	return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReason)
}

// EventsToRegister: a new node, or one uncordoned.
func (NodeUnschedulable) EventsToRegister() framework.ClusterEvent {
	return framework.NodeAdd | framework.NodeSpecUnschedulableChange
}
