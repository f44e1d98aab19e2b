package nodeports_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/plugins/nodeports"
	"github.com/berth-project/berth/internal/scheduler/testobj"
)

const taken = "Unschedulable: node(s) didn't have free ports for the requested pod ports"

func TestNodePorts(t *testing.T) {
	nodes := []*corev1.Node{testobj.Node("a").Obj(), testobj.Node("b").Obj(), testobj.Node("c").Obj()}
	cluster := testobj.Cluster(nodes,
		testobj.Pod("web").Node("a").HostPort("", corev1.ProtocolTCP, 80).Obj(),
		testobj.Pod("dns").Node("b").HostPort("10.0.0.1", corev1.ProtocolUDP, 53).Obj(),
	)
	tests := []struct {
		name string
		pod  *corev1.Pod
		want map[string]string
	}{
		{"no host ports: anywhere", testobj.Pod("p").Obj(), map[string]string{"a": "", "b": "", "c": ""}},
		{"the same port and protocol on every address", testobj.Pod("p").HostPort("", corev1.ProtocolTCP, 80).Obj(), map[string]string{"a": taken, "b": "", "c": ""}},
		{"another protocol is free", testobj.Pod("p").HostPort("", corev1.ProtocolUDP, 80).Obj(), map[string]string{"a": "", "b": "", "c": ""}},
		{"a specific address clashes with a wildcard", testobj.Pod("p").HostPort("10.0.0.2", corev1.ProtocolTCP, 80).Obj(), map[string]string{"a": taken, "b": "", "c": ""}},
		{"a wildcard clashes with a specific address", testobj.Pod("p").HostPort("0.0.0.0", corev1.ProtocolUDP, 53).Obj(), map[string]string{"a": "", "b": taken, "c": ""}},
		{"two specific addresses do not", testobj.Pod("p").HostPort("10.0.0.2", corev1.ProtocolUDP, 53).Obj(), map[string]string{"a": "", "b": "", "c": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := testobj.Filter(tt.pod, cluster, nodeports.NodePorts{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want,+got):\n%s", diff)
			}
		})
	}
}
