// Package nodeaffinity places pods on nodes whose labels meet their nodeSelector and
// required node affinity, and prefers nodes that meet their preferred terms.
package nodeaffinity

import (
	"context"

	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "NodeAffinity"

// ErrReason is the Filter's reason, as upstream words it.
const ErrReason = "node(s) didn't match Pod's node affinity/selector"

// NodeAffinity is the plugin.
type NodeAffinity struct{}

var (
	_ framework.PreFilterPlugin  = NodeAffinity{}
	_ framework.FilterPlugin     = NodeAffinity{}
	_ framework.PreScorePlugin   = NodeAffinity{}
	_ framework.ScorePlugin      = NodeAffinity{}
	_ framework.ScoreNormalizer  = NodeAffinity{}
	_ framework.EnqueueExtension = NodeAffinity{}
)

func (NodeAffinity) Name() string { return Name }

const (
	preFilterKey framework.StateKey = "PreFilter" + Name
	preScoreKey  framework.StateKey = "PreScore" + Name
)

// PreFilter reads the pod's requirements; it skips pods that have none.
func (NodeAffinity) PreFilter(_ context.Context, state *framework.CycleState, pod *corev1.Pod, _ *framework.Snapshot) *framework.Status {
	r := RequiredOf(pod)
	if r.Empty() {
		return framework.NewStatus(framework.Skip)
	}
	state.Write(preFilterKey, r)
	return nil
}

// Filter rejects nodes that do not meet the requirements.
func (NodeAffinity) Filter(_ context.Context, state *framework.CycleState, pod *corev1.Pod, node *framework.NodeInfo) *framework.Status {
	r, ok := framework.ReadState[Required](state, preFilterKey)
	if !ok {
		r = RequiredOf(pod)
	}
	if !r.Match(node.Node()) {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReason)
	}
	return nil
}

// PreScore reads the pod's preferred terms; it skips pods that have none.
func (NodeAffinity) PreScore(_ context.Context, state *framework.CycleState, pod *corev1.Pod, _ []*framework.NodeInfo, _ *framework.Snapshot) *framework.Status {
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	state.Write(preScoreKey, a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution)
	return nil
}

// Score sums the weights of the preferred terms the node meets.
func (NodeAffinity) Score(_ context.Context, state *framework.CycleState, _ *corev1.Pod, node *framework.NodeInfo) (int64, *framework.Status) {
	terms, _ := framework.ReadState[[]corev1.PreferredSchedulingTerm](state, preScoreKey)
	var sum int64
	for i := range terms {
		if terms[i].Weight != 0 && MatchTerm(&terms[i].Preference, node.Node()) {
			sum += int64(terms[i].Weight)
		}
	}
	return sum, nil
}

// NormalizeScore scales the sums to [0, 100].
func (NodeAffinity) NormalizeScore(_ context.Context, _ *framework.CycleState, _ *corev1.Pod, scores []framework.NodeScore) *framework.Status {
	framework.DefaultNormalizeScore(framework.MaxNodeScore, false, scores)
	return nil
}

// EventsToRegister: a new node, or changed labels.
func (NodeAffinity) EventsToRegister() framework.ClusterEvent {
	return framework.NodeAdd | framework.NodeLabelChange
}
