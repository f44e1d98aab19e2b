// Package testobj builds the pods and nodes the scheduler's tests place, with a fluent
// API: testobj.Pod("p").Req("cpu", "500m").Toleration("k", "v", "NoSchedule").Obj().
package testobj

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// PodBuilder builds a pod.
type PodBuilder struct{ p corev1.Pod }

// Pod starts a pod in namespace "default" with one container, UID "uid-NAME".
func Pod(name string) *PodBuilder {
	return &PodBuilder{p: corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "pause"}}},
	}}
}

// Obj returns the pod.
func (b *PodBuilder) Obj() *corev1.Pod { p := b.p.DeepCopy(); return p }

// Namespace sets the namespace.
func (b *PodBuilder) Namespace(ns string) *PodBuilder { b.p.Namespace = ns; return b }

// Node binds the pod to a node.
func (b *PodBuilder) Node(name string) *PodBuilder { b.p.Spec.NodeName = name; return b }

// Label adds a label.
func (b *PodBuilder) Label(k, v string) *PodBuilder {
	if b.p.Labels == nil {
		b.p.Labels = map[string]string{}
	}
	b.p.Labels[k] = v
	return b
}

// Req adds requests to the first container: Req("cpu", "1", "memory", "1Gi").
func (b *PodBuilder) Req(kv ...string) *PodBuilder {
	c := &b.p.Spec.Containers[0]
	if c.Resources.Requests == nil {
		c.Resources.Requests = corev1.ResourceList{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		c.Resources.Requests[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return b
}

// Container adds a container with requests.
func (b *PodBuilder) Container(kv ...string) *PodBuilder {
	c := corev1.Container{Name: "c" + string(rune('a'+len(b.p.Spec.Containers))), Image: "pause", Resources: corev1.ResourceRequirements{Requests: List(kv...)}}
	b.p.Spec.Containers = append(b.p.Spec.Containers, c)
	return b
}

// Init adds an init container with requests; sidecar makes it restartable.
func (b *PodBuilder) Init(sidecar bool, kv ...string) *PodBuilder {
	c := corev1.Container{Name: "i" + string(rune('a'+len(b.p.Spec.InitContainers))), Image: "pause", Resources: corev1.ResourceRequirements{Requests: List(kv...)}}
	if sidecar {
		always := corev1.ContainerRestartPolicyAlways
		c.RestartPolicy = &always
	}
	b.p.Spec.InitContainers = append(b.p.Spec.InitContainers, c)
	return b
}

// HostPort adds a host port to the first container.
func (b *PodBuilder) HostPort(ip string, proto corev1.Protocol, port int32) *PodBuilder {
	c := &b.p.Spec.Containers[0]
	c.Ports = append(c.Ports, corev1.ContainerPort{HostIP: ip, Protocol: proto, HostPort: port, ContainerPort: port})
	return b
}

// NodeSelector adds a nodeSelector entry.
func (b *PodBuilder) NodeSelector(k, v string) *PodBuilder {
	if b.p.Spec.NodeSelector == nil {
		b.p.Spec.NodeSelector = map[string]string{}
	}
	b.p.Spec.NodeSelector[k] = v
	return b
}

func (b *PodBuilder) affinity() *corev1.Affinity {
	if b.p.Spec.Affinity == nil {
		b.p.Spec.Affinity = &corev1.Affinity{}
	}
	return b.p.Spec.Affinity
}

// NodeAffinityIn requires one node selector term: key In values.
func (b *PodBuilder) NodeAffinityIn(key string, op corev1.NodeSelectorOperator, values ...string) *PodBuilder {
	a := b.affinity()
	if a.NodeAffinity == nil {
		a.NodeAffinity = &corev1.NodeAffinity{}
	}
	if a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{}
	}
	r := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	r.NodeSelectorTerms = append(r.NodeSelectorTerms, corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: op, Values: values}}})
	return b
}

// PreferNode adds a preferred node affinity term: key In values, with a weight.
func (b *PodBuilder) PreferNode(weight int32, key string, values ...string) *PodBuilder {
	a := b.affinity()
	if a.NodeAffinity == nil {
		a.NodeAffinity = &corev1.NodeAffinity{}
	}
	a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution = append(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution,
		corev1.PreferredSchedulingTerm{Weight: weight, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: corev1.NodeSelectorOpIn, Values: values}}}})
	return b
}

func term(topologyKey, labelKey, labelValue string) corev1.PodAffinityTerm {
	return corev1.PodAffinityTerm{TopologyKey: topologyKey, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{labelKey: labelValue}}}
}

