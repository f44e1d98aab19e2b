package framework_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/framework"
	"github.com/berth-project/berth/internal/scheduler/testobj"
)

func TestPodRequests(t *testing.T) {
	withOverhead := testobj.Pod("p").Req("cpu", "1").Obj()
	withOverhead.Spec.Overhead = testobj.List("cpu", "250m", "memory", "100Mi")
	limitsOnly := testobj.Pod("p").Obj()
	limitsOnly.Spec.Containers[0].Resources.Limits = testobj.List("cpu", "2", "memory", "1Gi")
	podLevel := testobj.Pod("p").Req("cpu", "1", "memory", "1Gi").Obj()
	podLevel.Spec.Resources = &corev1.ResourceRequirements{Requests: testobj.List("cpu", "3")}
	gpu := corev1.ResourceName("example.com/gpu")

	tests := []struct {
		name          string
		pod           *corev1.Pod
		want, nonZero framework.Resource
	}{{
		name:    "no requests: nothing, but scoring counts the defaults",
		pod:     testobj.Pod("p").Obj(),
		want:    framework.Resource{Pods: 1},
		nonZero: framework.Resource{MilliCPU: 100, Memory: 200 << 20, Pods: 1},
	}, {
		name:    "app containers add up",
		pod:     testobj.Pod("p").Req("cpu", "500m", "memory", "1Gi").Container("cpu", "1", "example.com/gpu", "2").Obj(),
		want:    framework.Resource{MilliCPU: 1500, Memory: 1 << 30, Pods: 1, Scalar: map[corev1.ResourceName]int64{gpu: 2}},
		nonZero: framework.Resource{MilliCPU: 1500, Memory: 1<<30 + 200<<20, Pods: 1, Scalar: map[corev1.ResourceName]int64{gpu: 2}},
	}, {
		name:    "an init container larger than the apps sets the request",
		pod:     testobj.Pod("p").Req("cpu", "500m").Init(false, "cpu", "2", "memory", "64Mi").Obj(),
		want:    framework.Resource{MilliCPU: 2000, Memory: 64 << 20, Pods: 1},
		nonZero: framework.Resource{MilliCPU: 2000, Memory: 200 << 20, Pods: 1},
	}, {
		name: "sidecars run beside the apps and the init containers after them",
		pod: testobj.Pod("p").Req("cpu", "1").
			Init(true, "cpu", "500m").Init(false, "cpu", "1200m").Obj(),
		want:    framework.Resource{MilliCPU: 1700, Pods: 1},
		nonZero: framework.Resource{MilliCPU: 1700, Memory: 2 * 200 << 20, Pods: 1},
	}, {
		name:    "overhead is added",
		pod:     withOverhead,
		want:    framework.Resource{MilliCPU: 1250, Memory: 100 << 20, Pods: 1},
		nonZero: framework.Resource{MilliCPU: 1250, Memory: 300 << 20, Pods: 1},
	}, {
		name:    "a limit without a request is the request",
		pod:     limitsOnly,
		want:    framework.Resource{MilliCPU: 2000, Memory: 1 << 30, Pods: 1},
		nonZero: framework.Resource{MilliCPU: 2000, Memory: 1 << 30, Pods: 1},
	}, {
		name:    "pod-level resources replace the container sum",
		pod:     podLevel,
		want:    framework.Resource{MilliCPU: 3000, Memory: 1 << 30, Pods: 1},
		nonZero: framework.Resource{MilliCPU: 3000, Memory: 1 << 30, Pods: 1},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, framework.PodRequests(tt.pod)); diff != "" {
				t.Errorf("PodRequests (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.nonZero, framework.PodNonZeroRequests(tt.pod)); diff != "" {
				t.Errorf("PodNonZeroRequests (-want,+got):\n%s", diff)
			}
		})
	}
}
