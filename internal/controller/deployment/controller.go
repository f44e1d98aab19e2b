// Package deployment is the Deployment controller: it rolls a Deployment's pod
// template out through ReplicaSets (RollingUpdate or Recreate), scales them
// proportionally, keeps revisions for rollback and reports progress.
package deployment

import (
	"context"
	"log/slog"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/berth-project/berth/internal/controller/queue"
)

// Kind is what Deployments are called in owner references.
var Kind = appsv1.SchemeGroupVersion.WithKind("Deployment")

// Controller is the Deployment controller.
type Controller struct {
	client    kubernetes.Interface
	dLister   appslisters.DeploymentLister
	rsLister  appslisters.ReplicaSetLister
	podLister corelisters.PodLister
	synced    []cache.InformerSynced
	recorder  record.EventRecorder
	log       *slog.Logger
	queue     *queue.Queue[string]
	now       func() time.Time
}

// New returns a Deployment controller fed by the given informers.
func New(client kubernetes.Interface, dInformer appsinformers.DeploymentInformer, rsInformer appsinformers.ReplicaSetInformer, podInformer coreinformers.PodInformer, recorder record.EventRecorder, log *slog.Logger) *Controller {
	c := &Controller{
		client: client, dLister: dInformer.Lister(), rsLister: rsInformer.Lister(), podLister: podInformer.Lister(),
		synced:   []cache.InformerSynced{dInformer.Informer().HasSynced, rsInformer.Informer().HasSynced, podInformer.Informer().HasSynced},
		recorder: recorder, log: log, now: time.Now,
	}
	c.queue = queue.New("deployment", log, c.sync)
	dInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { queue.Enqueue(c.queue, obj) },
		UpdateFunc: func(_, obj any) { queue.Enqueue(c.queue, obj) },
		DeleteFunc: func(obj any) { queue.Enqueue(c.queue, obj) },
	})
	rsInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.replicaSetChanged(nil, obj) },
		UpdateFunc: c.replicaSetChanged,
		DeleteFunc: func(obj any) { c.replicaSetChanged(nil, obj) },
	})
	podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: c.podDeleted})
	return c
}

// Run syncs Deployments with the given number of workers until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.queue.RunSynced(ctx, workers, c.synced...)
}

// replicaSetChanged queues the Deployment controlling a ReplicaSet (before and after
// the change), or, for an orphan, every Deployment that could adopt it.
func (c *Controller) replicaSetChanged(old, cur any) {
	rs, ok := cur.(*appsv1.ReplicaSet)
	if !ok {
		tomb, ok := cur.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if rs, ok = tomb.Obj.(*appsv1.ReplicaSet); !ok {
			return
		}
	}
	if o, ok := old.(*appsv1.ReplicaSet); ok {
		if o.ResourceVersion == rs.ResourceVersion {
			return
		}
		if ref := metav1.GetControllerOfNoCopy(o); ref != nil {
			if d := c.owner(o.Namespace, ref); d != nil {
				queue.Enqueue(c.queue, d)
			}
		}
	}
	if ref := metav1.GetControllerOfNoCopy(rs); ref != nil {
		if d := c.owner(rs.Namespace, ref); d != nil {
			queue.Enqueue(c.queue, d)
		}
		return
	}
	if rs.DeletionTimestamp != nil {
		return
	}
	for _, d := range c.selecting(rs.Namespace, rs.Labels) {
		queue.Enqueue(c.queue, d)
	}
}

// podDeleted wakes a Recreate Deployment waiting for its old pods to go.
func (c *Controller) podDeleted(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		tomb, ok := obj.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if pod, ok = tomb.Obj.(*corev1.Pod); !ok {
			return
		}
	}
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil || ref.Kind != "ReplicaSet" {
		return
	}
	rs, err := c.rsLister.ReplicaSets(pod.Namespace).Get(ref.Name)
	if err != nil || rs.UID != ref.UID {
		return
	}
	if d := c.owner(rs.Namespace, metav1.GetControllerOfNoCopy(rs)); d != nil && d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		queue.Enqueue(c.queue, d)
	}
}

func (c *Controller) owner(namespace string, ref *metav1.OwnerReference) *appsv1.Deployment {
	if ref == nil || ref.Kind != Kind.Kind {
		return nil
	}
	d, err := c.dLister.Deployments(namespace).Get(ref.Name)
	if err != nil || d.UID != ref.UID {
		return nil
	}
	return d
}

func (c *Controller) selecting(namespace string, l map[string]string) []*appsv1.Deployment {
	all, _ := c.dLister.Deployments(namespace).List(labels.Everything())
	var out []*appsv1.Deployment
	for _, d := range all {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(l)) {
			out = append(out, d)
		}
	}
	return out
}
