// Package podgc is the pod garbage collector: it deletes the pods nothing else will —
// those bound to nodes that no longer exist, those being deleted that no kubelet will
// finish (never scheduled, or on a node tainted out-of-service), and the oldest
// finished pods beyond a threshold.
package podgc

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Config tunes the collector; zero values take upstream's defaults.
type Config struct {
	Period             time.Duration // 20s: how often pods are swept
	TerminatedPodLimit int           // 12500: finished pods kept
	Quarantine         time.Duration // 40s: how long a node must stay gone
}

// Collector is the pod garbage collector.
type Collector struct {
	client     kubernetes.Interface
	podLister  corelisters.PodLister
	nodeLister corelisters.NodeLister
	synced     []cache.InformerSynced
	log        *slog.Logger
	cfg        Config
	now        func() time.Time
	missing    map[string]time.Time // node name → when it was first seen missing
}

// New returns a pod garbage collector.
func New(client kubernetes.Interface, podInformer coreinformers.PodInformer, nodeInformer coreinformers.NodeInformer, log *slog.Logger, cfg Config) *Collector {
	if cfg.Period == 0 {
		cfg.Period = 20 * time.Second
	}
	if cfg.TerminatedPodLimit == 0 {
		cfg.TerminatedPodLimit = 12500
	}
	if cfg.Quarantine == 0 {
		cfg.Quarantine = 40 * time.Second
	}
	return &Collector{
		client: client, podLister: podInformer.Lister(), nodeLister: nodeInformer.Lister(),
		synced: []cache.InformerSynced{podInformer.Informer().HasSynced, nodeInformer.Informer().HasSynced},
		log:    log, cfg: cfg, now: time.Now, missing: map[string]time.Time{},
	}
}

// Run sweeps every Period until ctx is done.
func (c *Collector) Run(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return fmt.Errorf("pod garbage collector: informers did not sync")
	}
	t := time.NewTicker(c.cfg.Period)
	defer t.Stop()
	for {
		if err := c.sweep(ctx); err != nil {
			c.log.Info("pod garbage collection failed, will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// sweep deletes, once, every pod that is garbage now.
func (c *Collector) sweep(ctx context.Context) error {
	all, err := c.podLister.List(labels.Everything())
	if err != nil {
		return err
	}
	var finished []*corev1.Pod
	var errs []error
	// Whether a node is gone is decided once per sweep, not once per pod bound to it:
	// a dead node's hundred pods cost one uncached read, not a hundred.
	gone := map[string]bool{}
	nodeGone := func(name string) bool {
		g, ok := gone[name]
		if !ok {
			g = c.nodeGone(ctx, name)
			gone[name] = g
		}
		return g
	}
	for _, p := range all {
		why := ""
		switch {
		case p.DeletionTimestamp != nil && p.Spec.NodeName == "":
			why = "terminating pod that was never scheduled"
		case p.Spec.NodeName != "" && nodeGone(p.Spec.NodeName):
			why = "pod bound to a node that no longer exists"
		case p.DeletionTimestamp != nil && c.outOfService(p.Spec.NodeName):
			why = "terminating pod on an out-of-service node"
		case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
			finished = append(finished, p)
		}
		if why != "" {
			errs = append(errs, c.forceDelete(ctx, p, why))
		}
	}
	if extra := len(finished) - c.cfg.TerminatedPodLimit; extra > 0 {
		sort.Slice(finished, func(i, j int) bool { return finished[i].CreationTimestamp.Before(&finished[j].CreationTimestamp) })
		for _, p := range finished[:extra] {
			errs = append(errs, c.forceDelete(ctx, p, "finished pods beyond the threshold"))
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// nodeGone reports whether a node has been missing for the quarantine period, which
// an uncached read confirms (the informer may not show a new node yet).
func (c *Collector) nodeGone(ctx context.Context, name string) bool {
	if _, err := c.nodeLister.Get(name); err == nil {
		delete(c.missing, name)
		return false
	}
	since, ok := c.missing[name]
	if !ok {
		c.missing[name] = c.now()
		return false
	}
	if c.now().Sub(since) < c.cfg.Quarantine {
		return false
	}
	_, err := c.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	return apierrors.IsNotFound(err)
}

func (c *Collector) outOfService(name string) bool {
	n, err := c.nodeLister.Get(name)
	return err == nil && slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool {
		return t.Key == corev1.TaintNodeOutOfService && t.Effect == corev1.TaintEffectNoExecute
	})
}

func (c *Collector) forceDelete(ctx context.Context, p *corev1.Pod, why string) error {
	c.log.Info("deleting pod", "pod", p.Namespace+"/"+p.Name, "why", why)
	var zero int64
	err := c.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
