package job

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
)

type fixture struct {
	t      *testing.T
	client *fake.Clientset
	inf    informers.SharedInformerFactory
	c      *Controller
	clock  time.Time
	events *record.FakeRecorder
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	f := &fixture{t: t, client: fake.NewClientset(objs...), clock: time.Now(), events: record.NewFakeRecorder(100)}
	var n atomic.Int32
	f.client.PrependReactor("create", "pods", func(a core.Action) (bool, runtime.Object, error) {
		p := a.(core.CreateAction).GetObject().(*corev1.Pod)
		p.Name = fmt.Sprintf("%s%d", p.GenerateName, n.Add(1))
		return false, nil, nil
	})
	f.inf = informers.NewSharedInformerFactory(f.client, 0)
	f.c = New(f.client, f.inf.Batch().V1().Jobs(), f.inf.Core().V1().Pods(), f.events, slog.New(slog.DiscardHandler))
	f.c.now = func() time.Time { return f.clock }
	f.reload()
	return f
}

// reload shows the informers what the fake API server holds, and lets the
// expectations see it too, as the informer's events would.
func (f *fixture) reload() {
	ctx := context.Background()
	js, _ := f.client.BatchV1().Jobs("").List(ctx, metav1.ListOptions{})
	ps, _ := f.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	var jobs, pods []any
	for i := range js.Items {
		jobs = append(jobs, &js.Items[i])
	}
	for i := range ps.Items {
		pods = append(pods, &ps.Items[i])
	}
	f.inf.Batch().V1().Jobs().Informer().GetIndexer().Replace(jobs, "")
	f.inf.Core().V1().Pods().Informer().GetIndexer().Replace(pods, "")
	f.c.exp.Forget("default/pi")
}

func (f *fixture) sync() {
	f.t.Helper()
	if err := f.c.sync(context.Background(), "default/pi"); err != nil {
		f.t.Fatal(err)
	}
	f.reload()
}

func (f *fixture) job() *batchv1.Job {
	j, _ := f.client.BatchV1().Jobs("default").Get(context.Background(), "pi", metav1.GetOptions{})
	return j
}

func (f *fixture) pods() []corev1.Pod {
	l, _ := f.client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Name < l.Items[j].Name })
	return l.Items
}

// finish marks the running pods of the job finished, the first n of them with phase.
func (f *fixture) finish(phase corev1.PodPhase, n int) {
	for _, p := range f.pods() {
		if n == 0 {
			break
		}
		if p.Status.Phase != "" && p.Status.Phase != corev1.PodPending && p.Status.Phase != corev1.PodRunning {
			continue
		}
		p.Status.Phase = phase
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: metav1.NewTime(f.clock)}}}}
		f.client.CoreV1().Pods("default").UpdateStatus(context.Background(), &p, metav1.UpdateOptions{})
		n--
	}
	f.reload()
}

func newJob(completions, parallelism *int32) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "pi", Namespace: "default", UID: "pi-uid"},
		Spec: batchv1.JobSpec{
			Completions: completions, Parallelism: parallelism, BackoffLimit: ptr.To[int32](6),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{batchv1.ControllerUidLabel: "pi-uid"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{batchv1.ControllerUidLabel: "pi-uid"}},
				Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "pi", Image: "perl"}}},
			},
		},
	}
}

func condition(j *batchv1.Job, t batchv1.JobConditionType) string {
	if c := getCondition(&j.Status, t); c != nil {
		return string(c.Status) + "/" + c.Reason
	}
	return ""
}

func TestJobRunsParallelPodsUntilCompletions(t *testing.T) {
	f := newFixture(t, newJob(ptr.To[int32](5), ptr.To[int32](2)))
	f.sync()
	if n := len(f.pods()); n != 2 {
		t.Fatalf("%d pods, want parallelism 2", n)
	}
	if st := f.job().Status; st.Active != 2 || st.StartTime == nil {
		t.Fatalf("status %+v", st)
	}
	for done := 0; done < 5; done += 2 {
		f.finish(corev1.PodSucceeded, 2)
		f.sync()
	}
	j := f.job()
	if j.Status.Succeeded != 5 || j.Status.Active != 0 || j.Status.CompletionTime == nil {
		t.Fatalf("status %+v", j.Status)
	}
	if condition(j, batchv1.JobComplete) != "True/CompletionsReached" || condition(j, batchv1.JobSuccessCriteriaMet) != "True/CompletionsReached" {
		t.Fatalf("conditions %+v", j.Status.Conditions)
	}
	if n := len(f.pods()); n != 5 {
		t.Fatalf("%d pods made for 5 completions", n)
	}
}

