// Package endpointslice keeps the endpoints of every Service with a selector: the
// EndpointSlices (discovery.k8s.io) that proxies and DNS read, and the legacy core/v1
// Endpoints object older clients read. Services without a selector are left to
// whoever manages their endpoints.
package endpointslice

import (
	"context"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/berth-project/berth/internal/controller/queue"
)

// Labels marking what this controller manages (upstream's values, so that
// upstream's tools recognise them).
const (
	ManagedBy          = "endpointslice-controller.k8s.io"
	endpointsManagedBy = "endpoint-controller"
	endpointsLabel     = "endpoints.kubernetes.io/managed-by"
	headlessLabel      = "service.kubernetes.io/headless"
)

// Controller is the EndpointSlice and Endpoints controller.
type Controller struct {
	client      kubernetes.Interface
	svcLister   corelisters.ServiceLister
	podLister   corelisters.PodLister
	sliceLister discoverylisters.EndpointSliceLister
	epLister    corelisters.EndpointsLister
	synced      []cache.InformerSynced
	recorder    record.EventRecorder
	log         *slog.Logger
	queue       *queue.Queue[string]
}

// New returns the controller.
func New(client kubernetes.Interface, svcInformer coreinformers.ServiceInformer, podInformer coreinformers.PodInformer,
	sliceInformer discoveryinformers.EndpointSliceInformer, epInformer coreinformers.EndpointsInformer, recorder record.EventRecorder, log *slog.Logger) *Controller {
	c := &Controller{
		client: client, svcLister: svcInformer.Lister(), podLister: podInformer.Lister(), sliceLister: sliceInformer.Lister(), epLister: epInformer.Lister(),
		synced: []cache.InformerSynced{svcInformer.Informer().HasSynced, podInformer.Informer().HasSynced,
			sliceInformer.Informer().HasSynced, epInformer.Informer().HasSynced},
		recorder: recorder, log: log,
	}
	c.queue = queue.New("endpointslice", log, c.sync)
	svcInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { queue.Enqueue(c.queue, obj) },
		UpdateFunc: func(_, obj any) { queue.Enqueue(c.queue, obj) },
		DeleteFunc: func(obj any) { queue.Enqueue(c.queue, obj) },
	})
	podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.podChanged(nil, obj) },
		UpdateFunc: func(old, obj any) {
			if old.(*corev1.Pod).ResourceVersion != obj.(*corev1.Pod).ResourceVersion {
				c.podChanged(old, obj)
			}
		},
		DeleteFunc: func(obj any) { c.podChanged(nil, obj) },
	})
	ownerChanged := func(obj any) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		switch o := obj.(type) {
		case *discoveryv1.EndpointSlice:
			if o.Labels[discoveryv1.LabelManagedBy] == ManagedBy && o.Labels[discoveryv1.LabelServiceName] != "" {
				c.queue.Add(o.Namespace + "/" + o.Labels[discoveryv1.LabelServiceName])
			}
		case *corev1.Endpoints:
			if o.Labels[endpointsLabel] == endpointsManagedBy {
				queue.Enqueue(c.queue, o)
			}
		}
	}
	for _, inf := range []cache.SharedIndexInformer{sliceInformer.Informer(), epInformer.Informer()} {
		inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    ownerChanged,
			UpdateFunc: func(_, obj any) { ownerChanged(obj) },
			DeleteFunc: ownerChanged,
		})
	}
	return c
}

// Run keeps endpoints current with the given number of workers until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.queue.RunSynced(ctx, workers, c.synced...)
}

// podChanged queues the Services selecting the pod, before and after the change.
func (c *Controller) podChanged(old, cur any) {
	if tomb, ok := cur.(cache.DeletedFinalStateUnknown); ok {
		cur = tomb.Obj
	}
	p, ok := cur.(*corev1.Pod)
	if !ok {
		return
	}
	sets := []labels.Set{p.Labels}
	if o, ok := old.(*corev1.Pod); ok && !labels.Equals(o.Labels, p.Labels) {
		sets = append(sets, o.Labels)
	}
	svcs, _ := c.svcLister.Services(p.Namespace).List(labels.Everything())
	for _, s := range svcs {
		if len(s.Spec.Selector) == 0 {
			continue
		}
		sel := labels.SelectorFromValidatedSet(s.Spec.Selector)
		for _, l := range sets {
			if sel.Matches(l) {
				queue.Enqueue(c.queue, s)
				break
			}
		}
	}
}

// sync brings one Service's EndpointSlices and Endpoints in line with its pods.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := c.svcLister.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		// Slices go with their owner (garbage collector); Endpoints have none.
		return c.deleteEndpoints(ctx, ns, name)
	}
	if err != nil {
		return err
	}
	if len(svc.Spec.Selector) == 0 || svc.Spec.Type == corev1.ServiceTypeExternalName || svc.DeletionTimestamp != nil {
		return nil
	}
	selected, err := c.podLister.Pods(ns).List(labels.SelectorFromValidatedSet(svc.Spec.Selector))
	if err != nil {
		return err
	}
	groups := Desired(svc, selected)
	if err := c.reconcileSlices(ctx, svc, groups); err != nil {
		return err
	}
	return c.reconcileEndpoints(ctx, svc, groups)
}

// serviceLabels are the labels the Service's endpoint objects carry: the Service's
// own, and whether it is headless.
func serviceLabels(svc *corev1.Service) map[string]string {
	out := map[string]string{}
	for k, v := range svc.Labels {
		out[k] = v
	}
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		out[headlessLabel] = ""
	}
	return out
}
