package storage

import (
	"sort"
	"strings"
)

// ring keeps the last cap events in revision order.
type ring struct {
	buf   []*Event
	start int // index of the oldest
	n     int
}

func newRing(capacity int) ring { return ring{buf: make([]*Event, capacity)} }

func (r *ring) at(i int) *Event { return r.buf[(r.start+i)%len(r.buf)] }

// push appends e and returns the event it pushed out, if the ring was full.
func (r *ring) push(e *Event) (*Event, bool) {
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = e
		r.n++
		return nil, false
	}
	out := r.buf[r.start]
	r.buf[r.start] = e
	r.start = (r.start + 1) % len(r.buf)
	return out, true
}

func (r *ring) clear() {
	clear(r.buf)
	r.start, r.n = 0, 0
}

// after returns the events after rev whose keys start with prefix, oldest first.
func (r *ring) after(rev int64, prefix string) []*Event {
	i := sort.Search(r.n, func(i int) bool { return r.at(i).KV.ModRevision > rev })
	var evs []*Event
	for ; i < r.n; i++ {
		if e := r.at(i); strings.HasPrefix(e.KV.Key, prefix) {
			evs = append(evs, e)
		}
	}
	return evs
}
