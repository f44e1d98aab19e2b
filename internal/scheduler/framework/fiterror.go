package framework

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Diagnosis is why a pod fit no node: how many nodes gave each reason, and which
// plugins rejected it (the pod is retried on events those plugins care about).
type Diagnosis struct {
	// Reasons counts nodes per reason ("Insufficient cpu": 2).
	Reasons map[string]int
	// Resolvable and Unresolvable count the nodes rejected with Unschedulable (removing
	// pods could help) and UnschedulableAndUnresolvable.
	Resolvable, Unresolvable int
	// Plugins are the plugins that rejected the pod on some node.
	Plugins map[string]bool
	// PreFilterMsg is set when a PreFilter rejected the pod for every node at once.
	PreFilterMsg string
}

// NewDiagnosis returns an empty Diagnosis.
func NewDiagnosis() *Diagnosis {
	return &Diagnosis{Reasons: map[string]int{}, Plugins: map[string]bool{}}
}

// Add counts one node's rejection.
func (d *Diagnosis) Add(s *Status) {
	for _, r := range s.Reasons() {
		d.Reasons[r]++
	}
	if s.Code() == UnschedulableAndUnresolvable {
		d.Unresolvable++
	} else {
		d.Resolvable++
	}
	d.Plugins[s.Plugin()] = true
}

// FitError is a pod that fit no node. Its message is upstream's, as `kubectl describe
// pod` shows it in the FailedScheduling event and the PodScheduled condition.
type FitError struct {
	Pod         *corev1.Pod
	NumAllNodes int
	Diagnosis   *Diagnosis
}

func (e *FitError) Error() string {
	msg := fmt.Sprintf("0/%d nodes are available:", e.NumAllNodes)
	if e.Diagnosis.PreFilterMsg != "" {
		msg += " " + e.Diagnosis.PreFilterMsg + "."
	} else if h := histogram(e.Diagnosis.Reasons); h != "" {
		msg += " " + h + "."
	}
	return msg + " " + e.preemptionMessage()
}

// preemptionMessage says why preemption (which this scheduler does not do) would not
// help, in upstream's words: nodes rejected for reasons no eviction changes, and nodes
// where evicting pods of the same or higher priority is not allowed.
func (e *FitError) preemptionMessage() string {
	if p := e.Pod.Spec.PreemptionPolicy; p != nil && *p == corev1.PreemptNever {
		return "preemption: not eligible due to preemptionPolicy=Never."
	}
	counts := map[string]int{}
	if e.Diagnosis.PreFilterMsg != "" {
		counts["Preemption is not helpful for scheduling"] = e.NumAllNodes
	} else {
		if e.Diagnosis.Unresolvable > 0 {
			counts["Preemption is not helpful for scheduling"] = e.Diagnosis.Unresolvable
		}
		if e.Diagnosis.Resolvable > 0 {
			counts["No preemption victims found for incoming pod"] = e.Diagnosis.Resolvable
		}
	}
	return fmt.Sprintf("preemption: 0/%d nodes are available: %s.", e.NumAllNodes, histogram(counts))
}

// histogram is "2 Insufficient cpu, 1 node(s) were unschedulable", sorted by text.
func histogram(counts map[string]int) string {
	parts := make([]string, 0, len(counts))
	for reason, n := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", n, reason))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
