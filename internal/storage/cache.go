package storage

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
)

// CacherOptions tunes a Cacher; zero values take the defaults.
type CacherOptions struct {
	// Window is how many recent events are kept so watches can start from a past
	// revision without going to etcd. Default 1000.
	Window int
	// WatcherBuffer is how many events a watcher may fall behind before it is closed
	// with ErrTooSlow. Default 1000: each slot is one pointer.
	WatcherBuffer int
	// BookmarkInterval is how often watchers that asked get a Bookmark. Default 1 minute.
	BookmarkInterval time.Duration
}

// freshnessWait bounds how long List waits for the cache to catch up with etcd before
// it reads etcd instead.
const freshnessWait = 250 * time.Millisecond

// Cacher is the watch cache: one etcd watch on a prefix feeds the current state of every
// key under it, a window of recent events, and any number of watchers. It is a Store:
// reads and watches it can answer are answered from memory, everything else goes to the
// store underneath. Values it hands out are shared with the cache and other watchers and
// must not be modified.
type Cacher struct {
	store  Store
	prefix string
	opts   CacherOptions
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	ready    chan struct{} // closed while the cache is in sync with etcd
	changed  chan struct{} // closed and replaced whenever rev moves
	state    map[string]KV
	rev      int64 // every event up to rev has been applied
	ring     ring  // the latest events, all those after oldest
	oldest   int64
	watchers map[*cacheWatcher]struct{}
}

var _ Store = (*Cacher)(nil)

// NewCacher starts caching prefix from s, keeping the last window events.
func NewCacher(s Store, prefix string, window int) *Cacher {
	return NewCacherWithOptions(s, prefix, CacherOptions{Window: window})
}

// NewCacherWithOptions starts caching prefix from s. The cache fills in the background;
// WaitReady says when it has.
func NewCacherWithOptions(s Store, prefix string, o CacherOptions) *Cacher {
	if o.Window <= 0 {
		o.Window = 1000
	}
	if o.WatcherBuffer <= 0 {
		o.WatcherBuffer = 1000
	}
	if o.BookmarkInterval <= 0 {
		o.BookmarkInterval = defaultBookmarkInterval
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cacher{
		store: s, prefix: prefix, opts: o, cancel: cancel, done: make(chan struct{}),
		ready: make(chan struct{}), changed: make(chan struct{}),
		ring: newRing(o.Window), watchers: map[*cacheWatcher]struct{}{},
	}
	go c.run(ctx)
	go c.bookmarks(ctx)
	return c
}

// run keeps the cache in sync: list, then watch from the list's revision; when the
// watch ends (compacted past, etcd lost its leader), close every watcher so its
// client re-lists, and start over.
func (c *Cacher) run(ctx context.Context) {
	defer close(c.done)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := c.sync(ctx)
		if ctx.Err() != nil {
			break
		}
		slog.Warn("watch cache restarts", "prefix", c.prefix, "err", err)
		c.unsync(err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	c.unsync(fmt.Errorf("watch cache %s: %w", c.prefix, context.Canceled))
}

func (c *Cacher) sync(ctx context.Context) error {
	l, err := listAll(ctx, c.store, c.prefix, 0)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var events <-chan Event
	var final func() error
	if ow, ok := c.store.(OptionsWatcher); ok {
		events, final, err = ow.WatchWithOptions(wctx, c.prefix, l.Revision, WatchOptions{Bookmarks: true})
	} else {
		events, final, err = c.store.Watch(wctx, c.prefix, l.Revision)
	}
	if err != nil {
		return err
	}
	c.reset(l)
	for ev := range events {
		c.apply(ev)
	}
	if err := final(); err != nil {
		return err
	}
	return fmt.Errorf("watch %s ended", c.prefix)
}

// reset makes the cache the state of a fresh list and opens it for business.
func (c *Cacher) reset(l ListResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state = make(map[string]KV, len(l.Items))
	for _, kv := range l.Items {
		c.state[kv.Key] = kv
	}
	c.ring.clear()
	c.rev, c.oldest = l.Revision, l.Revision
	close(c.ready)
	c.advanced()
}

// unsync closes every watcher with err and marks the cache stale until the next list.
func (c *Cacher) unsync(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for w := range c.watchers {
		c.stop(w, err)
	}
	select {
	case <-c.ready:
		c.ready = make(chan struct{})
	default:
	}
}

func (c *Cacher) advanced() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *Cacher) apply(ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rev := ev.KV.ModRevision
	if ev.Type == Bookmark {
		if rev > c.rev {
			c.rev = rev
			c.advanced()
		}
		return
	}
	if ev.Type == Deleted {
		delete(c.state, ev.KV.Key)
	} else {
		c.state[ev.KV.Key] = ev.KV
	}
	e := &ev
	if out, ok := c.ring.push(e); ok {
		c.oldest = out.KV.ModRevision
	}
	c.rev = max(c.rev, rev)
	for w := range c.watchers {
		if rev > w.minRev && strings.HasPrefix(ev.KV.Key, w.prefix) && !w.offer(e) {
			c.stop(w, fmt.Errorf("watch %s at revision %d: %w", w.prefix, rev, ErrTooSlow))
		}
	}
	c.advanced()
}

// bookmarks tells watchers that asked where the cache is, every BookmarkInterval.
func (c *Cacher) bookmarks(ctx context.Context) {
	t := time.NewTicker(c.opts.BookmarkInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		bm := &Event{Type: Bookmark, KV: KV{ModRevision: c.rev}}
		for w := range c.watchers {
			if w.bookmarks && c.rev >= w.minRev {
				w.offer(bm) // a full buffer skips a bookmark; the next one will do
			}
		}
		c.mu.Unlock()
	}
}

// Revision is the revision the cache is at: every event up to it has been applied.
func (c *Cacher) Revision() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rev
}

