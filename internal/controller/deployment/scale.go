package deployment

import (
	"context"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// scale brings the ReplicaSets' total to spec.replicas (plus surge while rolling):
// a lone active ReplicaSet takes it all; a saturated new ReplicaSet leaves the old
// ones nothing; otherwise, mid-rollout, every active ReplicaSet grows or shrinks in
// proportion to its size, with the rounding leftover going to the largest.
func (c *Controller) scale(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) error {
	if rs := activeOrLatest(newRS, oldRSs); rs != nil {
		if specReplicas(rs) == desired(d) {
			return nil
		}
		_, _, err := c.scaleAndRecord(ctx, d, rs, desired(d))
		return err
	}
	if saturated(d, newRS) {
		for _, old := range active(oldRSs) {
			if _, _, err := c.scaleAndRecord(ctx, d, old, 0); err != nil {
				return err
			}
		}
		return nil
	}
	if !rolling(d) {
		return nil
	}
	all := active(append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS))
	var allowed int32
	if desired(d) > 0 {
		allowed = desired(d) + maxSurge(d)
	}
	toAdd := allowed - sumSpec(all)
	op := ""
	switch {
	case toAdd > 0:
		sortBySize(all, true)
		op = "up"
	case toAdd < 0:
		sortBySize(all, false)
		op = "down"
	}
	size := map[string]int32{}
	var added int32
	for _, rs := range all {
		p := proportion(rs, d, toAdd, added)
		size[rs.Name] = specReplicas(rs) + p
		added += p
	}
	for i, rs := range all {
		if i == 0 && toAdd != 0 {
			size[rs.Name] = max(0, size[rs.Name]+toAdd-added)
		}
		if _, _, err := c.scaleRS(ctx, d, rs, size[rs.Name], op); err != nil {
			return err
		}
	}
	return nil
}

// activeOrLatest returns the only ReplicaSet with replicas, or, when none has any,
// the new one (or else the newest old one); nil when several have replicas.
func activeOrLatest(newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	if newRS == nil && len(oldRSs) == 0 {
		return nil
	}
	newestFirst := append([]*appsv1.ReplicaSet(nil), oldRSs...)
	sort.SliceStable(newestFirst, func(i, j int) bool { return olderFirst(newestFirst[j], newestFirst[i]) })
	all := active(append(newestFirst, newRS))
	switch len(all) {
	case 0:
		if newRS != nil {
			return newRS
		}
		return newestFirst[0]
	case 1:
		return all[0]
	}
	return nil
}

// saturated reports whether the new ReplicaSet has all of spec.replicas, available.
func saturated(d *appsv1.Deployment, rs *appsv1.ReplicaSet) bool {
	if rs == nil {
		return false
	}
	n, ok := intAnnotation(rs, DesiredReplicasAnnotation)
	return ok && n == desired(d) && specReplicas(rs) == desired(d) && rs.Status.AvailableReplicas == desired(d)
}

// scaleAndRecord sets rs's replicas to n if they differ.
func (c *Controller) scaleAndRecord(ctx context.Context, d *appsv1.Deployment, rs *appsv1.ReplicaSet, n int32) (bool, *appsv1.ReplicaSet, error) {
	if specReplicas(rs) == n {
		return false, rs, nil
	}
	op := "down"
	if specReplicas(rs) < n {
		op = "up"
	}
	return c.scaleRS(ctx, d, rs, n, op)
}

// scaleRS writes rs's replicas and the Deployment size they were set for, and records
// a ScalingReplicaSet event on d when the size moved.
func (c *Controller) scaleRS(ctx context.Context, d *appsv1.Deployment, rs *appsv1.ReplicaSet, n int32, op string) (bool, *appsv1.ReplicaSet, error) {
	resize := specReplicas(rs) != n
	maxReplicas := desired(d) + maxSurge(d)
	if !resize && !replicasAnnotationsStale(rs, desired(d), maxReplicas) {
		return false, rs, nil
	}
	from := specReplicas(rs)
	cp := rs.DeepCopy()
	cp.Spec.Replicas = &n
	setReplicasAnnotations(cp, desired(d), maxReplicas)
	out, err := c.client.AppsV1().ReplicaSets(cp.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
	if err != nil {
		return false, rs, err
	}
	if resize {
		c.recorder.Eventf(d, corev1.EventTypeNormal, "ScalingReplicaSet", "Scaled %s replica set %s from %d to %d", op, rs.Name, from, n)
	}
	return resize, out, nil
}
