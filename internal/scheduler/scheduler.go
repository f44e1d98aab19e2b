// Package scheduler is Berth's kube-scheduler: it watches pods and nodes through the
// Kubernetes API (client-go informers), places each pending pod on a node with the
// plugins of package framework, and binds it through pods/binding. It is a pure API
// client and imports no other Berth component.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/berth-project/berth/internal/scheduler/framework"
	"github.com/berth-project/berth/internal/scheduler/plugins"
)

// Options configure a Scheduler; zero values take upstream's defaults.
type Options struct {
	Log *slog.Logger
	// Name is the schedulerName this scheduler serves ("default-scheduler"); pods that
	// name another scheduler are left alone.
	Name string
	// Informers is a shared informer factory to take the pod and node informers from
	// (so controllers in the same process share one watch); nil makes a private one.
	// Run starts it either way.
	Informers informers.SharedInformerFactory
	// Plugins replaces the default plugins (plugins.Default()).
	Plugins []framework.Entry
	// PercentageOfNodesToScore bounds how many feasible nodes are found before scoring;
	// 0 is upstream's adaptive 50% − nodes/125, at least 5% and 100 nodes.
	PercentageOfNodesToScore int32
	// Parallelism is how many goroutines filter and score nodes (GOMAXPROCS).
	Parallelism int
	// BackoffInitial and BackoffMax bound the wait before retrying a pod that failed
	// (1s doubling to 10s).
	BackoffInitial, BackoffMax time.Duration
	// MaxUnschedulable is how long a pod waits for a helpful cluster change before it
	// is tried again anyway (60s).
	MaxUnschedulable time.Duration
	// MaxBindsInFlight bounds concurrent binding requests (256).
	MaxBindsInFlight int
	// LeaderElect makes Run schedule only while holding the kube-system/kube-scheduler
	// Lease, so that several servers sharing one cluster run one scheduler between them.
	LeaderElect bool
	// Identity names this scheduler in the Lease (default: host name and a random suffix).
	Identity string
}

// Scheduler places pending pods on nodes.
type Scheduler struct {
	client   kubernetes.Interface
	log      *slog.Logger
	name     string
	factory  informers.SharedInformerFactory
	pods     listerscorev1.PodLister
	synced   []toolscache.InformerSynced
	cache    *cache
	queue    *queue
	placer   *placer
	snapshot *framework.Snapshot
	events   record.EventBroadcaster
	recorder record.EventRecorder
	binds    chan struct{} // a slot per binding in flight
	bindWG   sync.WaitGroup
	leader   *leaderConfig // nil without leader election
}

// New builds a scheduler over client and registers its informer handlers.
func New(client kubernetes.Interface, o Options) (*Scheduler, error) {
	if client == nil {
		return nil, errors.New("scheduler: no Kubernetes client")
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Name == "" {
		o.Name = corev1.DefaultSchedulerName
	}
	if o.Plugins == nil {
		o.Plugins = plugins.Default()
	}
	if o.BackoffInitial <= 0 {
		o.BackoffInitial = time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 10 * time.Second
	}
	if o.MaxUnschedulable <= 0 {
		o.MaxUnschedulable = 60 * time.Second
	}
	if o.MaxBindsInFlight <= 0 {
		o.MaxBindsInFlight = 256
	}
	fw, err := framework.New(o.Parallelism, o.Plugins...)
	if err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	if o.Informers == nil {
		o.Informers = informers.NewSharedInformerFactory(ListThenWatch{client}, 0)
	}
	s := &Scheduler{
		client: client, log: o.Log, name: o.Name, factory: o.Informers,
		cache:    newCache(),
		queue:    newQueue(fw.Interested, o.BackoffInitial, o.BackoffMax, o.MaxUnschedulable),
		placer:   &placer{fw: fw, percentage: o.PercentageOfNodesToScore},
		snapshot: framework.NewSnapshot(),
		binds:    make(chan struct{}, o.MaxBindsInFlight),
	}
	podInformer := o.Informers.Core().V1().Pods()
	nodeInformer := o.Informers.Core().V1().Nodes()
	s.pods = podInformer.Lister()
	if _, err := podInformer.Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: s.addPod, UpdateFunc: s.updatePod, DeleteFunc: s.deletePod,
	}); err != nil {
		return nil, fmt.Errorf("scheduler: pod informer: %w", err)
	}
	if _, err := nodeInformer.Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: s.addNode, UpdateFunc: s.updateNode, DeleteFunc: s.deleteNode,
	}); err != nil {
		return nil, fmt.Errorf("scheduler: node informer: %w", err)
	}
	s.synced = []toolscache.InformerSynced{podInformer.Informer().HasSynced, nodeInformer.Informer().HasSynced}
	if o.LeaderElect {
		s.leader = newLeaderConfig(o.Name, o.Identity)
	}
	s.events = record.NewBroadcaster()
	s.recorder = s.events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: o.Name})
	return s, nil
}

// Run schedules pods until ctx is done, then waits for bindings in flight. With
// LeaderElect it schedules only while leading, and returns ErrLostLeadership if the
// lease is lost (the scheduler cannot be run again: make a new one).
func (s *Scheduler) Run(ctx context.Context) error {
	if s.leader != nil {
		return s.runLeading(ctx)
	}
	return s.run(ctx)
}

func (s *Scheduler) run(ctx context.Context) error {
	s.factory.Start(ctx.Done())
	if !toolscache.WaitForCacheSync(ctx.Done(), s.synced...) {
		return fmt.Errorf("scheduler: informers did not sync: %w", ctx.Err())
	}
	// Events are written by one goroutine from a bounded queue; when the API falls
	// behind they are dropped rather than slowing scheduling.
	sink := s.events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.client.CoreV1().Events("")})
	defer func() {
		sink.Stop()
		s.events.Shutdown()
	}()
	s.log.Info("scheduler started", "name", s.name)
	go s.flushLoop(ctx)
	go func() {
		<-ctx.Done()
		s.queue.Close()
	}()
	for s.scheduleOne(ctx) {
	}
	s.bindWG.Wait()
	s.log.Info("scheduler stopped")
	return nil
}

// flushLoop moves pods whose backoff ended to active every second, and retries pods
// unschedulable for too long, as upstream's queue does.
func (s *Scheduler) flushLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.queue.Flush()
		}
	}
}

// ListThenWatch wraps a client so that informers made from it list and then watch,
// instead of asking for a watch-list stream (sendInitialEvents): client-go asks for
// one by default, and waits forever for its closing bookmark from an API server that
// does not send it (Berth's, for now).
type ListThenWatch struct{ kubernetes.Interface }

// IsWatchListSemanticsUnSupported tells client-go's reflector to list, then watch.
func (ListThenWatch) IsWatchListSemanticsUnSupported() bool { return true }

// ClientConfig returns a copy of cfg tuned for the scheduler: protobuf on the wire
// and client-side rate limits high enough for thousands of bindings per second.
func ClientConfig(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.ContentType = "application/vnd.kubernetes.protobuf"
	c.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	c.QPS, c.Burst = 5000, 10000
	if c.UserAgent == "" {
		c.UserAgent = "berth-scheduler"
	}
	return c
}
