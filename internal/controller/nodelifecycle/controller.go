// Package nodelifecycle is the node lifecycle controller: it notices nodes whose
// kubelet stopped sending heartbeats (Lease renewals or node status updates), marks
// their conditions Unknown and their pods not ready, and keeps the node taints that
// mirror node health (not-ready, unreachable, pressure conditions, unschedulable) —
// the NoExecute ones are what evicts pods from lost nodes.
package nodelifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	coordinformers "k8s.io/client-go/informers/coordination/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	coordlisters "k8s.io/client-go/listers/coordination/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/berth-project/berth/internal/controller/pods"
	"github.com/berth-project/berth/internal/controller/queue"
)

// Config tunes how quickly a silent node is given up on.
type Config struct {
	// GracePeriod is how long a node may go without a heartbeat (40s upstream).
	GracePeriod time.Duration
	// StartupGracePeriod applies to a node that never reported Ready (60s upstream).
	StartupGracePeriod time.Duration
	// MonitorPeriod is how often every node's health is checked (5s upstream).
	MonitorPeriod time.Duration
}

// health is what the controller remembers of a node between syncs: when it last
// heard from the node, and the heartbeats it has seen.
type health struct {
	probe     time.Time // last heartbeat seen, or when the node was first seen
	heartbeat time.Time // the Ready condition's lastHeartbeatTime last seen
	renewed   time.Time // the Lease's renewTime last seen
	ready     corev1.ConditionStatus
}

// Controller is the node lifecycle controller.
type Controller struct {
	client      kubernetes.Interface
	nodeLister  corelisters.NodeLister
	leaseLister coordlisters.LeaseLister
	podInformer cache.SharedIndexInformer
	synced      []cache.InformerSynced
	recorder    record.EventRecorder
	log         *slog.Logger
	cfg         Config
	queue       *queue.Queue[string]
	now         func() time.Time

	mu     sync.Mutex
	health map[string]*health
}

// New returns a node lifecycle controller; leaseInformer should watch the
// kube-node-lease namespace (other Leases are ignored).
func New(client kubernetes.Interface, nodeInformer coreinformers.NodeInformer, leaseInformer coordinformers.LeaseInformer, podInformer coreinformers.PodInformer, recorder record.EventRecorder, log *slog.Logger, cfg Config) (*Controller, error) {
	if cfg.GracePeriod == 0 {
		cfg.GracePeriod = 40 * time.Second
	}
	if cfg.StartupGracePeriod == 0 {
		cfg.StartupGracePeriod = max(60*time.Second, cfg.GracePeriod)
	}
	if cfg.MonitorPeriod == 0 {
		cfg.MonitorPeriod = 5 * time.Second
	}
	c := &Controller{
		client: client, nodeLister: nodeInformer.Lister(), leaseLister: leaseInformer.Lister(), podInformer: podInformer.Informer(),
		synced:   []cache.InformerSynced{nodeInformer.Informer().HasSynced, leaseInformer.Informer().HasSynced, podInformer.Informer().HasSynced},
		recorder: recorder, log: log, cfg: cfg, now: time.Now, health: map[string]*health{},
	}
	if err := pods.IndexByNode(c.podInformer); err != nil {
		return nil, fmt.Errorf("node lifecycle: %w", err)
	}
	c.queue = queue.New("nodelifecycle", log, c.sync)
	nodeInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { queue.Enqueue(c.queue, obj) },
		UpdateFunc: func(_, obj any) { queue.Enqueue(c.queue, obj) },
		DeleteFunc: func(obj any) { queue.Enqueue(c.queue, obj) },
	})
	leaseChanged := func(obj any) {
		if l, ok := obj.(*coordinationv1.Lease); ok && l.Namespace == corev1.NamespaceNodeLease {
			c.queue.Add(l.Name)
		}
	}
	leaseInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    leaseChanged,
		UpdateFunc: func(_, obj any) { leaseChanged(obj) },
	})
	return c, nil
}

// Run checks node health every MonitorPeriod, and on every change, until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return fmt.Errorf("node lifecycle controller: informers did not sync")
	}
	go func() {
		t := time.NewTicker(c.cfg.MonitorPeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				nodes, _ := c.nodeLister.List(labels.Everything())
				for _, n := range nodes {
					c.queue.Add(n.Name)
				}
			}
		}
	}()
	c.queue.Run(ctx, workers)
	return nil
}
