package podgc

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

func pod(name, node string, phase corev1.PodPhase, age time.Duration, deleting bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", CreationTimestamp: metav1.NewTime(time.Now().Add(-age))},
		Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: phase}}
	if deleting {
		p.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	}
	return p
}

func TestSweepDeletesOnlyPodsNothingElseWill(t *testing.T) {
	here := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "here"}}
	broken := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "broken"},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: corev1.TaintNodeOutOfService, Effect: corev1.TaintEffectNoExecute}}}}
	objs := []runtime.Object{here, broken,
		pod("running", "here", corev1.PodRunning, time.Hour, false),
		pod("on-gone-node", "gone", corev1.PodRunning, time.Hour, false),
		pod("also-on-gone-node", "gone", corev1.PodRunning, time.Hour, false),
		pod("never-scheduled-deleting", "", corev1.PodPending, time.Hour, true),
		pod("pending", "", corev1.PodPending, time.Hour, false),
		pod("deleting-out-of-service", "broken", corev1.PodRunning, time.Hour, true),
		pod("deleting-here", "here", corev1.PodRunning, time.Hour, true),
		pod("done-old", "here", corev1.PodSucceeded, 3*time.Hour, false),
		pod("done-new", "here", corev1.PodFailed, time.Hour, false),
	}
	client := fake.NewClientset(objs...)
	f := informers.NewSharedInformerFactory(client, 0)
	c := New(client, f.Core().V1().Pods(), f.Core().V1().Nodes(), slog.New(slog.DiscardHandler), Config{TerminatedPodLimit: 1})
	now := time.Now()
	c.now = func() time.Time { return now }
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Pod:
			f.Core().V1().Pods().Informer().GetIndexer().Add(o)
		case *corev1.Node:
			f.Core().V1().Nodes().Informer().GetIndexer().Add(o)
		}
	}
	deleted := func() []string {
		var out []string
		for _, a := range client.Actions() {
			if a.GetVerb() == "delete" {
				out = append(out, fmt.Sprint(a.(interface{ GetName() string }).GetName()))
			}
		}
		sort.Strings(out)
		return out
	}
	if err := c.sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(deleted()); got != "[deleting-out-of-service done-old never-scheduled-deleting]" {
		t.Fatalf("first sweep deleted %s (the missing node is still in quarantine)", got)
	}
	// The informer shows the deletions; the missing node's quarantine ends.
	left, _ := client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	var cached []any
	for i := range left.Items {
		cached = append(cached, &left.Items[i])
	}
	f.Core().V1().Pods().Informer().GetIndexer().Replace(cached, "")
	now = now.Add(41 * time.Second)
	client.ClearActions()
	if err := c.sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(deleted()); got != "[also-on-gone-node on-gone-node]" {
		t.Fatalf("second sweep deleted %s", got)
	}
	// The missing node was confirmed gone with one uncached read, not one per pod.
	reads := 0
	for _, a := range client.Actions() {
		if a.GetVerb() == "get" && a.GetResource().Resource == "nodes" {
			reads++
		}
	}
	if reads != 1 {
		t.Fatalf("the sweep read the missing node %d times, want 1", reads)
	}
}
