package scheduler

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/framework"
)

// ErrNoNodes is the failure when the cluster has no nodes at all (upstream's words).
var ErrNoNodes = errors.New("no nodes available to schedule pods")

// Upstream's bounds for how many feasible nodes to look for before scoring.
const (
	minFeasibleNodes      = 100
	minFeasiblePercentage = 5
)

// placer picks a node for a pod: it filters nodes (in parallel, starting where the
// previous pod's search stopped, and only until enough feasible nodes are found),
// then scores the feasible ones and takes the best, breaking ties at random.
type placer struct {
	fw *framework.Framework
	// percentage of nodes to find feasible before scoring; 0 is adaptive.
	percentage int32
	next       int
	statuses   []*framework.Status // per node searched; reused across cycles
}

// numFeasibleToFind is upstream's adaptive percentageOfNodesToScore: 50% less 1% per
// 125 nodes, at least 5% and at least 100 nodes.
func numFeasibleToFind(percentage int32, all int) int {
	if all < minFeasibleNodes || percentage >= 100 {
		return all
	}
	p := int(percentage)
	if p <= 0 {
		p = max(50-all/125, minFeasiblePercentage)
	}
	return max(all*p/100, minFeasibleNodes)
}

// place returns the chosen node's name, a *framework.FitError when no node fits, or
// another error.
func (p *placer) place(ctx context.Context, state *framework.CycleState, pod *corev1.Pod, snap *framework.Snapshot) (string, error) {
	all := snap.Len()
	if all == 0 {
		return "", ErrNoNodes
	}
	if st := p.fw.RunPreFilter(ctx, state, pod, snap); !st.IsSuccess() {
		if !st.IsRejected() {
			return "", st.AsError()
		}
		d := framework.NewDiagnosis()
		d.PreFilterMsg = st.Message()
		d.Plugins[st.Plugin()] = true
		return "", &framework.FitError{Pod: pod, NumAllNodes: all, Diagnosis: d}
	}
	feasible, err := p.filter(ctx, state, pod, snap)
	if err != nil {
		return "", err
	}
	switch len(feasible) {
	case 0:
		d := framework.NewDiagnosis()
		for _, st := range p.statuses[:all] {
			if st != nil {
				d.Add(st)
			}
		}
		return "", &framework.FitError{Pod: pod, NumAllNodes: all, Diagnosis: d}
	case 1:
		return feasible[0].Name(), nil
	}
	totals, st := p.fw.RunScore(ctx, state, pod, feasible, snap)
	if !st.IsSuccess() {
		return "", st.AsError()
	}
	best, ties := 0, 0
	for i, s := range totals {
		switch {
		case s > totals[best]:
			best, ties = i, 1
		case s == totals[best]:
			ties++
			if rand.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return feasible[best].Name(), nil
}

// filter runs the Filter plugins over nodes until enough are feasible, recording each
// rejection in p.statuses.
func (p *placer) filter(ctx context.Context, state *framework.CycleState, pod *corev1.Pod, snap *framework.Snapshot) ([]*framework.NodeInfo, error) {
	nodes := snap.List()
	all := len(nodes)
	want := numFeasibleToFind(p.percentage, all)
	if cap(p.statuses) < all {
		p.statuses = make([]*framework.Status, all)
	}
	p.statuses = p.statuses[:all]
	clear(p.statuses)
	feasible := make([]*framework.NodeInfo, want)
	var found, rejected atomic.Int32
	var firstErr atomic.Pointer[framework.Status]
	searchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := p.next
	framework.Parallel(searchCtx, p.fw.Parallelism(), all, func(i int) {
		n := nodes[(start+i)%all]
		st := p.fw.RunFilter(searchCtx, state, pod, n)
		switch {
		case st.IsSuccess():
			if k := found.Add(1); k > int32(want) {
				found.Add(-1)
				cancel()
			} else {
				feasible[k-1] = n
			}
		case st.IsRejected():
			p.statuses[i] = st
			rejected.Add(1)
		default:
			firstErr.CompareAndSwap(nil, st)
			cancel()
		}
	})
	if st := firstErr.Load(); st != nil {
		return nil, st.AsError()
	}
	p.next = (start + int(found.Load()) + int(rejected.Load())) % all
	return feasible[:found.Load()], nil
}
