package deployment

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berth-project/berth/internal/controller/queue"
)

// Condition reasons (upstream's; kubectl rollout status reads TimedOutReason).
const (
	NewRSReason          = "NewReplicaSetCreated"
	FoundNewRSReason     = "FoundNewReplicaSet"
	ReplicaSetUpdated    = "ReplicaSetUpdated"
	NewRSAvailableReason = "NewReplicaSetAvailable"
	TimedOutReason       = "ProgressDeadlineExceeded"
	FailedRSCreateReason = "ReplicaSetCreateError"
	PausedReason         = "DeploymentPaused"
	ResumedReason        = "DeploymentResumed"
	AvailableReason      = "MinimumReplicasAvailable"
	UnavailableReason    = "MinimumReplicasUnavailable"
)

func hasProgressDeadline(d *appsv1.Deployment) bool {
	return d.Spec.ProgressDeadlineSeconds != nil && *d.Spec.ProgressDeadlineSeconds != math.MaxInt32
}

func (c *Controller) condition(t appsv1.DeploymentConditionType, s corev1.ConditionStatus, reason, msg string) appsv1.DeploymentCondition {
	now := metav1.NewTime(c.now())
	return appsv1.DeploymentCondition{Type: t, Status: s, Reason: reason, Message: msg, LastUpdateTime: now, LastTransitionTime: now}
}

func getCondition(st appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

// setCondition replaces the condition of cond's type unless it already says the same
// (status and reason); an unchanged status keeps its transition time.
func setCondition(st *appsv1.DeploymentStatus, cond appsv1.DeploymentCondition) {
	cur := getCondition(*st, cond.Type)
	if cur != nil && cur.Status == cond.Status && cur.Reason == cond.Reason {
		return
	}
	if cur != nil && cur.Status == cond.Status {
		cond.LastTransitionTime = cur.LastTransitionTime
	}
	removeCondition(st, cond.Type)
	st.Conditions = append(st.Conditions, cond)
}

func removeCondition(st *appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) {
	var keep []appsv1.DeploymentCondition
	for _, c := range st.Conditions {
		if c.Type != t {
			keep = append(keep, c)
		}
	}
	st.Conditions = keep
}

// calculateStatus sums the ReplicaSets into d's status and sets Available by whether
// at least spec.replicas-maxUnavailable pods are available.
func (c *Controller) calculateStatus(d *appsv1.Deployment, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) appsv1.DeploymentStatus {
	all := append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS)
	available := sumStatus(all, statusAvailable)
	st := appsv1.DeploymentStatus{
		ObservedGeneration:  d.Generation,
		Replicas:            sumStatus(all, statusReplicas),
		UpdatedReplicas:     sumStatus([]*appsv1.ReplicaSet{newRS}, statusReplicas),
		ReadyReplicas:       sumStatus(all, statusReady),
		AvailableReplicas:   available,
		UnavailableReplicas: max(0, sumSpec(all)-available),
		CollisionCount:      d.Status.CollisionCount,
	}
	for _, cond := range d.Status.Conditions {
		st.Conditions = append(st.Conditions, *cond.DeepCopy())
	}
	if available >= desired(d)-maxUnavailable(d) {
		setCondition(&st, c.condition(appsv1.DeploymentAvailable, corev1.ConditionTrue, AvailableReason, "Deployment has minimum availability."))
	} else {
		setCondition(&st, c.condition(appsv1.DeploymentAvailable, corev1.ConditionFalse, UnavailableReason, "Deployment does not have minimum availability."))
	}
	return st
}

// syncStatus writes the calculated status if it changed.
func (c *Controller) syncStatus(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) error {
	st := c.calculateStatus(d, newRS, oldRSs)
	if reflect.DeepEqual(d.Status, st) {
		return nil
	}
	d.Status = st
	return c.updateStatus(ctx, d)
}

// complete reports whether every replica is updated and available for the current
// generation.
func complete(d *appsv1.Deployment, st *appsv1.DeploymentStatus) bool {
	n := desired(d)
	return st.UpdatedReplicas == n && st.Replicas == n && st.AvailableReplicas == n && st.ObservedGeneration >= d.Generation
}

