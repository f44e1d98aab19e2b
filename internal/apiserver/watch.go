package apiserver

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/streaming"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/berth-project/berth/internal/storage"
)

// watch streams the changes of a collection: with resourceVersion "" or "0" first the
// current objects as ADDED, then every change after; with a resourceVersion, the changes
// after it (410 Gone when it is too old).
func (s *Server) watch(w http.ResponseWriter, r *http.Request, req request) error {
	o, err := parseListOptions(r)
	if err != nil {
		return err
	}
	if err := checkFieldSelector(req.res, o.fields); err != nil {
		return err
	}
	info, _, err := outputFor(r, false)
	if err != nil {
		return err
	}
	if info.StreamSerializer == nil {
		return statusError(http.StatusNotAcceptable, metav1.StatusReasonNotAcceptable, "watch is served as JSON or protobuf")
	}
	q := r.URL.Query()
	timeout := time.Duration(1800+rand.IntN(1800)) * time.Second
	if v := q.Get("timeoutSeconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return apierrors.NewBadRequest("invalid timeoutSeconds")
		}
		timeout = time.Duration(n) * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()

	// sendInitialEvents (client-go's streaming list, on by default in its informers):
	// the current objects as ADDED, then a bookmark marked as their end, then changes.
	sendInitial := q.Get("sendInitialEvents") == "true"
	if sendInitial && q.Get("allowWatchBookmarks") != "true" {
		return apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "ListOptions"}, "",
			fieldErrors("allowWatchBookmarks", false, "sendInitialEvents requires setting allowWatchBookmarks to true"))
	}
	cacher := s.cacher(req.res)
	var initial []storage.KV
	from, _ := strconv.ParseInt(o.rv, 10, 64)
	if from == 0 || sendInitial {
		lr, err := cacher.List(ctx, req.prefix(), storage.ListOptions{})
		if err != nil {
			return storageError(err, req.res, "")
		}
		initial, from = lr.Items, lr.Revision
	}
	events, done, err := cacher.WatchWithOptions(ctx, req.prefix(), from, storage.WatchOptions{Bookmarks: q.Get("allowWatchBookmarks") == "true"})
	if err != nil {
		return storageError(err, req.res, "")
	}
	defer done()

	ct := info.MediaType
	if ct != "application/json" {
		ct += ";stream=watch"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Transfer-Encoding", "chunked")
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	framer := info.StreamSerializer.Framer.NewFrameWriter(w)
	enc := streaming.NewEncoder(framer, info.StreamSerializer.Serializer)
	objEnc := codecs.EncoderForVersion(info.Serializer, req.gv)
	format := info.MediaType + ";" + req.gv.String()
	var buf bytes.Buffer
	// send writes one event; a memo entry's object is encoded once for all its watchers.
	send := func(typ watch.EventType, obj runtime.Object, memo *memoEntry) bool {
		var raw []byte
		var err error
		if memo != nil {
			raw, err = memo.encoded(format, func(o runtime.Object) ([]byte, error) {
				var b bytes.Buffer
				if req.res.custom == nil && o.GetObjectKind().GroupVersionKind() == req.res.gvk() {
					// Already of the kind served: the serializer only reads it.
					err := info.Serializer.Encode(o, &b)
					return b.Bytes(), err
				}
				// The versioning encoder sets the kind on what it encodes: a copy.
				err := objEnc.Encode(servedAs(req.res, o.DeepCopyObject()), &b)
				return b.Bytes(), err
			})
		} else {
			buf.Reset()
			err = objEnc.Encode(servedAs(req.res, obj), &buf)
			raw = buf.Bytes()
		}
		if err != nil {
			s.log.Error("watch: encode", "err", err)
			return false
		}
		ev := &metav1.WatchEvent{Type: string(typ), Object: runtime.RawExtension{Raw: raw}}
		return enc.Encode(ev) == nil
	}
	// Events are flushed when no more are waiting, as upstream does: one write for a burst.
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	defer flush()
	for _, kv := range initial {
		obj, err := s.decodeFromStorage(req.res, kv)
		if err != nil {
			continue
		}
		if matches(req.res, obj, o.labels, o.fields) && !send(watch.Added, obj, nil) {
			return nil
		}
	}
	if sendInitial {
		bm := req.res.new()
		if acc, err := meta.Accessor(bm); err == nil {
			acc.SetResourceVersion(strconv.FormatInt(from, 10))
			acc.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
		}
		bm.GetObjectKind().SetGroupVersionKind(req.res.gvk())
		if !send(watch.Bookmark, bm, nil) {
			return nil
		}
	}
	for {
		var ev storage.Event
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case ev, ok = <-events:
		default:
			flush()
			select {
			case <-ctx.Done():
				return nil
			case ev, ok = <-events:
			}
		}
		if !ok {
			if err := done(); err != nil && ctx.Err() == nil {
				st := errorStatus(storageError(err, req.res, ""))
				send(watch.Error, st, nil)
			}
			return nil
		}
		if ev.Type == storage.Bookmark {
			bm := req.res.new()
			if acc, err := meta.Accessor(bm); err == nil {
				acc.SetResourceVersion(strconv.FormatInt(ev.KV.ModRevision, 10))
			}
			bm.GetObjectKind().SetGroupVersionKind(req.res.gvk())
			if !send(watch.Bookmark, bm, nil) {
				return nil
			}
			continue
		}
		if !s.sendChange(req, o, ev, send) {
			return nil
		}
	}
}

// sendChange sends one stored change as the watch event a client of this selector sees:
// an object that starts or stops matching is ADDED or DELETED for it.
func (s *Server) sendChange(req request, o listOptions, ev storage.Event, send func(watch.EventType, runtime.Object, *memoEntry) bool) bool {
	cur, err := s.decoded(req.res, ev.KV, false)
	if err != nil {
		return true
	}
	everything := o.labels.Empty() && o.fields.Empty()
	now := everything || matches(req.res, cur.obj, o.labels, o.fields)
	before := everything && ev.PrevValue != nil
	if !everything && ev.PrevValue != nil {
		if prev, err := s.decoded(req.res, storage.KV{Key: ev.KV.Key, Value: ev.PrevValue, ModRevision: ev.KV.ModRevision}, true); err == nil {
			before = matches(req.res, prev.obj, o.labels, o.fields)
		}
	}
	switch ev.Type {
	case storage.Added:
		if now {
			return send(watch.Added, nil, cur)
		}
	case storage.Modified:
		switch {
		case now && before, now && ev.PrevValue == nil:
			return send(watch.Modified, nil, cur)
		case now:
			return send(watch.Added, nil, cur)
		case before:
			return send(watch.Deleted, nil, cur)
		}
	case storage.Deleted:
		if now {
			return send(watch.Deleted, nil, cur)
		}
	}
	return true
}