func TestFailedPodsAreReplacedAfterBackoffUntilTheLimit(t *testing.T) {
	j := newJob(ptr.To[int32](1), ptr.To[int32](1))
	j.Spec.BackoffLimit = ptr.To[int32](1)
	f := newFixture(t, j)
	f.sync()
	f.finish(corev1.PodFailed, 1)
	f.sync()
	if n := len(f.pods()); n != 1 {
		t.Fatalf("%d pods; the replacement must wait for the 10 s backoff", n)
	}
	f.clock = f.clock.Add(11 * time.Second)
	f.sync()
	if n := len(f.pods()); n != 2 {
		t.Fatalf("%d pods after the backoff, want the replacement", n)
	}
	f.finish(corev1.PodFailed, 1)
	f.sync()
	got := f.job()
	if condition(got, batchv1.JobFailed) != "True/BackoffLimitExceeded" || got.Status.Failed != 2 {
		t.Fatalf("status %+v", got.Status)
	}
}

func TestDeadlineFailsTheJobAndDeletesItsPods(t *testing.T) {
	j := newJob(nil, ptr.To[int32](2))
	j.Spec.ActiveDeadlineSeconds = ptr.To[int64](30)
	f := newFixture(t, j)
	f.sync()
	f.clock = f.clock.Add(31 * time.Second)
	f.sync()
	if got := f.job(); condition(got, batchv1.JobFailed) != "True/DeadlineExceeded" || got.Status.Active != 0 {
		t.Fatalf("status %+v", got.Status)
	}
	if n := len(f.pods()); n != 0 {
		t.Fatalf("%d pods left", n)
	}
}

func TestWorkQueueJobCompletesWhenOneSucceedsAndTheRestFinish(t *testing.T) {
	f := newFixture(t, newJob(nil, ptr.To[int32](3)))
	f.sync()
	f.finish(corev1.PodSucceeded, 1)
	f.sync()
	if got := f.job(); condition(got, batchv1.JobComplete) != "" || len(f.pods()) != 3 {
		t.Fatalf("complete while 2 pods still run: %+v", got.Status)
	}
	f.finish(corev1.PodSucceeded, 2)
	f.sync()
	if got := f.job(); condition(got, batchv1.JobComplete) != "True/CompletionsReached" || got.Status.Succeeded != 3 {
		t.Fatalf("status %+v", got.Status)
	}
}

func TestIndexedJobGivesEachPodItsIndex(t *testing.T) {
	j := newJob(ptr.To[int32](3), ptr.To[int32](3))
	j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
	f := newFixture(t, j)
	f.sync()
	var got []string
	for _, p := range f.pods() {
		got = append(got, p.Annotations[batchv1.JobCompletionIndexAnnotation]+":"+p.Spec.Hostname+":"+p.Spec.Containers[0].Env[0].Name)
	}
	sort.Strings(got)
	if fmt.Sprint(got) != "[0:pi-0:JOB_COMPLETION_INDEX 1:pi-1:JOB_COMPLETION_INDEX 2:pi-2:JOB_COMPLETION_INDEX]" {
		t.Fatalf("pods %v", got)
	}
	f.finish(corev1.PodSucceeded, 3)
	f.sync()
	if got := f.job(); got.Status.CompletedIndexes != "0-2" || condition(got, batchv1.JobComplete) != "True/CompletionsReached" {
		t.Fatalf("status %+v", got.Status)
	}
}

func TestSuspendedJobHasNoPods(t *testing.T) {
	j := newJob(ptr.To[int32](2), ptr.To[int32](2))
	f := newFixture(t, j)
	f.sync()
	j = f.job()
	j.Spec.Suspend = ptr.To(true)
	f.client.BatchV1().Jobs("default").Update(context.Background(), j, metav1.UpdateOptions{})
	f.reload()
	f.sync()
	if got := f.job(); condition(got, batchv1.JobSuspended) != "True/JobSuspended" || len(f.pods()) != 0 || got.Status.StartTime != nil {
		t.Fatalf("suspended: %d pods, status %+v", len(f.pods()), got.Status)
	}
}
