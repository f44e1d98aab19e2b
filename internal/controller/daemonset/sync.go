package daemonset

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"

	"github.com/berth-project/berth/internal/controller/history"
	"github.com/berth-project/berth/internal/controller/ownerref"
	"github.com/berth-project/berth/internal/controller/pods"
)

// sync moves one DaemonSet a step: a pod on every node that should run one (none on
// the others), old-template pods replaced within maxUnavailable, and status.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	ds, err := c.dsLister.DaemonSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.exp.Forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	nodes, err := c.nodeLister.List(labels.Everything())
	if err != nil {
		return err
	}
	byNode, hashes, err := c.podsByNode(ds)
	if err != nil {
		return err
	}
	if ds.DeletionTimestamp != nil {
		return nil
	}
	limit := 10
	if ds.Spec.RevisionHistoryLimit != nil {
		limit = int(*ds.Spec.RevisionHistoryLimit)
	}
	cur, err := history.Sync(ctx, c.client, c.crLister, history.Owner{
		Object: ds, Kind: Kind, Template: &ds.Spec.Template, CollisionCount: ds.Status.CollisionCount, Limit: limit,
		BumpCollisionCount: func(ctx context.Context) error {
			cp := ds.DeepCopy()
			cp.Status.CollisionCount = new(int32)
			if ds.Status.CollisionCount != nil {
				*cp.Status.CollisionCount = *ds.Status.CollisionCount + 1
			}
			_, err := c.client.AppsV1().DaemonSets(ds.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
			return err
		},
	}, hashes)
	if err != nil {
		return err
	}
	hash := cur.Labels[HashLabel]
	if c.exp.Satisfied(key) {
		create, remove := plan(ds, nodes, byNode)
		if ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType && len(create)+len(remove) == 0 {
			remove = c.rollingUpdate(ds, nodes, byNode, hash)
		}
		if err := c.apply(ctx, key, ds, hash, create, remove); err != nil {
			return err
		}
	}
	return c.updateStatus(ctx, ds, nodes, byNode, hash)
}

// podsByNode returns ds's pods (not being deleted) by the node they are on or bound
// for, and the template hashes they carry.
func (c *Controller) podsByNode(ds *appsv1.DaemonSet) (map[string][]*corev1.Pod, map[string]bool, error) {
	all, err := c.podLister.Pods(ds.Namespace).List(labels.Everything())
	if err != nil {
		return nil, nil, err
	}
	byNode := map[string][]*corev1.Pod{}
	hashes := map[string]bool{}
	for _, p := range all {
		if !metav1.IsControlledBy(p, ds) || p.DeletionTimestamp != nil {
			continue
		}
		hashes[p.Labels[HashLabel]] = true
		if n := targetNode(p); n != "" {
			byNode[n] = append(byNode[n], p)
		}
	}
	for _, ps := range byNode {
		sort.Slice(ps, func(i, j int) bool { return ps[i].CreationTimestamp.Before(&ps[j].CreationTimestamp) })
	}
	return byNode, hashes, nil
}

// plan lists the nodes that need a daemon pod, and the pods that must go: failed
// ones, duplicates (the oldest stays), and those on nodes the DaemonSet no longer fits.
func plan(ds *appsv1.DaemonSet, nodes []*corev1.Node, byNode map[string][]*corev1.Pod) (create []string, remove []*corev1.Pod) {
	known := map[string]bool{}
	for _, n := range nodes {
		known[n.Name] = true
		shouldRun, shouldContinue := placement(&ds.Spec.Template.Spec, n)
		var running []*corev1.Pod
		for _, p := range byNode[n.Name] {
			if p.Status.Phase == corev1.PodFailed {
				remove = append(remove, p)
				continue
			}
			running = append(running, p)
		}
		switch {
		case shouldRun && len(running) == 0:
			create = append(create, n.Name)
		case shouldContinue && len(running) > 1:
			remove = append(remove, running[1:]...)
		case !shouldContinue:
			remove = append(remove, running...)
		}
	}
	for name, ps := range byNode {
		if !known[name] {
			remove = append(remove, ps...) // the node is gone
		}
	}
	return create, remove
}

