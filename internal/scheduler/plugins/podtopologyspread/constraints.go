// Package podtopologyspread spreads pods that match a selector evenly over topology
// domains (nodes, zones): DoNotSchedule constraints filter, ScheduleAnyway constraints
// score. Pods without constraints of their own are spread by the system defaults
// (per node and per zone) among the pods of the same controller, so a Deployment's
// pods spread across nodes.
package podtopologyspread

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-project/berth/internal/scheduler/framework"
	"github.com/berth-project/berth/internal/scheduler/plugins/nodeaffinity"
)

// constraint is a parsed topology spread constraint.
type constraint struct {
	maxSkew     int32
	minDomains  int32
	key         string
	hard        bool            // DoNotSchedule
	selector    labels.Selector // nil for a system default: same owner instead
	owner       types.UID
	namespace   string
	honorAffin  bool // nodeAffinityPolicy Honor (the default)
	honorTaints bool // nodeTaintsPolicy Honor (default Ignore)
}

// systemDefaults are upstream's default constraints: skew 3 per node, 5 per zone.
var systemDefaults = []corev1.TopologySpreadConstraint{
	{MaxSkew: 3, TopologyKey: framework.HostnameLabel, WhenUnsatisfiable: corev1.ScheduleAnyway},
	{MaxSkew: 5, TopologyKey: framework.ZoneLabel, WhenUnsatisfiable: corev1.ScheduleAnyway},
}

// constraintsOf parses the pod's constraints of one kind (hard or soft). A pod with no
// constraints at all gets the system defaults (soft) if it has a controller.
func constraintsOf(pi *framework.PodInfo, hard bool) (cs []constraint, defaulted bool) {
	pod := pi.Pod
	list := pod.Spec.TopologySpreadConstraints
	if len(list) == 0 {
		if hard || pi.Owner == "" {
			return nil, false
		}
		for _, d := range systemDefaults {
			cs = append(cs, constraint{maxSkew: d.MaxSkew, key: d.TopologyKey, owner: pi.Owner, namespace: pod.Namespace, honorAffin: true})
		}
		return cs, true
	}
	for i := range list {
		c := &list[i]
		if (c.WhenUnsatisfiable == corev1.DoNotSchedule) != hard {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err != nil || c.LabelSelector == nil {
			sel = labels.Nothing()
		}
		for _, key := range c.MatchLabelKeys {
			if v, ok := pod.Labels[key]; ok {
				if r, err := labels.NewRequirement(key, selection.In, []string{v}); err == nil {
					sel = sel.Add(*r)
				}
			}
		}
		pc := constraint{maxSkew: c.MaxSkew, key: c.TopologyKey, hard: hard, selector: sel, namespace: pod.Namespace,
			honorAffin:  c.NodeAffinityPolicy == nil || *c.NodeAffinityPolicy == corev1.NodeInclusionPolicyHonor,
			honorTaints: c.NodeTaintsPolicy != nil && *c.NodeTaintsPolicy == corev1.NodeInclusionPolicyHonor}
		if c.MinDomains != nil {
			pc.minDomains = *c.MinDomains
		}
		cs = append(cs, pc)
	}
	return cs, false
}

// matches reports whether a pod counts toward the constraint.
func (c *constraint) matches(pi *framework.PodInfo) bool {
	p := pi.Pod
	if p.Namespace != c.namespace || p.DeletionTimestamp != nil {
		return false
	}
	if c.selector == nil {
		return pi.Owner == c.owner
	}
	return c.selector.Matches(labels.Set(p.Labels))
}

// countOn is how many of a node's pods count toward the constraint.
func (c *constraint) countOn(n *framework.NodeInfo) int {
	k := 0
	for _, pi := range n.Pods {
		if c.matches(pi) {
			k++
		}
	}
	return k
}

// eligible reports whether a node's pods count toward the constraint's domains, given
// its node inclusion policies.
func (c *constraint) eligible(n *framework.NodeInfo, pod *corev1.Pod, affinity nodeaffinity.Required) bool {
	if c.honorAffin && !affinity.Match(n.Node()) {
		return false
	}
	if c.honorTaints {
		for i := range n.Node().Spec.Taints {
			t := &n.Node().Spec.Taints[i]
			if (t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute) && !framework.Tolerates(pod.Spec.Tolerations, t, false) {
				return false
			}
		}
	}
	return true
}

// hasKeys reports whether the node has every constraint's topology label.
func hasKeys(n *framework.NodeInfo, cs []constraint) bool {
	for i := range cs {
		if _, ok := n.TopologyValue(cs[i].key); !ok {
			return false
		}
	}
	return true
}
