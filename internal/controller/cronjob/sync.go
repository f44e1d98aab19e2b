package cronjob

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	"github.com/berth-project/berth/internal/controller/jobstate"
	"github.com/berth-project/berth/internal/controller/ownerref"
)

// sync brings a CronJob's active list and history up to date and starts the Job of
// its most recent missed start time, then sleeps until the next one.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	cached, err := c.cjLister.CronJobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	cj := cached.DeepCopy()
	all, err := c.jobLister.Jobs(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	var jobs []*batchv1.Job
	for _, j := range all {
		if metav1.IsControlledBy(j, cj) {
			jobs = append(jobs, j)
		}
	}
	c.trackActive(cj, jobs)
	if err := c.cleanup(ctx, cj, jobs); err != nil {
		return err
	}
	next, err := c.schedule(ctx, cj)
	if uerr := c.updateStatus(ctx, cached, cj); uerr != nil {
		return uerr
	}
	if !next.IsZero() {
		c.queue.AddAfter(key, next.Sub(c.now())+100*time.Millisecond)
	}
	return err
}

func finished(j *batchv1.Job) (bool, batchv1.JobConditionType) {
	how, _ := jobstate.Finished(j)
	return how != "", how
}

// trackActive lists the CronJob's unfinished Jobs in status.active and records when
// one last succeeded.
func (c *Controller) trackActive(cj *batchv1.CronJob, jobs []*batchv1.Job) {
	byUID := map[string]*batchv1.Job{}
	for _, j := range jobs {
		byUID[string(j.UID)] = j
	}
	var active []corev1.ObjectReference
	seen := map[string]bool{}
	for _, ref := range cj.Status.Active {
		j, ok := byUID[string(ref.UID)]
		if !ok {
			continue // gone
		}
		if done, how := finished(j); done {
			c.recorder.Eventf(cj, corev1.EventTypeNormal, "SawCompletedJob", "Saw completed job: %s, status: %v", j.Name, how)
			if how == batchv1.JobComplete && j.Status.CompletionTime != nil &&
				(cj.Status.LastSuccessfulTime == nil || cj.Status.LastSuccessfulTime.Before(j.Status.CompletionTime)) {
				cj.Status.LastSuccessfulTime = j.Status.CompletionTime
			}
			continue
		}
		active = append(active, ref)
		seen[string(ref.UID)] = true
	}
	for _, j := range jobs {
		if done, _ := finished(j); !done && !seen[string(j.UID)] && j.DeletionTimestamp == nil {
			active = append(active, jobRef(j))
		}
	}
	cj.Status.Active = active
}

func jobRef(j *batchv1.Job) corev1.ObjectReference {
	return corev1.ObjectReference{Kind: "Job", Namespace: j.Namespace, Name: j.Name, UID: j.UID, APIVersion: "batch/v1", ResourceVersion: j.ResourceVersion}
}

// cleanup deletes the oldest finished Jobs beyond the history limits.
func (c *Controller) cleanup(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) error {
	var ok, failed []*batchv1.Job
	for _, j := range jobs {
		switch done, how := finished(j); {
		case !done || j.DeletionTimestamp != nil:
		case how == batchv1.JobComplete:
			ok = append(ok, j)
		default:
			failed = append(failed, j)
		}
	}
	limit := func(p *int32, def int) int {
		if p == nil {
			return def
		}
		return int(*p)
	}
	for _, set := range []struct {
		jobs  []*batchv1.Job
		limit int
	}{{ok, limit(cj.Spec.SuccessfulJobsHistoryLimit, 3)}, {failed, limit(cj.Spec.FailedJobsHistoryLimit, 1)}} {
		sort.Slice(set.jobs, func(i, j int) bool { return startTime(set.jobs[i]).Before(startTime(set.jobs[j])) })
		for _, j := range set.jobs[:max(0, len(set.jobs)-set.limit)] {
			if err := c.deleteJob(ctx, cj, j); err != nil {
				return err
			}
		}
	}
	return nil
}

func startTime(j *batchv1.Job) time.Time {
	if j.Status.StartTime != nil {
		return j.Status.StartTime.Time
	}
	return j.CreationTimestamp.Time
}

func (c *Controller) deleteJob(ctx context.Context, cj *batchv1.CronJob, j *batchv1.Job) error {
	bg := metav1.DeletePropagationBackground
	err := c.client.BatchV1().Jobs(j.Namespace).Delete(ctx, j.Name, metav1.DeleteOptions{PropagationPolicy: &bg})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedDelete", "Error deleting job: %v", err)
		return err
	}
	c.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted job %v", j.Name)
	return nil
}

