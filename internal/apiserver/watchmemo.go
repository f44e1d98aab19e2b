package apiserver

import (
	"sync"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/berth-project/berth/internal/storage"
)

// eventMemo shares the work of one stored change among all the watchers it goes to: the
// object is decoded once, and encoded once per media type and version, instead of once
// per watcher (1000 watchers of pods would otherwise decode and encode every pod update
// 1000 times). Entries are kept for the last memoSize changes, in two generations.
type eventMemo struct{ gens twoGen[memoKey, *memoEntry] }

const memoSize = 2048

type memoKey struct {
	res  *resource // the version decoded to (and, for custom resources, the schema's generation)
	key  string
	rev  int64
	prev bool // the value before the change rather than after
}

// memoEntry is one decoded object; callers must not modify obj.
type memoEntry struct {
	once sync.Once
	obj  runtime.Object
	err  error

	mu  sync.Mutex
	enc map[string]*memoBytes
}

type memoBytes struct {
	once sync.Once
	data []byte
	err  error
}

func (m *eventMemo) entry(k memoKey) *memoEntry {
	return m.gens.getOrPut(k, memoSize, func() *memoEntry { return &memoEntry{enc: map[string]*memoBytes{}} })
}

// wrote records obj as what this server just stored under key at rev, so that the watch
// of that change (and the next update) need not decode it. obj becomes the memo's: the
// caller must not change it. Custom resources, defaulted on read, are left to decoding.
func (s *Server) wrote(res *resource, key string, rev int64, obj runtime.Object) {
	if res.custom != nil {
		return
	}
	obj.GetObjectKind().SetGroupVersionKind(res.gvk())
	e := s.memo.entry(memoKey{res: res, key: key, rev: rev})
	e.once.Do(func() { e.obj = obj })
}

// decoded is the object of a stored value, decoded once for every watcher.
func (s *Server) decoded(res *resource, kv storage.KV, prev bool) (*memoEntry, error) {
	e := s.memo.entry(memoKey{res: res, key: kv.Key, rev: kv.ModRevision, prev: prev})
	e.once.Do(func() { e.obj, e.err = s.decodeFromStorage(res, kv) })
	return e, e.err
}

// encoded is the entry's object encoded by encode, once per format. encode gets the shared
// object and must not change it (nor hand it to an encoder that sets its kind).
func (e *memoEntry) encoded(format string, encode func(runtime.Object) ([]byte, error)) ([]byte, error) {
	e.mu.Lock()
	b, ok := e.enc[format]
	if !ok {
		b = &memoBytes{}
		e.enc[format] = b
	}
	e.mu.Unlock()
	b.once.Do(func() { b.data, b.err = encode(e.obj) })
	return b.data, b.err
}
