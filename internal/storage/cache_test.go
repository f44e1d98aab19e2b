package storage

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingStore counts the calls that reach etcd, and can cut its watches.
type countingStore struct {
	Store
	watches, lists atomic.Int64
	mu             sync.Mutex
	cancels        []context.CancelFunc
}

func (s *countingStore) Watch(ctx context.Context, prefix string, fromRev int64) (<-chan Event, func() error, error) {
	return s.WatchWithOptions(ctx, prefix, fromRev, WatchOptions{})
}

func (s *countingStore) WatchWithOptions(ctx context.Context, prefix string, fromRev int64, o WatchOptions) (<-chan Event, func() error, error) {
	s.watches.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	s.cancels = append(s.cancels, cancel)
	s.mu.Unlock()
	return s.Store.(OptionsWatcher).WatchWithOptions(ctx, prefix, fromRev, o)
}

func (s *countingStore) List(ctx context.Context, prefix string, o ListOptions) (ListResult, error) {
	s.lists.Add(1)
	return s.Store.List(ctx, prefix, o)
}

func (s *countingStore) RequestProgress(ctx context.Context) error {
	return s.Store.(ProgressRequester).RequestProgress(ctx)
}

// cutWatches ends every watch made so far, as a lost etcd connection would.
func (s *countingStore) cutWatches() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.cancels {
		c()
	}
}

// newCacher starts a cache over a counting store over a fresh embedded etcd.
func newCacher(t *testing.T, prefix string, o CacherOptions) (*Cacher, *countingStore, *Embedded) {
	return newCacherOver(t, prefix, o, false)
}

// newCacherOver is newCacher with the etcd called in-process, or through its socket.
func newCacherOver(t *testing.T, prefix string, o CacherOptions, inProcess bool) (*Cacher, *countingStore, *Embedded) {
	t.Helper()
	e := startEtcd(t)
	cfg := EtcdConfig{Endpoints: e.Endpoints()}
	if inProcess {
		cfg.Embedded = e
	}
	cs := &countingStore{Store: newStore(t, cfg)}
	c := NewCacherWithOptions(cs, prefix, o)
	t.Cleanup(func() { c.Close() })
	if err := c.WaitReady(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	return c, cs, e
}

// serverWatchers is the etcd server's own count of open watchers, from its metrics.
func serverWatchers(t *testing.T, e *Embedded) int {
	t.Helper()
	sock := strings.TrimPrefix(e.Endpoints()[0], "unix://")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Get("http://etcd/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "etcd_debugging_mvcc_watcher_total "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
	}
	t.Fatal("etcd_debugging_mvcc_watcher_total not in etcd's metrics")
	return 0
}

// TestCacherFansOneEtcdWatchOutToAThousandWatchers: 1000 watchers each receive all of 1000
// updates, in revision order, while the etcd server holds exactly one watch.
func TestCacherFansOneEtcdWatchOutToAThousandWatchers(t *testing.T) {
	const watchers, writers, each = 1000, 10, 100
	e := startEtcd(t)
	before := serverWatchers(t, e)
	cs := &countingStore{Store: newStore(t, EtcdConfig{Endpoints: e.Endpoints()})}
	c := NewCacher(cs, "/registry/pods/", 100)
	defer c.Close()
	ctx := ctxT(t)

	results := make(chan error, watchers)
	for i := range watchers {
		ch, final, err := c.Watch(ctx, "/registry/pods/", 0)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			var last int64
			for n := 0; n < writers*each; n++ {
				ev, ok := <-ch
				if !ok {
					results <- fmt.Errorf("watcher %d closed after %d events: %v", i, n, final())
					return
				}
				if ev.KV.ModRevision <= last {
					results <- fmt.Errorf("watcher %d: revision %d after %d", i, ev.KV.ModRevision, last)
					return
				}
				last = ev.KV.ModRevision
			}
			results <- nil
		}()
	}
	if n := c.Watchers(); n != watchers {
		t.Fatalf("cache feeds %d watchers, want %d", n, watchers)
	}
	if got := serverWatchers(t, e) - before; got != 1 {
		t.Fatalf("etcd holds %d watches for %d cache watchers, want 1", got, watchers)
	}

	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("/registry/pods/default/pod-%d", w)
			mustCreate(t, cs, key, "0")
			for i := 1; i < each; i++ {
				mustUpdate(t, cs, key, strconv.Itoa(i))
			}
		}()
	}
	wg.Wait()
	for range watchers {
		select {
		case err := <-results:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("watchers did not get every event within 20s")
		}
	}
	t.Logf("%d updates reached %d watchers in %v", writers*each, watchers, time.Since(start).Round(time.Millisecond))
	if got := serverWatchers(t, e) - before; got != 1 || cs.watches.Load() != 1 {
		t.Fatalf("etcd holds %d watches, the cache opened %d; want 1", got, cs.watches.Load())
	}
}

