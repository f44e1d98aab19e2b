package framework

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
)

// PodInfo is a pod with what scheduling reads from it computed once: requests, host
// ports, parsed affinity terms and its controller.
type PodInfo struct {
	Pod      *corev1.Pod
	Requests Resource // PodRequests
	NonZero  Resource // PodNonZeroRequests

	RequiredAffinity      []AffinityTerm
	RequiredAntiAffinity  []AffinityTerm
	PreferredAffinity     []WeightedAffinityTerm
	PreferredAntiAffinity []WeightedAffinityTerm

	HostPorts []HostPort
	// Owner is the UID of the pod's controller (its ReplicaSet, StatefulSet, Job...), or "".
	Owner types.UID
}

// AffinityTerm is a parsed pod (anti-)affinity term: which pods it selects, and the
// node label whose values group nodes into domains.
type AffinityTerm struct {
	Namespaces    map[string]bool
	AllNamespaces bool // an empty namespaceSelector
	Selector      labels.Selector
	TopologyKey   string
}

// WeightedAffinityTerm is a preferred term with its weight.
type WeightedAffinityTerm struct {
	AffinityTerm
	Weight int32
}

// HostPort is a port a pod takes on its node's address.
type HostPort struct {
	IP       string // "" or 0.0.0.0 for every address
	Protocol corev1.Protocol
	Port     int32
}

// Conflicts reports whether two host ports cannot both be taken on one node.
func (h HostPort) Conflicts(o HostPort) bool {
	if h.Port != o.Port || h.Protocol != o.Protocol {
		return false
	}
	return h.IP == o.IP || anyIP(h.IP) || anyIP(o.IP)
}

func anyIP(ip string) bool { return ip == "" || ip == "0.0.0.0" || ip == "::" }

// Matches reports whether the term selects pod.
func (t *AffinityTerm) Matches(pod *corev1.Pod) bool {
	if !t.AllNamespaces && !t.Namespaces[pod.Namespace] {
		return false
	}
	return t.Selector.Matches(labels.Set(pod.Labels))
}

// NewPodInfo computes pod's PodInfo. Terms with selectors the API would not have
// accepted select nothing.
func NewPodInfo(pod *corev1.Pod) *PodInfo {
	pi := &PodInfo{Pod: pod, Requests: PodRequests(pod), NonZero: PodNonZeroRequests(pod)}
	if a := pod.Spec.Affinity; a != nil {
		if pa := a.PodAffinity; pa != nil {
			pi.RequiredAffinity = parseTerms(pod, pa.RequiredDuringSchedulingIgnoredDuringExecution)
			pi.PreferredAffinity = parseWeighted(pod, pa.PreferredDuringSchedulingIgnoredDuringExecution)
		}
		if pa := a.PodAntiAffinity; pa != nil {
			pi.RequiredAntiAffinity = parseTerms(pod, pa.RequiredDuringSchedulingIgnoredDuringExecution)
			pi.PreferredAntiAffinity = parseWeighted(pod, pa.PreferredDuringSchedulingIgnoredDuringExecution)
		}
	}
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			for _, p := range list[i].Ports {
				if p.HostPort <= 0 {
					continue
				}
				proto := p.Protocol
				if proto == "" {
					proto = corev1.ProtocolTCP
				}
				pi.HostPorts = append(pi.HostPorts, HostPort{IP: p.HostIP, Protocol: proto, Port: p.HostPort})
			}
		}
	}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		pi.Owner = ref.UID
	}
	return pi
}

// HasAffinity reports whether the pod has any pod (anti-)affinity term.
func (pi *PodInfo) HasAffinity() bool {
	return len(pi.RequiredAffinity)+len(pi.RequiredAntiAffinity)+len(pi.PreferredAffinity)+len(pi.PreferredAntiAffinity) > 0
}

func parseTerms(pod *corev1.Pod, terms []corev1.PodAffinityTerm) []AffinityTerm {
	out := make([]AffinityTerm, 0, len(terms))
	for i := range terms {
		out = append(out, parseTerm(pod, &terms[i]))
	}
	return out
}

func parseWeighted(pod *corev1.Pod, terms []corev1.WeightedPodAffinityTerm) []WeightedAffinityTerm {
	out := make([]WeightedAffinityTerm, 0, len(terms))
	for i := range terms {
		out = append(out, WeightedAffinityTerm{AffinityTerm: parseTerm(pod, &terms[i].PodAffinityTerm), Weight: terms[i].Weight})
	}
	return out
}

// parseTerm: no namespaces and no namespaceSelector mean the pod's own namespace; an
// empty namespaceSelector means every namespace. A non-empty namespaceSelector needs
// namespace labels, which this scheduler does not watch: it then means the listed
// namespaces only. matchLabelKeys and mismatchLabelKeys add the pod's own values.
func parseTerm(pod *corev1.Pod, t *corev1.PodAffinityTerm) AffinityTerm {
	at := AffinityTerm{TopologyKey: t.TopologyKey, Namespaces: map[string]bool{}}
	for _, ns := range t.Namespaces {
		at.Namespaces[ns] = true
	}
	switch {
	case t.NamespaceSelector != nil && len(t.NamespaceSelector.MatchLabels)+len(t.NamespaceSelector.MatchExpressions) == 0:
		at.AllNamespaces = true
	case len(t.Namespaces) == 0 && t.NamespaceSelector == nil:
		at.Namespaces[pod.Namespace] = true
	}
	sel, err := metav1.LabelSelectorAsSelector(t.LabelSelector)
	if err != nil || t.LabelSelector == nil {
		at.Selector = labels.Nothing()
		return at
	}
	for _, key := range t.MatchLabelKeys {
		if v, ok := pod.Labels[key]; ok {
			if r, err := labels.NewRequirement(key, selection.In, []string{v}); err == nil {
				sel = sel.Add(*r)
			}
		}
	}
	for _, key := range t.MismatchLabelKeys {
		if v, ok := pod.Labels[key]; ok {
			if r, err := labels.NewRequirement(key, selection.NotIn, []string{v}); err == nil {
				sel = sel.Add(*r)
			}
		}
	}
	at.Selector = sel
	return at
}
