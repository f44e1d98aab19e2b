// Package ttlafterfinished deletes finished Jobs (with their pods) once their
// spec.ttlSecondsAfterFinished has passed.
package ttlafterfinished

import (
	"context"
	"log/slog"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	batchinformers "k8s.io/client-go/informers/batch/v1"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/berth-project/berth/internal/controller/jobstate"
	"github.com/berth-project/berth/internal/controller/queue"
)

// Controller is the TTL-after-finished controller.
type Controller struct {
	client    kubernetes.Interface
	jobLister batchlisters.JobLister
	synced    cache.InformerSynced
	log       *slog.Logger
	queue     *queue.Queue[string]
	now       func() time.Time
}

// New returns the controller.
func New(client kubernetes.Interface, jobInformer batchinformers.JobInformer, log *slog.Logger) *Controller {
	c := &Controller{client: client, jobLister: jobInformer.Lister(), synced: jobInformer.Informer().HasSynced, log: log, now: time.Now}
	c.queue = queue.New("ttlafterfinished", log, c.sync)
	enqueue := func(obj any) {
		if j, ok := obj.(*batchv1.Job); ok && j.Spec.TTLSecondsAfterFinished != nil {
			queue.Enqueue(c.queue, j)
		}
	}
	jobInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	})
	return c
}

// Run deletes expired Jobs until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.queue.RunSynced(ctx, workers, c.synced)
}

// sync deletes the Job if its TTL has run out, or comes back when it will.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	j, err := c.jobLister.Jobs(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	_, done := jobstate.Finished(j)
	if j.Spec.TTLSecondsAfterFinished == nil || done.IsZero() || j.DeletionTimestamp != nil {
		return nil
	}
	expires := done.Add(time.Duration(*j.Spec.TTLSecondsAfterFinished) * time.Second)
	if now := c.now(); now.Before(expires) {
		c.queue.AddAfter(key, expires.Sub(now))
		return nil
	}
	c.log.Info("deleting finished job past its TTL", "job", key)
	fg := metav1.DeletePropagationForeground
	rv := j.ResourceVersion
	err = c.client.BatchV1().Jobs(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &fg, Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone, or changed (its update event brings it back)
	}
	return err
}
