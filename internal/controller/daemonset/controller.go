// Package daemonset is the DaemonSet controller: one pod of the template on every
// node that fits it (node selector, required node affinity, taints), updated node by
// node within maxUnavailable, with a ControllerRevision per template for
// kubectl rollout history and undo.
package daemonset

import (
	"context"
	"log/slog"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/berth-project/berth/internal/controller/expectations"
	"github.com/berth-project/berth/internal/controller/queue"
)

// Kind is what DaemonSets are called in owner references.
var Kind = appsv1.SchemeGroupVersion.WithKind("DaemonSet")

// Controller is the DaemonSet controller.
type Controller struct {
	client     kubernetes.Interface
	dsLister   appslisters.DaemonSetLister
	podLister  corelisters.PodLister
	nodeLister corelisters.NodeLister
	crLister   appslisters.ControllerRevisionLister
	synced     []cache.InformerSynced
	recorder   record.EventRecorder
	log        *slog.Logger
	queue      *queue.Queue[string]
	exp        *expectations.Expectations
	now        func() time.Time
}

// New returns a DaemonSet controller.
func New(client kubernetes.Interface, dsInformer appsinformers.DaemonSetInformer, podInformer coreinformers.PodInformer, nodeInformer coreinformers.NodeInformer,
	crInformer appsinformers.ControllerRevisionInformer, recorder record.EventRecorder, log *slog.Logger) *Controller {
	c := &Controller{
		client: client, dsLister: dsInformer.Lister(), podLister: podInformer.Lister(), nodeLister: nodeInformer.Lister(), crLister: crInformer.Lister(),
		synced: []cache.InformerSynced{dsInformer.Informer().HasSynced, podInformer.Informer().HasSynced,
			nodeInformer.Informer().HasSynced, crInformer.Informer().HasSynced},
		recorder: recorder, log: log, exp: expectations.New(), now: time.Now,
	}
	c.queue = queue.New("daemonset", log, c.sync)
	dsInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { queue.Enqueue(c.queue, obj) },
		UpdateFunc: func(_, obj any) { queue.Enqueue(c.queue, obj) },
		DeleteFunc: func(obj any) {
			if key, ok := queue.Key(obj); ok {
				c.exp.Forget(key)
			}
		},
	})
	podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if key, ok := c.ownerKey(obj); ok {
				c.exp.CreationObserved(key)
				c.queue.Add(key)
			}
		},
		UpdateFunc: func(old, obj any) {
			if old.(*corev1.Pod).ResourceVersion == obj.(*corev1.Pod).ResourceVersion {
				return
			}
			if key, ok := c.ownerKey(obj); ok {
				c.queue.Add(key)
				if m := c.minReadySeconds(key); m > 0 {
					c.queue.AddAfter(key, time.Duration(m)*time.Second+time.Second)
				}
			}
		},
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if key, ok := c.ownerKey(obj); ok {
				p := obj.(*corev1.Pod)
				c.exp.DeletionObserved(key, p.Namespace+"/"+p.Name)
				c.queue.Add(key)
			}
		},
	})
	nodeInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.enqueueAll() },
		UpdateFunc: func(old, obj any) { c.nodeChanged(old.(*corev1.Node), obj.(*corev1.Node)) },
		DeleteFunc: func(any) { c.enqueueAll() },
	})
	return c
}

// Run syncs DaemonSets with the given number of workers until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.queue.RunSynced(ctx, workers, c.synced...)
}

func (c *Controller) ownerKey(obj any) (string, bool) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return "", false
	}
	ref := metav1.GetControllerOfNoCopy(p)
	if ref == nil || ref.Kind != Kind.Kind {
		return "", false
	}
	ds, err := c.dsLister.DaemonSets(p.Namespace).Get(ref.Name)
	if err != nil || ds.UID != ref.UID {
		return "", false
	}
	return p.Namespace + "/" + ds.Name, true
}

func (c *Controller) minReadySeconds(key string) int32 {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	if ds, err := c.dsLister.DaemonSets(ns).Get(name); err == nil {
		return ds.Spec.MinReadySeconds
	}
	return 0
}

func (c *Controller) enqueueAll() {
	all, _ := c.dsLister.List(labels.Everything())
	for _, ds := range all {
		queue.Enqueue(c.queue, ds)
	}
}

// nodeChanged resyncs every DaemonSet when what decides placement changed.
func (c *Controller) nodeChanged(old, cur *corev1.Node) {
	if !labels.Equals(old.Labels, cur.Labels) || !equality.Semantic.DeepEqual(old.Spec.Taints, cur.Spec.Taints) {
		c.enqueueAll()
	}
}
