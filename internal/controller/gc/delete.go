package gc

import (
	"context"
	"encoding/json"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

// get reads r's object from the API server; nil when it is gone or was replaced by
// another object of the same name.
func (c *Collector) get(ctx context.Context, r ref) (*unstructured.Unstructured, error) {
	obj, err := c.client.Resource(r.gvr).Namespace(r.namespace).Get(ctx, r.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if obj.GetUID() != r.uid {
		return nil, nil
	}
	return obj, nil
}

// attemptToDelete decides, from a fresh read, whether r's object must go: it stays
// while one owner still exists and is not deleting its dependents (references to
// owners that are gone or deleting are removed from it); otherwise it is deleted —
// in the foreground if it has dependents of its own and an owner waits for it. An
// owner being deleted in the foreground is let go once no dependent blocks it.
func (c *Collector) attemptToDelete(ctx context.Context, r ref) error {
	obj, err := c.get(ctx, r)
	if obj == nil || err != nil {
		return err
	}
	if obj.GetDeletionTimestamp() != nil {
		if deletingDependents(obj) {
			return c.finishForeground(ctx, r, obj)
		}
		return nil
	}
	owners := obj.GetOwnerReferences()
	if len(owners) == 0 {
		return nil
	}
	var solid, dangling, waiting []metav1.OwnerReference
	for _, o := range owners {
		state, err := c.ownerState(ctx, obj, o)
		if err != nil {
			return err
		}
		switch state {
		case ownerGone:
			dangling = append(dangling, o)
		case ownerDeleting:
			waiting = append(waiting, o)
		default:
			solid = append(solid, o)
		}
	}
	switch {
	case len(solid) > 0:
		if len(dangling)+len(waiting) == 0 {
			return nil
		}
		c.log.Info("removing references to owners that are gone or deleting", "object", r.String(), "remaining", len(solid))
		return c.patchMeta(ctx, r, obj, map[string]any{"ownerReferences": solid})
	case len(waiting) > 0 && len(c.dependents(r.uid)) > 0:
		return c.delete(ctx, r, metav1.DeletePropagationForeground)
	}
	policy := metav1.DeletePropagationBackground
	switch {
	case hasFinalizer(obj, metav1.FinalizerOrphanDependents):
		policy = metav1.DeletePropagationOrphan
	case hasFinalizer(obj, metav1.FinalizerDeleteDependents):
		policy = metav1.DeletePropagationForeground
	}
	return c.delete(ctx, r, policy)
}

type ownerStatus int

const (
	ownerThere ownerStatus = iota
	ownerGone
	ownerDeleting // deleted in the foreground, waiting for its dependents
)

// ownerState reads an owner from the API server (the cache may lag behind).
func (c *Collector) ownerState(ctx context.Context, dependent *unstructured.Unstructured, o metav1.OwnerReference) (ownerStatus, error) {
	gvr, namespaced, err := c.resourceFor(o)
	if err != nil {
		// An owner of an unknown kind may be a type not discovered yet: keep the dependent.
		c.log.Info("owner of unknown kind, keeping the dependent", "dependent", dependent.GetNamespace()+"/"+dependent.GetName(), "owner", o.APIVersion+"/"+o.Kind, "err", err)
		return ownerThere, nil
	}
	ns := ""
	if namespaced {
		if dependent.GetNamespace() == "" {
			return ownerGone, nil // a cluster-scoped object cannot have a namespaced owner
		}
		ns = dependent.GetNamespace()
	}
	r := ref{gvr: gvr, namespace: ns, name: o.Name, uid: o.UID}
	if c.absent.has(r) {
		return ownerGone, nil
	}
	owner, err := c.get(ctx, r)
	if err != nil {
		return ownerThere, err
	}
	if owner == nil {
		c.absent.add(r)
		return ownerGone, nil
	}
	if deletingDependents(owner) {
		return ownerDeleting, nil
	}
	return ownerThere, nil
}

// finishForeground removes the foregroundDeletion finalizer from an owner none of
// whose dependents blocks it any more, or queues the blocking dependents for deletion.
func (c *Collector) finishForeground(ctx context.Context, r ref, obj *unstructured.Unstructured) error {
	var blocking []node
	for _, d := range c.dependents(r.uid) {
		for _, o := range d.obj.GetOwnerReferences() {
			if o.UID == r.uid && o.BlockOwnerDeletion != nil && *o.BlockOwnerDeletion {
				blocking = append(blocking, d)
				break
			}
		}
	}
	if len(blocking) == 0 {
		c.log.Info("dependents gone, finishing foreground deletion", "object", r.String())
		return c.removeFinalizer(ctx, r, obj, metav1.FinalizerDeleteDependents)
	}
	for _, d := range blocking {
		if !deletingDependents(d.obj) {
			c.deletes.Add(d.ref())
		}
	}
	return nil
}

func (c *Collector) delete(ctx context.Context, r ref, policy metav1.DeletionPropagation) error {
	c.log.Info("deleting object whose owners are gone", "object", r.String(), "propagation", string(policy))
	uid := r.uid
	err := c.client.Resource(r.gvr).Namespace(r.namespace).Delete(ctx, r.name, metav1.DeleteOptions{
		PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &uid},
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone already, or a new object took the name
	}
	return err
}

func (c *Collector) removeFinalizer(ctx context.Context, r ref, obj *unstructured.Unstructured, f string) error {
	keep := []string{}
	for _, x := range obj.GetFinalizers() {
		if x != f {
			keep = append(keep, x)
		}
	}
	return c.patchMeta(ctx, r, obj, map[string]any{"finalizers": keep})
}

// patchMeta merge-patches fields of obj's metadata, on condition that obj is still
// at the version read (a conflict is retried from a fresh read).
func (c *Collector) patchMeta(ctx context.Context, r ref, obj *unstructured.Unstructured, fields map[string]any) error {
	fields["resourceVersion"] = obj.GetResourceVersion()
	body, err := json.Marshal(map[string]any{"metadata": fields})
	if err != nil {
		return err
	}
	_, err = c.client.Resource(r.gvr).Namespace(r.namespace).Patch(ctx, r.name, types.MergePatchType, body, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// absentOwners remembers owners found gone, so that the many dependents of one
// deleted owner cost one read of it, not one each.
type absentOwners struct {
	mu   sync.Mutex
	max  int
	refs map[ref]bool
}

func newAbsentOwners(max int) *absentOwners { return &absentOwners{max: max, refs: map[ref]bool{}} }

func (a *absentOwners) has(r ref) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.refs[r]
}

func (a *absentOwners) add(r ref) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.refs) >= a.max {
		a.refs = map[ref]bool{}
	}
	a.refs[r] = true
}