// TestCacherClosesSlowWatcherOnly: a watcher that stops reading is closed with ErrTooSlow
// once its buffer is full, and the others miss nothing.
func TestCacherClosesSlowWatcherOnly(t *testing.T) {
	c, cs, _ := newCacher(t, "/p/", CacherOptions{WatcherBuffer: 10})
	ctx := ctxT(t)
	slow, slowFinal, err := c.Watch(ctx, "/p/", 0)
	if err != nil {
		t.Fatal(err)
	}
	fast, _, err := c.Watch(ctx, "/p/", 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan int)
	go func() {
		n := 0
		for range fast {
			if n++; n == 50 {
				break
			}
		}
		done <- n
	}()
	mustCreate(t, cs, "/p/k", "0")
	for i := 1; i < 50; i++ {
		mustUpdate(t, cs, "/p/k", strconv.Itoa(i))
	}
	select {
	case n := <-done:
		if n != 50 {
			t.Fatalf("fast watcher got %d events, want 50", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fast watcher was held up")
	}
	wantErr(t, watchEnd(t, slow, slowFinal, nil), ErrTooSlow)
}

// TestCacherResumesFromItsWindow: a watch from a recent revision replays the window
// without another etcd watch; one from before the window and etcd's compaction is
// ErrCompacted, while a compacted revision still in the window is served.
func TestCacherResumesFromItsWindow(t *testing.T) {
	c, cs, e := newCacher(t, "/registry/", CacherOptions{Window: 10})
	ctx := ctxT(t)
	var revs []int64
	for i := range 20 {
		revs = append(revs, mustCreate(t, cs, fmt.Sprintf("/registry/%s/k%02d", []string{"a", "b"}[i%2], i), "v"))
	}
	waitRevision(t, c, revs[19])

	ch, _, err := c.Watch(ctx, "/registry/a/", revs[12])
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{14, 16, 18} {
		if ev := next(t, ch); ev.KV.ModRevision != revs[i] || ev.KV.Key != fmt.Sprintf("/registry/a/k%02d", i) {
			t.Fatalf("replayed %s, want k%02d at %d", fmtEvent(ev), i, revs[i])
		}
	}
	live := mustCreate(t, cs, "/registry/a/live", "v")
	if ev := next(t, ch); ev.KV.ModRevision != live {
		t.Fatalf("after the replay got %s, want the live event at %d", fmtEvent(ev), live)
	}
	if n := cs.watches.Load(); n != 1 {
		t.Fatalf("%d etcd watches, want 1", n)
	}

	compact(t, e.Endpoints(), live)
	ch, final, err := c.Watch(ctx, "/registry/", revs[2])
	wantErr(t, watchEnd(t, ch, final, err), ErrCompacted)
	ch, _, err = c.Watch(ctx, "/registry/", revs[15])
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, ch); ev.KV.ModRevision != revs[16] {
		t.Fatalf("from the window after compaction got %s, want revision %d", fmtEvent(ev), revs[16])
	}
}

func waitRevision(t *testing.T, c *Cacher, rev int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.Revision() < rev {
		if time.Now().After(deadline) {
			t.Fatalf("cache at revision %d, want %d", c.Revision(), rev)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCacherBookmarks: watchers that ask get periodic bookmarks at the cache's revision;
// others do not.
func TestCacherBookmarks(t *testing.T) {
	c, cs, _ := newCacher(t, "/p/", CacherOptions{BookmarkInterval: 20 * time.Millisecond})
	ctx := ctxT(t)
	with, _, _ := c.WatchWithOptions(ctx, "/p/", 0, WatchOptions{Bookmarks: true})
	without, _, _ := c.Watch(ctx, "/p/", 0)
	rev := mustCreate(t, cs, "/p/k", "v")
	if ev := next(t, with); ev.Type != Added {
		t.Fatalf("got %s, want the ADDED first", fmtEvent(ev))
	}
	if ev := next(t, with); ev.Type != Bookmark || ev.KV.ModRevision < rev {
		t.Fatalf("got %s, want a BOOKMARK at or after %d", fmtEvent(ev), rev)
	}
	next(t, without)
	select {
	case ev := <-without:
		t.Fatalf("a watcher that did not ask got %s", fmtEvent(ev))
	case <-time.After(100 * time.Millisecond):
	}
}

// TestCacherInitialEvents: a watch with initial events starts with the current objects in
// key order, a bookmark, then changes.
func TestCacherInitialEvents(t *testing.T) {
	c, cs, _ := newCacher(t, "/registry/pods/", CacherOptions{})
	ctx := ctxT(t)
	for _, k := range []string{"c", "a", "b"} {
		mustCreate(t, cs, "/registry/pods/ns/"+k, k)
	}
	mustCreate(t, cs, "/registry/pods/other/z", "z")
	cur, _ := cs.CurrentRevision(ctx)
	waitRevision(t, c, cur)
	ch, _, err := c.WatchWithOptions(ctx, "/registry/pods/ns/", 0, WatchOptions{InitialEvents: true, Bookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if ev := next(t, ch); ev.Type != Added || ev.KV.Key != "/registry/pods/ns/"+k {
			t.Fatalf("got %s, want ADDED %s", fmtEvent(ev), k)
		}
	}
	if ev := next(t, ch); ev.Type != Bookmark || ev.KV.ModRevision != cur {
		t.Fatalf("got %s, want the BOOKMARK at %d that ends the initial events", fmtEvent(ev), cur)
	}
	rev := mustUpdate(t, cs, "/registry/pods/ns/a", "a2")
	if ev := next(t, ch); ev.Type != Modified || ev.KV.ModRevision != rev {
		t.Fatalf("got %s, want MODIFIED at %d", fmtEvent(ev), rev)
	}
	if n := cs.watches.Load(); n != 1 {
		t.Fatalf("%d etcd watches, want 1", n)
	}
}

// TestCacherListIsFreshAndFromMemory: a list right after a write sees it, and is answered
// from memory even when the etcd revision moved on under another prefix.
func TestCacherListIsFreshAndFromMemory(t *testing.T) {
	for _, inProcess := range []bool{false, true} {
		t.Run(fmt.Sprintf("inProcess=%v", inProcess), func(t *testing.T) { testListIsFresh(t, inProcess) })
	}
}

func testListIsFresh(t *testing.T, inProcess bool) {
	c, cs, _ := newCacherOver(t, "/registry/pods/", CacherOptions{}, inProcess)
	ctx := ctxT(t)
	lists := cs.lists.Load()
	mustCreate(t, cs, "/registry/pods/ns/a", "a")
	other := mustCreate(t, cs, "/registry/services/ns/s", "s")
	r, err := c.List(ctx, "/registry/pods/", ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Items) != 1 || r.Items[0].Key != "/registry/pods/ns/a" || r.Revision < other {
		t.Fatalf("list = %+v, want pod a at revision >= %d", r, other)
	}
	if n := cs.lists.Load() - lists; n != 0 {
		t.Fatalf("the list went to etcd %d times, want it served from the cache", n)
	}
	if _, err := c.List(ctx, "/registry/pods/", ListOptions{Limit: 1}); err != nil || cs.lists.Load()-lists != 1 {
		t.Fatalf("a paged list should go to etcd: %v", err)
	}
}

// TestCacherRebuildsAfterItsWatchEnds: when the cache's etcd watch ends, its watchers are
// closed with the reason (their clients re-list) and the cache lists and watches again.
func TestCacherRebuildsAfterItsWatchEnds(t *testing.T) {
	c, cs, _ := newCacher(t, "/p/", CacherOptions{})
	ctx := ctxT(t)
	ch, final, _ := c.Watch(ctx, "/p/", 0)
	cs.cutWatches()
	if err := watchEnd(t, ch, final, nil); err == nil {
		t.Fatal("a watcher of a cache whose etcd watch ended closed without an error")
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	ch, _, err := c.Watch(ctx, "/p/", 0)
	if err != nil {
		t.Fatal(err)
	}
	rev := mustCreate(t, cs, "/p/after", "v")
	if ev := next(t, ch); ev.KV.ModRevision != rev {
		t.Fatalf("got %s, want the create at %d", fmtEvent(ev), rev)
	}
	if n := cs.watches.Load(); n != 2 {
		t.Fatalf("%d etcd watches, want 2 (before and after the cut)", n)
	}
}

// TestCacherCloseEndsWatchers: closing the cache ends its watchers and refuses new ones.
func TestCacherCloseEndsWatchers(t *testing.T) {
	c, _, _ := newCacher(t, "/p/", CacherOptions{})
	ctx := ctxT(t)
	ch, final, _ := c.Watch(ctx, "/p/", 0)
	c.Close()
	if err := watchEnd(t, ch, final, nil); err == nil {
		t.Fatal("a watcher of a closed cache ended without an error")
	}
	_, _, err := c.Watch(ctx, "/p/", 0)
	wantErr(t, err, ErrClosed)
}
