package apiserver

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// deletion is what a DELETE does to the object.
type deletion int

const (
	deleteNow       deletion = iota // remove it from storage
	deleteMark                      // store it marked deleted (deletionTimestamp): it stays for now
	deletePending                   // it is already going within a grace period: nothing changes
	deleteAfterMark                 // store it marked, then remove it: its kubelet sees the grace period 0
)

// planDelete decides what a DELETE with opts does to obj at now, and marks obj to match,
// as upstream's generic registry does (rest.BeforeDelete with the pod strategy's
// CheckGracefulDelete, and the garbage collector's finalizers):
//   - a pod bound to a node and not finished is deleted gracefully: deletionTimestamp =
//     now + grace and deletionGracePeriodSeconds = grace (podGracePeriod); it stays until
//     its kubelet, having stopped it, deletes it again with a grace period of 0;
//   - a pod already going may only have its grace period shortened: asked again with as
//     long a period or none, nothing changes;
//   - a pod its node may be running, deleted with a grace period of 0 (kubectl delete
//     --force), is first stored marked so that its kubelet, which then sees it deleted,
//     kills it at once rather than within the grace period it had;
//   - finalizers hold any object (its own, the one a Foreground or Orphan propagation
//     adds, a namespace's "kubernetes"): it is marked (deletionTimestamp = now unless
//     sooner, grace 0) and stays until they are gone;
//   - anything else goes at once.
func planDelete(obj runtime.Object, opts metav1.DeleteOptions, now time.Time) deletion {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return deleteNow
	}
	asked := opts.GracePeriodSeconds
	if asked != nil && *asked < 0 {
		one := int64(1) // as upstream: a negative period counts as 1 s
		asked = &one
	}
	graceful, grace := false, int64(0)
	if pod, ok := obj.(*corev1.Pod); ok {
		switch ts := acc.GetDeletionTimestamp(); {
		case ts == nil:
			graceful, grace = true, podGracePeriod(pod, asked)
			at := metav1.NewTime(now.Add(seconds(grace)))
			acc.SetDeletionTimestamp(&at)
			acc.SetDeletionGracePeriodSeconds(&grace)
			if g := acc.GetGeneration(); g > 0 {
				acc.SetGeneration(g + 1)
			}
		case gracePending(acc):
			old := *acc.GetDeletionGracePeriodSeconds()
			if asked == nil || *asked >= old {
				return deletePending
			}
			graceful, grace = true, *asked
			at := ts.Add(-seconds(old)).Add(seconds(grace))
			if at.Before(now) {
				// The shorter period has run out already: now, and for a graceful
				// delete still 1 s, so that the kubelet has the last word.
				at = now
				if grace != 0 {
					grace = 1
				}
			}
			mt := metav1.NewTime(at)
			acc.SetDeletionTimestamp(&mt)
			acc.SetDeletionGracePeriodSeconds(&grace)
		}
	}
	finalizers := gcFinalizers(acc.GetFinalizers(), opts)
	if _, ok := obj.(*corev1.Namespace); ok {
		finalizers = addString(finalizers, "kubernetes")
	}
	acc.SetFinalizers(finalizers)
	switch {
	case len(finalizers) > 0:
		if !graceful {
			markDeleting(acc, now)
		}
		markTerminating(obj)
		return deleteMark
	case graceful && grace > 0:
		return deleteMark
	case graceful && running(obj.(*corev1.Pod)):
		return deleteAfterMark
	}
	return deleteNow
}

// running reports whether a node may be running the pod: it is bound and not finished.
func running(pod *corev1.Pod) bool {
	return pod.Spec.NodeName != "" && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

func seconds(n int64) time.Duration { return time.Duration(n) * time.Second }

// gcFinalizers is the object's finalizers with the garbage collector's two set as the
// DELETE's propagation policy asks (orphanDependents, its deprecated form, too); without
// either, the object keeps what it has.
func gcFinalizers(fs []string, opts metav1.DeleteOptions) []string {
	orphan, foreground := contains(fs, metav1.FinalizerOrphanDependents), contains(fs, metav1.FinalizerDeleteDependents)
	switch {
	case opts.OrphanDependents != nil:
		orphan, foreground = *opts.OrphanDependents, false
	case opts.PropagationPolicy != nil:
		orphan = *opts.PropagationPolicy == metav1.DeletePropagationOrphan
		foreground = *opts.PropagationPolicy == metav1.DeletePropagationForeground
	default:
		return fs
	}
	fs = removeString(removeString(fs, metav1.FinalizerOrphanDependents), metav1.FinalizerDeleteDependents)
	if orphan {
		fs = addString(fs, metav1.FinalizerOrphanDependents)
	}
	if foreground {
		fs = addString(fs, metav1.FinalizerDeleteDependents)
	}
	return fs
}

// markDeleting marks an object its finalizers hold: deleted now (unless marked for
// sooner), with no grace period left.
func markDeleting(acc metav1.Object, now time.Time) {
	ts := acc.GetDeletionTimestamp()
	if ts == nil && acc.GetGeneration() > 0 {
		acc.SetGeneration(acc.GetGeneration() + 1)
	}
	if ts == nil || ts.After(now) {
		mt := metav1.NewTime(now)
		acc.SetDeletionTimestamp(&mt)
	}
	var zero int64
	acc.SetDeletionGracePeriodSeconds(&zero)
}
