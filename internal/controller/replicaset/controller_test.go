package replicaset

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
)

type fixture struct {
	t       *testing.T
	client  *fake.Clientset
	c       *Controller
	objects []runtime.Object
	events  *record.FakeRecorder
}

// newFixture builds a controller whose informers hold objs (as if synced) and whose
// fake API server holds them too; pods created by generateName get numbered names.
func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	f := &fixture{t: t, client: fake.NewClientset(objs...), objects: objs, events: record.NewFakeRecorder(100)}
	var n atomic.Int32
	f.client.PrependReactor("create", "pods", func(a core.Action) (bool, runtime.Object, error) {
		p := a.(core.CreateAction).GetObject().(*corev1.Pod)
		if p.Name == "" {
			p.Name = fmt.Sprintf("%s%d", p.GenerateName, n.Add(1))
		}
		return false, nil, nil
	})
	inf := informers.NewSharedInformerFactory(f.client, 0)
	f.c = New(f.client, inf.Apps().V1().ReplicaSets(), inf.Core().V1().Pods(), f.events, slog.New(slog.DiscardHandler))
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.ReplicaSet:
			inf.Apps().V1().ReplicaSets().Informer().GetIndexer().Add(o)
		case *corev1.Pod:
			inf.Core().V1().Pods().Informer().GetIndexer().Add(o)
		}
	}
	f.client.ClearActions()
	return f
}

func (f *fixture) sync(key string) {
	f.t.Helper()
	if err := f.c.sync(context.Background(), key); err != nil {
		f.t.Fatalf("sync %s: %v", key, err)
	}
}

// writes lists the verb/resource[/subresource] of every write the controller made.
func (f *fixture) writes() []string {
	var out []string
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "get" || a.GetVerb() == "list" || a.GetVerb() == "watch" {
			continue
		}
		s := a.GetVerb() + " " + a.GetResource().Resource
		if a.GetSubresource() != "" {
			s += "/" + a.GetSubresource()
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func (f *fixture) expectWrites(want ...string) {
	f.t.Helper()
	sort.Strings(want)
	if got := f.writes(); fmt.Sprint(got) != fmt.Sprint(want) {
		f.t.Fatalf("writes:\n got  %v\n want %v", got, want)
	}
}

func newRS(name string, replicas int32) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name + "-uid"), Generation: 1},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}, Annotations: map[string]string{"a": "b"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
}

func newPod(name string, rs *appsv1.ReplicaSet, phase corev1.PodPhase, ready bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name + "-uid"),
			Labels: map[string]string{"app": rs.Name}, CreationTimestamp: metav1.NewTime(time.Now().Add(-time.Hour))},
		Status: corev1.PodStatus{Phase: phase},
	}
	if rs.UID != "" {
		p.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(rs, Kind)}
	}
	if ready {
		p.Spec.NodeName = "n1"
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Now().Add(-time.Minute))}}
	}
	return p
}

func TestCreatesMissingPodsFromTheTemplate(t *testing.T) {
	rs := newRS("web", 3)
	f := newFixture(t, rs)
	f.sync("default/web")
	f.expectWrites("create pods", "create pods", "create pods", "update replicasets/status")
	for _, a := range f.client.Actions() {
		if a.GetVerb() != "create" {
			continue
		}
		p := a.(core.CreateAction).GetObject().(*corev1.Pod)
		ref := metav1.GetControllerOf(p)
		if p.GenerateName != "web-" || p.Labels["app"] != "web" || p.Annotations["a"] != "b" || ref == nil || ref.UID != rs.UID || !*ref.BlockOwnerDeletion {
			t.Fatalf("created pod %+v", p.ObjectMeta)
		}
	}
	if n := len(f.events.Events); n != 3 {
		t.Fatalf("%d events, want 3 SuccessfulCreate", n)
	}
	for range 3 {
		if e := <-f.events.Events; !strings.HasPrefix(e, "Normal SuccessfulCreate Created pod: web-") {
			t.Fatalf("event %q", e)
		}
	}

	// The informer has not seen the pods yet: a second sync must not create more.
	f.client.ClearActions()
	f.sync("default/web")
	for _, w := range f.writes() {
		if w == "create pods" {
			t.Fatal("created pods again before the informer saw the first ones")
		}
	}
}

