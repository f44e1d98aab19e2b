package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// ErrClosed: the watch cache was closed.
var ErrClosed = errors.New("watch cache closed")

// WaitReady returns once the cache holds a full list, or ctx's error, or ErrClosed.
func (c *Cacher) WaitReady(ctx context.Context) error {
	c.mu.Lock()
	ready := c.ready
	c.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-c.done:
		return fmt.Errorf("watch cache %s: %w", c.prefix, ErrClosed)
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

// Close stops the cache and ends its watchers. The store underneath stays open: it is
// shared by every resource's cache.
func (c *Cacher) Close() error {
	c.cancel()
	<-c.done
	return nil
}
