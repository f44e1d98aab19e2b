package kubelet

import (
	"sync"
	"time"
)

// Upstream's restart back-off: 10 s doubling to 5 min, forgotten after 10 min without a restart.
const (
	backoffInitial = 10 * time.Second
	backoffMax     = 5 * time.Minute
	backoffReset   = 2 * backoffMax
)

// backoff remembers, per key (pod UID and container name, or an image), when the last retry
// was made and how long the next must wait. It lives in memory: a restarted kubelet starts
// every back-off afresh, as upstream's does.
type backoff struct {
	mu      sync.Mutex
	entries map[string]*backoffEntry
	now     func() time.Time
}

type backoffEntry struct {
	delay time.Duration
	last  time.Time
}

func newBackoff() *backoff {
	return &backoff{entries: map[string]*backoffEntry{}, now: time.Now}
}

// wait returns how long a retry for key must still wait, given when the failure happened
// (a container's finish time): zero when it may go now.
func (b *backoff) wait(key string, failedAt time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entries[key]
	now := b.now()
	if e == nil || now.Sub(e.last) > backoffReset {
		return 0
	}
	if failedAt.Sub(e.last) >= e.delay {
		return 0 // it ran longer than the back-off: no penalty
	}
	return max(e.last.Add(e.delay).Sub(now), 0)
}

// next records a retry for key now and doubles its delay.
func (b *backoff) next(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	e := b.entries[key]
	if e == nil || now.Sub(e.last) > backoffReset {
		b.entries[key] = &backoffEntry{delay: backoffInitial, last: now}
		return
	}
	e.delay = min(e.delay*2, backoffMax)
	e.last = now
}

// delay is key's current back-off, for messages.
func (b *backoff) delay(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.entries[key]; e != nil {
		return e.delay
	}
	return backoffInitial
}

// forget drops every key with the prefix (a pod's UID) once the pod is gone.
func (b *backoff) forget(prefix string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for key := range b.entries {
		if len(key) >= len(prefix) && key[:len(prefix)] == prefix {
			delete(b.entries, key)
		}
	}
}
