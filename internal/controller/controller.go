// Package controller starts Berth's controllers — the control loops of
// kube-controller-manager — over one set of shared informers. Each controller is a
// Kubernetes API client only, usable on its own from its own package.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"github.com/berth-project/berth/internal/controller/cronjob"
	"github.com/berth-project/berth/internal/controller/daemonset"
	"github.com/berth-project/berth/internal/controller/deployment"
	"github.com/berth-project/berth/internal/controller/disruption"
	"github.com/berth-project/berth/internal/controller/endpointslice"
	"github.com/berth-project/berth/internal/controller/gc"
	"github.com/berth-project/berth/internal/controller/job"
	"github.com/berth-project/berth/internal/controller/nodeipam"
	"github.com/berth-project/berth/internal/controller/nodelifecycle"
	"github.com/berth-project/berth/internal/controller/replicaset"
	"github.com/berth-project/berth/internal/controller/statefulset"
	"github.com/berth-project/berth/internal/controller/tainteviction"
)

// Config configures Run. Zero values take the defaults noted.
type Config struct {
	// RESTConfig reaches the API server (required). Run raises its rate limits to
	// QPS/Burst: the defaults of client-go (5/10) would take 20 s to create 100 pods.
	RESTConfig *rest.Config
	QPS        float32 // 200
	Burst      int     // 400
	Log        *slog.Logger

	// ClusterCIDR is split into one NodeCIDRMaskSize block per node for pod IPs.
	ClusterCIDR      string // "10.42.0.0/16"
	NodeCIDRMaskSize int    // 24
	// NodeMonitorGracePeriod is how long a node may go without a heartbeat (Lease
	// renewal or Ready condition update) before it is marked unreachable.
	NodeMonitorGracePeriod time.Duration // 40s
	NodeMonitorPeriod      time.Duration // 5s: how often node health is checked

	// Resync is how often informers replay their caches to the controllers.
	Resync time.Duration // 10m
	// Disabled names controllers not to start (see Names).
	Disabled []string
}

// Names lists the controllers Run starts.
var Names = []string{"replicaset", "deployment", "garbagecollector", "nodelifecycle", "tainteviction", "nodeipam", "disruption", "job", "endpointslice", "daemonset", "cronjob", "statefulset"}

