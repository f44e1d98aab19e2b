// Package statefulset is the StatefulSet controller: pods with stable names
// (NAME-0, NAME-1, ...), hostnames under the governing Service and their own
// PersistentVolumeClaims, created in order and each waiting for the one before to be
// ready (OrderedReady) or all at once (Parallel), scaled down from the highest
// ordinal, and updated from the highest ordinal down to the partition.
package statefulset

import (
	"context"
	"log/slog"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/berth-project/berth/internal/controller/queue"
)

// Kind is what StatefulSets are called in owner references.
var Kind = appsv1.SchemeGroupVersion.WithKind("StatefulSet")

// Controller is the StatefulSet controller.
type Controller struct {
	client    kubernetes.Interface
	setLister appslisters.StatefulSetLister
	podLister corelisters.PodLister
	pvcLister corelisters.PersistentVolumeClaimLister
	crLister  appslisters.ControllerRevisionLister
	synced    []cache.InformerSynced
	recorder  record.EventRecorder
	log       *slog.Logger
	queue     *queue.Queue[string]
	now       func() time.Time
}

// New returns a StatefulSet controller.
func New(client kubernetes.Interface, setInformer appsinformers.StatefulSetInformer, podInformer coreinformers.PodInformer,
	pvcInformer coreinformers.PersistentVolumeClaimInformer, crInformer appsinformers.ControllerRevisionInformer, recorder record.EventRecorder, log *slog.Logger) *Controller {
	c := &Controller{
		client: client, setLister: setInformer.Lister(), podLister: podInformer.Lister(), pvcLister: pvcInformer.Lister(), crLister: crInformer.Lister(),
		synced: []cache.InformerSynced{setInformer.Informer().HasSynced, podInformer.Informer().HasSynced,
			pvcInformer.Informer().HasSynced, crInformer.Informer().HasSynced},
		recorder: recorder, log: log, now: time.Now,
	}
	c.queue = queue.New("statefulset", log, c.sync)
	setInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { queue.Enqueue(c.queue, obj) },
		UpdateFunc: func(_, obj any) { queue.Enqueue(c.queue, obj) },
	})
	podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.podChanged(nil, obj, false) },
		UpdateFunc: func(old, obj any) { c.podChanged(old, obj, false) },
		DeleteFunc: func(obj any) { c.podChanged(nil, obj, true) },
	})
	return c
}

// Run syncs StatefulSets with the given number of workers until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.queue.RunSynced(ctx, workers, c.synced...)
}
