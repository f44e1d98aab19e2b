package scheduler

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/berth-project/berth/internal/scheduler/framework"
)

// The informer handlers keep the cache and the queue in step with the API. Pods bound
// to a node go to the cache; pending pods for this scheduler go to the queue. Changes
// that may let waiting pods fit move them back to be tried.

func assigned(p *corev1.Pod) bool { return p.Spec.NodeName != "" }

func finished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// ours reports whether the pod waits for this scheduler: pending, not being deleted,
// not gated, and naming this scheduler.
func (s *Scheduler) ours(p *corev1.Pod) bool {
	name := p.Spec.SchedulerName
	if name == "" {
		name = corev1.DefaultSchedulerName
	}
	return name == s.name && !assigned(p) && p.DeletionTimestamp == nil && len(p.Spec.SchedulingGates) == 0 && !finished(p)
}

func (s *Scheduler) addPod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	switch {
	case assigned(pod):
		if !finished(pod) {
			s.cache.SetPod(pod)
			s.queue.Move(framework.AssignedPodAdd)
		}
	case s.ours(pod):
		s.queue.Add(pod)
	}
}

func (s *Scheduler) updatePod(oldObj, newObj any) {
	old, ok1 := oldObj.(*corev1.Pod)
	pod, ok2 := newObj.(*corev1.Pod)
	if !ok1 || !ok2 {
		return
	}
	if assigned(pod) {
		switch {
		case finished(pod):
			// A finished pod no longer holds its node's resources.
			s.cache.RemovePod(pod)
			if !finished(old) {
				s.queue.Move(framework.AssignedPodDelete)
			}
		case !assigned(old):
			s.queue.Delete(pod)
			s.cache.SetPod(pod)
			s.queue.Move(framework.AssignedPodAdd)
		default:
			s.cache.SetPod(pod)
			if !maps.Equal(old.Labels, pod.Labels) {
				s.queue.Move(framework.AssignedPodUpdate)
			}
		}
		return
	}
	switch {
	case s.cache.IsAssumed(pod):
		// Being bound; the binding's outcome decides what happens next.
	case s.ours(pod):
		s.queue.Update(pod)
	default:
		s.queue.Delete(pod)
	}
}

func (s *Scheduler) deletePod(obj any) {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	s.queue.Delete(pod)
	s.cache.RemovePod(pod)
	if assigned(pod) {
		s.queue.Move(framework.AssignedPodDelete)
	}
}

func (s *Scheduler) addNode(obj any) {
	node, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	s.cache.SetNode(node)
	s.queue.Move(framework.NodeAdd)
}

func (s *Scheduler) updateNode(oldObj, newObj any) {
	old, ok1 := oldObj.(*corev1.Node)
	node, ok2 := newObj.(*corev1.Node)
	if !ok1 || !ok2 {
		return
	}
	s.cache.SetNode(node)
	if ev := nodeChanges(old, node); ev != 0 {
		s.queue.Move(ev)
	}
}

// nodeChanges is what changed between two versions of a node that scheduling reads;
// heartbeats change nothing.
func nodeChanges(old, node *corev1.Node) framework.ClusterEvent {
	var ev framework.ClusterEvent
	if !apiequality.Semantic.DeepEqual(old.Status.Allocatable, node.Status.Allocatable) {
		ev |= framework.NodeAllocatableChange
	}
	if !maps.Equal(old.Labels, node.Labels) {
		ev |= framework.NodeLabelChange
	}
	if !apiequality.Semantic.DeepEqual(old.Spec.Taints, node.Spec.Taints) {
		ev |= framework.NodeTaintChange
	}
	if old.Spec.Unschedulable != node.Spec.Unschedulable {
		ev |= framework.NodeSpecUnschedulableChange
	}
	return ev
}

func (s *Scheduler) deleteNode(obj any) {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if node, ok := obj.(*corev1.Node); ok {
		s.cache.RemoveNode(node.Name)
	}
}
