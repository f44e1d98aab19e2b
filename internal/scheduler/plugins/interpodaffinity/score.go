package interpodaffinity

import (
	"context"
	"errors"

	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/framework"
)

var errNoPreFilter = errors.New("InterPodAffinity: Filter without PreFilter")

// hardAffinityWeight is what a placed pod's required affinity term that selects the
// pod adds to its domain's score (upstream's hardPodAffinityWeight default).
const hardAffinityWeight = 1

const preScoreKey framework.StateKey = "PreScore" + Name

// scores is the weight each topology domain earns the pod.
type scores map[string]map[string]int64

func (s scores) add(key, value string, w int64) {
	if s[key] == nil {
		s[key] = map[string]int64{}
	}
	s[key][value] += w
}

// PreScore weighs each topology domain by the preferred terms of the pod that select
// pods there and the terms of pods there that select the pod. It skips when neither
// the pod nor any placed pod has terms.
func (InterPodAffinity) PreScore(_ context.Context, state *framework.CycleState, pod *corev1.Pod, _ []*framework.NodeInfo, all *framework.Snapshot) *framework.Status {
	pi := framework.PodInfoOf(state, pod)
	own := len(pi.PreferredAffinity)+len(pi.PreferredAntiAffinity) > 0
	nodes := all.WithAffinity()
	if own {
		nodes = all.List()
	}
	if len(nodes) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	s := scores{}
	for _, n := range nodes {
		existing := n.PodsWithAffinity
		if own {
			existing = n.Pods
		}
		for _, e := range existing {
			weigh(s, n, pi.PreferredAffinity, e.Pod, 1)
			weigh(s, n, pi.PreferredAntiAffinity, e.Pod, -1)
			weigh(s, n, e.PreferredAffinity, pod, 1)
			weigh(s, n, e.PreferredAntiAffinity, pod, -1)
			for i := range e.RequiredAffinity {
				t := &e.RequiredAffinity[i]
				if v, ok := n.TopologyValue(t.TopologyKey); ok && t.Matches(pod) {
					s.add(t.TopologyKey, v, hardAffinityWeight)
				}
			}
		}
	}
	if len(s) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	state.Write(preScoreKey, s)
	return nil
}

func weigh(s scores, n *framework.NodeInfo, terms []framework.WeightedAffinityTerm, target *corev1.Pod, sign int64) {
	for i := range terms {
		t := &terms[i]
		if v, ok := n.TopologyValue(t.TopologyKey); ok && t.Matches(target) {
			s.add(t.TopologyKey, v, sign*int64(t.Weight))
		}
	}
}

// Score sums the weights of the node's domains.
func (InterPodAffinity) Score(_ context.Context, state *framework.CycleState, _ *corev1.Pod, node *framework.NodeInfo) (int64, *framework.Status) {
	s, ok := framework.ReadState[scores](state, preScoreKey)
	if !ok {
		return 0, nil
	}
	var sum int64
	for key, values := range s {
		if v, ok := node.TopologyValue(key); ok {
			sum += values[v]
		}
	}
	return sum, nil
}

// NormalizeScore maps the lowest sum to 0 and the highest to 100.
func (InterPodAffinity) NormalizeScore(_ context.Context, _ *framework.CycleState, _ *corev1.Pod, ns []framework.NodeScore) *framework.Status {
	if len(ns) == 0 {
		return nil
	}
	lo, hi := ns[0].Score, ns[0].Score
	for _, s := range ns {
		lo, hi = min(lo, s.Score), max(hi, s.Score)
	}
	for i := range ns {
		if hi == lo {
			ns[i].Score = 0
			continue
		}
		ns[i].Score = (ns[i].Score - lo) * framework.MaxNodeScore / (hi - lo)
	}
	return nil
}
