package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
)

// testStore runs the behaviour every Store promises against the implementation that
// newHarness builds, fresh for each case.
func testStore(t *testing.T, newHarness func(t *testing.T) harness) {
	cases := []struct {
		name string
		run  func(t *testing.T, h harness)
	}{
		{"CreateThenGet", testCreateThenGet},
		{"UpdateChecksRevision", testUpdateChecksRevision},
		{"DeleteReturnsLastValue", testDeleteReturnsLastValue},
		{"GuaranteedUpdateUnderConcurrentWriters", testGuaranteedUpdateConcurrent},
		{"GuaranteedUpdateCreatesAbortsAndSkipsNoOps", testGuaranteedUpdateEdges},
		{"ListPagesAtOneRevision", testListPagesAtOneRevision},
		{"ListAtPastRevisionAndBadTokens", testListAtRevision},
		{"ListContinueAfterCompactionIsCompacted", testListContinueCompacted},
		{"WatchFromRevision", testWatchFromRevision},
		{"WatchFromNowSeesOnlyNewEvents", testWatchFromNow},
		{"WatchFromCompactedRevision", testWatchCompacted},
		{"WatchEndsWithContext", testWatchEndsWithContext},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, newHarness(t)) })
	}
}

func testCreateThenGet(t *testing.T, h harness) {
	s, ctx := h.store, ctxT(t)
	rev := mustCreate(t, s, "/registry/pods/default/a", "one")
	kv, err := s.Get(ctx, "/registry/pods/default/a")
	if err != nil {
		t.Fatal(err)
	}
	if string(kv.Value) != "one" || kv.ModRevision != rev || kv.CreateRevision != rev || kv.Key != "/registry/pods/default/a" {
		t.Fatalf("got %+v, want value one at revision %d", kv, rev)
	}
	_, err = s.Create(ctx, "/registry/pods/default/a", []byte("two"))
	wantErr(t, err, ErrExists)
	_, err = s.Get(ctx, "/registry/pods/default/missing")
	wantErr(t, err, ErrNotFound)
	cur, err := s.CurrentRevision(ctx)
	if err != nil || cur < rev {
		t.Fatalf("current revision %d, %v; want >= %d", cur, err, rev)
	}
}

func testUpdateChecksRevision(t *testing.T, h harness) {
	s, ctx := h.store, ctxT(t)
	created := mustCreate(t, s, "/k", "v1")
	_, err := s.Update(ctx, "/k", []byte("stale"), created-1)
	wantErr(t, err, ErrConflict)
	_, err = s.Update(ctx, "/missing", []byte("x"), 0)
	wantErr(t, err, ErrNotFound)
	_, err = s.Update(ctx, "/missing", []byte("x"), created)
	wantErr(t, err, ErrNotFound)

	rev, err := s.Update(ctx, "/k", []byte("v2"), created)
	if err != nil || rev <= created {
		t.Fatalf("update: rev %d, %v; want > %d", rev, err, created)
	}
	_, err = s.Update(ctx, "/k", []byte("v3"), created)
	wantErr(t, err, ErrConflict)
	rev3, err := s.Update(ctx, "/k", []byte("v3"), 0)
	if err != nil || rev3 <= rev {
		t.Fatalf("unconditional update: rev %d, %v", rev3, err)
	}
	kv, _ := s.Get(ctx, "/k")
	if string(kv.Value) != "v3" || kv.ModRevision != rev3 || kv.CreateRevision != created {
		t.Fatalf("got %+v, want v3 modified at %d created at %d", kv, rev3, created)
	}
}

