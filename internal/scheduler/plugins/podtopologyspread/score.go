package podtopologyspread

import (
	"context"
	"math"

	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/framework"
	"github.com/berth-project/berth/internal/scheduler/plugins/nodeaffinity"
)

const preScoreKey framework.StateKey = "PreScore" + Name

type preScoreState struct {
	constraints []constraint
	defaulted   bool             // system defaults: a node may lack a key
	counts      []map[string]int // per constraint: matching pods per domain (not for hostname)
	weights     []float64        // per constraint: log(domains + 2)
}

// PreScore counts matching pods per domain for each ScheduleAnyway constraint (or the
// system defaults). Per-node constraints are counted in Score, on the node itself.
func (PodTopologySpread) PreScore(_ context.Context, state *framework.CycleState, pod *corev1.Pod, feasible []*framework.NodeInfo, all *framework.Snapshot) *framework.Status {
	pi := framework.PodInfoOf(state, pod)
	cs, defaulted := constraintsOf(pi, false)
	if len(cs) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	s := &preScoreState{constraints: cs, defaulted: defaulted, counts: make([]map[string]int, len(cs)), weights: make([]float64, len(cs))}
	domains := make([]map[string]bool, len(cs))
	for i := range cs {
		s.counts[i] = map[string]int{}
		domains[i] = map[string]bool{}
	}
	for _, n := range feasible {
		if !defaulted && !hasKeys(n, cs) {
			continue
		}
		for i := range cs {
			if v, ok := n.TopologyValue(cs[i].key); ok {
				domains[i][v] = true
			}
		}
	}
	affinity := nodeaffinity.RequiredOf(pod)
	for i := range cs {
		s.weights[i] = math.Log(float64(len(domains[i]) + 2))
		if cs[i].key == framework.HostnameLabel || len(domains[i]) == 0 {
			continue
		}
		for _, n := range all.List() {
			v, ok := n.TopologyValue(cs[i].key)
			if !ok || !domains[i][v] || (!defaulted && !hasKeys(n, cs)) || !cs[i].eligible(n, pod, affinity) {
				continue
			}
			s.counts[i][v] += cs[i].countOn(n)
		}
	}
	state.Write(preScoreKey, s)
	return nil
}

// ignored marks a node that lacks a constraint's key; it scores 0.
const ignored int64 = -1

// Score weighs the matching pods in the node's domains: more is worse.
func (PodTopologySpread) Score(_ context.Context, state *framework.CycleState, _ *corev1.Pod, node *framework.NodeInfo) (int64, *framework.Status) {
	s, ok := framework.ReadState[*preScoreState](state, preScoreKey)
	if !ok {
		return 0, nil
	}
	if !s.defaulted && !hasKeys(node, s.constraints) {
		return ignored, nil
	}
	var score float64
	for i := range s.constraints {
		c := &s.constraints[i]
		v, ok := node.TopologyValue(c.key)
		if !ok {
			continue
		}
		k := s.counts[i][v]
		if c.key == framework.HostnameLabel {
			k = c.countOn(node)
		}
		score += float64(k+int(c.maxSkew)-1) * s.weights[i]
	}
	return int64(math.Round(score)), nil
}

// NormalizeScore maps the fewest matching pods to 100; ignored nodes get 0.
func (PodTopologySpread) NormalizeScore(_ context.Context, _ *framework.CycleState, _ *corev1.Pod, scores []framework.NodeScore) *framework.Status {
	lo, hi := int64(math.MaxInt64), int64(0)
	for _, s := range scores {
		if s.Score == ignored {
			continue
		}
		lo, hi = min(lo, s.Score), max(hi, s.Score)
	}
	for i := range scores {
		switch {
		case scores[i].Score == ignored:
			scores[i].Score = 0
		case hi == 0:
			scores[i].Score = framework.MaxNodeScore
		default:
			scores[i].Score = framework.MaxNodeScore * (hi + lo - scores[i].Score) / hi
		}
	}
	return nil
}
