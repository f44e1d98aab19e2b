package tainttoleration_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/plugins/tainttoleration"
	"github.com/berth-project/berth/internal/scheduler/testobj"
)

func TestTaintTolerationFilter(t *testing.T) {
	cluster := testobj.Cluster([]*corev1.Node{
		testobj.Node("plain").Obj(),
		testobj.Node("ops").Taint("dedicated", "ops", corev1.TaintEffectNoSchedule).Obj(),
		testobj.Node("evicting").Taint("broken", "", corev1.TaintEffectNoExecute).Obj(),
		testobj.Node("soft").Taint("cheap", "no", corev1.TaintEffectPreferNoSchedule).Obj(),
	})
	tests := []struct {
		name string
		pod  *corev1.Pod
		want map[string]string
	}{{
		name: "NoSchedule and NoExecute taints keep an intolerant pod off",
		pod:  testobj.Pod("p").Obj(),
		want: map[string]string{
			"plain":    "",
			"ops":      "UnschedulableAndUnresolvable: node(s) had untolerated taint {dedicated: ops}",
			"evicting": "UnschedulableAndUnresolvable: node(s) had untolerated taint {broken: }",
			"soft":     "",
		},
	}, {
		name: "an Equal toleration with the value",
		pod:  testobj.Pod("p").Toleration("dedicated", "ops", corev1.TaintEffectNoSchedule).Obj(),
		want: map[string]string{
			"plain": "", "ops": "", "soft": "",
			"evicting": "UnschedulableAndUnresolvable: node(s) had untolerated taint {broken: }",
		},
	}, {
		name: "the wrong value does not tolerate",
		pod:  testobj.Pod("p").Toleration("dedicated", "dev", corev1.TaintEffectNoSchedule).Toleration("broken", "", "").Obj(),
		want: map[string]string{
			"plain": "", "evicting": "", "soft": "",
			"ops": "UnschedulableAndUnresolvable: node(s) had untolerated taint {dedicated: ops}",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := testobj.Filter(tt.pod, cluster, &tainttoleration.TaintToleration{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want,+got):\n%s", diff)
			}
		})
	}
}

func TestTaintTolerationPrefersFewerPreferNoScheduleTaints(t *testing.T) {
	cluster := testobj.Cluster([]*corev1.Node{
		testobj.Node("none").Obj(),
		testobj.Node("one").Taint("a", "1", corev1.TaintEffectPreferNoSchedule).Obj(),
		testobj.Node("two").Taint("a", "1", corev1.TaintEffectPreferNoSchedule).Taint("b", "2", corev1.TaintEffectPreferNoSchedule).Obj(),
	})
	tests := []struct {
		name string
		pod  *corev1.Pod
		want map[string]int64
	}{
		{"untolerated taints count against a node", testobj.Pod("p").Obj(), map[string]int64{"none": 100, "one": 50, "two": 0}},
		{"tolerated ones do not", testobj.Pod("p").Toleration("a", "1", corev1.TaintEffectPreferNoSchedule).Obj(),
			map[string]int64{"none": 100, "one": 100, "two": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := testobj.Score(tt.pod, cluster, &tainttoleration.TaintToleration{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want,+got):\n%s", diff)
			}
		})
	}
}
