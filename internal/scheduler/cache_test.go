package scheduler

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-project/berth/internal/scheduler/framework"
	"github.com/berth-project/berth/internal/scheduler/testobj"
)

func podsOn(s *framework.Snapshot, node string) []string {
	n := s.Get(node)
	if n == nil {
		return nil
	}
	var out []string
	for _, p := range n.Pods {
		out = append(out, p.Pod.Name)
	}
	return out
}

func TestCacheAssumedPodsCountUntilConfirmedOrForgotten(t *testing.T) {
	c, snap := newCache(), framework.NewSnapshot()
	c.SetNode(testobj.Node("n1").Obj())
	a := testobj.Pod("a").Node("n1").Req("cpu", "1").Obj()
	if err := c.Assume(framework.NewPodInfo(a)); err != nil {
		t.Fatal(err)
	}
	c.UpdateSnapshot(snap)
	if got := snap.Get("n1").Requested.MilliCPU; got != 1000 {
		t.Fatalf("assumed pod not counted: requested %dm", got)
	}
	if !c.IsAssumed(a) {
		t.Fatal("not assumed")
	}
	c.SetPod(a) // the informer sees the binding
	if c.IsAssumed(a) {
		t.Fatal("still assumed after the binding was seen")
	}
	c.Forget(a) // a confirmed pod is not forgotten
	c.UpdateSnapshot(snap)
	if diff := cmp.Diff([]string{"a"}, podsOn(snap, "n1")); diff != "" {
		t.Errorf("pods on n1 (-want,+got):\n%s", diff)
	}

	b := testobj.Pod("b").Node("n1").Req("cpu", "1").Obj()
	if err := c.Assume(framework.NewPodInfo(b)); err != nil {
		t.Fatal(err)
	}
	c.Forget(b) // its binding failed
	c.UpdateSnapshot(snap)
	if got := snap.Get("n1").Requested.MilliCPU; got != 1000 {
		t.Errorf("after forgetting b: requested %dm, want 1000m", got)
	}
}

func TestCacheSnapshotFollowsNodesAndPods(t *testing.T) {
	c, snap := newCache(), framework.NewSnapshot()
	c.SetNode(testobj.Node("n1").Obj())
	c.SetPod(testobj.Pod("early").Node("n2").Obj()) // bound to a node not seen yet
	c.UpdateSnapshot(snap)
	if snap.Len() != 1 || snap.Get("n2") != nil {
		t.Fatalf("a node known only from its pods is schedulable: %d nodes", snap.Len())
	}
	c.SetNode(testobj.Node("n2").Obj())
	c.UpdateSnapshot(snap)
	if diff := cmp.Diff([]string{"early"}, podsOn(snap, "n2")); diff != "" {
		t.Errorf("pods on n2 (-want,+got):\n%s", diff)
	}
	c.RemoveNode("n1")
	c.RemovePod(testobj.Pod("early").Node("n2").Obj())
	c.UpdateSnapshot(snap)
	if snap.Len() != 1 || snap.Get("n1") != nil || len(snap.Get("n2").Pods) != 0 {
		t.Errorf("after removing n1 and the pod: %d nodes, n1 %v", snap.Len(), snap.Get("n1"))
	}
	c.RemoveNode("n2")
	c.UpdateSnapshot(snap)
	if snap.Len() != 0 {
		t.Errorf("%d nodes left", snap.Len())
	}
}

func TestCacheRefusesToAssumeAPodTwice(t *testing.T) {
	c := newCache()
	p := testobj.Pod("p").Node("n1").Obj()
	if err := c.Assume(framework.NewPodInfo(p)); err != nil {
		t.Fatal(err)
	}
	if err := c.Assume(framework.NewPodInfo(p)); err == nil {
		t.Fatal("assumed twice")
	}
}
