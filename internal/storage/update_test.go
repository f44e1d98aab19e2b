package storage

import (
	"errors"
	"strings"
	"testing"
)

// appendX is an update that appends "x" to the value; it refuses a value that ends in "!".
func appendX(seen *[]string) func(cur KV, exists bool) ([]byte, error) {
	return func(cur KV, exists bool) ([]byte, error) {
		*seen = append(*seen, string(cur.Value))
		if !exists {
			return nil, ErrNotFound
		}
		if strings.HasSuffix(string(cur.Value), "!") {
			return nil, errors.New("refused")
		}
		return append(append([]byte{}, cur.Value...), 'x'), nil
	}
}

func TestGuaranteedUpdateFromAStaleCopy(t *testing.T) {
	e := startEtcd(t)
	st := newStore(t, EtcdConfig{Endpoints: e.Endpoints()}).(*etcdStore)
	ctx := ctxT(t)
	rev := mustCreate(t, st, "/k", "a")
	stale := KV{Key: "/k", Value: []byte("a"), ModRevision: rev}
	mustUpdate(t, st, "/k", "b")

	var seen []string
	kv, err := st.guaranteedUpdate(ctx, "/k", &stale, appendX(&seen))
	if err != nil || string(kv.Value) != "bx" {
		t.Fatalf("update from a stale copy: %q %v, want the current value's update bx", kv.Value, err)
	}
	if strings.Join(seen, ",") != "a,b" {
		t.Errorf("fn saw %v, want the stale copy, then the current value", seen)
	}

	// fn refusing a stale copy is not the last word: it is asked again with the current value.
	stale = kv
	mustUpdate(t, st, "/k", "c")
	stale.Value = []byte("old!")
	seen = nil
	if kv, err = st.guaranteedUpdate(ctx, "/k", &stale, appendX(&seen)); err != nil || string(kv.Value) != "cx" {
		t.Fatalf("after a refusal of the stale copy: %q %v, want cx", kv.Value, err)
	}

	// Nothing to change in a stale copy may be something to change in the current value.
	cur, _ := st.Get(ctx, "/k")
	mustUpdate(t, st, "/k", "d")
	noop := func(c KV, exists bool) ([]byte, error) {
		if string(c.Value) == "cx" {
			return c.Value, nil
		}
		return []byte("cx"), nil
	}
	if kv, err = st.guaranteedUpdate(ctx, "/k", &cur, noop); err != nil || string(kv.Value) != "cx" {
		t.Fatalf("no-op on a stale copy: %q %v, want cx written over d", kv.Value, err)
	}
	if got, _ := st.Get(ctx, "/k"); string(got.Value) != "cx" || got.ModRevision != kv.ModRevision {
		t.Fatalf("stored %q at %d, want cx at %d", got.Value, got.ModRevision, kv.ModRevision)
	}

	// A copy of a key deleted since: fn learns it is gone.
	gone := kv
	if _, err := st.Delete(ctx, "/k", 0); err != nil {
		t.Fatal(err)
	}
	seen = nil
	if _, err := st.guaranteedUpdate(ctx, "/k", &gone, appendX(&seen)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of a deleted key from its copy: %v, want not found", err)
	}

	// The current value refused is refused.
	mustCreate(t, st, "/k", "e!")
	cur, _ = st.Get(ctx, "/k")
	if _, err := st.guaranteedUpdate(ctx, "/k", &cur, appendX(&seen)); err == nil || err.Error() != "refused" {
		t.Fatalf("refusal of the current value: %v", err)
	}
}

func TestCacherUpdatesFromItsCopy(t *testing.T) {
	e := startEtcd(t)
	st := newStore(t, EtcdConfig{Endpoints: e.Endpoints()})
	c := NewCacherWithOptions(st, "/p/", CacherOptions{})
	t.Cleanup(func() { c.Close() })
	if err := c.WaitReady(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	rev := mustCreate(t, st, "/p/a", "v")
	waitRevision(t, c, rev)
	var seen []string
	kv, err := c.GuaranteedUpdate(ctxT(t), "/p/a", appendX(&seen))
	if err != nil || string(kv.Value) != "vx" {
		t.Fatalf("update through the cache: %q %v", kv.Value, err)
	}
	if got, _ := st.Get(ctxT(t), "/p/a"); string(got.Value) != "vx" {
		t.Fatalf("stored %q", got.Value)
	}
	// A key the cache has not seen yet is read from etcd.
	mustCreate(t, st, "/p/b", "w")
	if kv, err := c.GuaranteedUpdate(ctxT(t), "/p/b", appendX(&seen)); err != nil || string(kv.Value) != "wx" {
		t.Fatalf("update of a key new to the cache: %q %v", kv.Value, err)
	}
}