// PodAffinity requires pods labelled k=v in the same topologyKey domain.
func (b *PodBuilder) PodAffinity(topologyKey, k, v string) *PodBuilder {
	a := b.affinity()
	if a.PodAffinity == nil {
		a.PodAffinity = &corev1.PodAffinity{}
	}
	a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution = append(a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution, term(topologyKey, k, v))
	return b
}

// PodAntiAffinity forbids pods labelled k=v in the same topologyKey domain.
func (b *PodBuilder) PodAntiAffinity(topologyKey, k, v string) *PodBuilder {
	a := b.affinity()
	if a.PodAntiAffinity == nil {
		a.PodAntiAffinity = &corev1.PodAntiAffinity{}
	}
	a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution = append(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution, term(topologyKey, k, v))
	return b
}

// PreferPodAffinity prefers (weight > 0) or avoids (anti) pods labelled k=v.
func (b *PodBuilder) PreferPodAffinity(anti bool, weight int32, topologyKey, k, v string) *PodBuilder {
	a := b.affinity()
	w := corev1.WeightedPodAffinityTerm{Weight: weight, PodAffinityTerm: term(topologyKey, k, v)}
	if anti {
		if a.PodAntiAffinity == nil {
			a.PodAntiAffinity = &corev1.PodAntiAffinity{}
		}
		a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution = append(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution, w)
		return b
	}
	if a.PodAffinity == nil {
		a.PodAffinity = &corev1.PodAffinity{}
	}
	a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution = append(a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution, w)
	return b
}

// Spread adds a topology spread constraint over pods labelled k=v.
func (b *PodBuilder) Spread(maxSkew int32, topologyKey string, when corev1.UnsatisfiableConstraintAction, k, v string) *PodBuilder {
	b.p.Spec.TopologySpreadConstraints = append(b.p.Spec.TopologySpreadConstraints, corev1.TopologySpreadConstraint{
		MaxSkew: maxSkew, TopologyKey: topologyKey, WhenUnsatisfiable: when,
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{k: v}},
	})
	return b
}

// Toleration adds a toleration (operator Equal, or Exists when value is "").
func (b *PodBuilder) Toleration(key, value string, effect corev1.TaintEffect) *PodBuilder {
	t := corev1.Toleration{Key: key, Operator: corev1.TolerationOpEqual, Value: value, Effect: effect}
	if value == "" {
		t.Operator = corev1.TolerationOpExists
	}
	b.p.Spec.Tolerations = append(b.p.Spec.Tolerations, t)
	return b
}

// Owner sets a controller owner reference.
func (b *PodBuilder) Owner(kind, name string) *PodBuilder {
	yes := true
	b.p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: types.UID("uid-" + name), Controller: &yes}}
	return b
}

// Priority sets spec.priority.
func (b *PodBuilder) Priority(p int32) *PodBuilder { b.p.Spec.Priority = &p; return b }

// Phase sets status.phase.
func (b *PodBuilder) Phase(p corev1.PodPhase) *PodBuilder { b.p.Status.Phase = p; return b }

// NodeBuilder builds a node.
type NodeBuilder struct{ n corev1.Node }

// Node starts a node with 4 cpu, 32Gi memory and room for 110 pods, labelled with its hostname.
func Node(name string) *NodeBuilder {
	alloc := List("cpu", "4", "memory", "32Gi", "pods", "110")
	return &NodeBuilder{n: corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status:     corev1.NodeStatus{Capacity: alloc, Allocatable: alloc.DeepCopy()},
	}}
}

// Obj returns the node.
func (b *NodeBuilder) Obj() *corev1.Node { return b.n.DeepCopy() }

// Alloc replaces allocatable: Alloc("cpu", "2", "pods", "10").
func (b *NodeBuilder) Alloc(kv ...string) *NodeBuilder {
	b.n.Status.Allocatable = List(kv...)
	return b
}

// Label adds a label.
func (b *NodeBuilder) Label(k, v string) *NodeBuilder { b.n.Labels[k] = v; return b }

// Taint adds a taint.
func (b *NodeBuilder) Taint(key, value string, effect corev1.TaintEffect) *NodeBuilder {
	b.n.Spec.Taints = append(b.n.Spec.Taints, corev1.Taint{Key: key, Value: value, Effect: effect})
	return b
}

// Unschedulable cordons the node.
func (b *NodeBuilder) Unschedulable() *NodeBuilder { b.n.Spec.Unschedulable = true; return b }

// List makes a ResourceList from name, quantity pairs.
func List(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}
