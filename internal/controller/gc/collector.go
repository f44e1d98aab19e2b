// Package gc is the garbage collector: it follows ownerReferences across every
// resource that can be listed, watched and deleted, deletes dependents whose owners
// are gone (background cascading deletion), deletes the dependents of an owner being
// deleted in the foreground before letting it go, and orphans the dependents of an
// owner deleted with the orphan policy.
package gc

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"

	"github.com/berth-project/berth/internal/controller/queue"
)

// ref names one object: what to delete or orphan, and its owners.
type ref struct {
	gvr             schema.GroupVersionResource
	namespace, name string
	uid             types.UID
}

func (r ref) String() string {
	return fmt.Sprintf("%s %s/%s (%s)", r.gvr.Resource, r.namespace, r.name, r.uid)
}

// ignored resources are never owners or dependents worth watching (upstream's list).
var ignored = []schema.GroupResource{{Group: "", Resource: "events"}, {Group: "events.k8s.io", Resource: "events"}}

// Collector is the garbage collector.
type Collector struct {
	client    dynamic.Interface
	discovery discovery.DiscoveryInterface
	typed     informers.SharedInformerFactory // shares built-in informers with the other controllers
	untyped   dynamicinformer.DynamicSharedInformerFactory
	log       *slog.Logger

	mu       sync.RWMutex
	mapper   meta.RESTMapper
	monitors map[schema.GroupVersionResource]cache.SharedIndexInformer

	deletes *queue.Queue[ref] // objects that may have to go
	orphans *queue.Queue[ref] // owners whose dependents must be let go first
	absent  *absentOwners
}

// New returns a collector; typed provides the informers of built-in resources (it may
// be shared with other controllers), client everything else.
func New(client dynamic.Interface, disc discovery.DiscoveryInterface, typed informers.SharedInformerFactory, log *slog.Logger) *Collector {
	c := &Collector{
		client: client, discovery: disc, typed: typed, log: log,
		untyped:  dynamicinformer.NewDynamicSharedInformerFactory(client, 0),
		monitors: map[schema.GroupVersionResource]cache.SharedIndexInformer{},
		absent:   newAbsentOwners(1000),
	}
	c.deletes = queue.New("garbagecollector-delete", log, c.attemptToDelete)
	c.orphans = queue.New("garbagecollector-orphan", log, c.attemptToOrphan)
	return c
}

// Run discovers the resources to watch (again every resync, for new resource types),
// waits for their informers and collects garbage with the given number of workers
// until ctx is done.
func (c *Collector) Run(ctx context.Context, workers int, resync time.Duration) error {
	// The API server may not answer yet: keep trying.
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 10*time.Second) {
		err := c.discover(ctx)
		if err == nil {
			break
		}
		c.log.Info("garbage collector: discovery failed, retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
	if !cache.WaitForCacheSync(ctx.Done(), c.synced()...) {
		return fmt.Errorf("garbage collector: informers did not sync")
	}
	c.log.Info("garbage collector synced", "resources", len(c.synced()))
	go func() {
		t := time.NewTicker(resync)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := c.discover(ctx); err != nil {
					c.log.Error("garbage collector: discovery", "err", err)
				}
			}
		}
	}()
	go c.orphans.Run(ctx, workers)
	c.deletes.Run(ctx, workers)
	return nil
}

func (c *Collector) synced() []cache.InformerSynced {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []cache.InformerSynced
	for _, inf := range c.monitors {
		out = append(out, inf.HasSynced)
	}
	return out
}

// discover watches every resource that can be listed, watched and deleted.
func (c *Collector) discover(ctx context.Context) error {
	lists, err := c.discovery.ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return fmt.Errorf("garbage collector: discovery: %w", err)
	}
	groups, err := restmapper.GetAPIGroupResources(c.discovery)
	if err != nil {
		return fmt.Errorf("garbage collector: discovery: %w", err)
	}
	c.mu.Lock()
	c.mapper = restmapper.NewDiscoveryRESTMapper(groups)
	c.mu.Unlock()
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			gvr := gv.WithResource(r.Name)
			if !deletable(r) || slices.Contains(ignored, gvr.GroupResource()) {
				continue
			}
			c.watch(gvr)
		}
	}
	c.typed.Start(ctx.Done())
	c.untyped.Start(ctx.Done())
	return nil
}

func deletable(r metav1.APIResource) bool {
	verbs := metav1.Verbs(r.Verbs)
	for _, v := range []string{"delete", "list", "watch"} {
		if !slices.Contains(verbs, v) {
			return false
		}
	}
	return !strings.Contains(r.Name, "/")
}

// watch starts following gvr's objects, once.
func (c *Collector) watch(gvr schema.GroupVersionResource) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.monitors[gvr]; ok {
		return
	}
	var inf cache.SharedIndexInformer
	if g, err := c.typed.ForResource(gvr); err == nil {
		inf = g.Informer()
	} else {
		inf = c.untyped.ForResource(gvr).Informer()
	}
	c.addMonitorLocked(gvr, inf)
}

func (c *Collector) addMonitorLocked(gvr schema.GroupVersionResource, inf cache.SharedIndexInformer) {
	if err := inf.AddIndexers(indexers); err != nil {
		c.log.Error("garbage collector: index", "resource", gvr.String(), "err", err)
		return
	}
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.added(gvr, obj) },
		UpdateFunc: func(old, obj any) { c.updated(gvr, old, obj) },
		DeleteFunc: func(obj any) { c.deleted(gvr, obj) },
	})
	c.monitors[gvr] = inf
}
