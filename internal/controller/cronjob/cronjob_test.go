package cronjob

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
)

var created = time.Date(2026, 3, 1, 10, 0, 30, 0, time.UTC)

func cronJob(policy batchv1.ConcurrencyPolicy) *batchv1.CronJob {
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "backup", Namespace: "default", UID: "cj-uid", CreationTimestamp: metav1.NewTime(created)},
		Spec: batchv1.CronJobSpec{
			Schedule: "*/5 * * * *", TimeZone: ptr.To("UTC"), ConcurrencyPolicy: policy,
			JobTemplate: batchv1.JobTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "backup"}},
				Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}}},
		},
	}
}

func ownedJob(cj *batchv1.CronJob, name string, started time.Time, done batchv1.JobConditionType) *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name + "-uid"), CreationTimestamp: metav1.NewTime(started),
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, Kind)}},
		Status: batchv1.JobStatus{StartTime: &metav1.Time{Time: started}}}
	if done != "" {
		j.Status.Conditions = []batchv1.JobCondition{{Type: done, Status: corev1.ConditionTrue}}
		j.Status.CompletionTime = &metav1.Time{Time: started.Add(time.Minute)}
	}
	return j
}

// run syncs once at now over objs and returns the CronJob and the names of its Jobs.
func run(t *testing.T, now time.Time, objs ...runtime.Object) (*batchv1.CronJob, []string) {
	t.Helper()
	client := fake.NewClientset(objs...)
	f := informers.NewSharedInformerFactory(client, 0)
	c := New(client, f.Batch().V1().CronJobs(), f.Batch().V1().Jobs(), record.NewFakeRecorder(100), slog.New(slog.DiscardHandler))
	c.now = func() time.Time { return now }
	for _, o := range objs {
		switch o := o.(type) {
		case *batchv1.CronJob:
			f.Batch().V1().CronJobs().Informer().GetIndexer().Add(o)
		case *batchv1.Job:
			f.Batch().V1().Jobs().Informer().GetIndexer().Add(o)
		}
	}
	if err := c.sync(context.Background(), "default/backup"); err != nil {
		t.Fatal(err)
	}
	cj, _ := client.BatchV1().CronJobs("default").Get(context.Background(), "backup", metav1.GetOptions{})
	jobs, _ := client.BatchV1().Jobs("default").List(context.Background(), metav1.ListOptions{})
	var names []string
	for _, j := range jobs.Items {
		names = append(names, j.Name)
	}
	sort.Strings(names)
	return cj, names
}

func jobName(at time.Time) string { return fmt.Sprintf("backup-%d", at.Unix()/60) }

func TestStartsTheJobOfTheMostRecentStartTime(t *testing.T) {
	now := created.Add(17 * time.Minute) // 10:17:30; start times 10:05, 10:10, 10:15 passed
	cj, jobs := run(t, now, cronJob(batchv1.AllowConcurrent))
	at := time.Date(2026, 3, 1, 10, 15, 0, 0, time.UTC)
	if fmt.Sprint(jobs) != "["+jobName(at)+"]" {
		t.Fatalf("jobs %v, want the 10:15 one", jobs)
	}
	if cj.Status.LastScheduleTime == nil || !cj.Status.LastScheduleTime.Time.Equal(at) || len(cj.Status.Active) != 1 {
		t.Fatalf("status %+v", cj.Status)
	}
	// Nothing new until 10:20.
	if _, jobs := run(t, now.Add(time.Minute), cj); len(jobs) != 0 {
		t.Fatalf("a second job before the next start time: %v", jobs)
	}
}

func TestConcurrencyPolicies(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 20, 5, 0, time.UTC)
	for _, tc := range []struct {
		policy batchv1.ConcurrencyPolicy
		want   string
	}{
		{batchv1.AllowConcurrent, "[" + jobName(now.Add(-5*time.Second)) + " running]"},
		{batchv1.ForbidConcurrent, "[running]"},
		{batchv1.ReplaceConcurrent, "[" + jobName(now.Add(-5*time.Second)) + "]"},
	} {
		cj := cronJob(tc.policy)
		running := ownedJob(cj, "running", now.Add(-6*time.Minute), "")
		cj.Status.Active = []corev1.ObjectReference{jobRef(running)}
		cj.Status.LastScheduleTime = &metav1.Time{Time: now.Add(-5*time.Minute - 5*time.Second)}
		if _, jobs := run(t, now, cj, running); fmt.Sprint(jobs) != tc.want {
			t.Errorf("%s: jobs %v, want %s", tc.policy, jobs, tc.want)
		}
	}
}

func TestStartTimeMissedByMoreThanTheDeadlineIsSkipped(t *testing.T) {
	cj := cronJob(batchv1.AllowConcurrent)
	cj.Spec.StartingDeadlineSeconds = ptr.To[int64](60)
	if _, jobs := run(t, time.Date(2026, 3, 1, 10, 17, 0, 0, time.UTC), cj); len(jobs) != 0 {
		t.Fatalf("started %v two minutes late with a 60 s deadline", jobs)
	}
	if _, jobs := run(t, time.Date(2026, 3, 1, 10, 15, 40, 0, time.UTC), cj); len(jobs) != 1 {
		t.Fatal("did not start 40 s late with a 60 s deadline")
	}
}

func TestFinishedJobsBeyondTheHistoryLimitsAreDeleted(t *testing.T) {
	cj := cronJob(batchv1.AllowConcurrent)
	cj.Spec.Suspend = ptr.To(true)
	objs := []runtime.Object{cj}
	for i := range 5 {
		objs = append(objs, ownedJob(cj, fmt.Sprintf("ok-%d", i), created.Add(time.Duration(i)*time.Hour), batchv1.JobComplete))
	}
	objs = append(objs, ownedJob(cj, "bad-0", created, batchv1.JobFailed), ownedJob(cj, "bad-1", created.Add(time.Hour), batchv1.JobFailed))
	if _, jobs := run(t, created.Add(10*time.Hour), objs...); fmt.Sprint(jobs) != "[bad-1 ok-2 ok-3 ok-4]" {
		t.Fatalf("jobs left %v", jobs)
	}
}

func TestScheduleInATimeZone(t *testing.T) {
	cj := cronJob(batchv1.AllowConcurrent)
	cj.Spec.Schedule, cj.Spec.TimeZone = "0 9 * * *", ptr.To("Asia/Tokyo")
	s, err := Schedule(cj)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Next(created); !got.Equal(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("next 09:00 in Tokyo after %v: %v", created, got.UTC())
	}
	cj.Spec.TimeZone = ptr.To("Mars/Olympus")
	if _, err := Schedule(cj); err == nil {
		t.Fatal("unknown time zone accepted")
	}
}
