// Package pods answers the questions controllers ask about a pod: does it still count,
// is it ready, has it been ready long enough to be available.
package pods

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Active reports whether the pod counts toward its controller's replicas: not finished
// and not being deleted.
func Active(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil
}

// Condition returns the pod's condition of type t, or nil.
func Condition(status *corev1.PodStatus, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range status.Conditions {
		if status.Conditions[i].Type == t {
			return &status.Conditions[i]
		}
	}
	return nil
}

// Ready reports whether the pod's Ready condition is True.
func Ready(p *corev1.Pod) bool {
	c := Condition(&p.Status, corev1.PodReady)
	return c != nil && c.Status == corev1.ConditionTrue
}

// ReadySince is when the pod last became ready; zero if it is not ready.
func ReadySince(p *corev1.Pod) time.Time {
	c := Condition(&p.Status, corev1.PodReady)
	if c == nil || c.Status != corev1.ConditionTrue {
		return time.Time{}
	}
	return c.LastTransitionTime.Time
}

// Available reports whether the pod has been ready for at least minReadySeconds at now.
func Available(p *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	if !Ready(p) {
		return false
	}
	if minReadySeconds == 0 {
		return true
	}
	since := ReadySince(p)
	return !since.IsZero() && since.Add(time.Duration(minReadySeconds)*time.Second).Before(now)
}

// Restarts is the highest restart count among the pod's containers.
func Restarts(p *corev1.Pod) int32 {
	var most int32
	for _, c := range p.Status.ContainerStatuses {
		most = max(most, c.RestartCount)
	}
	return most
}
