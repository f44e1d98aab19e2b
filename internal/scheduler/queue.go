package scheduler

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-project/berth/internal/scheduler/framework"
)

// queuedPod is a pod waiting to be scheduled, with its history.
type queuedPod struct {
	pod       *corev1.Pod
	timestamp time.Time // when it last entered the active queue
	// firstSeen is when the queue first got the pod, for latency logging.
	firstSeen time.Time
	attempts  int
	// backoffUntil is when it may be tried again after its last failure.
	backoffUntil time.Time
	// rejectedBy are the plugins that rejected it last time; empty means any event
	// may help (no nodes at all, or an error).
	rejectedBy map[string]bool
	since      time.Time // when it became unschedulable
	cycle      int64     // the scheduling cycle that popped it
	updated    bool      // the pod changed while it was being scheduled
	index      int       // in whichever heap holds it
}

// queue holds pods to schedule in three places, as upstream's scheduling queue does:
// active (by priority, then first in first out), backoff (failed recently, waiting
// 1s doubling to 10s), and unschedulable (waiting for a cluster change that may
// help). Pods being scheduled are "in flight".
type queue struct {
	mu            sync.Mutex
	cond          *sync.Cond
	active        podHeap
	backoff       podHeap
	unschedulable map[types.UID]*queuedPod
	inFlight      map[types.UID]*queuedPod
	cycle         int64
	// moveCycle is the cycle during which a cluster change last moved pods: a pod
	// from that cycle or earlier that fails goes to backoff, not unschedulable, so the
	// change is not missed.
	moveCycle int64
	closed    bool

	now                        func() time.Time
	interested                 func(plugin string, ev framework.ClusterEvent) bool
	backoffInitial, backoffMax time.Duration
	maxUnschedulable           time.Duration
}

func newQueue(interested func(string, framework.ClusterEvent) bool, backoffInitial, backoffMax, maxUnschedulable time.Duration) *queue {
	q := &queue{
		active:         podHeap{less: byPriority},
		backoff:        podHeap{less: byBackoff},
		unschedulable:  map[types.UID]*queuedPod{},
		inFlight:       map[types.UID]*queuedPod{},
		now:            time.Now,
		interested:     interested,
		backoffInitial: backoffInitial, backoffMax: backoffMax, maxUnschedulable: maxUnschedulable,
	}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func priority(p *corev1.Pod) int32 {
	if p.Spec.Priority != nil {
		return *p.Spec.Priority
	}
	return 0
}

func byPriority(a, b *queuedPod) bool {
	if pa, pb := priority(a.pod), priority(b.pod); pa != pb {
		return pa > pb
	}
	return a.timestamp.Before(b.timestamp)
}

func byBackoff(a, b *queuedPod) bool { return a.backoffUntil.Before(b.backoffUntil) }

// find returns where the queue holds a pod.
func (q *queue) find(uid types.UID) (*queuedPod, *podHeap) {
	if qp := q.active.get(uid); qp != nil {
		return qp, &q.active
	}
	if qp := q.backoff.get(uid); qp != nil {
		return qp, &q.backoff
	}
	if qp, ok := q.unschedulable[uid]; ok {
		return qp, nil
	}
	return nil, nil
}

// Add queues a new pending pod, or updates one already known.
func (q *queue) Add(pod *corev1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.updateLocked(pod) {
		return
	}
	now := q.now()
	q.active.push(&queuedPod{pod: pod, timestamp: now, firstSeen: now})
	q.cond.Signal()
}

// Update takes a new version of a pending pod. An unschedulable pod that changed may
// fit now: it is tried again (after its backoff).
func (q *queue) Update(pod *corev1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.updateLocked(pod) {
		now := q.now()
		q.active.push(&queuedPod{pod: pod, timestamp: now, firstSeen: now})
		q.cond.Signal()
	}
}

func (q *queue) updateLocked(pod *corev1.Pod) bool {
	if qp, ok := q.inFlight[pod.UID]; ok {
		qp.pod, qp.updated = pod, true
		return true
	}
	qp, h := q.find(pod.UID)
	if qp == nil {
		return false
	}
	qp.pod = pod
	if h != nil {
		h.fix(qp)
		return true
	}
	delete(q.unschedulable, pod.UID)
	q.requeueLocked(qp)
	return true
}

// Delete forgets a pod (deleted, bound elsewhere, or no longer ours).
func (q *queue) Delete(pod *corev1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.inFlight, pod.UID)
	delete(q.unschedulable, pod.UID)
	q.active.remove(pod.UID)
	q.backoff.remove(pod.UID)
}

