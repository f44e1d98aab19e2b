package noderesources

import (
	"context"

	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/framework"
)

// BalancedName is the name of the BalancedAllocation plugin.
const BalancedName = "NodeResourcesBalancedAllocation"

// BalancedAllocation prefers nodes whose cpu and memory would be used in equal shares,
// so neither runs out while the other is idle.
type BalancedAllocation struct{}

var (
	_ framework.PreScorePlugin = BalancedAllocation{}
	_ framework.ScorePlugin    = BalancedAllocation{}
)

func (BalancedAllocation) Name() string { return BalancedName }

const balancedKey framework.StateKey = "PreScore" + BalancedName

// PreScore skips pods that request neither cpu nor memory.
func (BalancedAllocation) PreScore(_ context.Context, state *framework.CycleState, pod *corev1.Pod, _ []*framework.NodeInfo, _ *framework.Snapshot) *framework.Status {
	pi := framework.PodInfoOf(state, pod)
	if pi.Requests.MilliCPU == 0 && pi.Requests.Memory == 0 {
		return framework.NewStatus(framework.Skip)
	}
	state.Write(balancedKey, pi)
	return nil
}

// Score is 100 × (1 − the standard deviation of the cpu and memory fractions), which
// for two resources is half their difference.
func (BalancedAllocation) Score(_ context.Context, state *framework.CycleState, pod *corev1.Pod, node *framework.NodeInfo) (int64, *framework.Status) {
	pi, ok := framework.ReadState[*framework.PodInfo](state, balancedKey)
	if !ok {
		pi = framework.PodInfoOf(state, pod)
	}
	cpu := fraction(node.Requested.MilliCPU+pi.Requests.MilliCPU, node.Allocatable.MilliCPU)
	mem := fraction(node.Requested.Memory+pi.Requests.Memory, node.Allocatable.Memory)
	d := cpu - mem
	if d < 0 {
		d = -d
	}
	return int64((1 - d/2) * float64(framework.MaxNodeScore)), nil
}

func fraction(requested, capacity int64) float64 {
	if capacity <= 0 {
		return 1
	}
	return min(1, float64(requested)/float64(capacity))
}
