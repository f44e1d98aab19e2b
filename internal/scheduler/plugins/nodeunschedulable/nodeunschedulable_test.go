package nodeunschedulable_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/plugins/nodeunschedulable"
	"github.com/berth-project/berth/internal/scheduler/testobj"
)

func TestNodeUnschedulable(t *testing.T) {
	cluster := testobj.Cluster([]*corev1.Node{testobj.Node("open").Obj(), testobj.Node("cordoned").Unschedulable().Obj()})
	const no = "UnschedulableAndUnresolvable: node(s) were unschedulable"
	tests := []struct {
		name string
		pod  *corev1.Pod
		want map[string]string
	}{
		{"a cordoned node is skipped", testobj.Pod("p").Obj(), map[string]string{"open": "", "cordoned": no}},
		{"unless the pod tolerates the unschedulable taint",
			testobj.Pod("p").Toleration(corev1.TaintNodeUnschedulable, "", corev1.TaintEffectNoSchedule).Obj(),
			map[string]string{"open": "", "cordoned": ""}},
		{"a toleration of every taint counts", testobj.Pod("p").Toleration("", "", "").Obj(), map[string]string{"open": "", "cordoned": ""}},
		{"a NoExecute toleration does not",
			testobj.Pod("p").Toleration(corev1.TaintNodeUnschedulable, "", corev1.TaintEffectNoExecute).Obj(),
			map[string]string{"open": "", "cordoned": no}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := testobj.Filter(tt.pod, cluster, nodeunschedulable.NodeUnschedulable{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want,+got):\n%s", diff)
			}
		})
	}
}
