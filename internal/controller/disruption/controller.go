// Package disruption is the disruption controller: it computes each
// PodDisruptionBudget's status — how many of its pods are healthy, how many must be,
// and so how many voluntary disruptions (evictions) are allowed right now. The API
// server's eviction endpoint spends that allowance.
package disruption

import (
	"context"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	policyinformers "k8s.io/client-go/informers/policy/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	policylisters "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/berth-project/berth/internal/controller/queue"
)

// deletionTimeout is how long an evicted pod counts as disrupted (not healthy) while
// it has not been seen deleted.
const deletionTimeout = 2 * time.Minute

// Informers are what the disruption controller watches: budgets, pods, and the
// controllers whose scale gives the expected number of pods.
type Informers struct {
	PDBs         policyinformers.PodDisruptionBudgetInformer
	Pods         coreinformers.PodInformer
	RCs          coreinformers.ReplicationControllerInformer
	ReplicaSets  appsinformers.ReplicaSetInformer
	Deployments  appsinformers.DeploymentInformer
	StatefulSets appsinformers.StatefulSetInformer
}

// Controller is the disruption controller.
type Controller struct {
	client    kubernetes.Interface
	pdbLister policylisters.PodDisruptionBudgetLister
	podLister corelisters.PodLister
	rcLister  corelisters.ReplicationControllerLister
	rsLister  appslisters.ReplicaSetLister
	dLister   appslisters.DeploymentLister
	ssLister  appslisters.StatefulSetLister
	synced    []cache.InformerSynced
	recorder  record.EventRecorder
	log       *slog.Logger
	queue     *queue.Queue[string]
	now       func() time.Time
}

// New returns a disruption controller.
func New(client kubernetes.Interface, inf Informers, recorder record.EventRecorder, log *slog.Logger) *Controller {
	c := &Controller{
		client: client, pdbLister: inf.PDBs.Lister(), podLister: inf.Pods.Lister(), rcLister: inf.RCs.Lister(),
		rsLister: inf.ReplicaSets.Lister(), dLister: inf.Deployments.Lister(), ssLister: inf.StatefulSets.Lister(),
		synced: []cache.InformerSynced{inf.PDBs.Informer().HasSynced, inf.Pods.Informer().HasSynced, inf.RCs.Informer().HasSynced,
			inf.ReplicaSets.Informer().HasSynced, inf.Deployments.Informer().HasSynced, inf.StatefulSets.Informer().HasSynced},
		recorder: recorder, log: log, now: time.Now,
	}
	c.queue = queue.New("disruption", log, c.sync)
	inf.PDBs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { queue.Enqueue(c.queue, obj) },
		UpdateFunc: func(_, obj any) { queue.Enqueue(c.queue, obj) },
		DeleteFunc: func(obj any) { queue.Enqueue(c.queue, obj) },
	})
	inf.Pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.podChanged,
		UpdateFunc: func(_, obj any) { c.podChanged(obj) },
		DeleteFunc: c.podChanged,
	})
	return c
}

// Run keeps budgets' status current with the given number of workers until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.queue.RunSynced(ctx, workers, c.synced...)
}

// podChanged queues the budgets selecting the pod.
func (c *Controller) podChanged(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	pdbs, _ := c.pdbLister.PodDisruptionBudgets(pod.Namespace).List(labels.Everything())
	for _, pdb := range pdbs {
		if sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err == nil && sel.Matches(labels.Set(pod.Labels)) {
			queue.Enqueue(c.queue, pdb)
		}
	}
}
