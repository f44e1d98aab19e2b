package engine

import (
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
)

// eventBus fans engine events out to /events subscribers and keeps a short history
// so `docker events --since` can replay.
type eventBus struct {
	mu      sync.Mutex
	subs    map[chan events.Message]struct{}
	history []events.Message
}

func newEventBus() *eventBus { return &eventBus{subs: map[chan events.Message]struct{}{}} }

func (b *eventBus) publish(typ events.Type, action events.Action, id string, attrs map[string]string) {
	now := time.Now()
	m := events.Message{
		Type: typ, Action: action, Scope: "local",
		Actor: events.Actor{ID: id, Attributes: attrs},
		Time:  now.Unix(), TimeNano: now.UnixNano(),
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.history = append(b.history, m)
	if len(b.history) > 1000 {
		b.history = b.history[len(b.history)-1000:]
	}
	for ch := range b.subs {
		select {
		case ch <- m:
		default: // a subscriber that does not read loses events rather than stalling us
		}
	}
}

// Subscribe returns past events at or after since and a channel of new ones.
func (e *Engine) Subscribe(since time.Time) ([]events.Message, chan events.Message, func()) {
	b := e.events
	ch := make(chan events.Message, 256)
	b.mu.Lock()
	var past []events.Message
	if !since.IsZero() {
		for _, m := range b.history {
			if m.TimeNano >= since.UnixNano() {
				past = append(past, m)
			}
		}
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	return past, ch, func() {
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
	}
}
