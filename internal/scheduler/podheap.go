package scheduler

import (
	"container/heap"

	"k8s.io/apimachinery/pkg/types"
)

// podHeap is a heap of pods that can also find and remove a pod by UID.
type podHeap struct {
	items []*queuedPod
	byUID map[types.UID]*queuedPod
	less  func(a, b *queuedPod) bool
}

func (h *podHeap) Len() int           { return len(h.items) }
func (h *podHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *podHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].index, h.items[j].index = i, j
}
func (h *podHeap) Push(x any) {
	qp := x.(*queuedPod)
	qp.index = len(h.items)
	h.items = append(h.items, qp)
}
func (h *podHeap) Pop() any {
	last := len(h.items) - 1
	qp := h.items[last]
	h.items[last] = nil
	h.items = h.items[:last]
	return qp
}

func (h *podHeap) push(qp *queuedPod) {
	if h.byUID == nil {
		h.byUID = map[types.UID]*queuedPod{}
	}
	h.byUID[qp.pod.UID] = qp
	heap.Push(h, qp)
}

func (h *podHeap) pop() *queuedPod {
	qp := heap.Pop(h).(*queuedPod)
	delete(h.byUID, qp.pod.UID)
	return qp
}

func (h *podHeap) get(uid types.UID) *queuedPod { return h.byUID[uid] }

func (h *podHeap) fix(qp *queuedPod) { heap.Fix(h, qp.index) }

func (h *podHeap) remove(uid types.UID) {
	if qp, ok := h.byUID[uid]; ok {
		heap.Remove(h, qp.index)
		delete(h.byUID, uid)
	}
}
