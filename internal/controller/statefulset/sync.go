package statefulset

import (
	"context"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	"github.com/berth-project/berth/internal/controller/history"
	"github.com/berth-project/berth/internal/controller/pods"
)

// state is a StatefulSet's pods and revisions as one sync sees them.
type state struct {
	set              *appsv1.StatefulSet
	byOrdinal        map[int]*corev1.Pod
	condemned        []*corev1.Pod // beyond spec.replicas, highest ordinal first
	current, update  *appsv1.ControllerRevision
	currentTemplate  *corev1.PodTemplateSpec
	replicas         int
	partition        int
	ordered, rolling bool
}

func healthy(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && pods.Ready(p) && p.DeletionTimestamp == nil
}

// sync moves a StatefulSet one step: missing or failed pods (re)created in ordinal
// order, surplus pods deleted from the highest ordinal, then one outdated pod
// replaced; OrderedReady waits for each pod to be running and ready.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	set, err := c.setLister.StatefulSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	sel, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
	if err != nil {
		c.log.Error("invalid selector, not syncing", "statefulset", key, "err", err)
		return nil
	}
	canAdopt := c.canAdopt(set)
	owned, err := c.claimPods(ctx, set, sel, canAdopt)
	if err != nil {
		return err
	}
	s, err := c.load(ctx, set, sel, canAdopt, owned)
	if err != nil {
		return err
	}
	var stepErr error
	if set.DeletionTimestamp == nil {
		stepErr = c.step(ctx, s)
	}
	if err := c.updateStatus(ctx, s); err != nil {
		return err
	}
	return stepErr // the status still tells what this sync saw
}

// load reads the set's revisions (adopting orphaned ones) and sorts its claimed pods
// by ordinal.
func (c *Controller) load(ctx context.Context, set *appsv1.StatefulSet, sel labels.Selector, canAdopt func(context.Context) error, owned []*corev1.Pod) (*state, error) {
	s := &state{set: set, byOrdinal: map[int]*corev1.Pod{}, replicas: 1, ordered: set.Spec.PodManagementPolicy != appsv1.ParallelPodManagement}
	if set.Spec.Replicas != nil {
		s.replicas = int(*set.Spec.Replicas)
	}
	if set.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType {
		s.rolling = true
		if ru := set.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
			s.partition = int(*ru.Partition)
		}
	}
	inUse := map[string]bool{}
	for _, p := range owned {
		inUse[p.Labels[history.HashLabel]] = true
		if i := ordinal(set, p); i >= 0 && i < s.replicas {
			s.byOrdinal[i] = p
		} else {
			s.condemned = append(s.condemned, p)
		}
	}
	sort.Slice(s.condemned, func(a, b int) bool { return ordinal(set, s.condemned[a]) > ordinal(set, s.condemned[b]) })
	limit := 10
	if set.Spec.RevisionHistoryLimit != nil {
		limit = int(*set.Spec.RevisionHistoryLimit)
	}
	inUse[set.Status.CurrentRevision] = true
	var err error
	if s.update, err = history.Sync(ctx, c.client, c.crLister, history.Owner{
		Object: set, Kind: Kind, Template: &set.Spec.Template, CollisionCount: set.Status.CollisionCount, Limit: limit,
		Selector: sel, CanAdopt: canAdopt,
		BumpCollisionCount: func(ctx context.Context) error {
			cp := set.DeepCopy()
			cp.Status.CollisionCount = new(int32)
			if set.Status.CollisionCount != nil {
				*cp.Status.CollisionCount = *set.Status.CollisionCount + 1
			}
			_, err := c.client.AppsV1().StatefulSets(set.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
			return err
		},
	}, inUse); err != nil {
		return nil, err
	}
	s.current, s.currentTemplate = s.update, &set.Spec.Template
	if set.Status.CurrentRevision != "" && set.Status.CurrentRevision != s.update.Name {
		if cr, err := c.crLister.ControllerRevisions(set.Namespace).Get(set.Status.CurrentRevision); err == nil && metav1.IsControlledBy(cr, set) {
			if t, err := history.Template(cr); err == nil {
				s.current, s.currentTemplate = cr, t
			}
		}
	}
	return s, nil
}

// step takes the actions of one sync, stopping where OrderedReady must wait.
func (c *Controller) step(ctx context.Context, s *state) error {
	set := s.set
	for i := range s.replicas {
		p := s.byOrdinal[i]
		switch {
		case p == nil:
			t, rev := &set.Spec.Template, s.update
			if s.rolling && i < s.partition {
				t, rev = s.currentTemplate, s.current
			}
			if err := c.createPod(ctx, set, t, rev.Name, i); err != nil || s.ordered {
				return err
			}
		case p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded:
			if err := c.deletePod(ctx, set, p); err != nil || s.ordered {
				return err // the next sync recreates it
			}
		case !healthy(p) && s.ordered:
			return nil
		}
	}
	for _, p := range s.condemned {
		if p.DeletionTimestamp != nil {
			if s.ordered {
				return nil
			}
			continue
		}
		if s.ordered && !s.allHealthy() {
			return nil
		}
		if err := c.deletePod(ctx, set, p); err != nil || s.ordered {
			return err
		}
	}
	if !s.rolling || !s.allHealthy() {
		return nil
	}
	for i := s.replicas - 1; i >= s.partition; i-- {
		p := s.byOrdinal[i]
		if p == nil {
			continue
		}
		if p.Labels[history.HashLabel] != s.update.Name {
			return c.deletePod(ctx, set, p) // recreated from the update revision next sync
		}
	}
	return nil
}

func (s *state) allHealthy() bool {
	for i := range s.replicas {
		if p := s.byOrdinal[i]; p == nil || !healthy(p) {
			return false
		}
	}
	return true
}

func (c *Controller) updateStatus(ctx context.Context, s *state) error {
	set := s.set
	st := appsv1.StatefulSetStatus{
		ObservedGeneration: set.Generation, CollisionCount: set.Status.CollisionCount, Conditions: set.Status.Conditions,
		CurrentRevision: s.current.Name, UpdateRevision: s.update.Name,
	}
	now := c.now()
	count := func(p *corev1.Pod) {
		if p.DeletionTimestamp != nil {
			return
		}
		st.Replicas++
		if healthy(p) {
			st.ReadyReplicas++
		}
		if healthy(p) && pods.Available(p, set.Spec.MinReadySeconds, now) {
			st.AvailableReplicas++
		}
		if p.Labels[history.HashLabel] == s.current.Name {
			st.CurrentReplicas++
		}
		if p.Labels[history.HashLabel] == s.update.Name {
			st.UpdatedReplicas++
		}
	}
	for _, p := range s.byOrdinal {
		count(p)
	}
	for _, p := range s.condemned {
		count(p)
	}
	if s.rolling && st.UpdatedReplicas == st.Replicas && st.ReadyReplicas == st.Replicas {
		st.CurrentRevision, st.CurrentReplicas = st.UpdateRevision, st.UpdatedReplicas
	}
	if equality.Semantic.DeepEqual(set.Status, st) {
		return nil
	}
	cp := set.DeepCopy()
	cp.Status = st
	_, err := c.client.AppsV1().StatefulSets(set.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
