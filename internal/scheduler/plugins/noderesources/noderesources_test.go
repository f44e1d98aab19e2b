package noderesources_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/plugins/noderesources"
	"github.com/berth-project/berth/internal/scheduler/testobj"
)

func TestFitFilter(t *testing.T) {
	nodes := []*corev1.Node{
		testobj.Node("small").Alloc("cpu", "1", "memory", "1Gi", "pods", "2", "ephemeral-storage", "10Gi").Obj(),
		testobj.Node("busy").Alloc("cpu", "4", "memory", "8Gi", "pods", "110", "example.com/gpu", "2").Obj(),
		testobj.Node("full").Alloc("cpu", "4", "memory", "8Gi", "pods", "1").Obj(),
	}
	cluster := testobj.Cluster(nodes,
		testobj.Pod("hog").Node("busy").Req("cpu", "3500m", "memory", "2Gi", "example.com/gpu", "1").Obj(),
		testobj.Pod("only").Node("full").Obj(),
	)
	tests := []struct {
		name string
		pod  *corev1.Pod
		want map[string]string
	}{{
		name: "requests within what is left",
		pod:  testobj.Pod("p").Req("cpu", "500m", "memory", "512Mi").Obj(),
		want: map[string]string{"small": "", "busy": "", "full": "Unschedulable: Too many pods"},
	}, {
		name: "too much cpu for what the busy node has left",
		pod:  testobj.Pod("p").Req("cpu", "1").Obj(),
		want: map[string]string{"small": "", "busy": "Unschedulable: Insufficient cpu", "full": "Unschedulable: Too many pods"},
	}, {
		name: "every lacking resource is named",
		pod:  testobj.Pod("p").Req("cpu", "2", "memory", "7Gi", "ephemeral-storage", "20Gi").Obj(),
		want: map[string]string{
			"small": "Unschedulable: Insufficient cpu, Insufficient memory, Insufficient ephemeral-storage",
			"busy":  "Unschedulable: Insufficient cpu, Insufficient memory, Insufficient ephemeral-storage",
			"full":  "Unschedulable: Too many pods, Insufficient ephemeral-storage",
		},
	}, {
		name: "extended resources",
		pod:  testobj.Pod("p").Req("example.com/gpu", "1").Obj(),
		want: map[string]string{"small": "Unschedulable: Insufficient example.com/gpu", "busy": "", "full": "Unschedulable: Too many pods, Insufficient example.com/gpu"},
	}, {
		name: "an init container's request counts",
		pod:  testobj.Pod("p").Req("cpu", "100m").Init(false, "cpu", "2").Obj(),
		want: map[string]string{"small": "Unschedulable: Insufficient cpu", "busy": "Unschedulable: Insufficient cpu", "full": "Unschedulable: Too many pods"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := testobj.Filter(tt.pod, cluster, noderesources.Fit{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want,+got):\n%s", diff)
			}
		})
	}
}

func TestFitScoresLeastAllocated(t *testing.T) {
	nodes := []*corev1.Node{
		testobj.Node("empty").Alloc("cpu", "4", "memory", "8Gi", "pods", "110").Obj(),
		testobj.Node("half").Alloc("cpu", "4", "memory", "8Gi", "pods", "110").Obj(),
	}
	cluster := testobj.Cluster(nodes, testobj.Pod("x").Node("half").Req("cpu", "2", "memory", "4Gi").Obj())
	pod := testobj.Pod("p").Req("cpu", "1", "memory", "2Gi").Obj()
	got, err := testobj.Score(pod, cluster, noderesources.Fit{})
	if err != nil {
		t.Fatal(err)
	}
	// empty: (3/4 + 6/8)/2 = 75; half: (1/4 + 2/8)/2 = 25.
	if diff := cmp.Diff(map[string]int64{"empty": 75, "half": 25}, got); diff != "" {
		t.Errorf("(-want,+got):\n%s", diff)
	}
	// A pod without requests counts as 100m and 200Mi, so it still prefers the emptier node.
	got, err = testobj.Score(testobj.Pod("q").Obj(), cluster, noderesources.Fit{})
	if err != nil {
		t.Fatal(err)
	}
	if got["empty"] <= got["half"] {
		t.Errorf("a request-less pod scores the empty node %d and the half-full one %d", got["empty"], got["half"])
	}
}

func TestBalancedAllocationPrefersEvenUse(t *testing.T) {
	nodes := []*corev1.Node{
		testobj.Node("cpu-heavy").Alloc("cpu", "4", "memory", "8Gi", "pods", "110").Obj(),
		testobj.Node("even").Alloc("cpu", "4", "memory", "8Gi", "pods", "110").Obj(),
	}
	cluster := testobj.Cluster(nodes,
		testobj.Pod("a").Node("cpu-heavy").Req("cpu", "3").Obj(),
		testobj.Pod("b").Node("even").Req("cpu", "1", "memory", "2Gi").Obj(),
	)
	pod := testobj.Pod("p").Req("cpu", "1", "memory", "2Gi").Obj()
	got, err := testobj.Score(pod, cluster, noderesources.BalancedAllocation{})
	if err != nil {
		t.Fatal(err)
	}
	// cpu-heavy: cpu 4/4, memory 2/8 → 100×(1 − 0.75/2) = 62; even: 2/4 and 4/8 → 100.
	if diff := cmp.Diff(map[string]int64{"cpu-heavy": 62, "even": 100}, got); diff != "" {
		t.Errorf("(-want,+got):\n%s", diff)
	}
}
