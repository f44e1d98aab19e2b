// Package tainttoleration keeps pods off nodes whose NoSchedule and NoExecute taints
// they do not tolerate, and prefers nodes with fewer untolerated PreferNoSchedule taints.
package tainttoleration

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "TaintToleration"

// TaintToleration is the plugin. Comparisons turns on the Lt and Gt toleration
// operators (upstream's TaintTolerationComparisonOperators feature).
type TaintToleration struct {
	Comparisons bool
}

var (
	_ framework.FilterPlugin     = &TaintToleration{}
	_ framework.PreScorePlugin   = &TaintToleration{}
	_ framework.ScorePlugin      = &TaintToleration{}
	_ framework.ScoreNormalizer  = &TaintToleration{}
	_ framework.EnqueueExtension = &TaintToleration{}
)

func (*TaintToleration) Name() string { return Name }

// Filter rejects a node with a NoSchedule or NoExecute taint the pod does not tolerate,
// naming the first such taint.
func (pl *TaintToleration) Filter(_ context.Context, _ *framework.CycleState, pod *corev1.Pod, node *framework.NodeInfo) *framework.Status {
	taints := node.Node().Spec.Taints
	for i := range taints {
		t := &taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if !framework.Tolerates(pod.Spec.Tolerations, t, pl.Comparisons) {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable,
				fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value))
		}
	}
	return nil
}

const preScoreKey framework.StateKey = "PreScore" + Name

// PreScore keeps the tolerations that can tolerate PreferNoSchedule taints; it skips
// scoring when no node has such a taint.
func (pl *TaintToleration) PreScore(_ context.Context, state *framework.CycleState, pod *corev1.Pod, nodes []*framework.NodeInfo, _ *framework.Snapshot) *framework.Status {
	found := false
	for _, n := range nodes {
		for _, t := range n.Node().Spec.Taints {
			found = found || t.Effect == corev1.TaintEffectPreferNoSchedule
		}
	}
	if !found {
		return framework.NewStatus(framework.Skip)
	}
	var tols []corev1.Toleration
	for _, t := range pod.Spec.Tolerations {
		if t.Effect == "" || t.Effect == corev1.TaintEffectPreferNoSchedule {
			tols = append(tols, t)
		}
	}
	state.Write(preScoreKey, tols)
	return nil
}

// Score counts the node's PreferNoSchedule taints the pod does not tolerate.
func (pl *TaintToleration) Score(_ context.Context, state *framework.CycleState, _ *corev1.Pod, node *framework.NodeInfo) (int64, *framework.Status) {
	tols, _ := framework.ReadState[[]corev1.Toleration](state, preScoreKey)
	var n int64
	for i := range node.Node().Spec.Taints {
		t := &node.Node().Spec.Taints[i]
		if t.Effect == corev1.TaintEffectPreferNoSchedule && !framework.Tolerates(tols, t, pl.Comparisons) {
			n++
		}
	}
	return n, nil
}

// NormalizeScore makes fewer untolerated taints score higher.
func (pl *TaintToleration) NormalizeScore(_ context.Context, _ *framework.CycleState, _ *corev1.Pod, scores []framework.NodeScore) *framework.Status {
	framework.DefaultNormalizeScore(framework.MaxNodeScore, true, scores)
	return nil
}

// EventsToRegister: a new node, or changed taints.
func (*TaintToleration) EventsToRegister() framework.ClusterEvent {
	return framework.NodeAdd | framework.NodeTaintChange
}
