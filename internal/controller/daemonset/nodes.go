package daemonset

import (
	"slices"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/berth-project/berth/internal/controller/history"
)

// HashLabel tells the pods of a DaemonSet's template revisions apart.
const HashLabel = history.HashLabel

// daemonTolerations are what every daemon pod tolerates (upstream's list): daemons
// run on nodes that are not ready, unreachable, under pressure or cordoned.
func daemonTolerations(spec *corev1.PodSpec) []corev1.Toleration {
	t := func(key string, effect corev1.TaintEffect) corev1.Toleration {
		return corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: effect}
	}
	out := []corev1.Toleration{
		t(corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute),
		t(corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute),
		t(corev1.TaintNodeDiskPressure, corev1.TaintEffectNoSchedule),
		t(corev1.TaintNodeMemoryPressure, corev1.TaintEffectNoSchedule),
		t(corev1.TaintNodePIDPressure, corev1.TaintEffectNoSchedule),
		t(corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule),
	}
	if spec.HostNetwork {
		out = append(out, t(corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule))
	}
	return out
}

// withDaemonTolerations adds the daemon tolerations a pod spec does not have yet.
func withDaemonTolerations(spec *corev1.PodSpec) {
	for _, d := range daemonTolerations(spec) {
		if !slices.ContainsFunc(spec.Tolerations, func(t corev1.Toleration) bool { return t.MatchToleration(&d) }) {
			spec.Tolerations = append(spec.Tolerations, d)
		}
	}
}

// placement says whether a daemon pod should be started on node (shouldRun) and
// whether one already there may stay (shouldContinue): the node must match the
// template's node selector and required node affinity; NoSchedule taints keep new
// pods away, NoExecute taints also remove running ones, unless tolerated.
func placement(spec *corev1.PodSpec, node *corev1.Node) (shouldRun, shouldContinue bool) {
	if !matchesNode(spec, node) {
		return false, false
	}
	tolerations := append(append([]corev1.Toleration(nil), spec.Tolerations...), daemonTolerations(spec)...)
	shouldRun, shouldContinue = true, true
	for i := range node.Spec.Taints {
		taint := &node.Spec.Taints[i]
		if taint.Effect == corev1.TaintEffectPreferNoSchedule {
			continue
		}
		if slices.ContainsFunc(tolerations, func(t corev1.Toleration) bool { return t.ToleratesTaint(logr.Discard(), taint, false) }) {
			continue
		}
		shouldRun = false
		if taint.Effect == corev1.TaintEffectNoExecute {
			shouldContinue = false
		}
	}
	return shouldRun, shouldContinue
}

func matchesNode(spec *corev1.PodSpec, node *corev1.Node) bool {
	if !labels.SelectorFromSet(spec.NodeSelector).Matches(labels.Set(node.Labels)) {
		return false
	}
	a := spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return true
	}
	// Terms are ORed; the requirements of a term are ANDed.
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		if len(term.MatchExpressions)+len(term.MatchFields) > 0 && termMatches(term, node) {
			return true
		}
	}
	return false
}

func termMatches(term corev1.NodeSelectorTerm, node *corev1.Node) bool {
	sel, ok := requirements(term.MatchExpressions)
	if !ok || !sel.Matches(labels.Set(node.Labels)) {
		return false
	}
	fsel, ok := requirements(term.MatchFields)
	return ok && fsel.Matches(labels.Set{"metadata.name": node.Name}) // the one field nodes can be matched on
}

var operators = map[corev1.NodeSelectorOperator]selection.Operator{
	corev1.NodeSelectorOpIn: selection.In, corev1.NodeSelectorOpNotIn: selection.NotIn,
	corev1.NodeSelectorOpExists: selection.Exists, corev1.NodeSelectorOpDoesNotExist: selection.DoesNotExist,
	corev1.NodeSelectorOpGt: selection.GreaterThan, corev1.NodeSelectorOpLt: selection.LessThan,
}

func requirements(reqs []corev1.NodeSelectorRequirement) (labels.Selector, bool) {
	sel := labels.NewSelector()
	for _, r := range reqs {
		op, ok := operators[r.Operator]
		if !ok {
			return nil, false
		}
		req, err := labels.NewRequirement(r.Key, op, r.Values)
		if err != nil {
			return nil, false
		}
		sel = sel.Add(*req)
	}
	return sel, true
}

// pinned returns a copy of spec that only fits node: its required node affinity is
// replaced by node's name (the node was checked against the rest already).
func pinned(spec *corev1.PodSpec, node string) corev1.PodSpec {
	out := *spec.DeepCopy()
	if out.Affinity == nil {
		out.Affinity = &corev1.Affinity{}
	}
	if out.Affinity.NodeAffinity == nil {
		out.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	out.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{
			{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node}},
		}}},
	}
	withDaemonTolerations(&out)
	return out
}

// targetNode is the node a daemon pod is on or pinned to.
func targetNode(p *corev1.Pod) string {
	if p.Spec.NodeName != "" {
		return p.Spec.NodeName
	}
	a := p.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return ""
	}
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, f := range term.MatchFields {
			if f.Key == "metadata.name" && f.Operator == corev1.NodeSelectorOpIn && len(f.Values) == 1 {
				return f.Values[0]
			}
		}
	}
	return ""
}
