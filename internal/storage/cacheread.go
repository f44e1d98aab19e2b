package storage

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// freshnessWait bounds how long List waits for the cache to catch up with etcd before
// it reads etcd instead.
const freshnessWait = 250 * time.Millisecond

// covers says whether prefix is inside the cached one.
func (c *Cacher) covers(prefix string) bool { return strings.HasPrefix(prefix, c.prefix) }

// List answers a full, latest list from memory once the cache has caught up with
// etcd's current revision, so a list never misses a write that finished before it
// began; anything else (pages, past revisions, a cache that lags) reads etcd.
func (c *Cacher) List(ctx context.Context, prefix string, o ListOptions) (ListResult, error) {
	if !c.covers(prefix) || o.Limit > 0 || o.Continue != "" || o.Revision != 0 {
		return c.store.List(ctx, prefix, o)
	}
	rev, err := c.store.CurrentRevision(ctx)
	if err != nil {
		return ListResult{}, fmt.Errorf("list %s: %w", prefix, err)
	}
	if !c.caughtUp(ctx, rev) {
		return c.store.List(ctx, prefix, o)
	}
	c.mu.Lock()
	r := ListResult{Revision: c.rev}
	for k, kv := range c.state {
		if strings.HasPrefix(k, prefix) {
			r.Items = append(r.Items, kv)
		}
	}
	c.mu.Unlock()
	sort.Slice(r.Items, func(i, j int) bool { return r.Items[i].Key < r.Items[j].Key })
	return r, nil
}

// caughtUp waits a little for the cache to reach rev, asking etcd for a progress
// notification when the store can, since a quiet prefix sees no events to move it.
func (c *Cacher) caughtUp(ctx context.Context, rev int64) bool {
	timeout := time.NewTimer(freshnessWait)
	defer timeout.Stop()
	asked := false
	for {
		c.mu.Lock()
		ok, changed, ready := c.rev >= rev, c.changed, c.ready
		c.mu.Unlock()
		select {
		case <-ready:
		default:
			return false
		}
		if ok {
			return true
		}
		if !asked {
			// Without progress notifications only a write under the prefix would move
			// the cache: read etcd rather than wait for one.
			pr, can := c.store.(ProgressRequester)
			if !can || pr.RequestProgress(ctx) != nil {
				return false
			}
			asked = true
		}
		select {
		case <-changed:
		case <-timeout.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func (c *Cacher) Watch(ctx context.Context, prefix string, fromRev int64) (<-chan Event, func() error, error) {
	return c.WatchWithOptions(ctx, prefix, fromRev, WatchOptions{})
}

// WatchWithOptions serves a watch from the cache: from etcd's current revision
// (fromRev 0), from a revision still in the window, or with initial events as of now or
// as of the cache's revision. A watch from before the window goes to the store, which
// answers ErrCompacted if etcd no longer has it either.
func (c *Cacher) WatchWithOptions(ctx context.Context, prefix string, fromRev int64, o WatchOptions) (<-chan Event, func() error, error) {
	if !c.covers(prefix) {
		return c.delegateWatch(ctx, prefix, fromRev, o)
	}
	if err := c.WaitReady(ctx); err != nil {
		return nil, nil, err
	}
	now := false // initial events as of etcd's current revision
	if fromRev == 0 {
		// "From now" is etcd's now, not the cache's: the cache may not yet have
		// applied a write that finished before this call.
		cur, err := c.store.CurrentRevision(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("watch %s: %w", prefix, err)
		}
		if !o.InitialEvents {
			fromRev = cur
		} else if now = c.caughtUp(ctx, cur); !now {
			return c.delegateWatch(ctx, prefix, 0, o)
		}
	}
	if err := c.lockReady(ctx); err != nil {
		return nil, nil, err
	}
	w := &cacheWatcher{prefix: prefix, bookmarks: o.Bookmarks, in: make(chan *Event, c.opts.WatcherBuffer)}
	var first []*Event
	switch {
	case o.InitialEvents && (now || fromRev == c.rev):
		first = c.snapshot(prefix)
		if o.Bookmarks {
			first = append(first, &Event{Type: Bookmark, KV: KV{ModRevision: c.rev}})
		}
		w.minRev = c.rev
	case o.InitialEvents, fromRev < c.oldest:
		c.mu.Unlock()
		return c.delegateWatch(ctx, prefix, fromRev, o)
	default:
		first = c.ring.after(fromRev, prefix)
		w.minRev = max(fromRev, c.rev)
	}
	c.watchers[w] = struct{}{}
	c.mu.Unlock()

	out := make(chan Event)
	res := &errResult{}
	go func() {
		defer close(out)
		res.set(w.forward(ctx, first, out))
		if ctx.Err() != nil {
			c.mu.Lock()
			c.stop(w, nil)
			c.mu.Unlock()
		}
	}()
	return out, res.get, nil
}

func (c *Cacher) delegateWatch(ctx context.Context, prefix string, fromRev int64, o WatchOptions) (<-chan Event, func() error, error) {
	if ow, ok := c.store.(OptionsWatcher); ok {
		return ow.WatchWithOptions(ctx, prefix, fromRev, o)
	}
	return c.store.Watch(ctx, prefix, fromRev)
}

// snapshot is the cached state under prefix as Added events, in key order. Called with mu held.
func (c *Cacher) snapshot(prefix string) []*Event {
	var evs []*Event
	for k, kv := range c.state {
		if strings.HasPrefix(k, prefix) {
			evs = append(evs, &Event{Type: Added, KV: kv})
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].KV.Key < evs[j].KV.Key })
	return evs
}

// The rest of Store goes to the store underneath.

func (c *Cacher) Get(ctx context.Context, key string) (KV, error) { return c.store.Get(ctx, key) }
func (c *Cacher) Create(ctx context.Context, key string, value []byte) (int64, error) {
	return c.store.Create(ctx, key, value)
}
func (c *Cacher) Update(ctx context.Context, key string, value []byte, rev int64) (int64, error) {
	return c.store.Update(ctx, key, value, rev)
}

// GuaranteedUpdate starts from the cache's copy of the key when it has one (and the store
// underneath can start from a copy), saving the read; a stale copy only costs a retry.
func (c *Cacher) GuaranteedUpdate(ctx context.Context, key string, fn func(cur KV, exists bool) ([]byte, error)) (KV, error) {
	if from, ok := c.store.(updaterFrom); ok && c.covers(key) {
		if kv, ok := c.Peek(key); ok {
			return from.guaranteedUpdate(ctx, key, &kv, fn)
		}
	}
	return c.store.GuaranteedUpdate(ctx, key, fn)
}

// updaterFrom is a store whose GuaranteedUpdate can start from a copy of the key that may
// be stale (see etcdStore.guaranteedUpdate); nil: read it first.
type updaterFrom interface {
	guaranteedUpdate(ctx context.Context, key string, cached *KV, fn func(cur KV, exists bool) ([]byte, error)) (KV, error)
}

func (c *Cacher) Delete(ctx context.Context, key string, rev int64) (KV, error) {
	return c.store.Delete(ctx, key, rev)
}
func (c *Cacher) CurrentRevision(ctx context.Context) (int64, error) {
	return c.store.CurrentRevision(ctx)
}

// Peek returns the cache's copy of one key, with no freshness check: what the cache
// last saw, which may lag etcd by a moment. ok is false when the key is not in the
// cache or the cache is not in sync; callers that must not miss a recent write read
// the store instead.
func (c *Cacher) Peek(key string) (kv KV, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.ready:
	default:
		return KV{}, false
	}
	kv, ok = c.state[key]
	return kv, ok
}