// WaitReady returns once the cache holds a full list, or ctx's error.
func (c *Cacher) WaitReady(ctx context.Context) error {
	c.mu.Lock()
	ready := c.ready
	c.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("watch cache %s not ready: %w", c.prefix, ctx.Err())
	}
}

// lockReady locks mu once the cache is in sync, so a watcher is never registered with
// a cache about to be rebuilt from a new list.
func (c *Cacher) lockReady(ctx context.Context) error {
	for {
		if err := c.WaitReady(ctx); err != nil {
			return err
		}
		c.mu.Lock()
		select {
		case <-c.ready:
			return nil
		default:
			c.mu.Unlock()
		}
	}
}

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

// stop removes w and closes its input with err as its final error. Called with mu held.
func (c *Cacher) stop(w *cacheWatcher, err error) {
	if _, ok := c.watchers[w]; !ok {
		return
	}
	delete(c.watchers, w)
	w.err = err
	close(w.in)
}

// Watchers is how many watchers the cache is feeding.
func (c *Cacher) Watchers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.watchers)
}

func (c *Cacher) Get(ctx context.Context, key string) (KV, error) { return c.store.Get(ctx, key) }
func (c *Cacher) Create(ctx context.Context, key string, value []byte) (int64, error) {
	return c.store.Create(ctx, key, value)
}
func (c *Cacher) Update(ctx context.Context, key string, value []byte, rev int64) (int64, error) {
	return c.store.Update(ctx, key, value, rev)
}
func (c *Cacher) GuaranteedUpdate(ctx context.Context, key string, fn func(cur KV, exists bool) ([]byte, error)) (KV, error) {
	return c.store.GuaranteedUpdate(ctx, key, fn)
}
func (c *Cacher) Delete(ctx context.Context, key string, rev int64) (KV, error) {
	return c.store.Delete(ctx, key, rev)
}
func (c *Cacher) CurrentRevision(ctx context.Context) (int64, error) {
	return c.store.CurrentRevision(ctx)
}

// Close stops the cache and ends its watchers. The store underneath stays open: it is
// shared by every resource's cache.
func (c *Cacher) Close() error {
	c.cancel()
	<-c.done
	return nil
}
