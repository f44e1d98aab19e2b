// Package queue is the work loop every controller runs: a rate-limited workqueue of
// keys, drained by workers that call the controller's level-triggered sync.
package queue

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// maxRetries is how often a failing key is retried (with exponential backoff, 5 ms
// doubling to ~80 s) before it is dropped until the next event brings it back.
const maxRetries = 15

// SyncFunc moves the world one step toward what key's object asks for. An error
// means "retry later"; it must be safe to call again at any time.
type SyncFunc[K comparable] func(ctx context.Context, key K) error

// Queue holds keys waiting for a sync. Adding a key already waiting is a no-op, and a
// key is never synced by two workers at once.
type Queue[K comparable] struct {
	name string
	log  *slog.Logger
	sync SyncFunc[K]
	q    workqueue.TypedRateLimitingInterface[K]
}

// New returns a queue whose workers call sync; name labels its log lines.
func New[K comparable](name string, log *slog.Logger, sync SyncFunc[K]) *Queue[K] {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Queue[K]{
		name: name, log: log, sync: sync,
		q: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[K](),
			workqueue.TypedRateLimitingQueueConfig[K]{Name: name}),
	}
}

// Add queues key for a sync as soon as a worker is free.
func (q *Queue[K]) Add(key K) { q.q.Add(key) }

// AddAfter queues key once d has passed.
func (q *Queue[K]) AddAfter(key K, d time.Duration) { q.q.AddAfter(key, d) }

// AddRateLimited queues key after its backoff.
func (q *Queue[K]) AddRateLimited(key K) { q.q.AddRateLimited(key) }

// Len is the number of keys waiting.
func (q *Queue[K]) Len() int { return q.q.Len() }

// Run drains the queue with the given number of workers until ctx is done; it then
// shuts the queue down and waits for the workers to finish their current key.
func (q *Queue[K]) Run(ctx context.Context, workers int) {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for q.next(ctx) {
			}
		})
	}
	<-ctx.Done()
	q.q.ShutDown()
	wg.Wait()
}

// RunSynced waits for the informers' caches, then runs the workers as Run does.
func (q *Queue[K]) RunSynced(ctx context.Context, workers int, synced ...cache.InformerSynced) error {
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return fmt.Errorf("%s controller: informers did not sync", q.name)
	}
	q.Run(ctx, workers)
	return nil
}

func (q *Queue[K]) next(ctx context.Context) bool {
	key, quit := q.q.Get()
	if quit {
		return false
	}
	defer q.q.Done(key)
	err := q.sync(ctx, key)
	switch {
	case err == nil:
		q.q.Forget(key)
	case ctx.Err() != nil:
	case q.q.NumRequeues(key) < maxRetries:
		level := slog.LevelInfo
		if apierrors.IsConflict(err) {
			level = slog.LevelDebug // a write raced the informer's copy: expected, retried at once
		}
		q.log.Log(ctx, level, "sync failed, will retry", "queue", q.name, "key", key, "err", err)
		q.q.AddRateLimited(key)
	default:
		q.log.Error("sync failed too often, dropping the key until it changes", "queue", q.name, "key", key, "err", err)
		q.q.Forget(key)
	}
	return true
}

// Key is the namespace/name key of an informer's object, tombstones included; ok is
// false for anything else.
func Key(obj any) (string, bool) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	return key, err == nil
}

// Enqueue adds obj's namespace/name key to q.
func Enqueue(q *Queue[string], obj any) {
	if key, ok := Key(obj); ok {
		q.Add(key)
	}
}
