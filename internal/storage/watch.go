package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// errResult holds a watch's final error, readable once its channel has closed.
type errResult struct {
	mu  sync.Mutex
	err error
}

func (r *errResult) set(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

func (r *errResult) get() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (s *etcdStore) Watch(ctx context.Context, prefix string, fromRev int64) (<-chan Event, func() error, error) {
	return s.WatchWithOptions(ctx, prefix, fromRev, WatchOptions{})
}

// WatchWithOptions is Watch with bookmarks (etcd's progress notifications, at the
// interval the etcd server is configured with, and on RequestProgress; none from
// servers whose notifications cannot be trusted) and initial events.
func (s *etcdStore) WatchWithOptions(ctx context.Context, prefix string, fromRev int64, o WatchOptions) (<-chan Event, func() error, error) {
	var initial []KV
	switch {
	case o.InitialEvents:
		l, err := listAll(ctx, s, prefix, fromRev)
		if err != nil {
			return nil, nil, fmt.Errorf("watch %s: %w", prefix, err)
		}
		initial, fromRev = l.Items, l.Revision
	case fromRev > 0:
		// etcd reports a compacted start only after the watch is set up; a read at
		// fromRev fails now instead. A future revision is fine: the watch waits for it.
		_, err := s.c.Get(ctx, prefix, clientv3.WithRev(fromRev), clientv3.WithCountOnly())
		if err = etcdErr(err); err != nil && !errors.Is(err, ErrFutureRevision) {
			return nil, nil, fmt.Errorf("watch %s from revision %d: %w", prefix, fromRev, err)
		}
	}
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithPrevKV()}
	if fromRev > 0 {
		opts = append(opts, clientv3.WithRev(fromRev+1))
	}
	bookmarks := o.Bookmarks && s.progress
	if bookmarks {
		opts = append(opts, clientv3.WithProgressNotify())
	}
	// Require a leader, so a watch on a partitioned member ends instead of going quiet.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := s.c.Watch(wctx, prefix, opts...)
	out := make(chan Event)
	res := &errResult{}
	go func() {
		defer close(out)
		defer cancel()
		send := func(ev Event) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for _, kv := range initial {
			if !send(Event{Type: Added, KV: kv}) {
				return
			}
		}
		if o.InitialEvents && o.Bookmarks && !send(Event{Type: Bookmark, KV: KV{ModRevision: fromRev}}) {
			return
		}
		res.set(s.pump(ctx, prefix, wch, bookmarks, send))
	}()
	return out, res.get, nil
}

// pump forwards etcd's watch responses as Events until the watch or ctx ends, and says why it ended.
func (s *etcdStore) pump(ctx context.Context, prefix string, wch clientv3.WatchChan, bookmarks bool, send func(Event) bool) error {
	for resp := range wch {
		if resp.CompactRevision != 0 {
			return fmt.Errorf("watch %s: %w (compacted at revision %d)", prefix, ErrCompacted, resp.CompactRevision)
		}
		if err := resp.Err(); err != nil {
			return fmt.Errorf("watch %s: %w", prefix, etcdErr(err))
		}
		if resp.IsProgressNotify() {
			if bookmarks && !send(Event{Type: Bookmark, KV: KV{ModRevision: resp.Header.Revision}}) {
				return nil
			}
			continue
		}
		for _, e := range resp.Events {
			ev, err := s.event(e)
			if err != nil {
				return fmt.Errorf("watch %s: %w", prefix, err)
			}
			if !send(ev) {
				return nil
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("watch %s: closed by etcd", prefix)
}

func (s *etcdStore) event(e *clientv3.Event) (Event, error) {
	var prev *KV
	if e.PrevKv != nil {
		kv, err := s.decode(e.PrevKv)
		if err != nil {
			return Event{}, err
		}
		prev = &kv
	}
	if e.Type == mvccpb.DELETE {
		ev := Event{Type: Deleted, KV: KV{Key: string(e.Kv.Key), ModRevision: e.Kv.ModRevision}}
		if prev != nil {
			ev.KV.Value, ev.KV.CreateRevision, ev.PrevValue = prev.Value, prev.CreateRevision, prev.Value
		}
		return ev, nil
	}
	kv, err := s.decode(e.Kv)
	if err != nil {
		return Event{}, err
	}
	if e.IsCreate() {
		return Event{Type: Added, KV: kv}, nil
	}
	ev := Event{Type: Modified, KV: kv}
	if prev != nil {
		ev.PrevValue = prev.Value
	}
	return ev, nil
}
