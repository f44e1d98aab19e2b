package scheduler

import (
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// conditionPatch is a strategic merge patch of pods/status that sets one condition
// (conditions merge by type) and guards the pod's UID, as upstream's scheduler sends
// it; changed is false when the pod already carries the same condition. The
// transition time moves only when the status does.
func conditionPatch(pod *corev1.Pod, cond corev1.PodCondition, now metav1.Time) (patch []byte, changed bool, err error) {
	cond.LastTransitionTime = now
	cond.LastProbeTime = metav1.Time{}
	for _, c := range pod.Status.Conditions {
		if c.Type != cond.Type {
			continue
		}
		if c.Status == cond.Status && c.Reason == cond.Reason && c.Message == cond.Message {
			return nil, false, nil
		}
		if c.Status == cond.Status {
			cond.LastTransitionTime = c.LastTransitionTime
		}
	}
	type status struct {
		Conditions []corev1.PodCondition `json:"conditions"`
	}
	type meta struct {
		UID types.UID `json:"uid"`
	}
	patch, err = json.Marshal(struct {
		Metadata meta   `json:"metadata"`
		Status   status `json:"status"`
	}{meta{pod.UID}, status{[]corev1.PodCondition{cond}}})
	return patch, true, err
}
