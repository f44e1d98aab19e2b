package tainteviction

import (
	"context"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
)

var (
	unreachable = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}
	notReady    = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}
)

func tolerate(key string, seconds *int64) corev1.Toleration {
	return corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: seconds}
}

func TestToleranceIsTheShortestTolerationSeconds(t *testing.T) {
	for _, tc := range []struct {
		name        string
		tolerations []corev1.Toleration
		taints      []corev1.Taint
		want        time.Duration
		tolerated   bool
	}{
		{"no toleration", nil, []corev1.Taint{unreachable}, 0, false},
		{"one taint not tolerated", []corev1.Toleration{tolerate(corev1.TaintNodeUnreachable, nil)}, []corev1.Taint{unreachable, notReady}, 0, false},
		{"forever", []corev1.Toleration{tolerate(corev1.TaintNodeUnreachable, nil)}, []corev1.Taint{unreachable}, -1, true},
		{"seconds", []corev1.Toleration{tolerate(corev1.TaintNodeUnreachable, ptr.To[int64](300))}, []corev1.Taint{unreachable}, 300 * time.Second, true},
		{"shortest of all matching", []corev1.Toleration{tolerate(corev1.TaintNodeUnreachable, nil), tolerate("", ptr.To[int64](20)), tolerate(corev1.TaintNodeNotReady, ptr.To[int64](60))},
			[]corev1.Taint{unreachable, notReady}, 20 * time.Second, true},
		{"negative means now", []corev1.Toleration{tolerate(corev1.TaintNodeUnreachable, ptr.To[int64](-5))}, []corev1.Taint{unreachable}, 0, true},
	} {
		got, ok := Tolerance(tc.tolerations, tc.taints)
		if got != tc.want || ok != tc.tolerated {
			t.Errorf("%s: %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.tolerated)
		}
	}
}

type fixture struct {
	t      *testing.T
	client *fake.Clientset
	inf    informers.SharedInformerFactory
	c      *Controller
	events *record.FakeRecorder
	clock  time.Time
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	f := &fixture{t: t, client: fake.NewClientset(objs...), clock: time.Now(), events: record.NewFakeRecorder(10)}
	f.inf = informers.NewSharedInformerFactory(f.client, 0)
	c, err := New(f.client, f.inf.Core().V1().Pods(), f.inf.Core().V1().Nodes(), f.events, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return f.clock }
	f.c = c
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Node:
			f.inf.Core().V1().Nodes().Informer().GetIndexer().Add(o)
		case *corev1.Pod:
			f.inf.Core().V1().Pods().Informer().GetIndexer().Add(o)
		}
	}
	return f
}

func (f *fixture) deleted() bool {
	f.t.Helper()
	f.client.ClearActions()
	if err := f.c.sync(context.Background(), "default/p"); err != nil {
		f.t.Fatal(err)
	}
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "delete" {
			return true
		}
	}
	return false
}

func setup(t *testing.T, tolerations []corev1.Toleration, taints ...corev1.Taint) *fixture {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Spec: corev1.NodeSpec{Taints: taints}}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"}, Spec: corev1.PodSpec{NodeName: "n1", Tolerations: tolerations}}
	return newFixture(t, n, p)
}

func TestPodNotToleratingANoExecuteTaintIsEvictedAtOnce(t *testing.T) {
	f := setup(t, nil, unreachable)
	if !f.deleted() {
		t.Fatal("pod not evicted")
	}
	if e := <-f.events.Events; e != "Normal TaintManagerEviction Marking for deletion Pod default/p" {
		t.Fatalf("event %q", e)
	}
}

func TestPodIsEvictedWhenItsTolerationSecondsRunOut(t *testing.T) {
	f := setup(t, []corev1.Toleration{tolerate(corev1.TaintNodeUnreachable, ptr.To[int64](300))}, unreachable)
	if f.deleted() {
		t.Fatal("evicted at once despite tolerating 300s")
	}
	f.clock = f.clock.Add(299 * time.Second)
	if f.deleted() {
		t.Fatal("evicted after 299s")
	}
	f.clock = f.clock.Add(time.Second)
	if !f.deleted() {
		t.Fatal("not evicted after 300s")
	}
}

func TestTaintRemovalCancelsTheEviction(t *testing.T) {
	f := setup(t, []corev1.Toleration{tolerate(corev1.TaintNodeUnreachable, ptr.To[int64](300))}, unreachable)
	f.deleted()
	n, _ := f.inf.Core().V1().Nodes().Lister().Get("n1")
	n = n.DeepCopy()
	n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Effect: corev1.TaintEffectNoSchedule}}
	f.inf.Core().V1().Nodes().Informer().GetIndexer().Update(n)
	f.clock = f.clock.Add(time.Hour)
	if f.deleted() {
		t.Fatal("evicted from a node that lost its NoExecute taint")
	}
	if e := <-f.events.Events; e != "Normal TaintManagerEviction Cancelling deletion of Pod default/p" {
		t.Fatalf("event %q", e)
	}
}

func TestPodToleratingForeverStays(t *testing.T) {
	f := setup(t, []corev1.Toleration{tolerate("", nil)}, unreachable, notReady)
	f.clock = f.clock.Add(24 * time.Hour)
	if f.deleted() {
		t.Fatal("evicted a pod tolerating every taint forever")
	}
}
