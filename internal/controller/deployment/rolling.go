package deployment

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
)

// rolloutRolling moves a RollingUpdate one step: scale the new ReplicaSet up within
// maxSurge, or else scale old ones down within maxUnavailable; once complete, trim
// the history.
func (c *Controller) rolloutRolling(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) error {
	newRS, oldRSs, err := c.replicaSets(ctx, d, rsList, true)
	if err != nil {
		return err
	}
	all := append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS)
	scaledUp, err := c.reconcileNew(ctx, d, all, newRS)
	if err != nil {
		return err
	}
	if scaledUp {
		return c.syncRolloutStatus(ctx, d, newRS, oldRSs)
	}
	scaledDown, err := c.reconcileOld(ctx, d, all, active(oldRSs), newRS)
	if err != nil {
		return err
	}
	if scaledDown {
		return c.syncRolloutStatus(ctx, d, newRS, oldRSs)
	}
	if complete(d, &d.Status) {
		if err := c.cleanup(ctx, d, oldRSs); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, d, newRS, oldRSs)
}

func (c *Controller) reconcileNew(ctx context.Context, d *appsv1.Deployment, all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (bool, error) {
	switch n := specReplicas(newRS); {
	case n == desired(d):
		return false, nil
	case n > desired(d):
		scaled, _, err := c.scaleAndRecord(ctx, d, newRS, desired(d))
		return scaled, err
	}
	scaled, _, err := c.scaleAndRecord(ctx, d, newRS, newRSReplicas(d, all, newRS))
	return scaled, err
}

// reconcileOld scales old ReplicaSets down as far as availability allows: first
// their unavailable pods (which cost no availability), then available ones down to
// spec.replicas-maxUnavailable available pods in total.
func (c *Controller) reconcileOld(ctx context.Context, d *appsv1.Deployment, all, oldRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) (bool, error) {
	if sumSpec(oldRSs) == 0 {
		return false, nil
	}
	minAvailable := desired(d) - maxUnavailable(d)
	newUnavailable := specReplicas(newRS) - newRS.Status.AvailableReplicas
	maxScaledDown := sumSpec(all) - minAvailable - newUnavailable
	if maxScaledDown <= 0 || behind(oldRSs) {
		return false, nil
	}
	oldRSs, cleaned, err := c.cleanupUnhealthy(ctx, d, oldRSs, maxScaledDown)
	if err != nil {
		return false, err
	}
	all = append(append([]*appsv1.ReplicaSet(nil), oldRSs...), newRS)
	scaled, err := c.scaleDownOld(ctx, d, all, oldRSs)
	if err != nil {
		return false, err
	}
	return cleaned+scaled > 0, nil
}

// behind reports whether an old ReplicaSet shows more available pods than it asks
// for: it was just scaled down and its status still counts the pods about to go.
// Acting on that view would take them for unhealthy replicas to clean up (scaling
// the ReplicaSet back up) and for availability to spend; upstream also skips the
// round. The ReplicaSet's status update brings the next sync.
func behind(oldRSs []*appsv1.ReplicaSet) bool {
	for _, rs := range oldRSs {
		if specReplicas(rs) > 0 && rs.Status.AvailableReplicas > specReplicas(rs) {
			return true
		}
	}
	return false
}

// cleanupUnhealthy removes up to maxCleanup unavailable replicas from old
// ReplicaSets, oldest first.
func (c *Controller) cleanupUnhealthy(ctx context.Context, d *appsv1.Deployment, oldRSs []*appsv1.ReplicaSet, maxCleanup int32) ([]*appsv1.ReplicaSet, int32, error) {
	oldRSs = append([]*appsv1.ReplicaSet(nil), oldRSs...)
	sortOldestFirst(oldRSs)
	var total int32
	for i, rs := range oldRSs {
		if total >= maxCleanup {
			break
		}
		if specReplicas(rs) <= rs.Status.AvailableReplicas {
			continue
		}
		n := min(maxCleanup-total, specReplicas(rs)-rs.Status.AvailableReplicas)
		_, updated, err := c.scaleAndRecord(ctx, d, rs, specReplicas(rs)-n)
		if err != nil {
			return nil, total, err
		}
		total += n
		oldRSs[i] = updated
	}
	return oldRSs, total, nil
}

// scaleDownOld scales old ReplicaSets down, oldest first, by as many pods as are
// available beyond spec.replicas-maxUnavailable.
func (c *Controller) scaleDownOld(ctx context.Context, d *appsv1.Deployment, all, oldRSs []*appsv1.ReplicaSet) (int32, error) {
	minAvailable := desired(d) - maxUnavailable(d)
	available := sumStatus(all, statusAvailable)
	if available <= minAvailable {
		return 0, nil
	}
	oldRSs = append([]*appsv1.ReplicaSet(nil), oldRSs...)
	sortOldestFirst(oldRSs)
	want := available - minAvailable
	var total int32
	for _, rs := range oldRSs {
		if total >= want {
			break
		}
		if specReplicas(rs) == 0 {
			continue
		}
		n := min(specReplicas(rs), want-total)
		if _, _, err := c.scaleAndRecord(ctx, d, rs, specReplicas(rs)-n); err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}
