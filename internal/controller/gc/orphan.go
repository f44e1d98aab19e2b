package gc

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// attemptToOrphan lets the dependents of an owner deleted with the orphan policy go:
// each loses its reference to the owner, then the owner loses its orphan finalizer
// (and, with no other finalizer, is deleted).
func (c *Collector) attemptToOrphan(ctx context.Context, r ref) error {
	owner, err := c.get(ctx, r)
	if owner == nil || err != nil {
		return err
	}
	if owner.GetDeletionTimestamp() == nil || !hasFinalizer(owner, metav1.FinalizerOrphanDependents) {
		return nil
	}
	for _, d := range c.dependents(r.uid) {
		dr := d.ref()
		obj, err := c.get(ctx, dr)
		if err != nil {
			return err
		}
		if obj == nil {
			continue
		}
		var keep []metav1.OwnerReference
		for _, o := range obj.GetOwnerReferences() {
			if o.UID != r.uid {
				keep = append(keep, o)
			}
		}
		if len(keep) == len(obj.GetOwnerReferences()) {
			continue
		}
		if keep == nil {
			keep = []metav1.OwnerReference{}
		}
		if err := c.patchMeta(ctx, dr, obj, map[string]any{"ownerReferences": keep}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	c.log.Info("dependents orphaned", "owner", r.String())
	return c.removeFinalizer(ctx, r, owner, metav1.FinalizerOrphanDependents)
}