func TestDeletesExtraPodsLeastUsefulFirst(t *testing.T) {
	rs := newRS("web", 1)
	running := newPod("running", rs, corev1.PodRunning, true)
	pending := newPod("pending", rs, corev1.PodPending, false)
	notReady := newPod("notready", rs, corev1.PodRunning, false)
	notReady.Spec.NodeName = "n1"
	f := newFixture(t, rs, running, pending, notReady)
	f.sync("default/web")
	var deleted []string
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "delete" {
			deleted = append(deleted, a.(core.DeleteAction).GetName())
		}
	}
	sort.Strings(deleted)
	if fmt.Sprint(deleted) != "[notready pending]" {
		t.Fatalf("deleted %v, want the pending and the unready pod", deleted)
	}
}

func TestAdoptsMatchingOrphansAndReleasesMismatchedPods(t *testing.T) {
	rs := newRS("web", 2)
	orphan := newPod("orphan", &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, corev1.PodRunning, true)
	relabeled := newPod("relabeled", rs, corev1.PodRunning, true)
	relabeled.Labels = map[string]string{"app": "other"}
	f := newFixture(t, rs, orphan, relabeled)
	f.sync("default/web")
	// One pod adopted, one released, one created to reach 2, and the status.
	f.expectWrites("patch pods", "patch pods", "create pods", "update replicasets/status")
	for _, a := range f.client.Actions() {
		if a.GetVerb() != "patch" {
			continue
		}
		p := a.(core.PatchAction)
		want := map[string]string{
			"orphan":    `{"metadata":{"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web","uid":"web-uid","controller":true,"blockOwnerDeletion":true}],"uid":"orphan-uid"}}`,
			"relabeled": `{"metadata":{"ownerReferences":[{"$patch":"delete","uid":"web-uid"}],"uid":"relabeled-uid"}}`,
		}[p.GetName()]
		if string(p.GetPatch()) != want {
			t.Fatalf("patch of %s: %s\nwant %s", p.GetName(), p.GetPatch(), want)
		}
	}
}

func TestIgnoresTerminatingPodsAndPodsOfOtherControllers(t *testing.T) {
	rs := newRS("web", 1)
	other := newRS("other", 1)
	theirs := newPod("theirs", other, corev1.PodRunning, true)
	theirs.Labels = rs.Spec.Template.Labels
	terminating := newPod("terminating", rs, corev1.PodRunning, true)
	terminating.DeletionTimestamp = ptr.To(metav1.Now())
	done := newPod("done", rs, corev1.PodSucceeded, false)
	f := newFixture(t, rs, other, theirs, terminating, done)
	f.sync("default/web")
	f.expectWrites("create pods", "update replicasets/status")
}

func TestStatusCountsReadyAndAvailableAfterMinReadySeconds(t *testing.T) {
	rs := newRS("web", 3)
	rs.Spec.MinReadySeconds = 120
	longReady := newPod("a", rs, corev1.PodRunning, true)
	longReady.Status.Conditions[0].LastTransitionTime = metav1.NewTime(time.Now().Add(-time.Hour))
	justReady := newPod("b", rs, corev1.PodRunning, true)
	unready := newPod("c", rs, corev1.PodPending, false)
	unready.Labels = map[string]string{"app": "web"}
	f := newFixture(t, rs, longReady, justReady, unready)
	f.sync("default/web")
	got, err := f.client.AppsV1().ReplicaSets("default").Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := got.Status
	if st.Replicas != 3 || st.FullyLabeledReplicas != 3 || st.ReadyReplicas != 2 || st.AvailableReplicas != 1 || st.ObservedGeneration != 1 {
		t.Fatalf("status %+v", st)
	}
}

func TestCreateFailureSetsReplicaFailureAndStopsTheBatch(t *testing.T) {
	rs := newRS("web", 10)
	f := newFixture(t, rs)
	f.client.PrependReactor("create", "pods", func(core.Action) (bool, runtime.Object, error) {
		return true, nil, fmt.Errorf("quota exceeded")
	})
	if err := f.c.sync(context.Background(), "default/web"); err == nil {
		t.Fatal("sync succeeded though every create failed")
	}
	creates := 0
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "create" {
			creates++
		}
	}
	if creates != 1 {
		t.Fatalf("%d creates attempted, want 1 (slow start stops at the first failing batch)", creates)
	}
	got, _ := f.client.AppsV1().ReplicaSets("default").Get(context.Background(), "web", metav1.GetOptions{})
	if c := condition(got.Status.Conditions, appsv1.ReplicaSetReplicaFailure); c == nil || c.Reason != "FailedCreate" {
		t.Fatalf("conditions %+v", got.Status.Conditions)
	}
	if !f.c.exp.Satisfied("default/web") {
		t.Fatal("failed creates are still awaited")
	}
}
