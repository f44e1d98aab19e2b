package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berth-project/berth/internal/scheduler/framework"
)

// scheduleOne takes the next pod from the queue, places it, assumes it onto the node
// in the cache and starts its binding. It returns false once the queue is closed.
func (s *Scheduler) scheduleOne(ctx context.Context) bool {
	qp := s.queue.Pop()
	if qp == nil {
		return false
	}
	pod := qp.pod
	if !s.ours(pod) || s.cache.IsAssumed(pod) {
		s.queue.Done(pod.UID)
		return true
	}
	start := time.Now()
	s.cache.UpdateSnapshot(s.snapshot)
	state := framework.NewCycleState()
	pi := framework.NewPodInfo(pod)
	framework.WritePodInfo(state, pi)
	node, err := s.placer.place(ctx, state, pod, s.snapshot)
	if err != nil {
		s.failed(ctx, qp, err)
		return true
	}
	// A shallow copy: nothing below changes what it shares with the informer's pod.
	placed := &corev1.Pod{TypeMeta: pod.TypeMeta, ObjectMeta: pod.ObjectMeta, Spec: pod.Spec, Status: pod.Status}
	placed.Spec.NodeName = node
	assumed := *pi
	assumed.Pod = placed
	if err := s.cache.Assume(&assumed); err != nil {
		s.failed(ctx, qp, err)
		return true
	}
	s.queue.Done(pod.UID)
	select {
	case s.binds <- struct{}{}:
	case <-ctx.Done():
		s.cache.Forget(placed)
		return false
	}
	s.bindWG.Add(1)
	go func() {
		defer func() { <-s.binds; s.bindWG.Done() }()
		s.bind(ctx, qp, placed, start)
	}()
	return true
}

// bind posts the pod's Binding. On failure the assumption is dropped and the pod
// retried, unless it went away or someone else bound it.
func (s *Scheduler) bind(ctx context.Context, qp *queuedPod, placed *corev1.Pod, start time.Time) {
	binding := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: placed.Namespace, Name: placed.Name, UID: placed.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: placed.Spec.NodeName},
	}
	err := s.client.CoreV1().Pods(placed.Namespace).Bind(ctx, binding, metav1.CreateOptions{})
	if err == nil {
		s.log.Debug("pod scheduled", "pod", placed.Namespace+"/"+placed.Name, "node", placed.Spec.NodeName,
			"took", time.Since(start), "waited", start.Sub(qp.firstSeen), "attempts", qp.attempts)
		s.recorder.Eventf(placed, corev1.EventTypeNormal, "Scheduled", "Successfully assigned %s/%s to %s", placed.Namespace, placed.Name, placed.Spec.NodeName)
		return
	}
	s.cache.Forget(placed)
	if ctx.Err() != nil {
		return
	}
	s.log.Warn("binding failed", "pod", placed.Namespace+"/"+placed.Name, "node", placed.Spec.NodeName, "err", err)
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return // gone, or bound already: the informer will say so
	}
	s.recorder.Eventf(placed, corev1.EventTypeWarning, "FailedScheduling", "Binding rejected: %v", err)
	latest, lerr := s.pods.Pods(placed.Namespace).Get(placed.Name)
	if lerr != nil || latest.UID != placed.UID || !s.ours(latest) {
		return
	}
	qp.pod = latest
	s.queue.Retry(qp)
}

// failed handles a pod that fit no node (or hit an error): a FailedScheduling event,
// the PodScheduled=False condition, and back to the queue.
func (s *Scheduler) failed(ctx context.Context, qp *queuedPod, err error) {
	pod := qp.pod
	reason, rejectedBy, retry := corev1.PodReasonUnschedulable, map[string]bool(nil), false
	var fit *framework.FitError
	switch {
	case errors.As(err, &fit):
		rejectedBy = fit.Diagnosis.Plugins
		s.log.Info("pod unschedulable", "pod", pod.Namespace+"/"+pod.Name, "reason", err.Error())
	case errors.Is(err, ErrNoNodes):
		s.log.Info("pod unschedulable", "pod", pod.Namespace+"/"+pod.Name, "reason", err.Error())
	default:
		reason, retry = corev1.PodReasonSchedulerError, true
		s.log.Error("scheduling failed", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
	s.recorder.Event(pod, corev1.EventTypeWarning, "FailedScheduling", err.Error())
	if uerr := s.setUnscheduled(ctx, pod, reason, err.Error()); uerr != nil {
		s.log.Warn("setting PodScheduled=False", "pod", pod.Namespace+"/"+pod.Name, "err", uerr)
	}
	s.queue.Failed(qp, rejectedBy, retry)
}

// setUnscheduled sets the pod's PodScheduled condition to False with the reason and
// message, unless it already says so.
func (s *Scheduler) setUnscheduled(ctx context.Context, pod *corev1.Pod, reason, message string) error {
	cond := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: reason, Message: message}
	patch, changed, err := conditionPatch(pod, cond, metav1.Now())
	if err != nil || !changed {
		return err
	}
	_, err = s.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, "application/strategic-merge-patch+json", patch, metav1.PatchOptions{}, "status")
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("patch pods/status: %w", err)
	}
	return nil
}
