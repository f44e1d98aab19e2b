package scheduler

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/berth-project/berth/internal/scheduler/testobj"
)

// fakeCluster is client-go's fake clientset with pods/binding doing what the API
// server does: set spec.nodeName, refusing pods already bound.
func fakeCluster(t *testing.T, objs ...runtime.Object) *fake.Clientset {
	t.Helper()
	cs := fake.NewClientset(objs...)
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ca := a.(k8stesting.CreateAction)
		if ca.GetSubresource() != "binding" {
			return false, nil, nil
		}
		b := ca.GetObject().(*corev1.Binding)
		obj, err := cs.Tracker().Get(corev1.SchemeGroupVersion.WithResource("pods"), b.Namespace, b.Name)
		if err != nil {
			return true, nil, err
		}
		pod := obj.(*corev1.Pod).DeepCopy()
		pod.Spec.NodeName = b.Target.Name
		return true, nil, cs.Tracker().Update(corev1.SchemeGroupVersion.WithResource("pods"), pod, b.Namespace)
	})
	return cs
}

func startScheduler(t *testing.T, cs *fake.Clientset) {
	t.Helper()
	s, err := New(cs, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), BackoffInitial: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

func podWhen(t *testing.T, cs *fake.Clientset, name string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = p
		return cond(p), nil
	})
	if err != nil {
		t.Fatalf("pod %s: %v; last seen: nodeName %q, conditions %+v", name, err, last.Spec.NodeName, last.Status.Conditions)
	}
	return last
}

func TestSchedulerBindsPendingPods(t *testing.T) {
	cs := fakeCluster(t, testobj.Node("n1").Obj(), testobj.Node("n2").Obj(),
		testobj.Pod("a").Obj(), testobj.Pod("b").Obj())
	startScheduler(t, cs)
	a := podWhen(t, cs, "a", func(p *corev1.Pod) bool { return p.Spec.NodeName != "" })
	b := podWhen(t, cs, "b", func(p *corev1.Pod) bool { return p.Spec.NodeName != "" })
	if a.Spec.NodeName == b.Spec.NodeName {
		t.Errorf("both pods on %s; least-allocated spreads two pods over two empty nodes", a.Spec.NodeName)
	}
	other := testobj.Pod("other").Obj()
	other.Spec.SchedulerName = "someone-else"
	if _, err := cs.CoreV1().Pods("default").Create(context.Background(), other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := testobj.Pod("c").Obj()
	if _, err := cs.CoreV1().Pods("default").Create(context.Background(), c, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	podWhen(t, cs, "c", func(p *corev1.Pod) bool { return p.Spec.NodeName != "" })
	if p, _ := cs.CoreV1().Pods("default").Get(context.Background(), "other", metav1.GetOptions{}); p.Spec.NodeName != "" {
		t.Errorf("a pod for another scheduler was bound to %s", p.Spec.NodeName)
	}
}

func TestSchedulerReportsUnschedulableAndRetriesWhenTheNodeChanges(t *testing.T) {
	node := testobj.Node("n1").Taint("dedicated", "ops", corev1.TaintEffectNoSchedule).Obj()
	cs := fakeCluster(t, node, testobj.Pod("p").Obj())
	startScheduler(t, cs)
	p := podWhen(t, cs, "p", func(p *corev1.Pod) bool { return len(p.Status.Conditions) > 0 })
	cond := p.Status.Conditions[0]
	want := "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: ops}. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
	if cond.Type != corev1.PodScheduled || cond.Status != corev1.ConditionFalse || cond.Reason != "Unschedulable" || cond.Message != want {
		t.Errorf("condition %+v, want PodScheduled False Unschedulable %q", cond, want)
	}
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, e := range evs.Items {
			if e.Reason == "FailedScheduling" && e.Type == corev1.EventTypeWarning && e.InvolvedObject.Name == "p" && strings.Contains(e.Message, "untolerated taint") {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no FailedScheduling event: %v", err)
	}
	node.Spec.Taints = nil
	if _, err := cs.CoreV1().Nodes().Update(context.Background(), node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	podWhen(t, cs, "p", func(p *corev1.Pod) bool { return p.Spec.NodeName == "n1" })
}

func TestLeaderElectionLetsOneSchedulerBind(t *testing.T) {
	cs := fakeCluster(t, testobj.Node("n1").Obj(), testobj.Pod("p").Obj())
	var binds atomic.Int32
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "binding" {
			binds.Add(1)
		}
		return false, nil, nil
	})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	for _, id := range []string{"one", "two"} {
		s, err := New(cs, Options{Log: log, LeaderElect: true, Identity: id})
		if err != nil {
			t.Fatal(err)
		}
		go func() { errs <- s.Run(ctx) }()
	}
	podWhen(t, cs, "p", func(p *corev1.Pod) bool { return p.Spec.NodeName == "n1" })
	lease, err := cs.CoordinationV1().Leases("kube-system").Get(context.Background(), "kube-scheduler", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := *lease.Spec.HolderIdentity; h != "one" && h != "two" {
		t.Errorf("lease held by %q", h)
	}
	cancel()
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	if n := binds.Load(); n != 1 {
		t.Errorf("%d bindings, want 1", n)
	}
}
