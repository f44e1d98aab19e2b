// Package storage keeps the API server's objects in etcd: a Store over the etcd v3
// client, an embedded single-node etcd, encryption at rest, and a watch cache that lets
// any number of watchers share one etcd watch. Nothing else in Berth imports etcd.
package storage

import (
	"context"
	"errors"
	"time"
)

var (
	ErrNotFound  = errors.New("not found")
	ErrExists    = errors.New("already exists")
	ErrConflict  = errors.New("conflict")  // a precondition on the revision failed
	ErrCompacted = errors.New("compacted") // the revision asked for is gone (HTTP 410)

	// ErrFutureRevision: a read asked for a revision the store has not reached
	// (kube-apiserver answers "Too large resource version").
	ErrFutureRevision = errors.New("revision is in the future")
	// ErrTooSlow ends a cache watcher that fell a whole buffer behind; its client re-lists.
	ErrTooSlow = errors.New("watcher fell behind")
	// ErrBadContinue: a continue token that is malformed or belongs to another prefix.
	ErrBadContinue = errors.New("invalid continue token")
)

// KV is a stored object: its key, value (as the API server wrote it, after the
// transformer decoded it) and revisions.
type KV struct {
	Key            string
	Value          []byte
	ModRevision    int64 // the object's resourceVersion
	CreateRevision int64
}

// EventType says what an Event reports.
type EventType int

const (
	Added EventType = iota
	Modified
	Deleted
	// Bookmark carries no object: KV.ModRevision is a revision the watcher has seen
	// every event up to. Sent only to watchers that ask (WatchOptions.Bookmarks).
	Bookmark
)

func (t EventType) String() string {
	switch t {
	case Added:
		return "ADDED"
	case Modified:
		return "MODIFIED"
	case Deleted:
		return "DELETED"
	case Bookmark:
		return "BOOKMARK"
	}
	return "UNKNOWN"
}

// Event is one change; for Deleted, Value is the last value before the delete and
// Revision the delete's revision.
type Event struct {
	Type      EventType
	KV        KV
	PrevValue []byte // the value before (Modified, Deleted), when known
}

// ListOptions selects a page of a list.
type ListOptions struct {
	Limit    int64  // 0: all
	Continue string // opaque token from a previous page ("" for the first)
	Revision int64  // list as of this revision (0: latest); with Continue, the continue token's revision wins
}

// ListResult is one page of a list, sorted by key.
type ListResult struct {
	Items     []KV
	Revision  int64  // the revision the list reflects (the list's resourceVersion)
	Continue  string // non-empty when more items remain
	Remaining int64  // items left after this page (best effort)
}

// Store is the API server's view of etcd. Keys are
// "/registry/<group>/<resource>/<namespace>/<name>"-style strings chosen by the caller.
type Store interface {
	Get(ctx context.Context, key string) (KV, error)
	List(ctx context.Context, prefix string, o ListOptions) (ListResult, error)
	// Create writes key only if absent (ErrExists otherwise) and returns the new revision.
	Create(ctx context.Context, key string, value []byte) (int64, error)
	// Update replaces key if its ModRevision is still rev (ErrConflict otherwise;
	// ErrNotFound if absent). rev 0 = unconditional (but it must exist).
	Update(ctx context.Context, key string, value []byte, rev int64) (int64, error)
	// GuaranteedUpdate reads key, calls fn with the current KV (ErrNotFound passed
	// through as kv.Value == nil and exists=false), writes what fn returns with a CAS on
	// the revision read, and retries on a race. fn returning an error aborts with it.
	// When fn returns the current value unchanged nothing is written and the current KV
	// is returned, as kube-apiserver does for no-op updates. fn must not modify cur.Value.
	GuaranteedUpdate(ctx context.Context, key string, fn func(cur KV, exists bool) ([]byte, error)) (KV, error)
	// Delete removes key if its ModRevision is rev (0: unconditional) and returns the
	// deleted KV (Value = last value) with ModRevision = the delete's revision.
	Delete(ctx context.Context, key string, rev int64) (KV, error)
	// Watch sends the events under prefix after revision fromRev (0: from now), in
	// order, until ctx ends; ErrCompacted if fromRev is older than the oldest kept. The
	// channel closes when the watch ends (a final error is available from the returned
	// func: nil when ctx ended it).
	Watch(ctx context.Context, prefix string, fromRev int64) (<-chan Event, func() error, error)
	// CurrentRevision is the store's latest revision.
	CurrentRevision(ctx context.Context) (int64, error)
	Close() error
}

// WatchOptions are the optional parts of a watch.
type WatchOptions struct {
	// Bookmarks asks for Bookmark events, so a client can resume from a recent revision
	// even when nothing it watches changes: the Cacher sends one every
	// CacherOptions.BookmarkInterval, the etcd store whenever etcd reports progress.
	Bookmarks bool
	// InitialEvents starts the watch with a synthetic Added event for every object
	// under the prefix as of fromRev (the cache's current revision when fromRev is 0),
	// then the changes after it: kube-apiserver's resourceVersion=0 watch and
	// sendInitialEvents. With Bookmarks too, a Bookmark at that revision marks the end
	// of the initial events.
	InitialEvents bool
}

// OptionsWatcher is a Store whose watches take WatchOptions.
type OptionsWatcher interface {
	WatchWithOptions(ctx context.Context, prefix string, fromRev int64, o WatchOptions) (<-chan Event, func() error, error)
}

// ProgressRequester asks the store to tell every watch of this client its current
// revision (as a Bookmark, to watches that asked for bookmarks), so a watch under a
// quiet prefix learns that it is up to date.
type ProgressRequester interface {
	RequestProgress(ctx context.Context) error
}

// defaultBookmarkInterval is how often watchers that asked get a Bookmark; kube-apiserver
// sends them about once a minute.
const defaultBookmarkInterval = time.Minute
