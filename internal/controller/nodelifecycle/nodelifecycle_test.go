package nodelifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
)

func node(ready corev1.ConditionStatus, conds ...corev1.NodeCondition) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	n.Status.Conditions = append([]corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}, conds...)
	return n
}

func TestTaintsFollowConditionsAndCordoning(t *testing.T) {
	now := time.Now()
	earlier := metav1.NewTime(now.Add(-time.Hour))
	for _, tc := range []struct {
		name string
		node *corev1.Node
		want string
	}{
		{"ready", node(corev1.ConditionTrue), "[]"},
		{"not ready", node(corev1.ConditionFalse), "[node.kubernetes.io/not-ready:NoExecute node.kubernetes.io/not-ready:NoSchedule]"},
		{"unknown", node(corev1.ConditionUnknown), "[node.kubernetes.io/unreachable:NoExecute node.kubernetes.io/unreachable:NoSchedule]"},
		{"pressure", node(corev1.ConditionTrue, corev1.NodeCondition{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionTrue}, corev1.NodeCondition{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse}),
			"[node.kubernetes.io/memory-pressure:NoSchedule]"},
		{"cordoned, with a user's taint", func() *corev1.Node {
			n := node(corev1.ConditionTrue)
			n.Spec.Unschedulable = true
			n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}, {Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}}
			return n
		}(), "[dedicated=db:NoSchedule node.kubernetes.io/unschedulable:NoSchedule]"},
	} {
		if got := fmt.Sprint(taintKeys(Taints(tc.node, now))); got != tc.want {
			t.Errorf("%s: taints %s, want %s", tc.name, got, tc.want)
		}
	}
	n := node(corev1.ConditionUnknown)
	n.Spec.Taints = []corev1.Taint{{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: &earlier}}
	for _, tt := range Taints(n, now) {
		if tt.Effect == corev1.TaintEffectNoExecute && !tt.TimeAdded.Equal(&earlier) {
			t.Errorf("a taint that stays lost its time: %v", tt.TimeAdded)
		}
	}
	if tt := Taints(node(corev1.ConditionFalse), now)[0]; tt.TimeAdded == nil || !tt.TimeAdded.Time.Equal(now) {
		t.Errorf("new NoExecute taint without its time: %+v", tt)
	}
}

type fixture struct {
	t      *testing.T
	client *fake.Clientset
	inf    informers.SharedInformerFactory
	c      *Controller
	clock  time.Time
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	f := &fixture{t: t, client: fake.NewClientset(objs...), clock: time.Now()}
	f.inf = informers.NewSharedInformerFactory(f.client, 0)
	c, err := New(f.client, f.inf.Core().V1().Nodes(), f.inf.Coordination().V1().Leases(), f.inf.Core().V1().Pods(),
		record.NewFakeRecorder(100), slog.New(slog.DiscardHandler), Config{GracePeriod: 40 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return f.clock }
	f.c = c
	for _, o := range objs {
		f.cache(o)
	}
	return f
}

func (f *fixture) cache(o runtime.Object) {
	switch o := o.(type) {
	case *corev1.Node:
		f.inf.Core().V1().Nodes().Informer().GetIndexer().Update(o)
	case *corev1.Pod:
		f.inf.Core().V1().Pods().Informer().GetIndexer().Update(o)
	case *coordinationv1.Lease:
		f.inf.Coordination().V1().Leases().Informer().GetIndexer().Update(o)
	}
}

func (f *fixture) sync() []string {
	f.t.Helper()
	f.client.ClearActions()
	if err := f.c.sync(context.Background(), "n1"); err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "update" {
			out = append(out, a.GetResource().Resource+"/"+a.GetSubresource())
			f.cache(a.(core.UpdateAction).GetObject())
		}
	}
	return out
}

func lease(renew time.Time) *coordinationv1.Lease {
	return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "n1", Namespace: corev1.NamespaceNodeLease},
		Spec: coordinationv1.LeaseSpec{RenewTime: &metav1.MicroTime{Time: renew}}}
}

func TestSilentNodeBecomesUnknownTaintedAndItsPodsNotReady(t *testing.T) {
	n := node(corev1.ConditionTrue)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"}, Spec: corev1.PodSpec{NodeName: "n1"},
		Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
	f := newFixture(t, n, pod, lease(time.Now()))
	if w := f.sync(); len(w) != 0 {
		t.Fatalf("healthy node: writes %v", w)
	}
	// A renewed lease is a heartbeat.
	f.clock = f.clock.Add(30 * time.Second)
	f.cache(lease(f.clock))
	f.clock = f.clock.Add(30 * time.Second)
	if w := f.sync(); len(w) != 0 {
		t.Fatalf("node heard from 30s ago: writes %v", w)
	}
	f.clock = f.clock.Add(41 * time.Second) // 41 s since the heartbeat was seen
	w := f.sync()
	if fmt.Sprint(w) != "[nodes/status nodes/ pods/status]" {
		t.Fatalf("silent node: writes %v", w)
	}
	got, _ := f.client.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
	ready := condition(got, corev1.NodeReady)
	if ready.Status != corev1.ConditionUnknown || ready.Reason != "NodeStatusUnknown" || ready.Message != "Kubelet stopped posting node status." {
		t.Fatalf("ready condition %+v", ready)
	}
	if c := condition(got, corev1.NodeMemoryPressure); c == nil || c.Reason != "NodeStatusNeverUpdated" {
		t.Fatalf("memory pressure condition %+v", c)
	}
	if fmt.Sprint(taintKeys(got.Spec.Taints)) != "[node.kubernetes.io/unreachable:NoExecute node.kubernetes.io/unreachable:NoSchedule]" {
		t.Fatalf("taints %v", taintKeys(got.Spec.Taints))
	}
	p, _ := f.client.CoreV1().Pods("default").Get(context.Background(), "p", metav1.GetOptions{})
	if podCondition(p).Status != corev1.ConditionFalse {
		t.Fatal("pod still ready")
	}
	// Nothing more to do while it stays silent.
	f.clock = f.clock.Add(time.Minute)
	if w := f.sync(); len(w) != 0 {
		t.Fatalf("second sync of a lost node: writes %v", w)
	}
}
