package replicaset

import (
	"context"
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/berth-project/berth/internal/controller/pods"
)

// status counts rs's owned pods: all of them, those carrying every template label,
// the ready ones and the available ones (ready for minReadySeconds). A failed create
// or delete shows as the ReplicaFailure condition until a sync succeeds.
func (c *Controller) status(rs *appsv1.ReplicaSet, owned []*corev1.Pod, manageErr error) appsv1.ReplicaSetStatus {
	st := *rs.Status.DeepCopy()
	tmpl := labels.SelectorFromSet(rs.Spec.Template.Labels)
	var full, ready, available int32
	now := c.now()
	for _, p := range owned {
		if tmpl.Matches(labels.Set(p.Labels)) {
			full++
		}
		if pods.Ready(p) {
			ready++
			if pods.Available(p, rs.Spec.MinReadySeconds, now) {
				available++
			}
		}
	}
	failure := condition(st.Conditions, appsv1.ReplicaSetReplicaFailure)
	switch {
	case manageErr != nil && failure == nil:
		reason := "FailedCreate"
		if len(owned) > int(replicas(rs)) {
			reason = "FailedDelete"
		}
		st.Conditions = append(st.Conditions, appsv1.ReplicaSetCondition{
			Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue,
			LastTransitionTime: metav1.NewTime(now), Reason: reason, Message: manageErr.Error(),
		})
	case manageErr == nil && failure != nil:
		var keep []appsv1.ReplicaSetCondition
		for _, cond := range st.Conditions {
			if cond.Type != appsv1.ReplicaSetReplicaFailure {
				keep = append(keep, cond)
			}
		}
		st.Conditions = keep
	}
	st.Replicas = int32(len(owned))
	st.FullyLabeledReplicas, st.ReadyReplicas, st.AvailableReplicas = full, ready, available
	return st
}

func condition(conds []appsv1.ReplicaSetCondition, t appsv1.ReplicaSetConditionType) *appsv1.ReplicaSetCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// updateStatus writes st (with the observed generation) unless nothing changed; on a
// conflict it retries once against a fresh copy.
func (c *Controller) updateStatus(ctx context.Context, rs *appsv1.ReplicaSet, st appsv1.ReplicaSetStatus) (*appsv1.ReplicaSet, error) {
	st.ObservedGeneration = rs.Generation
	if reflect.DeepEqual(rs.Status, st) {
		return rs, nil
	}
	client := c.client.AppsV1().ReplicaSets(rs.Namespace)
	var err error
	for attempt := 0; ; attempt++ {
		cp := rs.DeepCopy()
		cp.Status = st
		var out *appsv1.ReplicaSet
		if out, err = client.UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err == nil {
			return out, nil
		}
		if attempt == 1 {
			return nil, err
		}
		if rs, err = client.Get(ctx, rs.Name, metav1.GetOptions{}); err != nil {
			return nil, err
		}
		st.ObservedGeneration = rs.Generation
	}
}
