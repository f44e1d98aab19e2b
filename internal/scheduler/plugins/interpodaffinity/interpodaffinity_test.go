package interpodaffinity_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/framework"
	"github.com/berth-project/berth/internal/scheduler/plugins/interpodaffinity"
	"github.com/berth-project/berth/internal/scheduler/testobj"
)

const (
	host     = framework.HostnameLabel
	zone     = framework.ZoneLabel
	noAffin  = "UnschedulableAndUnresolvable: node(s) didn't match pod affinity rules"
	noAnti   = "Unschedulable: node(s) didn't match pod anti-affinity rules"
	existing = "Unschedulable: node(s) didn't satisfy existing pods anti-affinity rules"
)

func TestInterPodAffinityFilter(t *testing.T) {
	nodes := []*corev1.Node{
		testobj.Node("a1").Label(zone, "a").Obj(),
		testobj.Node("a2").Label(zone, "a").Obj(),
		testobj.Node("b1").Label(zone, "b").Obj(),
		testobj.Node("nozone").Obj(),
	}
	db := testobj.Pod("db").Node("a1").Label("app", "db").Obj()
	tests := []struct {
		name string
		pods []*corev1.Pod
		pod  *corev1.Pod
		want map[string]string
	}{{
		name: "anti-affinity by hostname keeps pods of a kind apart",
		pods: []*corev1.Pod{db},
		pod:  testobj.Pod("p").Label("app", "db").PodAntiAffinity(host, "app", "db").Obj(),
		want: map[string]string{"a1": noAnti, "a2": "", "b1": "", "nozone": ""},
	}, {
		name: "anti-affinity by zone keeps the whole zone out",
		pods: []*corev1.Pod{db},
		pod:  testobj.Pod("p").PodAntiAffinity(zone, "app", "db").Obj(),
		want: map[string]string{"a1": noAnti, "a2": noAnti, "b1": "", "nozone": ""},
	}, {
		name: "affinity by zone draws the pod to the zone of its match",
		pods: []*corev1.Pod{db},
		pod:  testobj.Pod("p").PodAffinity(zone, "app", "db").Obj(),
		want: map[string]string{"a1": "", "a2": "", "b1": noAffin, "nozone": noAffin},
	}, {
		name: "affinity in another namespace finds nothing",
		pods: []*corev1.Pod{testobj.Pod("db").Namespace("other").Node("a1").Label("app", "db").Obj()},
		pod:  testobj.Pod("p").PodAffinity(zone, "app", "db").Obj(),
		want: map[string]string{"a1": noAffin, "a2": noAffin, "b1": noAffin, "nozone": noAffin},
	}, {
		name: "the first pod of a group that selects itself may go where the key exists",
		pod:  testobj.Pod("p").Label("app", "web").PodAffinity(zone, "app", "web").Obj(),
		want: map[string]string{"a1": "", "a2": "", "b1": "", "nozone": noAffin},
	}, {
		name: "a placed pod's anti-affinity keeps the pods it selects away",
		pods: []*corev1.Pod{testobj.Pod("loner").Node("b1").Label("app", "loner").PodAntiAffinity(zone, "app", "web").Obj()},
		pod:  testobj.Pod("p").Label("app", "web").Obj(),
		want: map[string]string{"a1": "", "a2": "", "b1": existing, "nozone": ""},
	}, {
		name: "and ignores pods it does not select",
		pods: []*corev1.Pod{testobj.Pod("loner").Node("b1").PodAntiAffinity(zone, "app", "web").Obj()},
		pod:  testobj.Pod("p").Label("app", "api").Obj(),
		want: map[string]string{"a1": "", "a2": "", "b1": "", "nozone": ""},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := testobj.Filter(tt.pod, testobj.Cluster(nodes, tt.pods...), interpodaffinity.InterPodAffinity{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want,+got):\n%s", diff)
			}
		})
	}
}

func TestInterPodAffinityScoresPreferredTerms(t *testing.T) {
	nodes := []*corev1.Node{testobj.Node("a").Obj(), testobj.Node("b").Obj(), testobj.Node("c").Obj()}
	cluster := testobj.Cluster(nodes,
		testobj.Pod("cache").Node("a").Label("app", "cache").Obj(),
		testobj.Pod("noisy").Node("b").Label("app", "noisy").Obj(),
	)
	pod := testobj.Pod("p").PreferPodAffinity(false, 10, host, "app", "cache").PreferPodAffinity(true, 10, host, "app", "noisy").Obj()
	got, err := testobj.Score(pod, cluster, interpodaffinity.InterPodAffinity{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int64{"a": 100, "b": 0, "c": 50}, got); diff != "" {
		t.Errorf("(-want,+got):\n%s", diff)
	}
}