func testDeleteReturnsLastValue(t *testing.T, h harness) {
	s, ctx := h.store, ctxT(t)
	created := mustCreate(t, s, "/k", "v1")
	modified := mustUpdate(t, s, "/k", "v2")
	_, err := s.Delete(ctx, "/k", created)
	wantErr(t, err, ErrConflict)
	_, err = s.Delete(ctx, "/missing", 0)
	wantErr(t, err, ErrNotFound)

	kv, err := s.Delete(ctx, "/k", modified)
	if err != nil {
		t.Fatal(err)
	}
	if string(kv.Value) != "v2" || kv.ModRevision <= modified || kv.CreateRevision != created {
		t.Fatalf("deleted %+v, want last value v2, a revision after %d, created %d", kv, modified, created)
	}
	_, err = s.Get(ctx, "/k")
	wantErr(t, err, ErrNotFound)
	_, err = s.Delete(ctx, "/k", 0)
	wantErr(t, err, ErrNotFound)

	mustCreate(t, s, "/k", "again")
	if kv, err := s.Delete(ctx, "/k", 0); err != nil || string(kv.Value) != "again" {
		t.Fatalf("unconditional delete: %+v, %v", kv, err)
	}
}

func testGuaranteedUpdateConcurrent(t *testing.T, h harness) {
	s, ctx := h.store, ctxT(t)
	const writers, each = 10, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				_, err := s.GuaranteedUpdate(ctx, "/counter", func(cur KV, exists bool) ([]byte, error) {
					n := 0
					if exists {
						var err error
						if n, err = strconv.Atoi(string(cur.Value)); err != nil {
							return nil, err
						}
					}
					return []byte(strconv.Itoa(n + 1)), nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	kv, err := s.Get(ctx, "/counter")
	if err != nil || string(kv.Value) != strconv.Itoa(writers*each) {
		t.Fatalf("counter = %q, %v; want %d", kv.Value, err, writers*each)
	}
}

func testGuaranteedUpdateEdges(t *testing.T, h harness) {
	s, ctx := h.store, ctxT(t)
	kv, err := s.GuaranteedUpdate(ctx, "/k", func(cur KV, exists bool) ([]byte, error) {
		if exists || cur.Value != nil || cur.Key != "/k" {
			t.Errorf("absent key passed as %+v, exists=%v", cur, exists)
		}
		return []byte("made"), nil
	})
	if err != nil || string(kv.Value) != "made" || kv.CreateRevision != kv.ModRevision {
		t.Fatalf("create through GuaranteedUpdate: %+v, %v", kv, err)
	}

	boom := errors.New("boom")
	_, err = s.GuaranteedUpdate(ctx, "/k", func(KV, bool) ([]byte, error) { return nil, boom })
	wantErr(t, err, boom)

	same, err := s.GuaranteedUpdate(ctx, "/k", func(cur KV, _ bool) ([]byte, error) { return cur.Value, nil })
	if err != nil || same.ModRevision != kv.ModRevision {
		t.Fatalf("no-op update moved the revision: %+v, %v (was %d)", same, err, kv.ModRevision)
	}
	if after, _ := s.CurrentRevision(ctx); after != kv.ModRevision {
		t.Fatalf("no-op update wrote: store at %d, key at %d", after, kv.ModRevision)
	}
}

func testListPagesAtOneRevision(t *testing.T, h harness) {
	s, ctx := h.store, ctxT(t)
	const prefix = "/registry/pods/ns/"
	for i := range 25 {
		mustCreate(t, s, fmt.Sprintf("%sp%02d", prefix, i), "old")
	}
	mustCreate(t, s, "/registry/pods/ns2/outside", "x")
	mustCreate(t, s, "/registry/pods/nt", "x")

	var got []KV
	var remaining []int64
	r, err := s.List(ctx, prefix, ListOptions{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	listRev := r.Revision
	for {
		got = append(got, r.Items...)
		remaining = append(remaining, r.Remaining)
		if r.Revision != listRev {
			t.Fatalf("page at revision %d, first page at %d", r.Revision, listRev)
		}
		if r.Continue == "" {
			break
		}
		// Writes between pages must not show: the pages are read at the first one's revision.
		if len(got) == 10 {
			mustCreate(t, s, prefix+"p10a", "new")
			if _, err := s.Delete(ctx, prefix+"p23", 0); err != nil {
				t.Fatal(err)
			}
		}
		mustUpdate(t, s, prefix+"p24", "new")
		if r, err = s.List(ctx, prefix, ListOptions{Limit: 10, Continue: r.Continue}); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 25 {
		t.Fatalf("listed %d items, want 25", len(got))
	}
	for i, kv := range got {
		if want := fmt.Sprintf("%sp%02d", prefix, i); kv.Key != want || string(kv.Value) != "old" || kv.ModRevision > listRev {
			t.Fatalf("item %d = %s %q at %d, want %s old at or before %d", i, kv.Key, kv.Value, kv.ModRevision, want, listRev)
		}
	}
	if fmt.Sprint(remaining) != "[15 5 0]" {
		t.Errorf("remaining per page = %v, want [15 5 0]", remaining)
	}

	all, err := s.List(ctx, prefix, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Items) != 25 || all.Continue != "" || all.Revision <= listRev { // +p10a, -p23
		t.Fatalf("latest list: %d items, continue %q, revision %d (first list %d)", len(all.Items), all.Continue, all.Revision, listRev)
	}
}

func testListAtRevision(t *testing.T, h harness) {
	s, ctx := h.store, ctxT(t)
	rev := mustCreate(t, s, "/r/a", "1")
	mustUpdate(t, s, "/r/a", "2")
	mustCreate(t, s, "/r/b", "1")
	r, err := s.List(ctx, "/r/", ListOptions{Revision: rev})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Items) != 1 || string(r.Items[0].Value) != "1" || r.Revision != rev {
		t.Fatalf("list at %d: %+v", rev, r)
	}
	_, err = s.List(ctx, "/r/", ListOptions{Continue: "not a token"})
	wantErr(t, err, ErrBadContinue)
	cur, _ := s.CurrentRevision(ctx)
	_, err = s.List(ctx, "/r/", ListOptions{Revision: cur + 100})
	wantErr(t, err, ErrFutureRevision)
}

func testListContinueCompacted(t *testing.T, h harness) {
	s, ctx := h.store, ctxT(t)
	for i := range 4 {
		mustCreate(t, s, fmt.Sprintf("/c/%d", i), "x")
	}
	r, err := s.List(ctx, "/c/", ListOptions{Limit: 2})
	if err != nil || r.Continue == "" {
		t.Fatalf("first page: %+v, %v", r, err)
	}
	mustUpdate(t, s, "/c/3", "y")
	cur, _ := s.CurrentRevision(ctx)
	compact(t, h.endpoints, cur)
	_, err = s.List(ctx, "/c/", ListOptions{Limit: 2, Continue: r.Continue})
	wantErr(t, err, ErrCompacted)
}

func testWatchFromRevision(t *testing.T, h harness) {
	s, ctx := h.store, ctxT(t)
	from := mustCreate(t, s, "/w/a", "a1")
	bRev := mustCreate(t, s, "/w/b", "b1")
	mustCreate(t, s, "/other/x", "not watched")
	aRev := mustUpdate(t, s, "/w/a", "a2")
	gone, err := s.Delete(ctx, "/w/b", 0)
	if err != nil {
		t.Fatal(err)
	}
	ch, _, err := s.Watch(ctx, "/w/", from)
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{
		{Type: Added, KV: KV{Key: "/w/b", Value: []byte("b1"), ModRevision: bRev, CreateRevision: bRev}},
		{Type: Modified, KV: KV{Key: "/w/a", Value: []byte("a2"), ModRevision: aRev, CreateRevision: from}, PrevValue: []byte("a1")},
		{Type: Deleted, KV: KV{Key: "/w/b", Value: []byte("b1"), ModRevision: gone.ModRevision, CreateRevision: bRev}, PrevValue: []byte("b1")},
	}
	for _, w := range want {
		if got := next(t, ch); !sameEvent(got, w) {
			t.Fatalf("got %s, want %s", fmtEvent(got), fmtEvent(w))
		}
	}
}

func testWatchFromNow(t *testing.T, h harness) {
	s, ctx := h.store, ctxT(t)
	mustCreate(t, s, "/w/old", "x")
	ch, _, err := s.Watch(ctx, "/w/", 0)
	if err != nil {
		t.Fatal(err)
	}
	rev := mustCreate(t, s, "/w/new", "y")
	if ev := next(t, ch); ev.KV.Key != "/w/new" || ev.Type != Added || ev.KV.ModRevision != rev {
		t.Fatalf("got %s, want ADDED /w/new at %d", fmtEvent(ev), rev)
	}
}

func testWatchCompacted(t *testing.T, h harness) {
	s, ctx := h.store, ctxT(t)
	from := mustCreate(t, s, "/w/k", "0")
	for i := range 10 {
		mustUpdate(t, s, "/w/k", strconv.Itoa(i+1))
	}
	cur, _ := s.CurrentRevision(ctx)
	compact(t, h.endpoints, cur-1)
	ch, final, err := s.Watch(ctx, "/w/", from)
	wantErr(t, watchEnd(t, ch, final, err), ErrCompacted)

	// The revisions compaction kept still watch.
	ch, _, err = s.Watch(ctx, "/w/", cur-1)
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, ch); ev.KV.ModRevision != cur || string(ev.KV.Value) != "10" {
		t.Fatalf("got %s, want the last update at %d", fmtEvent(ev), cur)
	}
}

func testWatchEndsWithContext(t *testing.T, h harness) {
	s := h.store
	ctx, cancel := context.WithCancel(ctxT(t))
	ch, final, err := s.Watch(ctx, "/w/", 0)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := watchEnd(t, ch, final, nil); err != nil {
		t.Fatalf("a watch ended by its context ends with %v, want nil", err)
	}
}

func sameEvent(a, b Event) bool {
	return a.Type == b.Type && a.KV.Key == b.KV.Key && bytes.Equal(a.KV.Value, b.KV.Value) &&
		a.KV.ModRevision == b.KV.ModRevision && a.KV.CreateRevision == b.KV.CreateRevision &&
		bytes.Equal(a.PrevValue, b.PrevValue)
}

func fmtEvent(e Event) string {
	return fmt.Sprintf("%s %s=%q mod %d create %d prev %q", e.Type, e.KV.Key, e.KV.Value, e.KV.ModRevision, e.KV.CreateRevision, e.PrevValue)
}

// TestEtcdStore runs the suite against an embedded etcd.
func TestEtcdStore(t *testing.T) {
	testStore(t, func(t *testing.T) harness {
		e := startEtcd(t)
		return harness{store: newStore(t, EtcdConfig{Endpoints: e.Endpoints()}), endpoints: e.Endpoints()}
	})
}

// TestCacherStore runs the suite against the watch cache over an embedded etcd, with a
// window small enough that old revisions fall out of it.
func TestCacherStore(t *testing.T) {
	testStore(t, func(t *testing.T) harness {
		e := startEtcd(t)
		c := NewCacherWithOptions(newStore(t, EtcdConfig{Endpoints: e.Endpoints()}), "/", CacherOptions{Window: 5})
		t.Cleanup(func() { c.Close() })
		return harness{store: c, endpoints: e.Endpoints()}
	})
}

// TestInProcessEtcdStore runs the suite against an embedded etcd called in-process.
func TestInProcessEtcdStore(t *testing.T) {
	testStore(t, func(t *testing.T) harness {
		e := startEtcd(t)
		return harness{store: newStore(t, EtcdConfig{Embedded: e}), endpoints: e.Endpoints()}
	})
}

// TestInProcessCacherStore runs the suite against the watch cache over an embedded etcd
// called in-process.
func TestInProcessCacherStore(t *testing.T) {
	testStore(t, func(t *testing.T) harness {
		e := startEtcd(t)
		c := NewCacherWithOptions(newStore(t, EtcdConfig{Embedded: e}), "/", CacherOptions{Window: 5})
		t.Cleanup(func() { c.Close() })
		return harness{store: c, endpoints: e.Endpoints()}
	})
}
