package gc

import (
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// The informers' indexes are the collector's graph: objects by the UIDs of their
// owners (to find dependents) and by their own UID (to find an owner).
const (
	byOwner = "gc-owner-uid"
	byUID   = "gc-uid"
)

var indexers = cache.Indexers{
	byOwner: func(obj any) ([]string, error) {
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, nil
		}
		var out []string
		for _, o := range m.GetOwnerReferences() {
			out = append(out, string(o.UID))
		}
		return out, nil
	},
	byUID: func(obj any) ([]string, error) {
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil, nil
		}
		return []string{string(m.GetUID())}, nil
	},
}

// node is a cached object with the resource it belongs to.
type node struct {
	gvr schema.GroupVersionResource
	obj metav1.Object
}

func (n node) ref() ref {
	return ref{gvr: n.gvr, namespace: n.obj.GetNamespace(), name: n.obj.GetName(), uid: n.obj.GetUID()}
}

// dependents returns the cached objects that list uid among their owners.
func (c *Collector) dependents(uid types.UID) []node {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []node
	for gvr, inf := range c.monitors {
		objs, _ := inf.GetIndexer().ByIndex(byOwner, string(uid))
		for _, o := range objs {
			if m, err := meta.Accessor(o); err == nil {
				out = append(out, node{gvr: gvr, obj: m})
			}
		}
	}
	return out
}

// cachedOwner returns the cached object an owner reference points at, if the cache
// has it; ok is false when the reference's kind is unknown.
func (c *Collector) cachedOwner(o metav1.OwnerReference) (n node, found, ok bool) {
	gvr, _, err := c.resourceFor(o)
	if err != nil {
		return node{}, false, false
	}
	c.mu.RLock()
	inf := c.monitors[gvr]
	c.mu.RUnlock()
	if inf == nil {
		return node{}, false, false
	}
	objs, _ := inf.GetIndexer().ByIndex(byUID, string(o.UID))
	if len(objs) == 0 {
		return node{}, false, true
	}
	m, err := meta.Accessor(objs[0])
	if err != nil {
		return node{}, false, true
	}
	return node{gvr: gvr, obj: m}, true, true
}

// resourceFor maps an owner reference to its resource and whether that is namespaced.
func (c *Collector) resourceFor(o metav1.OwnerReference) (schema.GroupVersionResource, bool, error) {
	gv, err := schema.ParseGroupVersion(o.APIVersion)
	if err != nil {
		return schema.GroupVersionResource{}, false, err
	}
	c.mu.RLock()
	mapper := c.mapper
	c.mu.RUnlock()
	if mapper == nil {
		return schema.GroupVersionResource{}, false, &meta.NoKindMatchError{GroupKind: gv.WithKind(o.Kind).GroupKind()}
	}
	m, err := mapper.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: o.Kind}, gv.Version)
	if err != nil {
		return schema.GroupVersionResource{}, false, err
	}
	return m.Resource, m.Scope.Name() == meta.RESTScopeNameNamespace, nil
}

func hasFinalizer(m metav1.Object, f string) bool { return slices.Contains(m.GetFinalizers(), f) }

// deletingDependents reports whether m is being deleted in the foreground: it stays
// until its blocking dependents are gone.
func deletingDependents(m metav1.Object) bool {
	return m.GetDeletionTimestamp() != nil && hasFinalizer(m, metav1.FinalizerDeleteDependents)
}

func accessor(obj any) (metav1.Object, bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	m, err := meta.Accessor(obj)
	return m, err == nil
}

// added queues what a new object may need: a check of owners the cache does not
// know (they may be gone already), or the deletion work its finalizers ask for.
func (c *Collector) added(gvr schema.GroupVersionResource, obj any) {
	m, ok := accessor(obj)
	if !ok {
		return
	}
	n := node{gvr: gvr, obj: m}
	for _, o := range m.GetOwnerReferences() {
		if owner, found, known := c.cachedOwner(o); !known || !found || owner.obj.GetUID() != o.UID {
			c.deletes.Add(n.ref())
			break
		}
	}
	c.finalizing(n)
}

func (c *Collector) finalizing(n node) {
	if n.obj.GetDeletionTimestamp() == nil {
		return
	}
	if hasFinalizer(n.obj, metav1.FinalizerOrphanDependents) {
		c.orphans.Add(n.ref())
	}
	if hasFinalizer(n.obj, metav1.FinalizerDeleteDependents) {
		c.deletes.Add(n.ref())
		for _, d := range c.dependents(n.obj.GetUID()) {
			c.deletes.Add(d.ref())
		}
	}
}

// updated reacts to changed owner references (new owners checked, owners let go of
// re-checked if they wait for their dependents) and to deletions with finalizers.
func (c *Collector) updated(gvr schema.GroupVersionResource, old, obj any) {
	om, ok1 := accessor(old)
	m, ok2 := accessor(obj)
	if !ok1 || !ok2 {
		return
	}
	n := node{gvr: gvr, obj: m}
	if !slices.EqualFunc(om.GetOwnerReferences(), m.GetOwnerReferences(), sameRef) {
		if len(m.GetOwnerReferences()) > 0 {
			c.deletes.Add(n.ref())
		}
		c.wakeOwners(om)
	}
	if (om.GetDeletionTimestamp() == nil) != (m.GetDeletionTimestamp() == nil) || !slices.Equal(om.GetFinalizers(), m.GetFinalizers()) {
		c.finalizing(n)
	}
}

func sameRef(a, b metav1.OwnerReference) bool {
	return a.UID == b.UID && (a.BlockOwnerDeletion == nil) == (b.BlockOwnerDeletion == nil) &&
		(a.BlockOwnerDeletion == nil || *a.BlockOwnerDeletion == *b.BlockOwnerDeletion)
}

// deleted queues the dependents of a deleted object, and its owners waiting for it.
func (c *Collector) deleted(gvr schema.GroupVersionResource, obj any) {
	m, ok := accessor(obj)
	if !ok {
		return
	}
	for _, d := range c.dependents(m.GetUID()) {
		c.deletes.Add(d.ref())
	}
	c.wakeOwners(m)
}

// wakeOwners queues the owners of m that are waiting for their dependents to go.
func (c *Collector) wakeOwners(m metav1.Object) {
	for _, o := range m.GetOwnerReferences() {
		if owner, found, _ := c.cachedOwner(o); found && deletingDependents(owner.obj) {
			c.deletes.Add(owner.ref())
		}
	}
}
