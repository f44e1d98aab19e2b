package deployment

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// rolloutRecreate moves a Recreate rollout one step: scale every old ReplicaSet to
// zero, wait until none of their pods is left running, then create or scale up the
// new one.
func (c *Controller) rolloutRecreate(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet, sel labels.Selector) error {
	newRS, oldRSs, err := c.replicaSets(ctx, d, rsList, false)
	if err != nil {
		return err
	}
	scaledDown := false
	for _, rs := range active(oldRSs) {
		scaled, _, err := c.scaleAndRecord(ctx, d, rs, 0)
		if err != nil {
			return err
		}
		scaledDown = scaledDown || scaled
	}
	if scaledDown {
		return c.syncRolloutStatus(ctx, d, newRS, oldRSs)
	}
	running, err := c.oldPodsRunning(d, newRS, oldRSs, sel)
	if err != nil {
		return err
	}
	if running {
		return c.syncRolloutStatus(ctx, d, newRS, oldRSs)
	}
	if newRS == nil {
		if newRS, oldRSs, err = c.replicaSets(ctx, d, rsList, true); err != nil {
			return err
		}
	}
	if _, _, err := c.scaleAndRecord(ctx, d, newRS, desired(d)); err != nil {
		return err
	}
	if complete(d, &d.Status) {
		if err := c.cleanup(ctx, d, oldRSs); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, d, newRS, oldRSs)
}

// oldPodsRunning reports whether any old ReplicaSet still has pods that have not
// finished.
func (c *Controller) oldPodsRunning(d *appsv1.Deployment, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet, sel labels.Selector) (bool, error) {
	if sumStatus(oldRSs, statusReplicas) > 0 {
		return true, nil
	}
	old := map[string]bool{}
	for _, rs := range oldRSs {
		old[string(rs.UID)] = true
	}
	all, err := c.podLister.Pods(d.Namespace).List(sel)
	if err != nil {
		return false, err
	}
	for _, p := range all {
		ref := metav1.GetControllerOfNoCopy(p)
		if ref == nil || !old[string(ref.UID)] || (newRS != nil && ref.UID == newRS.UID) {
			continue
		}
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			return true, nil
		}
	}
	return false, nil
}
