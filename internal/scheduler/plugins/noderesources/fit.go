// Package noderesources places pods where their requests fit what is allocatable and
// not yet requested, and prefers nodes with more room left (least allocated) and with
// cpu and memory used in balance.
package noderesources

import (
	"context"
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/framework"
)

// FitName is the name of the Fit plugin.
const FitName = "NodeResourcesFit"

// TooManyPods is the reason for a node that runs as many pods as it allows.
const TooManyPods = "Too many pods"

// Fit filters by requests against allocatable minus what the node's pods (bound or
// assumed) request, and scores by what would be left: the least-allocated strategy.
type Fit struct{}

var (
	_ framework.PreFilterPlugin  = Fit{}
	_ framework.FilterPlugin     = Fit{}
	_ framework.ScorePlugin      = Fit{}
	_ framework.EnqueueExtension = Fit{}
)

func (Fit) Name() string { return FitName }

const preFilterKey framework.StateKey = "PreFilter" + FitName

// PreFilter computes the pod's requests once.
func (Fit) PreFilter(_ context.Context, state *framework.CycleState, pod *corev1.Pod, _ *framework.Snapshot) *framework.Status {
	state.Write(preFilterKey, framework.PodInfoOf(state, pod))
	return nil
}

func podInfo(state *framework.CycleState, pod *corev1.Pod) *framework.PodInfo {
	if pi, ok := framework.ReadState[*framework.PodInfo](state, preFilterKey); ok {
		return pi
	}
	return framework.PodInfoOf(state, pod)
}

// Filter names every resource the node lacks ("Insufficient cpu").
func (Fit) Filter(_ context.Context, state *framework.CycleState, pod *corev1.Pod, node *framework.NodeInfo) *framework.Status {
	req := podInfo(state, pod).Requests
	alloc, used := &node.Allocatable, &node.Requested
	var reasons []string
	if int64(len(node.Pods))+1 > alloc.Pods {
		reasons = append(reasons, TooManyPods)
	}
	if req.MilliCPU > 0 && req.MilliCPU > alloc.MilliCPU-used.MilliCPU {
		reasons = append(reasons, "Insufficient cpu")
	}
	if req.Memory > 0 && req.Memory > alloc.Memory-used.Memory {
		reasons = append(reasons, "Insufficient memory")
	}
	if req.EphemeralStorage > 0 && req.EphemeralStorage > alloc.EphemeralStorage-used.EphemeralStorage {
		reasons = append(reasons, "Insufficient ephemeral-storage")
	}
	if len(req.Scalar) > 0 {
		var lacking []string
		for name, v := range req.Scalar {
			if v > 0 && v > alloc.Scalar[name]-used.Scalar[name] {
				lacking = append(lacking, "Insufficient "+string(name))
			}
		}
		sort.Strings(lacking)
		reasons = append(reasons, lacking...)
	}
	if len(reasons) > 0 {
		return framework.NewStatus(framework.Unschedulable, reasons...)
	}
	return nil
}

// Score is the share of cpu and memory left free once the pod is placed, averaged
// (0-100), counting request-less containers at the scoring defaults.
func (Fit) Score(_ context.Context, state *framework.CycleState, pod *corev1.Pod, node *framework.NodeInfo) (int64, *framework.Status) {
	req := podInfo(state, pod).NonZero
	cpu := leastAllocated(node.NonZeroRequested.MilliCPU+req.MilliCPU, node.Allocatable.MilliCPU)
	mem := leastAllocated(node.NonZeroRequested.Memory+req.Memory, node.Allocatable.Memory)
	return (cpu + mem) / 2, nil
}

func leastAllocated(requested, capacity int64) int64 {
	if capacity <= 0 || requested > capacity {
		return 0
	}
	return (capacity - requested) * framework.MaxNodeScore / capacity
}

// EventsToRegister: a pod going frees its requests; a node added or grown has room.
func (Fit) EventsToRegister() framework.ClusterEvent {
	return framework.NodeAdd | framework.NodeAllocatableChange | framework.AssignedPodDelete
}
