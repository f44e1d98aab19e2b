package nodeaffinity_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/plugins/nodeaffinity"
	"github.com/berth-project/berth/internal/scheduler/testobj"
)

const no = "UnschedulableAndUnresolvable: node(s) didn't match Pod's node affinity/selector"

func TestNodeAffinityFilter(t *testing.T) {
	cluster := testobj.Cluster([]*corev1.Node{
		testobj.Node("ssd-1").Label("disk", "ssd").Label("gen", "3").Obj(),
		testobj.Node("hdd-1").Label("disk", "hdd").Label("gen", "5").Obj(),
		testobj.Node("bare").Obj(),
	})
	emptyTerms := testobj.Pod("p").Obj()
	emptyTerms.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{}}}}}
	byName := testobj.Pod("p").Obj()
	byName.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"bare"}}}}}}}}

	tests := []struct {
		name string
		pod  *corev1.Pod
		want map[string]string
	}{
		{"no selector: every node", testobj.Pod("p").Obj(), map[string]string{"ssd-1": "", "hdd-1": "", "bare": ""}},
		{"nodeSelector", testobj.Pod("p").NodeSelector("disk", "ssd").Obj(), map[string]string{"ssd-1": "", "hdd-1": no, "bare": no}},
		{"In", testobj.Pod("p").NodeAffinityIn("disk", corev1.NodeSelectorOpIn, "hdd", "nvme").Obj(), map[string]string{"ssd-1": no, "hdd-1": "", "bare": no}},
		{"NotIn matches nodes without the label", testobj.Pod("p").NodeAffinityIn("disk", corev1.NodeSelectorOpNotIn, "hdd").Obj(), map[string]string{"ssd-1": "", "hdd-1": no, "bare": ""}},
		{"Exists", testobj.Pod("p").NodeAffinityIn("disk", corev1.NodeSelectorOpExists).Obj(), map[string]string{"ssd-1": "", "hdd-1": "", "bare": no}},
		{"DoesNotExist", testobj.Pod("p").NodeAffinityIn("disk", corev1.NodeSelectorOpDoesNotExist).Obj(), map[string]string{"ssd-1": no, "hdd-1": no, "bare": ""}},
		{"Gt", testobj.Pod("p").NodeAffinityIn("gen", corev1.NodeSelectorOpGt, "4").Obj(), map[string]string{"ssd-1": no, "hdd-1": "", "bare": no}},
		{"Lt", testobj.Pod("p").NodeAffinityIn("gen", corev1.NodeSelectorOpLt, "4").Obj(), map[string]string{"ssd-1": "", "hdd-1": no, "bare": no}},
		{"terms are ORed", testobj.Pod("p").NodeAffinityIn("disk", corev1.NodeSelectorOpIn, "ssd").NodeAffinityIn("disk", corev1.NodeSelectorOpDoesNotExist).Obj(),
			map[string]string{"ssd-1": "", "hdd-1": no, "bare": ""}},
		{"nodeSelector and affinity must both hold", testobj.Pod("p").NodeSelector("gen", "5").NodeAffinityIn("disk", corev1.NodeSelectorOpExists).Obj(),
			map[string]string{"ssd-1": no, "hdd-1": "", "bare": no}},
		{"an empty term matches nothing", emptyTerms, map[string]string{"ssd-1": no, "hdd-1": no, "bare": no}},
		{"matchFields on the name", byName, map[string]string{"ssd-1": no, "hdd-1": no, "bare": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := testobj.Filter(tt.pod, cluster, nodeaffinity.NodeAffinity{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want,+got):\n%s", diff)
			}
		})
	}
}

func TestNodeAffinityScoresPreferredTerms(t *testing.T) {
	cluster := testobj.Cluster([]*corev1.Node{
		testobj.Node("a").Label("disk", "ssd").Label("zone", "z1").Obj(),
		testobj.Node("b").Label("disk", "ssd").Obj(),
		testobj.Node("c").Obj(),
	})
	pod := testobj.Pod("p").PreferNode(30, "disk", "ssd").PreferNode(10, "zone", "z1").Obj()
	got, err := testobj.Score(pod, cluster, nodeaffinity.NodeAffinity{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int64{"a": 100, "b": 75, "c": 0}, got); diff != "" {
		t.Errorf("(-want,+got):\n%s", diff)
	}
}
