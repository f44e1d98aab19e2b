// Package replicaset is the ReplicaSet controller: it keeps the number of active pods
// a ReplicaSet owns at spec.replicas, and reports how many are ready and available.
package replicaset

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

	"github.com/berth-project/berth/internal/controller/expectations"
	"github.com/berth-project/berth/internal/controller/pods"
	"github.com/berth-project/berth/internal/controller/queue"
)

// Kind is what ReplicaSets are called in owner references.
var Kind = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")

// burstReplicas caps how many pods one sync creates or deletes.
const burstReplicas = 500

// Controller is the ReplicaSet controller.
type Controller struct {
	client    kubernetes.Interface
	rsLister  appslisters.ReplicaSetLister
	podLister corelisters.PodLister
	synced    []cache.InformerSynced
	recorder  record.EventRecorder
	log       *slog.Logger
	queue     *queue.Queue[string]
	exp       *expectations.Expectations
	now       func() time.Time
}

// New returns a ReplicaSet controller fed by the given informers; events go to recorder.
func New(client kubernetes.Interface, rsInformer appsinformers.ReplicaSetInformer, podInformer coreinformers.PodInformer, recorder record.EventRecorder, log *slog.Logger) *Controller {
	c := &Controller{
		client: client, rsLister: rsInformer.Lister(), podLister: podInformer.Lister(),
		synced:   []cache.InformerSynced{rsInformer.Informer().HasSynced, podInformer.Informer().HasSynced},
		recorder: recorder, log: log, exp: expectations.New(), now: time.Now,
	}
	c.queue = queue.New("replicaset", log, c.sync)
	rsInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { queue.Enqueue(c.queue, obj) },
		UpdateFunc: func(_, obj any) { queue.Enqueue(c.queue, obj) },
		DeleteFunc: func(obj any) {
			if key, ok := queue.Key(obj); ok {
				c.exp.Forget(key)
				c.queue.Add(key)
			}
		},
	})
	podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.addPod,
		UpdateFunc: c.updatePod,
		DeleteFunc: c.deletePod,
	})
	return c
}

// Run syncs ReplicaSets with the given number of workers until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.queue.RunSynced(ctx, workers, c.synced...)
}

// owner returns the ReplicaSet a controller reference points at, if it still exists.
func (c *Controller) owner(namespace string, ref *metav1.OwnerReference) *appsv1.ReplicaSet {
	if ref == nil || ref.Kind != Kind.Kind {
		return nil
	}
	rs, err := c.rsLister.ReplicaSets(namespace).Get(ref.Name)
	if err != nil || rs.UID != ref.UID {
		return nil
	}
	return rs
}

// selecting returns the ReplicaSets whose selector matches an orphan pod's labels.
func (c *Controller) selecting(pod *corev1.Pod) []*appsv1.ReplicaSet {
	all, _ := c.rsLister.ReplicaSets(pod.Namespace).List(labels.Everything())
	var out []*appsv1.ReplicaSet
	for _, rs := range all {
		sel, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		out = append(out, rs)
	}
	return out
}

func (c *Controller) addPod(obj any) {
	pod := obj.(*corev1.Pod)
	if pod.DeletionTimestamp != nil {
		c.deletePod(pod) // seen first while going away: counts as gone for expectations
		return
	}
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
		if rs := c.owner(pod.Namespace, ref); rs != nil {
			key, _ := queue.Key(rs)
			c.exp.CreationObserved(key)
			c.queue.Add(key)
		}
		return
	}
	for _, rs := range c.selecting(pod) {
		queue.Enqueue(c.queue, rs)
	}
}

func (c *Controller) updatePod(old, cur any) {
	oldPod, curPod := old.(*corev1.Pod), cur.(*corev1.Pod)
	if oldPod.ResourceVersion == curPod.ResourceVersion {
		return
	}
	labelsChanged := !labels.Equals(oldPod.Labels, curPod.Labels)
	if curPod.DeletionTimestamp != nil {
		c.deletePod(curPod)
		if labelsChanged {
			c.deletePod(oldPod)
		}
		return
	}
	oldRef, curRef := metav1.GetControllerOfNoCopy(oldPod), metav1.GetControllerOfNoCopy(curPod)
	refChanged := (oldRef == nil) != (curRef == nil) || (oldRef != nil && oldRef.UID != curRef.UID)
	if refChanged && oldRef != nil {
		if rs := c.owner(oldPod.Namespace, oldRef); rs != nil {
			queue.Enqueue(c.queue, rs)
		}
	}
	if curRef != nil {
		rs := c.owner(curPod.Namespace, curRef)
		if rs == nil {
			return
		}
		queue.Enqueue(c.queue, rs)
		// Availability comes minReadySeconds after readiness, with no event to mark it.
		if m := rs.Spec.MinReadySeconds; m > 0 && !pods.Ready(oldPod) && pods.Ready(curPod) {
			key, _ := queue.Key(rs)
			c.queue.AddAfter(key, time.Duration(m)*time.Second+time.Second)
		}
		return
	}
	if labelsChanged || refChanged {
		for _, rs := range c.selecting(curPod) {
			queue.Enqueue(c.queue, rs)
		}
	}
}

func (c *Controller) deletePod(obj any) {
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
	rs := c.owner(pod.Namespace, metav1.GetControllerOfNoCopy(pod))
	if rs == nil {
		return
	}
	key, _ := queue.Key(rs)
	c.exp.DeletionObserved(key, podKey(pod))
	c.queue.Add(key)
}

func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }
