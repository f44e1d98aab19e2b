package storage

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// harness is a Store under test with a way to compact the etcd behind it.
type harness struct {
	store     Store
	endpoints []string
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startEtcd runs an embedded etcd in a temporary directory for the test.
func startEtcd(t *testing.T) *Embedded {
	t.Helper()
	e, err := StartEmbedded(ctxT(t), t.TempDir(), EmbedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func newStore(t *testing.T, cfg EtcdConfig) Store {
	t.Helper()
	s, err := NewEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawClient talks to etcd without the Store, to see what is really stored and to compact.
func rawClient(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func compact(t *testing.T, endpoints []string, rev int64) {
	t.Helper()
	if _, err := rawClient(t, endpoints).Compact(ctxT(t), rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compact at %d: %v", rev, err)
	}
}

func mustCreate(t *testing.T, s Store, key, value string) int64 {
	t.Helper()
	rev, err := s.Create(ctxT(t), key, []byte(value))
	if err != nil {
		t.Fatalf("create %s: %v", key, err)
	}
	return rev
}

func mustUpdate(t *testing.T, s Store, key, value string) int64 {
	t.Helper()
	rev, err := s.Update(ctxT(t), key, []byte(value), 0)
	if err != nil {
		t.Fatalf("update %s: %v", key, err)
	}
	return rev
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
}

// next receives one event or fails the test after a while.
func next(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed, want an event")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return Event{}
}

// watchEnd is the error a watch ends with: returned at once, or when its channel closes.
func watchEnd(t *testing.T, ch <-chan Event, final func() error, err error) error {
	t.Helper()
	if err != nil {
		return err
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return final()
			}
		case <-deadline:
			t.Fatal("watch did not end within 5s")
		}
	}
}
