package framework_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/framework"
	"github.com/berth-project/berth/internal/scheduler/testobj"
)

func TestFitErrorMessageIsUpstreams(t *testing.T) {
	never := corev1.PreemptNever
	neverPod := testobj.Pod("p").Obj()
	neverPod.Spec.PreemptionPolicy = &never
	tests := []struct {
		name     string
		pod      *corev1.Pod
		statuses []*framework.Status
		want     string
	}{{
		name: "taint and cordon",
		pod:  testobj.Pod("p").Obj(),
		statuses: []*framework.Status{
			framework.NewStatus(framework.UnschedulableAndUnresolvable, "node(s) had untolerated taint {dedicated: ops}"),
			framework.NewStatus(framework.UnschedulableAndUnresolvable, "node(s) were unschedulable"),
			framework.NewStatus(framework.UnschedulableAndUnresolvable, "node(s) were unschedulable"),
		},
		want: "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: ops}, 2 node(s) were unschedulable. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
	}, {
		name: "resources count each reason; preemption could have helped",
		pod:  testobj.Pod("p").Obj(),
		statuses: []*framework.Status{
			framework.NewStatus(framework.Unschedulable, "Insufficient cpu", "Insufficient memory"),
			framework.NewStatus(framework.Unschedulable, "Insufficient cpu"),
			framework.NewStatus(framework.UnschedulableAndUnresolvable, "node(s) didn't match Pod's node affinity/selector"),
		},
		want: "0/3 nodes are available: 1 Insufficient memory, 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.",
	}, {
		name:     "preemptionPolicy Never",
		pod:      neverPod,
		statuses: []*framework.Status{framework.NewStatus(framework.Unschedulable, "Insufficient cpu")},
		want:     "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := framework.NewDiagnosis()
			for _, s := range tt.statuses {
				d.Add(s)
			}
			err := &framework.FitError{Pod: tt.pod, NumAllNodes: len(tt.statuses), Diagnosis: d}
			if got := err.Error(); got != tt.want {
				t.Errorf("message:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}
