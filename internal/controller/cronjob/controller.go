// Package cronjob is the CronJob controller: it creates a Job from the CronJob's
// template at every time its schedule names (in its time zone), within the starting
// deadline, as its concurrency policy allows, and keeps a bounded history of
// finished Jobs.
package cronjob

import (
	"context"
	"log/slog"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	batchinformers "k8s.io/client-go/informers/batch/v1"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/berth-project/berth/internal/controller/queue"
)

// Kind is what CronJobs are called in owner references.
var Kind = batchv1.SchemeGroupVersion.WithKind("CronJob")

// Controller is the CronJob controller.
type Controller struct {
	client    kubernetes.Interface
	cjLister  batchlisters.CronJobLister
	jobLister batchlisters.JobLister
	synced    []cache.InformerSynced
	recorder  record.EventRecorder
	log       *slog.Logger
	queue     *queue.Queue[string]
	now       func() time.Time
}

// New returns a CronJob controller.
func New(client kubernetes.Interface, cjInformer batchinformers.CronJobInformer, jobInformer batchinformers.JobInformer, recorder record.EventRecorder, log *slog.Logger) *Controller {
	c := &Controller{
		client: client, cjLister: cjInformer.Lister(), jobLister: jobInformer.Lister(),
		synced:   []cache.InformerSynced{cjInformer.Informer().HasSynced, jobInformer.Informer().HasSynced},
		recorder: recorder, log: log, now: time.Now,
	}
	c.queue = queue.New("cronjob", log, c.sync)
	cjInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { queue.Enqueue(c.queue, obj) },
		UpdateFunc: func(_, obj any) { queue.Enqueue(c.queue, obj) },
	})
	jobChanged := func(obj any) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		j, ok := obj.(*batchv1.Job)
		if !ok {
			return
		}
		if ref := metav1.GetControllerOfNoCopy(j); ref != nil && ref.Kind == Kind.Kind {
			c.queue.Add(j.Namespace + "/" + ref.Name)
		}
	}
	jobInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    jobChanged,
		UpdateFunc: func(_, obj any) { jobChanged(obj) },
		DeleteFunc: jobChanged,
	})
	return c
}

// Run syncs CronJobs with the given number of workers until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.queue.RunSynced(ctx, workers, c.synced...)
}
