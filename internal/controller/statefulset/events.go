package statefulset

import (
	"maps"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// podChanged queues the sets a pod event concerns: the set that controls the pod, and
// the one that did before if that changed; for an orphan that is new or whose labels
// or owner changed, every set whose selector matches it, which may adopt it; and for
// a deleted orphan, the set whose member name it had, which may have been waiting to
// create a pod of that name.
func (c *Controller) podChanged(oldObj, obj any, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	old, _ := oldObj.(*corev1.Pod)
	if old != nil && old.ResourceVersion == p.ResourceVersion {
		return // a resync: nothing changed
	}
	ref := metav1.GetControllerOfNoCopy(p)
	changed := old == nil
	if old != nil {
		oldRef := metav1.GetControllerOfNoCopy(old)
		if !equality.Semantic.DeepEqual(oldRef, ref) {
			changed = true
			if set := c.resolve(old.Namespace, oldRef); set != nil {
				c.enqueue(set)
			}
		}
		changed = changed || !maps.Equal(old.Labels, p.Labels)
	}
	switch {
	case ref != nil:
		if set := c.resolve(p.Namespace, ref); set != nil {
			c.enqueue(set)
		}
	case deleted:
		if set := c.memberOf(p); set != nil {
			c.enqueue(set)
		}
	case changed:
		sets, _ := c.setLister.GetPodStatefulSets(p)
		for _, set := range sets {
			c.enqueue(set)
		}
	}
}

// resolve is the set a controller reference names, if it is still that one.
func (c *Controller) resolve(ns string, ref *metav1.OwnerReference) *appsv1.StatefulSet {
	if ref == nil || ref.Kind != Kind.Kind {
		return nil
	}
	set, err := c.setLister.StatefulSets(ns).Get(ref.Name)
	if err != nil || set.UID != ref.UID {
		return nil
	}
	return set
}

// memberOf is the set in p's namespace whose member name p has (NAME-i), if any.
func (c *Controller) memberOf(p *corev1.Pod) *appsv1.StatefulSet {
	i := strings.LastIndexByte(p.Name, '-')
	if i <= 0 {
		return nil
	}
	set, err := c.setLister.StatefulSets(p.Namespace).Get(p.Name[:i])
	if err != nil || ordinal(set, p) < 0 {
		return nil
	}
	return set
}

// enqueue queues a set, and again once a pod that became ready can have become
// available (minReadySeconds).
func (c *Controller) enqueue(set *appsv1.StatefulSet) {
	key := set.Namespace + "/" + set.Name
	c.queue.Add(key)
	if set.Spec.MinReadySeconds > 0 {
		c.queue.AddAfter(key, time.Duration(set.Spec.MinReadySeconds)*time.Second+time.Second)
	}
}
