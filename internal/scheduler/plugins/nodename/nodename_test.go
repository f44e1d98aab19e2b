package nodename_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/plugins/nodename"
	"github.com/berth-project/berth/internal/scheduler/testobj"
)

func TestNodeName(t *testing.T) {
	cluster := testobj.Cluster([]*corev1.Node{testobj.Node("a").Obj(), testobj.Node("b").Obj()})
	tests := []struct {
		name string
		pod  *corev1.Pod
		want map[string]string
	}{
		{"no node named: every node", testobj.Pod("p").Obj(), map[string]string{"a": "", "b": ""}},
		{"only the node named", testobj.Pod("p").Node("b").Obj(), map[string]string{
			"a": "UnschedulableAndUnresolvable: node(s) didn't match the requested node name", "b": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := testobj.Filter(tt.pod, cluster, nodename.NodeName{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want,+got):\n%s", diff)
			}
		})
	}
}
