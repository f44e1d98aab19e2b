package framework

import (
	"context"
	"fmt"
	"runtime"

	corev1 "k8s.io/api/core/v1"
)

// Entry is a plugin as configured: its Score counts Weight times.
type Entry struct {
	Plugin Plugin
	Weight int64
}

// Framework runs a fixed list of plugins at each extension point, in the order given.
type Framework struct {
	preFilter   []PreFilterPlugin
	filter      []FilterPlugin
	preScore    []PreScorePlugin
	score       []ScorePlugin
	weights     []int64
	events      map[string]ClusterEvent
	parallelism int
	// scores and totals are RunScore's buffers, reused from cycle to cycle.
	scores [][]NodeScore
	totals []int64
}

// New sorts plugins into the extension points they implement. parallelism is how
// many goroutines score nodes (GOMAXPROCS when 0).
func New(parallelism int, entries ...Entry) (*Framework, error) {
	if parallelism <= 0 {
		parallelism = runtime.GOMAXPROCS(0)
	}
	f := &Framework{parallelism: parallelism, events: map[string]ClusterEvent{}}
	seen := map[string]bool{}
	for _, e := range entries {
		name := e.Plugin.Name()
		if seen[name] {
			return nil, fmt.Errorf("plugin %q configured twice", name)
		}
		seen[name] = true
		if p, ok := e.Plugin.(PreFilterPlugin); ok {
			f.preFilter = append(f.preFilter, p)
		}
		if p, ok := e.Plugin.(FilterPlugin); ok {
			f.filter = append(f.filter, p)
		}
		if p, ok := e.Plugin.(PreScorePlugin); ok {
			f.preScore = append(f.preScore, p)
		}
		if p, ok := e.Plugin.(ScorePlugin); ok {
			w := e.Weight
			if w == 0 {
				w = 1
			}
			f.score = append(f.score, p)
			f.weights = append(f.weights, w)
		}
		f.events[name] = AnyEvent
		if p, ok := e.Plugin.(EnqueueExtension); ok {
			f.events[name] = p.EventsToRegister()
		}
	}
	return f, nil
}

// Parallelism is how many goroutines the framework uses per cycle.
func (f *Framework) Parallelism() int { return f.parallelism }

// Interested reports whether an event may make a pod that plugin rejected fit.
// Unknown plugins (and "", an error) care about every event.
func (f *Framework) Interested(plugin string, ev ClusterEvent) bool {
	want, ok := f.events[plugin]
	return !ok || want&ev != 0
}

// RunPreFilter runs every PreFilter plugin. A rejection or error stops there and
// carries the plugin's name; a Skip marks that plugin's Filter to be skipped.
func (f *Framework) RunPreFilter(ctx context.Context, state *CycleState, pod *corev1.Pod, nodes *Snapshot) *Status {
	for _, p := range f.preFilter {
		s := p.PreFilter(ctx, state, pod, nodes)
		switch {
		case s.IsSuccess():
		case s.IsSkip():
			state.skipFilter[p.Name()] = true
		default:
			return s.withPlugin(p.Name())
		}
	}
	state.filters = make([]FilterPlugin, 0, len(f.filter))
	for _, p := range f.filter {
		if !state.skipFilter[p.Name()] {
			state.filters = append(state.filters, p)
		}
	}
	return nil
}

// RunFilter runs the Filter plugins on one node and returns the first rejection,
// carrying the plugin's name.
func (f *Framework) RunFilter(ctx context.Context, state *CycleState, pod *corev1.Pod, node *NodeInfo) *Status {
	filters := state.filters
	if filters == nil {
		filters = f.filter
	}
	for _, p := range filters {
		if s := p.Filter(ctx, state, pod, node); !s.IsSuccess() {
			return s.withPlugin(p.Name())
		}
	}
	return nil
}

// RunScore runs PreScore and then scores every node with each Score plugin (nodes in
// parallel), normalises, and returns each node's weighted total. The totals are valid
// until the next call: a Framework runs one scheduling cycle at a time.
func (f *Framework) RunScore(ctx context.Context, state *CycleState, pod *corev1.Pod, nodes []*NodeInfo, all *Snapshot) ([]int64, *Status) {
	for _, p := range f.preScore {
		s := p.PreScore(ctx, state, pod, nodes, all)
		switch {
		case s.IsSuccess():
		case s.IsSkip():
			state.skipScore[p.Name()] = true
		default:
			return nil, s.withPlugin(p.Name())
		}
	}
	var active []int
	for i, p := range f.score {
		if !state.skipScore[p.Name()] {
			active = append(active, i)
		}
	}
	for len(f.scores) < len(active) {
		f.scores = append(f.scores, nil)
	}
	scores := f.scores[:len(active)]
	for k := range scores {
		if cap(scores[k]) < len(nodes) {
			scores[k] = make([]NodeScore, len(nodes))
		}
		scores[k] = scores[k][:len(nodes)]
	}
	errs := make([]*Status, len(active))
	Parallel(ctx, f.parallelism, len(nodes), func(n int) {
		for k, i := range active {
			s, st := f.score[i].Score(ctx, state, pod, nodes[n])
			if !st.IsSuccess() {
				errs[k] = st.withPlugin(f.score[i].Name())
			}
			scores[k][n] = NodeScore{Name: nodes[n].Name(), Score: s}
		}
	})
	if cap(f.totals) < len(nodes) {
		f.totals = make([]int64, len(nodes))
	}
	totals := f.totals[:len(nodes)]
	clear(totals)
	for k, i := range active {
		if errs[k] != nil {
			return nil, errs[k]
		}
		if nz, ok := f.score[i].(ScoreNormalizer); ok {
			if st := nz.NormalizeScore(ctx, state, pod, scores[k]); !st.IsSuccess() {
				return nil, st.withPlugin(f.score[i].Name())
			}
		}
		for n := range nodes {
			totals[n] += scores[k][n].Score * f.weights[i]
		}
	}
	return totals, nil
}

// DefaultNormalizeScore rescales scores to [0, maxScore] relative to the highest one;
// reverse makes the lowest raw score the best. All zeros become maxScore when
// reversed (nothing to avoid anywhere), 0 otherwise.
func DefaultNormalizeScore(maxScore int64, reverse bool, scores []NodeScore) {
	var highest int64
	for _, s := range scores {
		highest = max(highest, s.Score)
	}
	for i := range scores {
		s := scores[i].Score
		if highest > 0 {
			s = maxScore * s / highest
		}
		if reverse {
			s = maxScore - s
		}
		scores[i].Score = s
	}
}
