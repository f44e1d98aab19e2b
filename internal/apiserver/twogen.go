package apiserver

import "sync"

// twoGen is a bounded memo without per-entry bookkeeping: entries go into the current
// generation until it holds size of them; it then becomes the old generation (the one
// before is dropped) and a new one starts. An entry found in the old generation is
// carried into the current one, so what is used stays. The zero value is ready.
type twoGen[K comparable, V any] struct {
	mu       sync.Mutex
	cur, old map[K]V
}

// get returns k's value.
func (g *twoGen[K, V]) get(k K, size int) (V, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.getLocked(k, size)
}

// put stores v as k's value.
func (g *twoGen[K, V]) put(k K, v V, size int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.putLocked(k, v, size)
}

// getOrPut returns k's value, storing fresh() as it when there is none.
func (g *twoGen[K, V]) getOrPut(k K, size int, fresh func() V) V {
	g.mu.Lock()
	defer g.mu.Unlock()
	if v, ok := g.getLocked(k, size); ok {
		return v
	}
	v := fresh()
	g.putLocked(k, v, size)
	return v
}

func (g *twoGen[K, V]) getLocked(k K, size int) (V, bool) {
	if v, ok := g.cur[k]; ok {
		return v, true
	}
	if v, ok := g.old[k]; ok {
		g.putLocked(k, v, size)
		return v, true
	}
	var zero V
	return zero, false
}

func (g *twoGen[K, V]) putLocked(k K, v V, size int) {
	if g.cur == nil || len(g.cur) >= size {
		g.old, g.cur = g.cur, make(map[K]V)
	}
	g.cur[k] = v
}
