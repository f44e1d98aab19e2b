package framework

import (
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
)

// Tolerates reports whether any of the tolerations tolerates the taint. The numeric
// operators Lt and Gt match only if comparisons is on (upstream's
// TaintTolerationComparisonOperators feature, off by default).
func Tolerates(tolerations []corev1.Toleration, taint *corev1.Taint, comparisons bool) bool {
	for i := range tolerations {
		if tolerations[i].ToleratesTaint(logr.Discard(), taint, comparisons) {
			return true
		}
	}
	return false
}

// CycleState key under which the scheduler stores the PodInfo of the pod being scheduled.
const podInfoKey StateKey = "PodInfo"

// WritePodInfo stores the PodInfo of the pod being scheduled, so plugins need not
// compute it again.
func WritePodInfo(state *CycleState, pi *PodInfo) { state.Write(podInfoKey, pi) }

// PodInfoOf returns the PodInfo stored for pod, or computes it.
func PodInfoOf(state *CycleState, pod *corev1.Pod) *PodInfo {
	if pi, ok := ReadState[*PodInfo](state, podInfoKey); ok && pi.Pod == pod {
		return pi
	}
	return NewPodInfo(pod)
}