// Pop waits for a pod to schedule; nil once the queue is closed.
func (q *queue) Pop() *queuedPod {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.active.items) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil
	}
	qp := q.active.pop()
	q.cycle++
	qp.cycle, qp.updated = q.cycle, false
	qp.attempts++
	q.inFlight[qp.pod.UID] = qp
	return qp
}

// Done ends a pod's cycle that placed it.
func (q *queue) Done(uid types.UID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.inFlight, uid)
}

// Failed ends a pod's cycle that did not place it. rejectedBy are the plugins that
// rejected it; retry sends it to backoff whatever happens (an error, a failed
// binding). A pod deleted meanwhile is dropped.
func (q *queue) Failed(qp *queuedPod, rejectedBy map[string]bool, retry bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.inFlight[qp.pod.UID]; !ok {
		return
	}
	delete(q.inFlight, qp.pod.UID)
	now := q.now()
	qp.rejectedBy = rejectedBy
	qp.backoffUntil = now.Add(q.backoffFor(qp.attempts))
	if retry || qp.updated || q.moveCycle >= qp.cycle {
		q.backoff.push(qp)
		return
	}
	qp.since = now
	q.unschedulable[qp.pod.UID] = qp
}

// Retry queues a pod again after its binding failed.
func (q *queue) Retry(qp *queuedPod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if existing, _ := q.find(qp.pod.UID); existing != nil {
		return
	}
	if _, ok := q.inFlight[qp.pod.UID]; ok {
		return
	}
	qp.backoffUntil = q.now().Add(q.backoffFor(qp.attempts))
	q.backoff.push(qp)
}

// backoffFor is 1s after the first attempt, doubling up to the maximum.
func (q *queue) backoffFor(attempts int) time.Duration {
	d := q.backoffInitial
	for i := 1; i < attempts && d < q.backoffMax; i++ {
		d *= 2
	}
	return min(d, q.backoffMax)
}

// requeueLocked sends a pod to active, or to backoff while its backoff lasts.
func (q *queue) requeueLocked(qp *queuedPod) {
	if q.now().Before(qp.backoffUntil) {
		q.backoff.push(qp)
		return
	}
	qp.timestamp = q.now()
	q.active.push(qp)
	q.cond.Signal()
}

// Move retries the unschedulable pods that a plugin which rejected them says ev may help.
func (q *queue) Move(ev framework.ClusterEvent) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.moveCycle = q.cycle
	for uid, qp := range q.unschedulable {
		if q.helps(qp, ev) {
			delete(q.unschedulable, uid)
			q.requeueLocked(qp)
		}
	}
}

func (q *queue) helps(qp *queuedPod, ev framework.ClusterEvent) bool {
	if len(qp.rejectedBy) == 0 {
		return true
	}
	for plugin := range qp.rejectedBy {
		if q.interested(plugin, ev) {
			return true
		}
	}
	return false
}

// Flush moves pods whose backoff is over to active, and pods unschedulable for
// longer than the maximum back to be tried again.
func (q *queue) Flush() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	for len(q.backoff.items) > 0 && !now.Before(q.backoff.items[0].backoffUntil) {
		qp := q.backoff.pop()
		qp.timestamp = now
		q.active.push(qp)
		q.cond.Signal()
	}
	for uid, qp := range q.unschedulable {
		if now.Sub(qp.since) >= q.maxUnschedulable {
			delete(q.unschedulable, uid)
			q.requeueLocked(qp)
		}
	}
}

// Close wakes Pop for good.
func (q *queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Broadcast()
}

// Len counts the pods in active, backoff and unschedulable.
func (q *queue) Len() (active, backoff, unschedulable int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.active.items), len(q.backoff.items), len(q.unschedulable)
}
