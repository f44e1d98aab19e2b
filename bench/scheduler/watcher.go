package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// watcher notes when each measured pod (pod-N in namespace ns) was sent and when it was
// seen bound.
type watcher struct {
	ns      string
	mu      sync.Mutex
	sentAt  map[string]time.Time
	boundAt map[string]time.Time
	want    int
	first   time.Time // first measured pod seen bound
	last    time.Time
	done    chan struct{}
}

func newWatcher(ns string, want int) *watcher {
	return &watcher{ns: ns, sentAt: map[string]time.Time{}, boundAt: map[string]time.Time{}, want: want, done: make(chan struct{})}
}

func (w *watcher) sent(name string) {
	w.mu.Lock()
	w.sentAt[name] = time.Now()
	w.mu.Unlock()
}

// restart counts latency from t (pods created before the scheduler ran).
func (w *watcher) restart(t time.Time) {
	w.mu.Lock()
	for name := range w.sentAt {
		w.sentAt[name] = t
	}
	w.mu.Unlock()
}

func (w *watcher) seen(p *corev1.Pod) {
	if p.Spec.NodeName == "" || p.Namespace != w.ns || !strings.HasPrefix(p.Name, "pod-") {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.boundAt[p.Name]; ok {
		return
	}
	w.boundAt[p.Name] = now
	if len(w.boundAt) == 1 {
		w.first = now
	}
	w.last = now
	if len(w.boundAt) == w.want {
		close(w.done)
	}
}

func (w *watcher) wait(ctx context.Context, timeout time.Duration) error {
	select {
	case <-w.done:
		return nil
	case <-time.After(timeout):
		w.mu.Lock()
		defer w.mu.Unlock()
		return fmt.Errorf("only %d of %d pods bound within %v", len(w.boundAt), w.want, timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *watcher) latencies() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []time.Duration
	for name, b := range w.boundAt {
		out = append(out, b.Sub(w.sentAt[name]))
	}
	sortDurations(out)
	return out
}
