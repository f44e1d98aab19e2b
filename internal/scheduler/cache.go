package scheduler

import (
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/berth-project/berth/internal/scheduler/framework"
)

// cache is the scheduler's view of nodes and the pods placed on them: pods the
// informer reports bound, and pods this scheduler assumed onto a node while their
// binding is in flight, so the next decision already counts them. Informer handlers
// and binding goroutines write it; the scheduling loop copies what changed into its
// Snapshot between cycles.
type cache struct {
	mu    sync.Mutex
	nodes map[string]*nodeItem
	// head is the most recently changed node; the list runs in order of change, so a
	// snapshot stops at the first node it already has.
	head       *nodeItem
	pods       map[types.UID]*podState
	withNode   int // nodes whose Node object is known
	generation int64
}

type nodeItem struct {
	info       *framework.NodeInfo
	prev, next *nodeItem
}

type podState struct {
	info    *framework.PodInfo
	node    string
	assumed bool
}

func newCache() *cache {
	return &cache{nodes: map[string]*nodeItem{}, pods: map[types.UID]*podState{}}
}

// touch moves a changed node to the head of the list with a new generation.
func (c *cache) touch(it *nodeItem) {
	c.generation++
	it.info.Generation = c.generation
	if c.head == it {
		return
	}
	c.unlink(it)
	it.next = c.head
	if c.head != nil {
		c.head.prev = it
	}
	c.head = it
}

func (c *cache) unlink(it *nodeItem) {
	if it.prev != nil {
		it.prev.next = it.next
	}
	if it.next != nil {
		it.next.prev = it.prev
	}
	if c.head == it {
		c.head = it.next
	}
	it.prev, it.next = nil, nil
}

// item returns the named node's item, creating one without a Node object for pods
// bound to a node not seen yet.
func (c *cache) item(name string) *nodeItem {
	it, ok := c.nodes[name]
	if !ok {
		it = &nodeItem{info: framework.NewNodeInfo(nil)}
		c.nodes[name] = it
	}
	return it
}

// SetNode adds or updates a node.
func (c *cache) SetNode(node *corev1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it := c.item(node.Name)
	if it.info.Node() == nil {
		c.withNode++
	}
	it.info.SetNode(node)
	c.touch(it)
}

// RemoveNode forgets a node; its pods stay counted until they go too.
func (c *cache) RemoveNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.nodes[name]
	if !ok || it.info.Node() == nil {
		return
	}
	c.withNode--
	if len(it.info.Pods) == 0 {
		c.unlink(it)
		delete(c.nodes, name)
		c.generation++
		return
	}
	it.info = framework.NewNodeInfo(nil)
	for _, ps := range c.pods {
		if ps.node == name {
			it.info.AddPod(ps.info)
		}
	}
	c.touch(it)
}

func (c *cache) place(ps *podState) {
	it := c.item(ps.node)
	it.info.AddPod(ps.info)
	c.touch(it)
}

func (c *cache) unplace(ps *podState) {
	it, ok := c.nodes[ps.node]
	if !ok || !it.info.RemovePod(ps.info.Pod) {
		return
	}
	if it.info.Node() == nil && len(it.info.Pods) == 0 {
		c.unlink(it)
		delete(c.nodes, ps.node)
		c.generation++
		return
	}
	c.touch(it)
}

// SetPod records a pod bound to its node (spec.nodeName), confirming an assumption.
func (c *cache) SetPod(pod *corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var info *framework.PodInfo
	if ps, ok := c.pods[pod.UID]; ok {
		c.unplace(ps)
		if ps.assumed && ps.node == pod.Spec.NodeName {
			// The binding confirmed: what was computed for the assumed pod still holds.
			confirmed := *ps.info
			confirmed.Pod = pod
			info = &confirmed
		}
	}
	if info == nil {
		info = framework.NewPodInfo(pod)
	}
	ps := &podState{info: info, node: pod.Spec.NodeName}
	c.pods[pod.UID] = ps
	c.place(ps)
}

// RemovePod forgets a pod, bound or assumed.
func (c *cache) RemovePod(pod *corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps, ok := c.pods[pod.UID]; ok {
		c.unplace(ps)
		delete(c.pods, pod.UID)
	}
}

// Assume places a pod on a node before its binding is confirmed. pi.Pod must already
// name the node.
func (c *cache) Assume(pi *framework.PodInfo) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pods[pi.Pod.UID]; ok {
		return fmt.Errorf("pod %s/%s is already in the scheduler's cache", pi.Pod.Namespace, pi.Pod.Name)
	}
	ps := &podState{info: pi, node: pi.Pod.Spec.NodeName, assumed: true}
	c.pods[pi.Pod.UID] = ps
	c.place(ps)
	return nil
}

// Forget drops an assumption whose binding failed; a confirmed pod stays.
func (c *cache) Forget(pod *corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps, ok := c.pods[pod.UID]; ok && ps.assumed {
		c.unplace(ps)
		delete(c.pods, pod.UID)
	}
}

// IsAssumed reports whether the pod is assumed and not yet seen bound.
func (c *cache) IsAssumed(pod *corev1.Pod) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps, ok := c.pods[pod.UID]
	return ok && ps.assumed
}

// UpdateSnapshot copies the nodes changed since the snapshot's generation into it.
func (c *cache) UpdateSnapshot(s *framework.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for it := c.head; it != nil && it.info.Generation > s.Generation(); it = it.next {
		if it.info.Node() == nil {
			continue // a node we have not seen (yet, or any more): not schedulable
		}
		s.Put(it.info.Clone())
	}
	if s.Len() != c.withNode {
		var gone []string
		s.Names(func(name string) {
			if it, ok := c.nodes[name]; !ok || it.info.Node() == nil {
				gone = append(gone, name)
			}
		})
		for _, name := range gone {
			s.Delete(name)
		}
	}
	s.Commit(c.generation)
}
