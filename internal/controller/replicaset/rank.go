package replicaset

import (
	"math"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/controller/pods"
)

// deletionCostAnnotation lets users say which pods to remove first (lower goes first).
const deletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

// deletionOrder sorts owned pods with the best to delete first, by upstream's rules:
// unscheduled before scheduled; pending before unknown before running; not ready
// before ready; lower deletion cost first; pods sharing a node with more related pods
// first; ready for less time first; more restarts first; newer first. The two times
// are compared on a log2 scale, so pods of about the same age tie and fall to the UID.
func deletionOrder(owned, related []*corev1.Pod, now time.Time) []*corev1.Pod {
	onNode := map[string]int{}
	for _, p := range related {
		onNode[p.Spec.NodeName]++
	}
	out := append([]*corev1.Pod(nil), owned...)
	sort.SliceStable(out, func(i, j int) bool { return deleteFirst(out[i], out[j], onNode, now) })
	return out
}

var phaseOrder = map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}

func deleteFirst(a, b *corev1.Pod, onNode map[string]int, now time.Time) bool {
	if a.Spec.NodeName != b.Spec.NodeName && (a.Spec.NodeName == "" || b.Spec.NodeName == "") {
		return a.Spec.NodeName == ""
	}
	if phaseOrder[a.Status.Phase] != phaseOrder[b.Status.Phase] {
		return phaseOrder[a.Status.Phase] < phaseOrder[b.Status.Phase]
	}
	if pods.Ready(a) != pods.Ready(b) {
		return !pods.Ready(a)
	}
	if ca, cb := cost(a), cost(b); ca != cb {
		return ca < cb
	}
	if ra, rb := onNode[a.Spec.NodeName], onNode[b.Spec.NodeName]; ra != rb {
		return ra > rb
	}
	if pods.Ready(a) && pods.Ready(b) {
		if d := logRank(pods.ReadySince(a), now) - logRank(pods.ReadySince(b), now); d != 0 {
			return d < 0
		}
	}
	if ra, rb := pods.Restarts(a), pods.Restarts(b); ra != rb {
		return ra > rb
	}
	if d := logRank(a.CreationTimestamp.Time, now) - logRank(b.CreationTimestamp.Time, now); d != 0 {
		return d < 0
	}
	return a.UID < b.UID
}

// logRank buckets the time since t by powers of two (of nanoseconds); zero or future
// times rank lowest.
func logRank(t, now time.Time) int {
	if t.IsZero() {
		return -1
	}
	d := now.Sub(t)
	if d <= 0 {
		return -1
	}
	return int(math.Log2(float64(d)))
}

func cost(p *corev1.Pod) int32 {
	v, ok := p.Annotations[deletionCostAnnotation]
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0
	}
	return int32(n)
}