// schedule starts the Job for the most recent start time missed, if the deadline and
// concurrency policy allow, and returns the next start time.
func (c *Controller) schedule(ctx context.Context, cj *batchv1.CronJob) (time.Time, error) {
	if cj.DeletionTimestamp != nil || (cj.Spec.Suspend != nil && *cj.Spec.Suspend) {
		return time.Time{}, nil
	}
	sched, err := Schedule(cj)
	if err != nil {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "UnparseableSchedule", "unparseable schedule: %v", err)
		return time.Time{}, nil // retrying will not fix it; an update will bring it back
	}
	now := c.now()
	earliest := cj.CreationTimestamp.Time
	if cj.Status.LastScheduleTime != nil {
		earliest = cj.Status.LastScheduleTime.Time
	}
	deadline := cj.Spec.StartingDeadlineSeconds
	if deadline != nil {
		if floor := now.Add(-time.Duration(*deadline) * time.Second); floor.After(earliest) {
			earliest = floor
		}
	}
	next := sched.Next(now)
	at, missed := lastMissed(sched, earliest, now)
	if at.IsZero() {
		return next, nil
	}
	if missed > tooManyMissed {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "TooManyMissedTimes", "too many missed start times: %d. Set or decrease .spec.startingDeadlineSeconds or check clock skew", missed)
	}
	if deadline != nil && at.Add(time.Duration(*deadline)*time.Second).Before(now) {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "MissSchedule", "Missed scheduled time to start a job: %s", at.UTC().Format(time.RFC1123Z))
		return next, nil
	}
	switch {
	case cj.Spec.ConcurrencyPolicy == batchv1.ForbidConcurrent && len(cj.Status.Active) > 0:
		c.recorder.Eventf(cj, corev1.EventTypeNormal, "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid")
		return next, nil
	case cj.Spec.ConcurrencyPolicy == batchv1.ReplaceConcurrent:
		for _, ref := range cj.Status.Active {
			j, err := c.jobLister.Jobs(cj.Namespace).Get(ref.Name)
			if err != nil {
				continue
			}
			if err := c.deleteJob(ctx, cj, j); err != nil {
				return next, err
			}
		}
		cj.Status.Active = nil
	}
	j, err := c.createJob(ctx, cj, at)
	if err != nil {
		return next, err
	}
	cj.Status.Active = append(cj.Status.Active, jobRef(j))
	cj.Status.LastScheduleTime = &metav1.Time{Time: at}
	return next, nil
}

// createJob creates the Job for start time at, named after the CronJob and the minute.
func (c *Controller) createJob(ctx context.Context, cj *batchv1.CronJob, at time.Time) (*batchv1.Job, error) {
	t := cj.Spec.JobTemplate
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("%s-%d", cj.Name, at.Unix()/60), Namespace: cj.Namespace,
			Labels: maps.Clone(t.Labels), Annotations: maps.Clone(t.Annotations),
			OwnerReferences: []metav1.OwnerReference{ownerref.ControllerRef(cj, Kind)},
		},
		Spec: *t.Spec.DeepCopy(),
	}
	if j.Annotations == nil {
		j.Annotations = map[string]string{}
	}
	j.Annotations[batchv1.CronJobScheduledTimestampAnnotation] = at.In(location(cj)).Format(time.RFC3339)
	created, err := c.client.BatchV1().Jobs(cj.Namespace).Create(ctx, j, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		existing, gerr := c.client.BatchV1().Jobs(cj.Namespace).Get(ctx, j.Name, metav1.GetOptions{})
		if gerr == nil && metav1.IsControlledBy(existing, cj) {
			return existing, nil // made by an earlier sync
		}
		return nil, err
	}
	if err != nil {
		c.recorder.Eventf(cj, corev1.EventTypeWarning, "FailedCreate", "Error creating job: %v", err)
		return nil, err
	}
	c.log.Info("started job", "cronjob", cj.Namespace+"/"+cj.Name, "job", created.Name, "scheduled", at)
	c.recorder.Eventf(cj, corev1.EventTypeNormal, "SuccessfulCreate", "Created job %v", created.Name)
	return created, nil
}

func location(cj *batchv1.CronJob) *time.Location {
	if cj.Spec.TimeZone != nil {
		if l, err := time.LoadLocation(*cj.Spec.TimeZone); err == nil {
			return l
		}
	}
	return time.Local
}

func (c *Controller) updateStatus(ctx context.Context, cached, cj *batchv1.CronJob) error {
	if equality.Semantic.DeepEqual(cached.Status, cj.Status) {
		return nil
	}
	_, err := c.client.BatchV1().CronJobs(cj.Namespace).UpdateStatus(ctx, cj, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
