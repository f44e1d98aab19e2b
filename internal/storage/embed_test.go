package storage

import (
	"fmt"
	"testing"
	"time"
)

// TestEmbeddedKeepsDataAndRevisionsAcrossRestarts: what was acknowledged before Close is
// there after a restart in the same directory, at the same revisions, and new writes get
// later revisions.
func TestEmbeddedKeepsDataAndRevisionsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxT(t)
	e, err := StartEmbedded(ctx, dir, EmbedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewEtcd(EtcdConfig{Endpoints: e.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for i := range 5 {
		key := fmt.Sprintf("/registry/configmaps/default/cm%d", i)
		mustCreate(t, s, key, "v0")
		want[key] = mustUpdate(t, s, key, fmt.Sprintf("v%d", i))
	}
	last, _ := s.CurrentRevision(ctx)
	s.Close()
	e.Close()

	e, err = StartEmbedded(ctx, dir, EmbedOptions{})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer e.Close()
	s = newStore(t, EtcdConfig{Endpoints: e.Endpoints()})
	for key, rev := range want {
		kv, err := s.Get(ctx, key)
		if err != nil || kv.ModRevision != rev || string(kv.Value) != "v"+key[len(key)-1:] {
			t.Fatalf("after restart %s = %+v, %v; want revision %d", key, kv, err, rev)
		}
	}
	if cur, _ := s.CurrentRevision(ctx); cur != last {
		t.Fatalf("revision after restart %d, before %d", cur, last)
	}
	if rev := mustCreate(t, s, "/registry/configmaps/default/new", "x"); rev <= last {
		t.Fatalf("new write at revision %d, not after %d", rev, last)
	}
}

// TestEmbeddedStartsFast measures a cold start (empty directory) and warm starts (the
// same directory again, with data): `berth server` must be ready well under a second.
func TestEmbeddedStartsFast(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxT(t)
	measure := func() time.Duration {
		start := time.Now()
		e, err := StartEmbedded(ctx, dir, EmbedOptions{})
		if err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		s := newStore(t, EtcdConfig{Endpoints: e.Endpoints()})
		for i := range 100 {
			mustCreate(t, s, fmt.Sprintf("/k/%d/%d", took, i), "x")
		}
		s.Close()
		e.Close()
		return took
	}
	cold := measure()
	var warm []time.Duration
	for range 3 {
		warm = append(warm, measure())
	}
	t.Logf("embedded etcd ready: cold %v, warm %v", cold.Round(time.Millisecond), warm)
	for _, w := range warm {
		if w > 500*time.Millisecond {
			t.Errorf("warm start took %v, want well under a second", w)
		}
	}
}

// TestEmbeddedOverTCP: the TCP option serves on a random loopback port.
func TestEmbeddedOverTCP(t *testing.T) {
	e, err := StartEmbedded(ctxT(t), t.TempDir(), EmbedOptions{TCP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if eps := e.Endpoints(); len(eps) != 1 || eps[0][:17] != "http://127.0.0.1:" {
		t.Fatalf("endpoints %v, want one http://127.0.0.1:PORT", eps)
	}
	mustCreate(t, newStore(t, EtcdConfig{Endpoints: e.Endpoints()}), "/k", "v")
}

// TestEmbeddedLongDirectoryGetsShortSocket: a data directory too deep for a unix socket
// path still starts.
func TestEmbeddedLongDirectoryGetsShortSocket(t *testing.T) {
	dir := t.TempDir() + "/" + fmt.Sprintf("%0120d", 0)
	e, err := StartEmbedded(ctxT(t), dir, EmbedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	mustCreate(t, newStore(t, EtcdConfig{Endpoints: e.Endpoints()}), "/k", "v")
}
