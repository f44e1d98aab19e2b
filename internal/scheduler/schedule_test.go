package scheduler

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/framework"
	"github.com/berth-project/berth/internal/scheduler/plugins"
	"github.com/berth-project/berth/internal/scheduler/testobj"
)

func newPlacer(t *testing.T) *placer {
	t.Helper()
	fw, err := framework.New(2, plugins.Default()...)
	if err != nil {
		t.Fatal(err)
	}
	return &placer{fw: fw}
}

func placeOne(t *testing.T, p *placer, pod *corev1.Pod, snap *framework.Snapshot) (string, error) {
	t.Helper()
	state := framework.NewCycleState()
	framework.WritePodInfo(state, framework.NewPodInfo(pod))
	return p.place(context.Background(), state, pod, snap)
}

func TestNumFeasibleToFind(t *testing.T) {
	for _, tt := range []struct {
		percentage int32
		nodes      int
		want       int
	}{
		{0, 50, 50},       // small clusters: every node
		{0, 100, 100},     // 50% of 100 is 50, but at least 100
		{0, 1000, 420},    // 50 - 1000/125 = 42%
		{0, 5000, 500},    // 10%
		{0, 10000, 500},   // 50 - 80 < 5: 5%
		{0, 1500, 570},    // 38%
		{30, 1000, 300},   // configured
		{100, 5000, 5000}, // everything
	} {
		if got := numFeasibleToFind(tt.percentage, tt.nodes); got != tt.want {
			t.Errorf("numFeasibleToFind(%d, %d) = %d, want %d", tt.percentage, tt.nodes, got, tt.want)
		}
	}
}

func TestPlaceSpreadsPodsOverNodes(t *testing.T) {
	c := newCache()
	for _, n := range []string{"n1", "n2", "n3"} {
		c.SetNode(testobj.Node(n).Obj())
	}
	p, snap := newPlacer(t), framework.NewSnapshot()
	count := map[string]int{}
	for i := range 9 {
		c.UpdateSnapshot(snap)
		pod := testobj.Pod(fmt.Sprintf("p%d", i)).Req("cpu", "100m", "memory", "128Mi").Obj()
		node, err := placeOne(t, p, pod, snap)
		if err != nil {
			t.Fatal(err)
		}
		pod.Spec.NodeName = node
		if err := c.Assume(framework.NewPodInfo(pod)); err != nil {
			t.Fatal(err)
		}
		count[node]++
	}
	if diff := cmp.Diff(map[string]int{"n1": 3, "n2": 3, "n3": 3}, count); diff != "" {
		t.Errorf("pods per node (-want,+got):\n%s", diff)
	}
}

func TestPlaceExplainsWhyNothingFits(t *testing.T) {
	snap := testobj.Cluster([]*corev1.Node{
		testobj.Node("ops").Taint("dedicated", "ops", corev1.TaintEffectNoSchedule).Obj(),
		testobj.Node("cordoned-1").Unschedulable().Obj(),
		testobj.Node("cordoned-2").Unschedulable().Obj(),
	})
	_, err := placeOne(t, newPlacer(t), testobj.Pod("p").Obj(), snap)
	var fit *framework.FitError
	if !errors.As(err, &fit) {
		t.Fatalf("got %v, want a FitError", err)
	}
	want := "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: ops}, 2 node(s) were unschedulable. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
	if err.Error() != want {
		t.Errorf("message:\n got %s\nwant %s", err, want)
	}
	if diff := cmp.Diff(map[string]bool{"TaintToleration": true, "NodeUnschedulable": true}, fit.Diagnosis.Plugins); diff != "" {
		t.Errorf("rejecting plugins (-want,+got):\n%s", diff)
	}
}

func TestPlaceWithNoNodes(t *testing.T) {
	if _, err := placeOne(t, newPlacer(t), testobj.Pod("p").Obj(), framework.NewSnapshot()); !errors.Is(err, ErrNoNodes) {
		t.Fatalf("got %v, want %v", err, ErrNoNodes)
	}
}

// TestPlaceSearchesPartOfALargeCluster: with 1000 nodes only 420 feasible ones are
// looked for, and the next pod's search starts where this one's stopped.
func TestPlaceSearchesPartOfALargeCluster(t *testing.T) {
	var nodes []*corev1.Node
	for i := range 1000 {
		nodes = append(nodes, testobj.Node(fmt.Sprintf("n%04d", i)).Obj())
	}
	p := newPlacer(t)
	snap := testobj.Cluster(nodes)
	if _, err := placeOne(t, p, testobj.Pod("p").Obj(), snap); err != nil {
		t.Fatal(err)
	}
	if p.next != 420 {
		t.Errorf("next search starts at node %d, want 420", p.next)
	}
	if _, err := placeOne(t, p, testobj.Pod("q").Obj(), snap); err != nil {
		t.Fatal(err)
	}
	if p.next != 840 {
		t.Errorf("next search starts at node %d, want 840", p.next)
	}
}

func BenchmarkPlace5000Nodes(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) { benchmarkPlace(b, workers) })
	}
}

func benchmarkPlace(b *testing.B, workers int) {
	c := newCache()
	for i := range 5000 {
		c.SetNode(testobj.Node(fmt.Sprintf("n%04d", i)).Obj())
	}
	fw, err := framework.New(workers, plugins.Default()...)
	if err != nil {
		b.Fatal(err)
	}
	p, snap := &placer{fw: fw}, framework.NewSnapshot()
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		pod := testobj.Pod(fmt.Sprintf("p%d", i)).Req("cpu", "100m", "memory", "500Mi").Obj()
		c.UpdateSnapshot(snap)
		state := framework.NewCycleState()
		pi := framework.NewPodInfo(pod)
		framework.WritePodInfo(state, pi)
		node, err := p.place(ctx, state, pod, snap)
		if err != nil {
			b.Fatal(err)
		}
		pod.Spec.NodeName = node
		pi.Pod = pod
		if err := c.Assume(pi); err != nil {
			b.Fatal(err)
		}
	}
}
