package framework_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/framework"
	"github.com/berth-project/berth/internal/scheduler/testobj"
)

// byName is a test plugin: it rejects the nodes it names, scores nodes from a table,
// and may skip.
type byName struct {
	name      string
	reject    map[string]framework.Code
	scores    map[string]int64
	skip      bool
	normalize bool
	filtered  *[]string
}

func (p *byName) Name() string { return p.name }

func (p *byName) PreFilter(context.Context, *framework.CycleState, *corev1.Pod, *framework.Snapshot) *framework.Status {
	if p.skip {
		return framework.NewStatus(framework.Skip)
	}
	return nil
}

func (p *byName) Filter(_ context.Context, _ *framework.CycleState, _ *corev1.Pod, n *framework.NodeInfo) *framework.Status {
	if p.filtered != nil {
		*p.filtered = append(*p.filtered, p.name+":"+n.Name())
	}
	if c, ok := p.reject[n.Name()]; ok {
		return framework.NewStatus(c, p.name+" says no")
	}
	return nil
}

func (p *byName) PreScore(context.Context, *framework.CycleState, *corev1.Pod, []*framework.NodeInfo, *framework.Snapshot) *framework.Status {
	if p.skip {
		return framework.NewStatus(framework.Skip)
	}
	return nil
}

func (p *byName) Score(_ context.Context, _ *framework.CycleState, _ *corev1.Pod, n *framework.NodeInfo) (int64, *framework.Status) {
	return p.scores[n.Name()], nil
}

type normalizing struct{ *byName }

func (normalizing) NormalizeScore(_ context.Context, _ *framework.CycleState, _ *corev1.Pod, s []framework.NodeScore) *framework.Status {
	framework.DefaultNormalizeScore(framework.MaxNodeScore, false, s)
	return nil
}

func nodes(names ...string) []*framework.NodeInfo {
	var out []*framework.NodeInfo
	for _, n := range names {
		out = append(out, framework.NewNodeInfo(testobj.Node(n).Obj()))
	}
	return out
}

func TestRunFilterStopsAtTheFirstRejection(t *testing.T) {
	var calls []string
	a := &byName{name: "A", reject: map[string]framework.Code{"n1": framework.UnschedulableAndUnresolvable}, filtered: &calls}
	b := &byName{name: "B", reject: map[string]framework.Code{"n2": framework.Unschedulable}, filtered: &calls}
	skipped := &byName{name: "Skipped", skip: true, reject: map[string]framework.Code{"n2": framework.Unschedulable, "n3": framework.Unschedulable}, filtered: &calls}
	fw, err := framework.New(1, framework.Entry{Plugin: a}, framework.Entry{Plugin: skipped}, framework.Entry{Plugin: b})
	if err != nil {
		t.Fatal(err)
	}
	ctx, pod := context.Background(), testobj.Pod("p").Obj()
	ns := nodes("n1", "n2", "n3")
	state := framework.NewCycleState()
	if st := fw.RunPreFilter(ctx, state, pod, framework.NewSnapshot(ns...)); !st.IsSuccess() {
		t.Fatalf("PreFilter: %v", st.AsError())
	}
	type result struct {
		Code    framework.Code
		Plugin  string
		Reasons []string
	}
	var got []result
	for _, n := range ns {
		st := fw.RunFilter(ctx, state, pod, n)
		got = append(got, result{st.Code(), st.Plugin(), st.Reasons()})
	}
	want := []result{
		{framework.UnschedulableAndUnresolvable, "A", []string{"A says no"}},
		{framework.Unschedulable, "B", []string{"B says no"}},
		{framework.Success, "", nil},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses (-want,+got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"A:n1", "A:n2", "B:n2", "A:n3", "B:n3"}, calls); diff != "" {
		t.Errorf("filters called (-want,+got):\n%s", diff)
	}
}

func TestRunScoreWeighsNormalisedScores(t *testing.T) {
	raw := &byName{name: "Raw", scores: map[string]int64{"n1": 10, "n2": 30}}
	norm := normalizing{&byName{name: "Norm", scores: map[string]int64{"n1": 4, "n2": 2}}}
	skipped := &byName{name: "Skipped", skip: true, scores: map[string]int64{"n1": 1000}}
	fw, err := framework.New(2, framework.Entry{Plugin: raw}, framework.Entry{Plugin: norm, Weight: 3}, framework.Entry{Plugin: skipped})
	if err != nil {
		t.Fatal(err)
	}
	ns := nodes("n1", "n2")
	got, st := fw.RunScore(context.Background(), framework.NewCycleState(), testobj.Pod("p").Obj(), ns, framework.NewSnapshot(ns...))
	if !st.IsSuccess() {
		t.Fatal(st.AsError())
	}
	// n1: 10 + 3×100; n2: 30 + 3×50.
	if diff := cmp.Diff([]int64{310, 180}, got); diff != "" {
		t.Errorf("totals (-want,+got):\n%s", diff)
	}
}

func TestNewRefusesAPluginTwice(t *testing.T) {
	p := &byName{name: "A"}
	if _, err := framework.New(1, framework.Entry{Plugin: p}, framework.Entry{Plugin: p}); err == nil {
		t.Fatal("the same plugin configured twice was accepted")
	}
}

func TestInterestedFollowsEventsToRegister(t *testing.T) {
	fw, err := framework.New(1, framework.Entry{Plugin: registering{}}, framework.Entry{Plugin: &byName{name: "Any"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		plugin string
		ev     framework.ClusterEvent
		want   bool
	}{
		{"Registering", framework.NodeTaintChange, true},
		{"Registering", framework.AssignedPodAdd, false},
		{"Any", framework.AssignedPodAdd, true},
		{"Unknown", framework.NodeAdd, true},
	} {
		if got := fw.Interested(tt.plugin, tt.ev); got != tt.want {
			t.Errorf("Interested(%s, %d) = %v, want %v", tt.plugin, tt.ev, got, tt.want)
		}
	}
}

type registering struct{}

func (registering) Name() string { return "Registering" }
func (registering) Filter(context.Context, *framework.CycleState, *corev1.Pod, *framework.NodeInfo) *framework.Status {
	return nil
}
func (registering) EventsToRegister() framework.ClusterEvent { return framework.NodeTaintChange }
