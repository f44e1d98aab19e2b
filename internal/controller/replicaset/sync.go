package replicaset

import (
	"context"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/cache"

	"github.com/berth-project/berth/internal/controller/ownerref"
	"github.com/berth-project/berth/internal/controller/pods"
)

// sync brings one ReplicaSet's pods to spec.replicas (unless creations or deletions
// it asked for are still unseen) and writes its status.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	rs, err := c.rsLister.ReplicaSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.exp.Forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil {
		c.log.Error("invalid selector, not syncing", "replicaset", key, "err", err)
		return nil
	}
	all, err := c.podLister.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	var active []*corev1.Pod
	for _, p := range all {
		if pods.Active(p) {
			active = append(active, p)
		}
	}
	owned, err := c.claim(ctx, rs, sel, active)
	if err != nil {
		return err
	}
	var manageErr error
	if c.exp.Satisfied(key) && rs.DeletionTimestamp == nil {
		manageErr = c.manage(ctx, key, rs, owned, all)
	}
	updated, err := c.updateStatus(ctx, rs, c.status(rs, owned, manageErr))
	if apierrors.IsNotFound(err) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return err
	}
	if m := updated.Spec.MinReadySeconds; manageErr == nil && m > 0 && updated.Status.ReadyReplicas == replicas(updated) && updated.Status.AvailableReplicas != replicas(updated) {
		c.queue.AddAfter(key, time.Duration(m)*time.Second)
	}
	return manageErr
}

func replicas(rs *appsv1.ReplicaSet) int32 {
	if rs.Spec.Replicas == nil {
		return 1
	}
	return *rs.Spec.Replicas
}

// claim returns the active pods the ReplicaSet owns, adopting and releasing by selector.
func (c *Controller) claim(ctx context.Context, rs *appsv1.ReplicaSet, sel labels.Selector, active []*corev1.Pod) ([]*corev1.Pod, error) {
	cl := &ownerref.Claimer{
		Owner: rs, Kind: Kind, Selector: sel,
		CanAdopt: ownerref.Recheck(rs, "ReplicaSet", func(ctx context.Context) (metav1.Object, error) {
			return c.client.AppsV1().ReplicaSets(rs.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
		}),
		Patch: ownerref.PodPatcher(c.client),
	}
	var owned []*corev1.Pod
	var errs []error
	for _, p := range active {
		ok, err := cl.Claim(ctx, p)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			owned = append(owned, p)
		}
	}
	return owned, utilerrors.NewAggregate(errs)
}

// manage creates or deletes pods so that len(owned) moves to spec.replicas.
func (c *Controller) manage(ctx context.Context, key string, rs *appsv1.ReplicaSet, owned, all []*corev1.Pod) error {
	diff := len(owned) - int(replicas(rs))
	switch {
	case diff < 0:
		n := min(-diff, burstReplicas)
		c.exp.ExpectCreations(key, n)
		created, err := pods.SlowStart(n, func() error { return c.createPod(ctx, rs) })
		for range n - created {
			c.exp.CreationObserved(key) // never attempted or failed: no event will come
		}
		return err
	case diff > 0:
		n := min(diff, burstReplicas)
		victims := deletionOrder(owned, c.related(rs, all), c.now())[:n]
		keys := make([]string, len(victims))
		for i, p := range victims {
			keys[i] = podKey(p)
		}
		c.exp.ExpectDeletions(key, keys)
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for _, p := range victims {
			wg.Go(func() {
				if err := c.deletePodNow(ctx, rs, p); err != nil {
					c.exp.DeletionObserved(key, podKey(p))
					if !apierrors.IsNotFound(err) {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	return nil
}

// related returns the active pods of every ReplicaSet sharing rs's controller (the
// Deployment's other ReplicaSets), rs's own included: spreading counts across them.
func (c *Controller) related(rs *appsv1.ReplicaSet, all []*corev1.Pod) []*corev1.Pod {
	uids := map[types.UID]bool{rs.UID: true}
	if ref := metav1.GetControllerOfNoCopy(rs); ref != nil {
		siblings, _ := c.rsLister.ReplicaSets(rs.Namespace).List(labels.Everything())
		for _, s := range siblings {
			if r := metav1.GetControllerOfNoCopy(s); r != nil && r.UID == ref.UID {
				uids[s.UID] = true
			}
		}
	}
	var out []*corev1.Pod
	for _, p := range all {
		if r := metav1.GetControllerOfNoCopy(p); r != nil && uids[r.UID] && pods.Active(p) {
			out = append(out, p)
		}
	}
	return out
}
