package controller

import (
	"context"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
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
	"github.com/berth-project/berth/internal/controller/podgc"
	"github.com/berth-project/berth/internal/controller/replicaset"
	"github.com/berth-project/berth/internal/controller/statefulset"
	"github.com/berth-project/berth/internal/controller/tainteviction"
	"github.com/berth-project/berth/internal/controller/ttlafterfinished"
)

// deps is what the controllers are built from: one client, one set of shared
// informers, one event broadcaster.
type deps struct {
	client kubernetes.Interface
	rest   *rest.Config
	f      informers.SharedInformerFactory
	cfg    Config
	events record.EventBroadcaster
}

// recorder records events as the named component (upstream's component names).
func (d deps) recorder(component string) record.EventRecorder {
	return d.events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component})
}

func (d deps) log(name string) *slog.Logger { return d.cfg.Log.With("controller", name) }

// controllers are the controllers Run starts, each built by its start function,
// with its number of workers.
var controllers = []struct {
	name  string
	start func(d deps) (runner, error)
}{
	{"replicaset", func(d deps) (runner, error) {
		c := replicaset.New(d.client, d.f.Apps().V1().ReplicaSets(), d.f.Core().V1().Pods(), d.recorder("replicaset-controller"), d.log("replicaset"))
		return func(ctx context.Context) error { return c.Run(ctx, 5) }, nil
	}},
	{"deployment", func(d deps) (runner, error) {
		c := deployment.New(d.client, d.f.Apps().V1().Deployments(), d.f.Apps().V1().ReplicaSets(), d.f.Core().V1().Pods(), d.recorder("deployment-controller"), d.log("deployment"))
		return func(ctx context.Context) error { return c.Run(ctx, 5) }, nil
	}},
	{"garbagecollector", func(d deps) (runner, error) {
		dyn, err := dynamic.NewForConfig(d.rest)
		if err != nil {
			return nil, err
		}
		c := gc.New(dyn, d.client.Discovery(), d.f, d.log("garbagecollector"))
		return func(ctx context.Context) error { return c.Run(ctx, 20, 30*time.Second) }, nil
	}},
	{"nodelifecycle", func(d deps) (runner, error) {
		leases := informers.NewSharedInformerFactoryWithOptions(d.client, d.cfg.Resync, informers.WithNamespace(corev1.NamespaceNodeLease))
		c, err := nodelifecycle.New(d.client, d.f.Core().V1().Nodes(), leases.Coordination().V1().Leases(), d.f.Core().V1().Pods(),
			d.recorder("node-controller"), d.log("nodelifecycle"),
			nodelifecycle.Config{GracePeriod: d.cfg.NodeMonitorGracePeriod, MonitorPeriod: d.cfg.NodeMonitorPeriod})
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error {
			leases.Start(ctx.Done())
			defer leases.Shutdown()
			return c.Run(ctx, 2)
		}, nil
	}},
	{"tainteviction", func(d deps) (runner, error) {
		c, err := tainteviction.New(d.client, d.f.Core().V1().Pods(), d.f.Core().V1().Nodes(), d.recorder("taint-eviction-controller"), d.log("tainteviction"))
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { return c.Run(ctx, 4) }, nil
	}},
	{"nodeipam", func(d deps) (runner, error) {
		c, err := nodeipam.New(d.client, d.f.Core().V1().Nodes(), d.cfg.ClusterCIDR, d.cfg.NodeCIDRMaskSize, d.recorder("node-ipam-controller"), d.log("nodeipam"))
		if err != nil {
			return nil, err
		}
		return c.Run, nil
	}},
	{"disruption", func(d deps) (runner, error) {
		c := disruption.New(d.client, disruption.Informers{
			PDBs: d.f.Policy().V1().PodDisruptionBudgets(), Pods: d.f.Core().V1().Pods(), RCs: d.f.Core().V1().ReplicationControllers(),
			ReplicaSets: d.f.Apps().V1().ReplicaSets(), Deployments: d.f.Apps().V1().Deployments(), StatefulSets: d.f.Apps().V1().StatefulSets(),
		}, d.recorder("disruption-controller"), d.log("disruption"))
		return func(ctx context.Context) error { return c.Run(ctx, 2) }, nil
	}},
	{"endpointslice", func(d deps) (runner, error) {
		c := endpointslice.New(d.client, d.f.Core().V1().Services(), d.f.Core().V1().Pods(), d.f.Discovery().V1().EndpointSlices(),
			d.f.Core().V1().Endpoints(), d.recorder("endpointslice-controller"), d.log("endpointslice"))
		return func(ctx context.Context) error { return c.Run(ctx, 5) }, nil
	}},
	{"job", func(d deps) (runner, error) {
		c := job.New(d.client, d.f.Batch().V1().Jobs(), d.f.Core().V1().Pods(), d.recorder("job-controller"), d.log("job"))
		return func(ctx context.Context) error { return c.Run(ctx, 5) }, nil
	}},
	{"ttlafterfinished", func(d deps) (runner, error) {
		c := ttlafterfinished.New(d.client, d.f.Batch().V1().Jobs(), d.log("ttlafterfinished"))
		return func(ctx context.Context) error { return c.Run(ctx, 2) }, nil
	}},
	{"cronjob", func(d deps) (runner, error) {
		c := cronjob.New(d.client, d.f.Batch().V1().CronJobs(), d.f.Batch().V1().Jobs(), d.recorder("cronjob-controller"), d.log("cronjob"))
		return func(ctx context.Context) error { return c.Run(ctx, 2) }, nil
	}},
	{"daemonset", func(d deps) (runner, error) {
		c := daemonset.New(d.client, d.f.Apps().V1().DaemonSets(), d.f.Core().V1().Pods(), d.f.Core().V1().Nodes(),
			d.f.Apps().V1().ControllerRevisions(), d.recorder("daemonset-controller"), d.log("daemonset"))
		return func(ctx context.Context) error { return c.Run(ctx, 2) }, nil
	}},
	{"podgc", func(d deps) (runner, error) {
		c := podgc.New(d.client, d.f.Core().V1().Pods(), d.f.Core().V1().Nodes(), d.log("podgc"), podgc.Config{})
		return c.Run, nil
	}},
	{"statefulset", func(d deps) (runner, error) {
		c := statefulset.New(d.client, d.f.Apps().V1().StatefulSets(), d.f.Core().V1().Pods(), d.f.Core().V1().PersistentVolumeClaims(),
			d.f.Apps().V1().ControllerRevisions(), d.recorder("statefulset-controller"), d.log("statefulset"))
		return func(ctx context.Context) error { return c.Run(ctx, 2) }, nil
	}},
}