// progressing reports whether st shows progress over d's last status.
func progressing(d *appsv1.Deployment, st *appsv1.DeploymentStatus) bool {
	old := d.Status
	return st.UpdatedReplicas > old.UpdatedReplicas ||
		st.Replicas-st.UpdatedReplicas < old.Replicas-old.UpdatedReplicas ||
		st.ReadyReplicas > old.ReadyReplicas || st.AvailableReplicas > old.AvailableReplicas
}

func (c *Controller) timedOut(d *appsv1.Deployment, st *appsv1.DeploymentStatus) bool {
	cond := getCondition(*st, appsv1.DeploymentProgressing)
	if !hasProgressDeadline(d) || cond == nil || cond.Reason == NewRSAvailableReason {
		return false
	}
	if cond.Reason == TimedOutReason {
		return true
	}
	return cond.LastUpdateTime.Add(time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second).Before(c.now())
}

// syncRolloutStatus writes the status of a rollout, with the Progressing condition:
// complete (NewReplicaSetAvailable), progressing (ReplicaSetUpdated, its update time
// moving with each sign of progress), or stuck past progressDeadlineSeconds
// (ProgressDeadlineExceeded). A rollout that could still time out is re-checked then.
func (c *Controller) syncRolloutStatus(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) error {
	st := c.calculateStatus(d, newRS, oldRSs)
	if !hasProgressDeadline(d) {
		removeCondition(&st, appsv1.DeploymentProgressing)
	}
	cur := getCondition(d.Status, appsv1.DeploymentProgressing)
	done := st.Replicas == st.UpdatedReplicas && cur != nil && cur.Reason == NewRSAvailableReason
	if hasProgressDeadline(d) && !done {
		what := fmt.Sprintf("Deployment %q", d.Name)
		if newRS != nil {
			what = fmt.Sprintf("ReplicaSet %q", newRS.Name)
		}
		switch {
		case complete(d, &st):
			setCondition(&st, c.condition(appsv1.DeploymentProgressing, corev1.ConditionTrue, NewRSAvailableReason, what+" has successfully progressed."))
		case progressing(d, &st):
			cond := c.condition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReplicaSetUpdated, what+" is progressing.")
			if cur != nil {
				if cur.Status == corev1.ConditionTrue {
					cond.LastTransitionTime = cur.LastTransitionTime
				}
				removeCondition(&st, appsv1.DeploymentProgressing)
			}
			st.Conditions = append(st.Conditions, cond)
		case c.timedOut(d, &st):
			setCondition(&st, c.condition(appsv1.DeploymentProgressing, corev1.ConditionFalse, TimedOutReason, what+" has timed out progressing."))
		}
	}
	if failure := replicaFailure(newRS, oldRSs); failure != nil {
		setCondition(&st, *failure)
	} else {
		removeCondition(&st, appsv1.DeploymentReplicaFailure)
	}
	if reflect.DeepEqual(d.Status, st) {
		c.requeueStuck(d, st)
		return nil
	}
	d.Status = st
	return c.updateStatus(ctx, d)
}

// replicaFailure lifts a ReplicaSet's ReplicaFailure condition (the new one's first)
// to the Deployment.
func replicaFailure(newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) *appsv1.DeploymentCondition {
	for _, rs := range append([]*appsv1.ReplicaSet{newRS}, oldRSs...) {
		if rs == nil {
			continue
		}
		for _, c := range rs.Status.Conditions {
			if c.Type == appsv1.ReplicaSetReplicaFailure {
				return &appsv1.DeploymentCondition{Type: appsv1.DeploymentReplicaFailure, Status: c.Status, Reason: c.Reason,
					Message: c.Message, LastUpdateTime: c.LastTransitionTime, LastTransitionTime: c.LastTransitionTime}
			}
		}
	}
	return nil
}

// requeueStuck schedules a sync for when a rollout with no progress now would pass
// its deadline; nothing else would wake it then.
func (c *Controller) requeueStuck(d *appsv1.Deployment, st appsv1.DeploymentStatus) {
	cur := getCondition(d.Status, appsv1.DeploymentProgressing)
	if !hasProgressDeadline(d) || cur == nil || complete(d, &st) || cur.Reason == TimedOutReason {
		return
	}
	key, _ := queue.Key(d)
	after := cur.LastUpdateTime.Add(time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second).Sub(c.now())
	if after < time.Second {
		c.queue.AddRateLimited(key)
		return
	}
	c.queue.AddAfter(key, after)
}
