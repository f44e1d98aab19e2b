// Package expectations remembers the creations and deletions a controller has asked
// the API server for and not yet seen in its informer, so that a sync running before
// the informer catches up does not create or delete the same pods twice.
package expectations

import (
	"sync"
	"time"
)

// ttl bounds how long an unmet expectation blocks its controller: if a watch event
// was lost, the controller syncs anyway after this long.
const ttl = 5 * time.Minute

type entry struct {
	adds, dels int
	deleting   map[string]bool // keys of the objects whose deletion is awaited
	since      time.Time
}

// Expectations is safe for concurrent use; keys are the controllers' own keys.
type Expectations struct {
	mu  sync.Mutex
	m   map[string]*entry
	now func() time.Time
}

// New returns empty expectations.
func New() *Expectations { return &Expectations{m: map[string]*entry{}, now: time.Now} }

// Satisfied reports whether the controller may act on key: nothing is awaited, or the
// wait has lasted longer than the TTL.
func (e *Expectations) Satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.m[key]
	return !ok || (x.adds <= 0 && x.dels <= 0) || e.now().Sub(x.since) > ttl
}

// ExpectCreations records that n creations are about to be requested for key.
func (e *Expectations) ExpectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[key] = &entry{adds: n, since: e.now()}
}

// ExpectDeletions records that the objects with the given keys are about to be deleted.
func (e *Expectations) ExpectDeletions(key string, objects []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := &entry{dels: len(objects), deleting: map[string]bool{}, since: e.now()}
	for _, o := range objects {
		x.deleting[o] = true
	}
	e.m[key] = x
}

// CreationObserved lowers key's awaited creations by one (an informer saw one, or a
// request was never made).
func (e *Expectations) CreationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok {
		x.adds--
	}
}

// DeletionObserved lowers key's awaited deletions if object was one of them; seeing
// the same deletion twice counts once.
func (e *Expectations) DeletionObserved(key, object string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok && x.deleting[object] {
		delete(x.deleting, object)
		x.dels--
	}
}

// Forget drops whatever is awaited for key (its controller object is gone).
func (e *Expectations) Forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}