func (c *Config) defaults() {
	if c.QPS == 0 {
		c.QPS = 200
	}
	if c.Burst == 0 {
		c.Burst = 400
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.ClusterCIDR == "" {
		c.ClusterCIDR = "10.42.0.0/16"
	}
	if c.NodeCIDRMaskSize == 0 {
		c.NodeCIDRMaskSize = 24
	}
	if c.NodeMonitorGracePeriod == 0 {
		c.NodeMonitorGracePeriod = 40 * time.Second
	}
	if c.NodeMonitorPeriod == 0 {
		c.NodeMonitorPeriod = 5 * time.Second
	}
	if c.Resync == 0 {
		c.Resync = 10 * time.Minute
	}
}

// runner is a started controller's loop.
type runner func(ctx context.Context) error

// Run starts every controller not disabled and blocks until ctx is done or one of
// them fails to start; it returns nil when ctx ends.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	if cfg.RESTConfig == nil {
		return errors.New("controller: no REST config")
	}
	rc := rest.CopyConfig(cfg.RESTConfig)
	rc.QPS, rc.Burst = cfg.QPS, cfg.Burst
	rc.UserAgent = "berth-controller"
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("controller: client: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	events := record.NewBroadcaster(record.WithContext(ctx))
	events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	defer events.Shutdown()
	recorder := func(component string) record.EventRecorder {
		return events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
	}

	f := informers.NewSharedInformerFactory(client, cfg.Resync)
	log := cfg.Log
	runners := map[string]runner{}
	enabled := func(name string) bool { return !slices.Contains(cfg.Disabled, name) }
	if enabled("replicaset") {
		c := replicaset.New(client, f.Apps().V1().ReplicaSets(), f.Core().V1().Pods(), recorder("replicaset-controller"), log.With("controller", "replicaset"))
		runners["replicaset"] = func(ctx context.Context) error { return c.Run(ctx, 5) }
	}
	if enabled("deployment") {
		c := deployment.New(client, f.Apps().V1().Deployments(), f.Apps().V1().ReplicaSets(), f.Core().V1().Pods(), recorder("deployment-controller"), log.With("controller", "deployment"))
		runners["deployment"] = func(ctx context.Context) error { return c.Run(ctx, 5) }
	}
	if enabled("garbagecollector") {
		dyn, err := dynamic.NewForConfig(rc)
		if err != nil {
			return fmt.Errorf("controller: dynamic client: %w", err)
		}
		c := gc.New(dyn, client.Discovery(), f, log.With("controller", "garbagecollector"))
		runners["garbagecollector"] = func(ctx context.Context) error { return c.Run(ctx, 20, 30*time.Second) }
	}
	if enabled("nodelifecycle") {
		leases := informers.NewSharedInformerFactoryWithOptions(client, cfg.Resync, informers.WithNamespace(corev1.NamespaceNodeLease))
		c, err := nodelifecycle.New(client, f.Core().V1().Nodes(), leases.Coordination().V1().Leases(), f.Core().V1().Pods(),
			recorder("node-controller"), log.With("controller", "nodelifecycle"),
			nodelifecycle.Config{GracePeriod: cfg.NodeMonitorGracePeriod, MonitorPeriod: cfg.NodeMonitorPeriod})
		if err != nil {
			return err
		}
		leases.Start(ctx.Done())
		defer leases.Shutdown()
		runners["nodelifecycle"] = func(ctx context.Context) error { return c.Run(ctx, 2) }
	}
	if enabled("tainteviction") {
		c, err := tainteviction.New(client, f.Core().V1().Pods(), f.Core().V1().Nodes(), recorder("taint-eviction-controller"), log.With("controller", "tainteviction"))
		if err != nil {
			return err
		}
		runners["tainteviction"] = func(ctx context.Context) error { return c.Run(ctx, 4) }
	}
	if enabled("nodeipam") {
		c, err := nodeipam.New(client, f.Core().V1().Nodes(), cfg.ClusterCIDR, cfg.NodeCIDRMaskSize, recorder("node-ipam-controller"), log.With("controller", "nodeipam"))
		if err != nil {
			return err
		}
		runners["nodeipam"] = c.Run
	}
	if enabled("disruption") {
		c := disruption.New(client, disruption.Informers{
			PDBs: f.Policy().V1().PodDisruptionBudgets(), Pods: f.Core().V1().Pods(), RCs: f.Core().V1().ReplicationControllers(),
			ReplicaSets: f.Apps().V1().ReplicaSets(), Deployments: f.Apps().V1().Deployments(), StatefulSets: f.Apps().V1().StatefulSets(),
		}, recorder("disruption-controller"), log.With("controller", "disruption"))
		runners["disruption"] = func(ctx context.Context) error { return c.Run(ctx, 2) }
	}
	if enabled("job") {
		c := job.New(client, f.Batch().V1().Jobs(), f.Core().V1().Pods(), recorder("job-controller"), log.With("controller", "job"))
		runners["job"] = func(ctx context.Context) error { return c.Run(ctx, 5) }
	}
	if enabled("endpointslice") {
		c := endpointslice.New(client, f.Core().V1().Services(), f.Core().V1().Pods(), f.Discovery().V1().EndpointSlices(),
			f.Core().V1().Endpoints(), recorder("endpointslice-controller"), log.With("controller", "endpointslice"))
		runners["endpointslice"] = func(ctx context.Context) error { return c.Run(ctx, 5) }
	}
	if enabled("daemonset") {
		c := daemonset.New(client, f.Apps().V1().DaemonSets(), f.Core().V1().Pods(), f.Core().V1().Nodes(),
			f.Apps().V1().ControllerRevisions(), recorder("daemonset-controller"), log.With("controller", "daemonset"))
		runners["daemonset"] = func(ctx context.Context) error { return c.Run(ctx, 2) }
	}
	if enabled("cronjob") {
		c := cronjob.New(client, f.Batch().V1().CronJobs(), f.Batch().V1().Jobs(), recorder("cronjob-controller"), log.With("controller", "cronjob"))
		runners["cronjob"] = func(ctx context.Context) error { return c.Run(ctx, 2) }
	}
	if enabled("statefulset") {
		c := statefulset.New(client, f.Apps().V1().StatefulSets(), f.Core().V1().Pods(), f.Core().V1().PersistentVolumeClaims(),
			f.Apps().V1().ControllerRevisions(), recorder("statefulset-controller"), log.With("controller", "statefulset"))
		runners["statefulset"] = func(ctx context.Context) error { return c.Run(ctx, 2) }
	}
	f.Start(ctx.Done())
	defer f.Shutdown()

	errs := make(chan error, len(runners))
	var wg sync.WaitGroup
	for name, r := range runners {
		wg.Go(func() {
			if err := r(ctx); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("%s controller: %w", name, err)
			}
		})
	}
	log.Info("controllers started", "controllers", slices.Sorted(maps.Keys(runners)))
	var err2 error
	select {
	case <-ctx.Done():
	case err2 = <-errs:
	}
	cancel()
	wg.Wait()
	return err2
}
