package podtopologyspread

import (
	"context"
	"errors"
	"math"

	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/framework"
	"github.com/berth-project/berth/internal/scheduler/plugins/nodeaffinity"
)

// Name is the plugin's name.
const Name = "PodTopologySpread"

// The Filter's reasons, as upstream words them.
const (
	ErrReasonConstraintsNotMatch = "node(s) didn't match pod topology spread constraints"
	ErrReasonNodeLabelNotMatch   = ErrReasonConstraintsNotMatch + " (missing required label)"
)

// PodTopologySpread is the plugin.
type PodTopologySpread struct{}

var (
	_ framework.PreFilterPlugin  = PodTopologySpread{}
	_ framework.FilterPlugin     = PodTopologySpread{}
	_ framework.PreScorePlugin   = PodTopologySpread{}
	_ framework.ScorePlugin      = PodTopologySpread{}
	_ framework.ScoreNormalizer  = PodTopologySpread{}
	_ framework.EnqueueExtension = PodTopologySpread{}
)

func (PodTopologySpread) Name() string { return Name }

const preFilterKey framework.StateKey = "PreFilter" + Name

var errNoPreFilter = errors.New("PodTopologySpread: Filter without PreFilter")

type preFilterState struct {
	constraints []constraint
	selfMatch   []int            // per constraint: 1 if the pod counts toward it
	counts      []map[string]int // per constraint: matching pods per domain
	minimum     []int            // per constraint: the least-populated domain's count
}

// PreFilter counts matching pods per domain for each DoNotSchedule constraint, over
// the nodes that have every constraint's key and pass its inclusion policies.
func (PodTopologySpread) PreFilter(_ context.Context, state *framework.CycleState, pod *corev1.Pod, nodes *framework.Snapshot) *framework.Status {
	pi := framework.PodInfoOf(state, pod)
	cs, _ := constraintsOf(pi, true)
	if len(cs) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	s := &preFilterState{constraints: cs, selfMatch: make([]int, len(cs)), counts: make([]map[string]int, len(cs)), minimum: make([]int, len(cs))}
	for i := range cs {
		s.counts[i] = map[string]int{}
		if cs[i].matches(pi) {
			s.selfMatch[i] = 1
		}
	}
	affinity := nodeaffinity.RequiredOf(pod)
	for _, n := range nodes.List() {
		if !hasKeys(n, cs) {
			continue
		}
		for i := range cs {
			if !cs[i].eligible(n, pod, affinity) {
				continue
			}
			v, _ := n.TopologyValue(cs[i].key)
			s.counts[i][v] += cs[i].countOn(n)
		}
	}
	for i := range cs {
		m := math.MaxInt
		for _, k := range s.counts[i] {
			m = min(m, k)
		}
		if m == math.MaxInt || int32(len(s.counts[i])) < cs[i].minDomains {
			m = 0 // too few domains: placing anywhere adds to a would-be-empty one
		}
		s.minimum[i] = m
	}
	state.Write(preFilterKey, s)
	return nil
}

// Filter rejects a node whose domain would exceed maxSkew over the least-populated one.
func (PodTopologySpread) Filter(_ context.Context, state *framework.CycleState, _ *corev1.Pod, node *framework.NodeInfo) *framework.Status {
	s, ok := framework.ReadState[*preFilterState](state, preFilterKey)
	if !ok {
		return framework.AsStatus(errNoPreFilter)
	}
	for i := range s.constraints {
		c := &s.constraints[i]
		v, ok := node.TopologyValue(c.key)
		if !ok {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonNodeLabelNotMatch)
		}
		if skew := s.counts[i][v] + s.selfMatch[i] - s.minimum[i]; skew > int(c.maxSkew) {
			return framework.NewStatus(framework.Unschedulable, ErrReasonConstraintsNotMatch)
		}
	}
	return nil
}

// EventsToRegister: placed pods come, go and change labels; nodes come and change
// labels or taints.
func (PodTopologySpread) EventsToRegister() framework.ClusterEvent {
	return framework.AssignedPodAdd | framework.AssignedPodUpdate | framework.AssignedPodDelete |
		framework.NodeAdd | framework.NodeLabelChange | framework.NodeTaintChange
}
