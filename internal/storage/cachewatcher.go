package storage

import "context"

// cacheWatcher is one client of a Cacher. The cache offers it events without ever
// blocking; the watcher's own goroutine hands them to the client at the client's pace.
type cacheWatcher struct {
	prefix    string
	minRev    int64 // only events after this revision
	bookmarks bool
	in        chan *Event // closed by the cache when it stops the watcher
	err       error       // why it was stopped; set before in is closed
}

// offer queues e for the client, or says the client has fallen a whole buffer behind.
func (w *cacheWatcher) offer(e *Event) bool {
	select {
	case w.in <- e:
		return true
	default:
		return false
	}
}

// forward sends first, then whatever the cache queues, until the cache stops the
// watcher (its reason is returned) or ctx ends (nil).
func (w *cacheWatcher) forward(ctx context.Context, first []*Event, out chan<- Event) error {
	send := func(e *Event) bool {
		select {
		case out <- *e:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for _, e := range first {
		if !send(e) {
			return nil
		}
	}
	for {
		select {
		case e, ok := <-w.in:
			if !ok {
				return w.err
			}
			if !send(e) {
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}
