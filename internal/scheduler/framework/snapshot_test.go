package framework_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-project/berth/internal/scheduler/framework"
	"github.com/berth-project/berth/internal/scheduler/testobj"
)

func names(ns []*framework.NodeInfo) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Name())
	}
	return out
}

func TestSnapshotInterleavesZones(t *testing.T) {
	zone := func(name, z string) *framework.NodeInfo {
		return framework.NewNodeInfo(testobj.Node(name).Label(framework.ZoneLabel, z).Obj())
	}
	s := framework.NewSnapshot(zone("a1", "a"), zone("a2", "a"), zone("a3", "a"), zone("b1", "b"), zone("c1", "c"), zone("c2", "c"))
	if diff := cmp.Diff([]string{"a1", "b1", "c1", "a2", "c2", "a3"}, names(s.List())); diff != "" {
		t.Errorf("order (-want,+got):\n%s", diff)
	}
}

func TestSnapshotPutKeepsListsPointingAtTheNode(t *testing.T) {
	n1 := framework.NewNodeInfo(testobj.Node("n1").Obj())
	s := framework.NewSnapshot(n1, framework.NewNodeInfo(testobj.Node("n2").Obj()))
	if len(s.WithRequiredAntiAffinity()) != 0 {
		t.Fatal("no pods yet, yet a node with anti-affinity pods")
	}
	updated := n1.Clone()
	updated.AddPod(framework.NewPodInfo(testobj.Pod("p").Node("n1").PodAntiAffinity(framework.HostnameLabel, "app", "x").Obj()))
	s.Put(updated)
	s.Commit(1)
	if diff := cmp.Diff([]string{"n1"}, names(s.WithRequiredAntiAffinity())); diff != "" {
		t.Errorf("nodes with anti-affinity pods (-want,+got):\n%s", diff)
	}
	if got := len(s.Get("n1").Pods); got != 1 {
		t.Errorf("n1 has %d pods in the snapshot, want 1", got)
	}
	for _, n := range s.List() {
		if n.Name() == "n1" && len(n.Pods) != 1 {
			t.Error("the list still points at the old n1")
		}
	}
	s.Delete("n2")
	s.Commit(2)
	if diff := cmp.Diff([]string{"n1"}, names(s.List())); diff != "" {
		t.Errorf("after deleting n2 (-want,+got):\n%s", diff)
	}
}
