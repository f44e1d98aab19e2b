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

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
)

// Config configures Run. Zero values take the defaults noted.
type Config struct {
	// RESTConfig reaches the API server (required). Its rate limits are raised to at
	// least QPS/Burst: the defaults of client-go (5/10) would take 20 s to create 100 pods.
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
	// Disabled names controllers not to start.
	Disabled []string
}

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
	rc.QPS, rc.Burst = max(rc.QPS, cfg.QPS), max(rc.Burst, cfg.Burst)
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
	f := informers.NewSharedInformerFactory(client, cfg.Resync)
	d := deps{client: client, rest: rc, f: f, cfg: cfg, events: events}
	runners := map[string]runner{}
	for _, c := range controllers {
		if slices.Contains(cfg.Disabled, c.name) {
			continue
		}
		r, err := c.start(d)
		if err != nil {
			return fmt.Errorf("%s controller: %w", c.name, err)
		}
		runners[c.name] = r
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
	cfg.Log.Info("controllers started", "controllers", slices.Sorted(maps.Keys(runners)))
	var failed error
	select {
	case <-ctx.Done():
	case failed = <-errs:
	}
	cancel()
	wg.Wait()
	return failed
}