// rollingUpdate picks the old-template pods to replace now: unavailable ones freely,
// available ones while fewer than maxUnavailable nodes are without an available pod.
func (c *Controller) rollingUpdate(ds *appsv1.DaemonSet, nodes []*corev1.Node, byNode map[string][]*corev1.Pod, hash string) []*corev1.Pod {
	desired := 0
	unavailable := 0
	var old []*corev1.Pod
	now := c.now()
	for _, n := range nodes {
		if shouldRun, _ := placement(&ds.Spec.Template.Spec, n); !shouldRun {
			continue
		}
		desired++
		ps := byNode[n.Name]
		if len(ps) == 0 || !pods.Available(ps[0], ds.Spec.MinReadySeconds, now) {
			unavailable++
		}
		if len(ps) > 0 && !current(ps[0], ds, hash) {
			old = append(old, ps[0])
		}
	}
	maxUnavailable := 1
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
		if n, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, desired, true); err == nil {
			maxUnavailable = max(n, 1)
		}
	}
	var remove []*corev1.Pod
	for _, p := range old {
		if !pods.Available(p, ds.Spec.MinReadySeconds, now) {
			remove = append(remove, p)
			continue
		}
		if unavailable < maxUnavailable {
			remove = append(remove, p)
			unavailable++
		}
	}
	return remove
}

// current reports whether the pod is of the DaemonSet's current template.
func current(p *corev1.Pod, ds *appsv1.DaemonSet, hash string) bool {
	if h, ok := p.Labels[HashLabel]; ok {
		return h == hash
	}
	return p.Labels[appsv1.DeprecatedTemplateGeneration] == strconv.FormatInt(ds.Generation, 10)
}

// apply creates a pod pinned to each node in create and deletes the pods in remove.
func (c *Controller) apply(ctx context.Context, key string, ds *appsv1.DaemonSet, hash string, create []string, remove []*corev1.Pod) error {
	var keys []string
	for _, p := range remove {
		keys = append(keys, p.Namespace+"/"+p.Name)
	}
	if len(keys) > 0 {
		c.exp.ExpectDeletions(key, keys)
	}
	errs := make(chan error, len(remove)+1)
	var wg sync.WaitGroup
	for _, p := range remove {
		wg.Go(func() {
			if err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
				c.exp.DeletionObserved(key, p.Namespace+"/"+p.Name)
				if !apierrors.IsNotFound(err) {
					c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedDaemonPod", "Error deleting: %v", err)
					errs <- err
				}
				return
			}
			c.recorder.Eventf(ds, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted pod: %v", p.Name)
		})
	}
	wg.Wait()
	if len(create) > 0 {
		c.exp.ExpectCreations(key, len(create))
		var mu sync.Mutex
		next := 0
		made, err := pods.SlowStart(len(create), func() error {
			mu.Lock()
			node := create[next]
			next++
			mu.Unlock()
			return c.createPod(ctx, ds, hash, node)
		})
		for range len(create) - made {
			c.exp.CreationObserved(key)
		}
		if err != nil {
			errs <- err
		}
	}
	close(errs)
	return <-errs
}

func (c *Controller) createPod(ctx context.Context, ds *appsv1.DaemonSet, hash, node string) error {
	p := pods.FromTemplate(&ds.Spec.Template, ds, ownerref.ControllerRef(ds, Kind))
	p.Spec = pinned(&ds.Spec.Template.Spec, node)
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	p.Labels[HashLabel] = hash
	p.Labels[appsv1.DeprecatedTemplateGeneration] = strconv.FormatInt(ds.Generation, 10)
	created, err := c.client.CoreV1().Pods(ds.Namespace).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil
		}
		c.recorder.Eventf(ds, corev1.EventTypeWarning, "FailedCreate", "Error creating: %v", err)
		return err
	}
	c.recorder.Eventf(ds, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: %v", created.Name)
	return nil
}

// updateStatus counts, over the nodes, where daemon pods should be and are.
func (c *Controller) updateStatus(ctx context.Context, ds *appsv1.DaemonSet, nodes []*corev1.Node, byNode map[string][]*corev1.Pod, hash string) error {
	st := appsv1.DaemonSetStatus{ObservedGeneration: ds.Generation, CollisionCount: ds.Status.CollisionCount, Conditions: ds.Status.Conditions}
	now := c.now()
	for _, n := range nodes {
		shouldRun, _ := placement(&ds.Spec.Template.Spec, n)
		ps := byNode[n.Name]
		switch {
		case !shouldRun && len(ps) > 0:
			st.NumberMisscheduled++
		case shouldRun:
			st.DesiredNumberScheduled++
			if len(ps) == 0 {
				continue
			}
			st.CurrentNumberScheduled++
			p := ps[0]
			if pods.Ready(p) {
				st.NumberReady++
			}
			if pods.Available(p, ds.Spec.MinReadySeconds, now) {
				st.NumberAvailable++
			}
			if current(p, ds, hash) {
				st.UpdatedNumberScheduled++
			}
		}
	}
	st.NumberUnavailable = max(0, st.DesiredNumberScheduled-st.NumberAvailable)
	if equality.Semantic.DeepEqual(ds.Status, st) {
		return nil
	}
	cp := ds.DeepCopy()
	cp.Status = st
	_, err := c.client.AppsV1().DaemonSets(ds.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("daemonset %s/%s status: %w", ds.Namespace, ds.Name, err)
	}
	return nil
}
