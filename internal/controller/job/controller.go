// Package job is the Job controller: it runs a Job's pods until enough of them
// succeed (spec.completions, or the first one for a work queue), at most
// spec.parallelism at a time, and gives up after spec.backoffLimit failures or
// spec.activeDeadlineSeconds.
package job

import (
	"context"
	"log/slog"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	batchinformers "k8s.io/client-go/informers/batch/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/berth-project/berth/internal/controller/expectations"
	"github.com/berth-project/berth/internal/controller/queue"
)

// Kind is what Jobs are called in owner references.
var Kind = batchv1.SchemeGroupVersion.WithKind("Job")

// Controller is the Job controller.
type Controller struct {
	client    kubernetes.Interface
	jobLister batchlisters.JobLister
	podLister corelisters.PodLister
	synced    []cache.InformerSynced
	recorder  record.EventRecorder
	log       *slog.Logger
	queue     *queue.Queue[string]
	exp       *expectations.Expectations
	now       func() time.Time
}

// New returns a Job controller.
func New(client kubernetes.Interface, jobInformer batchinformers.JobInformer, podInformer coreinformers.PodInformer, recorder record.EventRecorder, log *slog.Logger) *Controller {
	c := &Controller{
		client: client, jobLister: jobInformer.Lister(), podLister: podInformer.Lister(),
		synced:   []cache.InformerSynced{jobInformer.Informer().HasSynced, podInformer.Informer().HasSynced},
		recorder: recorder, log: log, exp: expectations.New(), now: time.Now,
	}
	c.queue = queue.New("job", log, c.sync)
	jobInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
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
		UpdateFunc: func(old, cur any) {
			if old.(*corev1.Pod).ResourceVersion == cur.(*corev1.Pod).ResourceVersion {
				return
			}
			if key, ok := c.ownerKey(cur); ok {
				c.queue.Add(key)
			}
			if !labels.Equals(old.(*corev1.Pod).Labels, cur.(*corev1.Pod).Labels) {
				c.orphanChanged(cur.(*corev1.Pod))
			}
		},
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if key, ok := c.ownerKey(obj); ok {
				c.exp.DeletionObserved(key, podKey(obj.(*corev1.Pod)))
				c.queue.Add(key)
			}
		},
	})
	return c
}

// Run syncs Jobs with the given number of workers until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.queue.RunSynced(ctx, workers, c.synced...)
}

// ownerKey is the key of the Job controlling obj, a pod, if it exists.
func (c *Controller) ownerKey(obj any) (string, bool) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return "", false
	}
	ref := metav1.GetControllerOfNoCopy(p)
	if ref == nil || ref.Kind != Kind.Kind {
		if ref == nil {
			c.orphanChanged(p)
		}
		return "", false
	}
	j, err := c.jobLister.Jobs(p.Namespace).Get(ref.Name)
	if err != nil || j.UID != ref.UID {
		return "", false
	}
	return p.Namespace + "/" + j.Name, true
}

// orphanChanged queues the Jobs whose selector matches an orphan pod.
func (c *Controller) orphanChanged(p *corev1.Pod) {
	if metav1.GetControllerOfNoCopy(p) != nil {
		return
	}
	jobs, _ := c.jobLister.Jobs(p.Namespace).List(labels.Everything())
	for _, j := range jobs {
		if sel, err := metav1.LabelSelectorAsSelector(j.Spec.Selector); err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels)) {
			queue.Enqueue(c.queue, j)
		}
	}
}

func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }
