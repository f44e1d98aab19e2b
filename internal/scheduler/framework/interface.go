package framework

import (
	"context"

	corev1 "k8s.io/api/core/v1"
)

// MaxNodeScore is the highest score a node gets from one plugin after normalisation.
const MaxNodeScore int64 = 100

// Plugin is a scheduling concern. It implements only the extension points it needs.
type Plugin interface {
	Name() string
}

// PreFilterPlugin computes, once per pod, what its Filter needs across nodes (the
// pod's requests, counts of matching pods per topology domain). Returning Skip means
// the plugin's Filter has nothing to check for this pod; a rejection fails every node.
type PreFilterPlugin interface {
	Plugin
	PreFilter(ctx context.Context, state *CycleState, pod *corev1.Pod, nodes *Snapshot) *Status
}

// FilterPlugin says whether the pod fits one node. It is called for many nodes in
// parallel, so it must only read the CycleState and the NodeInfo.
type FilterPlugin interface {
	Plugin
	Filter(ctx context.Context, state *CycleState, pod *corev1.Pod, node *NodeInfo) *Status
}

// PreScorePlugin computes, once per pod, what its Score needs over the feasible
// nodes (all is every node, for plugins that count pods cluster-wide). Returning Skip
// means the plugin's Score is not called for this pod.
type PreScorePlugin interface {
	Plugin
	PreScore(ctx context.Context, state *CycleState, pod *corev1.Pod, feasible []*NodeInfo, all *Snapshot) *Status
}

// ScorePlugin ranks a feasible node; higher is better. Called in parallel over nodes.
type ScorePlugin interface {
	Plugin
	Score(ctx context.Context, state *CycleState, pod *corev1.Pod, node *NodeInfo) (int64, *Status)
}

// ScoreNormalizer is a ScorePlugin whose raw scores are rescaled to [0, MaxNodeScore]
// once every node is scored.
type ScoreNormalizer interface {
	NormalizeScore(ctx context.Context, state *CycleState, pod *corev1.Pod, scores []NodeScore) *Status
}

// NodeScore is a node's score from one plugin.
type NodeScore struct {
	Name  string
	Score int64
}

// ClusterEvent is a set of cluster changes; a pod that a plugin rejected is retried
// when an event the plugin registered for happens.
type ClusterEvent uint32

const (
	NodeAdd ClusterEvent = 1 << iota
	NodeAllocatableChange
	NodeLabelChange
	NodeTaintChange
	NodeSpecUnschedulableChange
	AssignedPodAdd
	AssignedPodUpdate // labels of an assigned pod changed
	AssignedPodDelete // deleted, or finished (Succeeded/Failed)

	// NodeChange is every change of a node a plugin may care about.
	NodeChange = NodeAdd | NodeAllocatableChange | NodeLabelChange | NodeTaintChange | NodeSpecUnschedulableChange
	// AnyEvent is every event.
	AnyEvent ClusterEvent = 1<<iota - 1
)

// EnqueueExtension is a plugin that says which cluster events may make a pod it
// rejected fit. A rejecting plugin without it is taken to care about every event.
type EnqueueExtension interface {
	EventsToRegister() ClusterEvent
}
