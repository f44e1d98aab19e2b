// Package nodeipam gives every node a pod CIDR (spec.podCIDR and spec.podCIDRs): a
// block of the cluster CIDR no other node has. The blocks in use are rebuilt from the
// nodes at start, so a restart never hands out a block twice.
package nodeipam

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/berth-project/berth/internal/controller/queue"
)

// Controller is the node IPAM controller.
type Controller struct {
	client     kubernetes.Interface
	nodeLister corelisters.NodeLister
	synced     cache.InformerSynced
	recorder   record.EventRecorder
	log        *slog.Logger
	queue      *queue.Queue[string]

	mu     sync.Mutex
	cidrs  *CIDRs
	byNode map[string]string // node → the block it holds
}

// New returns a node IPAM controller handing out maskSize blocks of clusterCIDR.
func New(client kubernetes.Interface, nodeInformer coreinformers.NodeInformer, clusterCIDR string, maskSize int, recorder record.EventRecorder, log *slog.Logger) (*Controller, error) {
	cidrs, err := NewCIDRs(clusterCIDR, maskSize)
	if err != nil {
		return nil, fmt.Errorf("node IPAM: %w", err)
	}
	c := &Controller{
		client: client, nodeLister: nodeInformer.Lister(), synced: nodeInformer.Informer().HasSynced,
		recorder: recorder, log: log, cidrs: cidrs, byNode: map[string]string{},
	}
	c.queue = queue.New("nodeipam", log, c.sync)
	nodeInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { queue.Enqueue(c.queue, obj) },
		UpdateFunc: func(_, obj any) { queue.Enqueue(c.queue, obj) },
		DeleteFunc: func(obj any) { queue.Enqueue(c.queue, obj) },
	})
	return c, nil
}

// Run rebuilds the allocation from the nodes, then assigns blocks to new nodes until
// ctx is done. One worker: allocation is sequential.
func (c *Controller) Run(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), c.synced) {
		return fmt.Errorf("node IPAM controller: informers did not sync")
	}
	if err := c.rebuild(); err != nil {
		return err
	}
	c.queue.Run(ctx, 1)
	return nil
}

// rebuild marks the blocks the nodes already hold as taken.
func (c *Controller) rebuild() error {
	nodes, err := c.nodeLister.List(labels.Everything())
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range nodes {
		c.occupyLocked(n)
	}
	return nil
}

func (c *Controller) occupyLocked(n *corev1.Node) {
	if n.Spec.PodCIDR == "" {
		return
	}
	if !c.cidrs.Occupy(n.Spec.PodCIDR) {
		c.log.Info("node has a pod CIDR outside the cluster CIDR", "node", n.Name, "podCIDR", n.Spec.PodCIDR)
		return
	}
	c.byNode[n.Name] = n.Spec.PodCIDR
}

// sync gives a node without a pod CIDR the lowest free block, and frees the block of
// a deleted node.
func (c *Controller) sync(ctx context.Context, name string) error {
	node, err := c.nodeLister.Get(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if apierrors.IsNotFound(err) {
		if cidr, ok := c.byNode[name]; ok {
			c.cidrs.Release(cidr)
			delete(c.byNode, name)
			c.log.Info("released pod CIDR of deleted node", "node", name, "podCIDR", cidr)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if node.Spec.PodCIDR != "" {
		c.occupyLocked(node)
		return nil
	}
	if cidr, ok := c.byNode[name]; ok {
		return c.assign(ctx, node, cidr) // allocated before; the write did not land
	}
	cidr, err := c.cidrs.Allocate()
	if err != nil {
		c.recorder.Eventf(node, corev1.EventTypeNormal, "CIDRNotAvailable", "Node %s status is now: CIDRNotAvailable", name)
		return err
	}
	c.byNode[name] = cidr
	return c.assign(ctx, node, cidr)
}

func (c *Controller) assign(ctx context.Context, node *corev1.Node, cidr string) error {
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": node.UID},
		"spec":     map[string]any{"podCIDR": cidr, "podCIDRs": []string{cidr}},
	})
	if _, err := c.client.CoreV1().Nodes().Patch(ctx, node.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			c.cidrs.Release(cidr)
			delete(c.byNode, node.Name)
			return nil
		}
		c.recorder.Eventf(node, corev1.EventTypeWarning, "CIDRAssignmentFailed", "Node %s status is now: CIDRAssignmentFailed", node.Name)
		return err
	}
	c.log.Info("assigned pod CIDR", "node", node.Name, "podCIDR", cidr)
	return nil
}
