package nodeaffinity

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// Required is what a pod requires of a node's labels: its nodeSelector and its
// required node affinity terms.
type Required struct {
	selector map[string]string
	terms    []corev1.NodeSelectorTerm // ORed; nil means no affinity
}

// RequiredOf returns pod's requirements.
func RequiredOf(pod *corev1.Pod) Required {
	r := Required{selector: pod.Spec.NodeSelector}
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		r.terms = a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		if r.terms == nil {
			r.terms = []corev1.NodeSelectorTerm{} // present but empty: matches nothing
		}
	}
	return r
}

// Empty reports whether the pod requires nothing.
func (r Required) Empty() bool { return len(r.selector) == 0 && r.terms == nil }

// Match reports whether node meets the requirements.
func (r Required) Match(node *corev1.Node) bool {
	for k, v := range r.selector {
		if got, ok := node.Labels[k]; !ok || got != v {
			return false
		}
	}
	if r.terms == nil {
		return true
	}
	for i := range r.terms {
		if MatchTerm(&r.terms[i], node) {
			return true
		}
	}
	return false
}

// MatchTerm reports whether node meets every expression and field of a term. A term
// with neither matches no node.
func MatchTerm(t *corev1.NodeSelectorTerm, node *corev1.Node) bool {
	if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
		return false
	}
	for i := range t.MatchExpressions {
		e := &t.MatchExpressions[i]
		v, ok := node.Labels[e.Key]
		if !matchRequirement(e, v, ok) {
			return false
		}
	}
	for i := range t.MatchFields {
		e := &t.MatchFields[i]
		if e.Key != "metadata.name" || !matchRequirement(e, node.Name, true) {
			return false
		}
	}
	return true
}

func matchRequirement(e *corev1.NodeSelectorRequirement, v string, present bool) bool {
	switch e.Operator {
	case corev1.NodeSelectorOpIn:
		return present && contains(e.Values, v)
	case corev1.NodeSelectorOpNotIn:
		return !present || !contains(e.Values, v)
	case corev1.NodeSelectorOpExists:
		return present
	case corev1.NodeSelectorOpDoesNotExist:
		return !present
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if !present || len(e.Values) != 1 {
			return false
		}
		have, err1 := strconv.ParseInt(v, 10, 64)
		want, err2 := strconv.ParseInt(e.Values[0], 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if e.Operator == corev1.NodeSelectorOpGt {
			return have > want
		}
		return have < want
	}
	return false
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}
