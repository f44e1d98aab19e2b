package job

import (
	"context"
	"sort"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/cache"

	"github.com/berth-project/berth/internal/controller/jobstate"
	"github.com/berth-project/berth/internal/controller/ownerref"
	"github.com/berth-project/berth/internal/controller/pods"
)

// Backoff before replacing failed pods: 10 s, doubling per failure, at most 6 min.
const (
	backoffBase = 10 * time.Second
	backoffMax  = 6 * time.Minute
)

// census is what a Job's pods say.
type census struct {
	active      []*corev1.Pod
	terminating int32
	succeeded   int32
	failed      int32
	lastFailure time.Time
	doneIndexes map[int]bool // Indexed jobs: indexes with a succeeded pod
}

func (c *Controller) count(j *batchv1.Job, owned []*corev1.Pod) census {
	var cs census
	cs.doneIndexes = map[int]bool{}
	for _, p := range owned {
		switch {
		case p.Status.Phase == corev1.PodSucceeded:
			cs.succeeded++
			if i, ok := index(p); ok {
				cs.doneIndexes[i] = true
			}
		case p.Status.Phase == corev1.PodFailed:
			cs.failed++
			cs.lastFailure = maxTime(cs.lastFailure, finishedAt(p))
		case p.DeletionTimestamp != nil:
			cs.terminating++
		default:
			cs.active = append(cs.active, p)
		}
	}
	if indexed(j) {
		cs.succeeded = int32(len(cs.doneIndexes))
	}
	return cs
}

// sync moves a Job one step: finish it (complete, or failed by backoff limit or
// deadline), stop it (suspended), or run as many pods as it needs now.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	cached, err := c.jobLister.Jobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.exp.Forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	j := cached.DeepCopy()
	owned, err := c.claim(ctx, j)
	if err != nil {
		return err
	}
	cs := c.count(j, owned)
	now := c.now()
	st := &j.Status
	// Counts never go down: a finished pod deleted later still counted.
	st.Succeeded, st.Failed = max(st.Succeeded, cs.succeeded), max(st.Failed, cs.failed)
	st.Terminating = &cs.terminating
	if indexed(j) {
		st.CompletedIndexes = formatIndexes(cs.doneIndexes)
	}
	if finished(j) {
		return c.finish(ctx, key, cached, j, cs, nil)
	}
	suspended := j.Spec.Suspend != nil && *j.Spec.Suspend
	if !suspended && st.StartTime == nil {
		st.StartTime = &metav1.Time{Time: now}
	}

	switch {
	case j.Spec.BackoffLimit != nil && st.Failed > *j.Spec.BackoffLimit:
		return c.finish(ctx, key, cached, j, cs, &failure{batchv1.JobReasonBackoffLimitExceeded, "Job has reached the specified backoff limit"})
	case j.Spec.ActiveDeadlineSeconds != nil && st.StartTime != nil && !now.Before(st.StartTime.Add(time.Duration(*j.Spec.ActiveDeadlineSeconds)*time.Second)):
		return c.finish(ctx, key, cached, j, cs, &failure{batchv1.JobReasonDeadlineExceeded, "Job was active longer than specified deadline"})
	case complete(j, cs):
		return c.finish(ctx, key, cached, j, cs, nil)
	case suspended:
		st.StartTime = nil
		if setCondition(st, batchv1.JobSuspended, corev1.ConditionTrue, "JobSuspended", "Job suspended", now) {
			c.recorder.Event(j, corev1.EventTypeNormal, "Suspended", "Job suspended")
		}
		err = c.deletePods(ctx, key, j, cs.active)
		st.Active, st.Ready = 0, ptrTo[int32](0)
	default:
		if cond := getCondition(st, batchv1.JobSuspended); cond != nil && cond.Status == corev1.ConditionTrue {
			setCondition(st, batchv1.JobSuspended, corev1.ConditionFalse, "JobResumed", "Job resumed", now)
			c.recorder.Event(j, corev1.EventTypeNormal, "Resumed", "Job resumed")
		}
		st.Active, st.Ready = int32(len(cs.active)), ptrTo(readyCount(cs.active))
		if c.exp.Satisfied(key) {
			var delta int
			delta, err = c.manage(ctx, key, j, cs, now)
			st.Active += int32(delta)
		}
	}
	if uerr := c.updateStatus(ctx, cached, j); uerr != nil {
		return uerr
	}
	if ads := j.Spec.ActiveDeadlineSeconds; ads != nil && st.StartTime != nil {
		c.queue.AddAfter(key, st.StartTime.Add(time.Duration(*ads)*time.Second).Sub(now))
	}
	return err
}

func ptrTo[T any](v T) *T { return &v }

func readyCount(active []*corev1.Pod) int32 {
	var n int32
	for _, p := range active {
		if pods.Ready(p) {
			n++
		}
	}
	return n
}

func finished(j *batchv1.Job) bool {
	how, _ := jobstate.Finished(j)
	return how != ""
}

// complete: enough pods succeeded (every index, for an Indexed Job); without
// completions, one pod succeeded and none is still running.
func complete(j *batchv1.Job, cs census) bool {
	if j.Spec.Completions != nil {
		return cs.succeeded >= *j.Spec.Completions || j.Status.Succeeded >= *j.Spec.Completions
	}
	return j.Status.Succeeded > 0 && len(cs.active) == 0
}

