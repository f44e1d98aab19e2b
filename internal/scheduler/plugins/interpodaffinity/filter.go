// Package interpodaffinity places pods relative to other pods: required affinity (in
// a topology domain with matching pods), required anti-affinity (not in one), the
// anti-affinity of pods already placed, and the preferred terms of both as a score.
package interpodaffinity

import (
	"context"

	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/framework"
)

// Name is the plugin's name.
const Name = "InterPodAffinity"

// The Filter's reasons, as upstream words them.
const (
	ErrReasonAffinity         = "node(s) didn't match pod affinity rules"
	ErrReasonAntiAffinity     = "node(s) didn't match pod anti-affinity rules"
	ErrReasonExistingAntiAffi = "node(s) didn't satisfy existing pods anti-affinity rules"
)

// InterPodAffinity is the plugin.
type InterPodAffinity struct{}

var (
	_ framework.PreFilterPlugin  = InterPodAffinity{}
	_ framework.FilterPlugin     = InterPodAffinity{}
	_ framework.PreScorePlugin   = InterPodAffinity{}
	_ framework.ScorePlugin      = InterPodAffinity{}
	_ framework.ScoreNormalizer  = InterPodAffinity{}
	_ framework.EnqueueExtension = InterPodAffinity{}
)

func (InterPodAffinity) Name() string { return Name }

// domain is one value of a topology key: the nodes labelled key=value.
type domain struct{ key, value string }

type counts map[domain]int

const preFilterKey framework.StateKey = "PreFilter" + Name

type preFilterState struct {
	pod *framework.PodInfo
	// existingAnti: domains the pod may not join, because pods there have required
	// anti-affinity terms that select it.
	existingAnti counts
	// affinity: per domain, pods that match all of the pod's affinity terms;
	// anti: per domain, pods that match one of its anti-affinity terms.
	affinity, anti counts
}

// PreFilter counts, per topology domain, the pods that attract or repel the pod. It
// skips pods without required terms when no placed pod has required anti-affinity.
func (InterPodAffinity) PreFilter(_ context.Context, state *framework.CycleState, pod *corev1.Pod, nodes *framework.Snapshot) *framework.Status {
	pi := framework.PodInfoOf(state, pod)
	withAnti := nodes.WithRequiredAntiAffinity()
	if len(pi.RequiredAffinity) == 0 && len(pi.RequiredAntiAffinity) == 0 && len(withAnti) == 0 {
		return framework.NewStatus(framework.Skip)
	}
	s := &preFilterState{pod: pi, existingAnti: counts{}, affinity: counts{}, anti: counts{}}
	for _, n := range withAnti {
		for _, existing := range n.PodsWithRequiredAntiAffinity {
			for i := range existing.RequiredAntiAffinity {
				t := &existing.RequiredAntiAffinity[i]
				if v, ok := n.TopologyValue(t.TopologyKey); ok && t.Matches(pod) {
					s.existingAnti[domain{t.TopologyKey, v}]++
				}
			}
		}
	}
	if len(pi.RequiredAffinity)+len(pi.RequiredAntiAffinity) > 0 {
		for _, n := range nodes.List() {
			for _, existing := range n.Pods {
				if len(pi.RequiredAffinity) > 0 && matchesAll(pi.RequiredAffinity, existing.Pod) {
					for i := range pi.RequiredAffinity {
						if v, ok := n.TopologyValue(pi.RequiredAffinity[i].TopologyKey); ok {
							s.affinity[domain{pi.RequiredAffinity[i].TopologyKey, v}]++
						}
					}
				}
				for i := range pi.RequiredAntiAffinity {
					t := &pi.RequiredAntiAffinity[i]
					if v, ok := n.TopologyValue(t.TopologyKey); ok && t.Matches(existing.Pod) {
						s.anti[domain{t.TopologyKey, v}]++
					}
				}
			}
		}
	}
	state.Write(preFilterKey, s)
	return nil
}

func matchesAll(terms []framework.AffinityTerm, pod *corev1.Pod) bool {
	for i := range terms {
		if !terms[i].Matches(pod) {
			return false
		}
	}
	return true
}

// Filter checks the pod's affinity, then its anti-affinity, then that of placed pods.
func (InterPodAffinity) Filter(_ context.Context, state *framework.CycleState, pod *corev1.Pod, node *framework.NodeInfo) *framework.Status {
	s, ok := framework.ReadState[*preFilterState](state, preFilterKey)
	if !ok {
		return framework.AsStatus(errNoPreFilter)
	}
	if !s.affinityFits(node) {
		return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonAffinity)
	}
	for i := range s.pod.RequiredAntiAffinity {
		key := s.pod.RequiredAntiAffinity[i].TopologyKey
		if v, ok := node.TopologyValue(key); ok && s.anti[domain{key, v}] > 0 {
			return framework.NewStatus(framework.Unschedulable, ErrReasonAntiAffinity)
		}
	}
	for d := range s.existingAnti {
		if v, ok := node.TopologyValue(d.key); ok && v == d.value {
			return framework.NewStatus(framework.Unschedulable, ErrReasonExistingAntiAffi)
		}
	}
	return nil
}

// affinityFits: every affinity term's domain on this node holds a matching pod. The
// first pod of a group that selects itself may go anywhere its terms' keys exist, or
// it could never start.
func (s *preFilterState) affinityFits(node *framework.NodeInfo) bool {
	terms := s.pod.RequiredAffinity
	if len(terms) == 0 {
		return true
	}
	all := true
	for i := range terms {
		v, ok := node.TopologyValue(terms[i].TopologyKey)
		if !ok {
			return false
		}
		all = all && s.affinity[domain{terms[i].TopologyKey, v}] > 0
	}
	return all || (len(s.affinity) == 0 && matchesAll(terms, s.pod.Pod))
}

// EventsToRegister: placed pods come, go and change labels; nodes come and change labels.
func (InterPodAffinity) EventsToRegister() framework.ClusterEvent {
	return framework.AssignedPodAdd | framework.AssignedPodUpdate | framework.AssignedPodDelete |
		framework.NodeAdd | framework.NodeLabelChange
}
