package scheduler

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/berth-project/berth/internal/scheduler/framework"
	"github.com/berth-project/berth/internal/scheduler/testobj"
)

// clock is a hand-moved clock for the queue.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestQueue() (*queue, *clock) {
	fw, _ := framework.New(1, framework.Entry{Plugin: onlyNodeAdd{}})
	q := newQueue(fw.Interested, time.Second, 10*time.Second, time.Minute)
	c := &clock{t: time.Unix(1000, 0)}
	q.now = c.now
	return q, c
}

// onlyNodeAdd is a plugin that says only new nodes may help the pods it rejects.
type onlyNodeAdd struct{}

func (onlyNodeAdd) Name() string                             { return "OnlyNodeAdd" }
func (onlyNodeAdd) EventsToRegister() framework.ClusterEvent { return framework.NodeAdd }

func popNames(q *queue, n int) []string {
	var out []string
	for range n {
		qp := q.Pop()
		out = append(out, qp.pod.Name)
		q.Done(qp.pod.UID)
	}
	return out
}

func TestQueuePopsByPriorityThenArrival(t *testing.T) {
	q, c := newTestQueue()
	for _, p := range []*corev1.Pod{
		testobj.Pod("low-1").Obj(),
		testobj.Pod("high").Priority(1000).Obj(),
		testobj.Pod("low-2").Obj(),
		testobj.Pod("mid").Priority(10).Obj(),
	} {
		q.Add(p)
		c.advance(time.Millisecond)
	}
	if diff := cmp.Diff([]string{"high", "mid", "low-1", "low-2"}, popNames(q, 4)); diff != "" {
		t.Errorf("order (-want,+got):\n%s", diff)
	}
}

func TestQueueBackoffDoublesUpToTenSeconds(t *testing.T) {
	q, _ := newTestQueue()
	var got []time.Duration
	for attempts := 1; attempts <= 6; attempts++ {
		got = append(got, q.backoffFor(attempts))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("backoff (-want,+got):\n%s", diff)
	}
}

func TestQueueUnschedulablePodWaitsForAHelpfulEvent(t *testing.T) {
	q, c := newTestQueue()
	q.Add(testobj.Pod("p").Obj())
	qp := q.Pop()
	q.Failed(qp, map[string]bool{"OnlyNodeAdd": true}, false)
	if a, b, u := q.Len(); a != 0 || b != 0 || u != 1 {
		t.Fatalf("after failing: active %d, backoff %d, unschedulable %d; want it unschedulable", a, b, u)
	}
	q.Move(framework.AssignedPodDelete)
	if _, _, u := q.Len(); u != 1 {
		t.Fatal("an event the rejecting plugin does not care about moved the pod")
	}
	q.Move(framework.NodeAdd)
	if a, b, _ := q.Len(); b != 1 || a != 0 {
		t.Fatalf("after a node came: active %d, backoff %d; want it backing off first", a, b)
	}
	c.advance(time.Second)
	q.Flush()
	if a, _, _ := q.Len(); a != 1 {
		t.Fatal("the backoff ended but the pod is not active")
	}
}

func TestQueueEventDuringTheCycleIsNotMissed(t *testing.T) {
	q, _ := newTestQueue()
	q.Add(testobj.Pod("p").Obj())
	qp := q.Pop()
	q.Move(framework.AssignedPodDelete) // while p was being scheduled
	q.Failed(qp, map[string]bool{"OnlyNodeAdd": true}, false)
	if _, b, u := q.Len(); b != 1 || u != 0 {
		t.Fatalf("backoff %d, unschedulable %d: a pod that failed while the cluster changed must be retried", b, u)
	}
}

func TestQueueUnschedulableForAMinuteIsRetried(t *testing.T) {
	q, c := newTestQueue()
	q.Add(testobj.Pod("p").Obj())
	q.Failed(q.Pop(), map[string]bool{"OnlyNodeAdd": true}, false)
	c.advance(59 * time.Second)
	q.Flush()
	if _, _, u := q.Len(); u != 1 {
		t.Fatal("retried before a minute")
	}
	c.advance(time.Second)
	q.Flush()
	if a, _, u := q.Len(); a != 1 || u != 0 {
		t.Fatalf("after a minute: active %d, unschedulable %d", a, u)
	}
}

func TestQueueUpdatedPodIsRetriedAndDeletedPodForgotten(t *testing.T) {
	q, c := newTestQueue()
	p := testobj.Pod("p").Obj()
	q.Add(p)
	q.Failed(q.Pop(), map[string]bool{"OnlyNodeAdd": true}, false)
	c.advance(2 * time.Second)
	updated := testobj.Pod("p").Toleration("k", "v", corev1.TaintEffectNoSchedule).Obj()
	q.Update(updated)
	qp := q.Pop()
	if len(qp.pod.Spec.Tolerations) != 1 {
		t.Fatal("popped the old version of the pod")
	}
	q.Delete(updated)
	q.Failed(qp, nil, true) // its cycle ends after the delete: dropped
	if a, b, u := q.Len(); a+b+u != 0 {
		t.Fatalf("a deleted pod is still queued: %d %d %d", a, b, u)
	}
}

func TestQueueCloseWakesPop(t *testing.T) {
	q, _ := newTestQueue()
	done := make(chan *queuedPod)
	go func() { done <- q.Pop() }()
	q.Close()
	select {
	case qp := <-done:
		if qp != nil {
			t.Fatal("Pop on a closed queue returned a pod")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Pop did not return after Close")
	}
}