type failure struct{ reason, message string }

// finish ends the Job: its running pods are deleted and, the first time, the
// terminal conditions are set (SuccessCriteriaMet/Complete or FailureTarget/Failed).
func (c *Controller) finish(ctx context.Context, key string, cached, j *batchv1.Job, cs census, f *failure) error {
	st := &j.Status
	now := c.now()
	if !finished(j) {
		if f != nil {
			setCondition(st, batchv1.JobFailureTarget, corev1.ConditionTrue, f.reason, f.message, now)
			setCondition(st, batchv1.JobFailed, corev1.ConditionTrue, f.reason, f.message, now)
			c.recorder.Event(j, corev1.EventTypeWarning, f.reason, f.message)
		} else {
			msg := "Reached expected number of succeeded pods"
			setCondition(st, batchv1.JobSuccessCriteriaMet, corev1.ConditionTrue, batchv1.JobReasonCompletionsReached, msg, now)
			setCondition(st, batchv1.JobComplete, corev1.ConditionTrue, batchv1.JobReasonCompletionsReached, msg, now)
			st.CompletionTime = &metav1.Time{Time: now}
			c.recorder.Event(j, corev1.EventTypeNormal, "Completed", "Job completed")
		}
		c.log.Info("job finished", "job", key, "succeeded", st.Succeeded, "failed", st.Failed)
	}
	err := c.deletePods(ctx, key, j, cs.active)
	st.Active, st.Ready = 0, ptrTo[int32](0)
	if uerr := c.updateStatus(ctx, cached, j); uerr != nil {
		return uerr
	}
	return err
}

// manage creates or deletes pods toward the number the Job should run now (after
// the backoff that follows failures); it returns how the number of active pods moved.
func (c *Controller) manage(ctx context.Context, key string, j *batchv1.Job, cs census, now time.Time) (int, error) {
	parallelism := int32(1)
	if j.Spec.Parallelism != nil {
		parallelism = *j.Spec.Parallelism
	}
	want := parallelism
	switch {
	case j.Spec.Completions != nil:
		want = min(parallelism, *j.Spec.Completions-j.Status.Succeeded)
	case j.Status.Succeeded > 0:
		want = int32(len(cs.active)) // a work queue: once one pod succeeded, no new pods, the rest run on
	}
	diff := int(max(0, want)) - len(cs.active)
	if diff < 0 {
		victims := append([]*corev1.Pod(nil), cs.active...)
		sort.SliceStable(victims, func(a, b int) bool { return !pods.Ready(victims[a]) && pods.Ready(victims[b]) })
		return diff, c.deletePods(ctx, key, j, victims[:-diff])
	}
	if diff == 0 {
		return 0, nil
	}
	if j.Status.Failed > 0 && !cs.lastFailure.IsZero() {
		delay := min(backoffMax, backoffBase<<min(j.Status.Failed-1, 10))
		if wait := cs.lastFailure.Add(delay).Sub(now); wait > 0 {
			c.queue.AddAfter(key, wait)
			return 0, nil
		}
	}
	next := func() int { return -1 }
	if indexed(j) {
		next = nextIndexes(j, cs)
	}
	c.exp.ExpectCreations(key, diff)
	created, err := pods.SlowStart(diff, func() error {
		i := next()
		if indexed(j) && i >= int(*j.Spec.Completions) {
			c.exp.CreationObserved(key) // every index is taken after all
			return nil
		}
		return c.createPod(ctx, j, i)
	})
	for range diff - created {
		c.exp.CreationObserved(key)
	}
	return created, err
}

// claim returns the pods the Job owns (adopting orphans its selector matches).
func (c *Controller) claim(ctx context.Context, j *batchv1.Job) ([]*corev1.Pod, error) {
	all, err := c.podLister.Pods(j.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	sel := labels.Nothing()
	if j.Spec.Selector != nil {
		if sel, err = metav1.LabelSelectorAsSelector(j.Spec.Selector); err != nil {
			return nil, nil
		}
	}
	cl := &ownerref.Claimer{
		Owner: j, Kind: Kind, Selector: sel,
		CanAdopt: ownerref.Recheck(j, "Job", func(ctx context.Context) (metav1.Object, error) {
			return c.client.BatchV1().Jobs(j.Namespace).Get(ctx, j.Name, metav1.GetOptions{})
		}),
		Patch: ownerref.PodPatcher(c.client),
	}
	var owned []*corev1.Pod
	var errs []error
	for _, p := range all {
		// Without a selector (not defaulted by the API server) the controller
		// reference alone says which pods are the Job's.
		if ref := metav1.GetControllerOfNoCopy(p); j.Spec.Selector == nil && ref != nil && ref.UID == j.UID {
			owned = append(owned, p)
			continue
		}
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

func (c *Controller) updateStatus(ctx context.Context, cached, j *batchv1.Job) error {
	if equality.Semantic.DeepEqual(cached.Status, j.Status) {
		return nil
	}
	_, err := c.client.BatchV1().Jobs(j.Namespace).UpdateStatus(ctx, j, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// finishedAt is when a failed pod's last container ended (its creation if unknown).
func finishedAt(p *corev1.Pod) time.Time {
	t := p.CreationTimestamp.Time
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Terminated != nil {
			t = maxTime(t, s.State.Terminated.FinishedAt.Time)
		}
	}
	return t
}
