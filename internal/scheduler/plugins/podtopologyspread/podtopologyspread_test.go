package podtopologyspread_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/framework"
	"github.com/berth-project/berth/internal/scheduler/plugins/podtopologyspread"
	"github.com/berth-project/berth/internal/scheduler/testobj"
)

const (
	host    = framework.HostnameLabel
	zone    = framework.ZoneLabel
	skewed  = "Unschedulable: node(s) didn't match pod topology spread constraints"
	nolabel = "UnschedulableAndUnresolvable: node(s) didn't match pod topology spread constraints (missing required label)"
)

func web(name, node string) *corev1.Pod {
	return testobj.Pod(name).Node(node).Label("app", "web").Obj()
}

func TestPodTopologySpreadFilter(t *testing.T) {
	nodes := []*corev1.Node{
		testobj.Node("a1").Label(zone, "a").Obj(),
		testobj.Node("a2").Label(zone, "a").Obj(),
		testobj.Node("b1").Label(zone, "b").Obj(),
		testobj.Node("nozone").Obj(),
	}
	tests := []struct {
		name string
		pods []*corev1.Pod
		pod  *corev1.Pod
		want map[string]string
	}{{
		name: "maxSkew 1 over zones: zone a has 2, b has 0",
		pods: []*corev1.Pod{web("w1", "a1"), web("w2", "a2")},
		pod:  testobj.Pod("p").Label("app", "web").Spread(1, zone, corev1.DoNotSchedule, "app", "web").Obj(),
		want: map[string]string{"a1": skewed, "a2": skewed, "b1": "", "nozone": nolabel},
	}, {
		name: "maxSkew 2 allows one more in zone a",
		pods: []*corev1.Pod{web("w1", "a1")},
		pod:  testobj.Pod("p").Label("app", "web").Spread(2, zone, corev1.DoNotSchedule, "app", "web").Obj(),
		want: map[string]string{"a1": "", "a2": "", "b1": "", "nozone": nolabel},
	}, {
		name: "per node",
		pods: []*corev1.Pod{web("w1", "a1"), web("w2", "a2"), web("w3", "nozone")},
		pod:  testobj.Pod("p").Label("app", "web").Spread(1, host, corev1.DoNotSchedule, "app", "web").Obj(),
		want: map[string]string{"a1": skewed, "a2": skewed, "b1": "", "nozone": skewed},
	}, {
		name: "pods the selector does not match do not count",
		pods: []*corev1.Pod{testobj.Pod("x").Node("a1").Label("app", "db").Obj()},
		pod:  testobj.Pod("p").Label("app", "web").Spread(1, host, corev1.DoNotSchedule, "app", "web").Obj(),
		want: map[string]string{"a1": "", "a2": "", "b1": "", "nozone": ""},
	}, {
		name: "ScheduleAnyway does not filter",
		pods: []*corev1.Pod{web("w1", "a1"), web("w2", "a2")},
		pod:  testobj.Pod("p").Label("app", "web").Spread(1, zone, corev1.ScheduleAnyway, "app", "web").Obj(),
		want: map[string]string{"a1": "", "a2": "", "b1": "", "nozone": ""},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := testobj.Filter(tt.pod, testobj.Cluster(nodes, tt.pods...), podtopologyspread.PodTopologySpread{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want,+got):\n%s", diff)
			}
		})
	}
}

func TestPodTopologySpreadScore(t *testing.T) {
	nodes := []*corev1.Node{testobj.Node("a").Obj(), testobj.Node("b").Obj(), testobj.Node("c").Obj()}
	owned := func(name, node string) *corev1.Pod {
		return testobj.Pod(name).Node(node).Owner("ReplicaSet", "web-1").Obj()
	}
	tests := []struct {
		name string
		pods []*corev1.Pod
		pod  *corev1.Pod
		want map[string]int64
	}{{
		name: "ScheduleAnyway prefers the nodes with fewer matching pods",
		pods: []*corev1.Pod{web("w1", "a"), web("w2", "a"), web("w3", "b")},
		pod:  testobj.Pod("p").Label("app", "web").Spread(1, host, corev1.ScheduleAnyway, "app", "web").Obj(),
		want: map[string]int64{"a": 0, "b": 33, "c": 100},
	}, {
		name: "without constraints, pods of the same controller spread (system defaults)",
		pods: []*corev1.Pod{owned("r1", "a"), owned("r2", "a"), owned("r3", "b"), testobj.Pod("other").Node("c").Owner("ReplicaSet", "db").Obj()},
		pod:  testobj.Pod("p").Owner("ReplicaSet", "web-1").Obj(),
		want: map[string]int64{"a": 50, "b": 66, "c": 100},
	}, {
		name: "a pod without a controller is not spread",
		pods: []*corev1.Pod{owned("r1", "a")},
		pod:  testobj.Pod("p").Obj(),
		want: map[string]int64{"a": 0, "b": 0, "c": 0},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := testobj.Score(tt.pod, testobj.Cluster(nodes, tt.pods...), podtopologyspread.PodTopologySpread{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want,+got):\n%s", diff)
			}
		})
	}
}
