package kubelet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	podWorkers   = 16
	relistPeriod = time.Second      // how often CRI is listed for state changes (upstream's PLEG period)
	podResync    = 30 * time.Second // every pod is synced at least this often (volume contents refresh)
	uidIndex     = "uid"
	syncTimeout  = 5 * time.Minute // long enough for a large image's pull
)

// podSource feeds pod UIDs to the workers: from the informer on pods bound to this node, and from
// a relist of the runtime that notices containers that started, exited or vanished.
type podSource struct {
	k        *Kubelet
	informer cache.SharedIndexInformer
	queue    workqueue.TypedRateLimitingInterface[types.UID]

	mu   sync.Mutex
	seen map[types.UID]string      // the runtime state each pod had at the last relist
	gone map[types.UID]*corev1.Pod // pods deleted from the API whose containers may still run

	relisted time.Time // the last successful relist
}

// healthy says why the pod source is not keeping up with the runtime: no successful relist
// for half a minute (upstream's PLEG health rule, with its 3 minutes shortened).
func (s *podSource) healthy() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.relisted.IsZero() {
		return fmt.Errorf("pods not synced yet: waiting for the API server's pod list")
	}
	if d := time.Since(s.relisted); d > 30*time.Second {
		return fmt.Errorf("the container runtime has not been listed for %s", d.Round(time.Second))
	}
	return nil
}

func newPodSource(k *Kubelet) *podSource {
	lw := cache.NewListWatchFromClient(k.client.CoreV1().RESTClient(), "pods", metav1.NamespaceAll,
		fields.OneTermEqualSelector("spec.nodeName", k.cfg.NodeName))
	inf := cache.NewSharedIndexInformer(listThenWatch{lw}, &corev1.Pod{}, podResync, cache.Indexers{
		uidIndex: func(obj any) ([]string, error) { return []string{string(obj.(*corev1.Pod).UID)}, nil },
	})
	s := &podSource{
		k:        k,
		informer: inf,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[types.UID](200*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[types.UID]{Name: "kubelet-pods"}),
		seen: map[types.UID]string{},
		gone: map[types.UID]*corev1.Pod{},
	}
	enqueue := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if p, ok := obj.(*corev1.Pod); ok {
			s.queue.Add(p.UID)
		}
	}
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				s.mu.Lock()
				s.gone[p.UID] = p
				s.mu.Unlock()
			}
			enqueue(obj)
		},
	})
	return s
}

// pod returns the pod with this UID from the informer's cache (never to be modified), or nil.
func (s *podSource) pod(uid types.UID) *corev1.Pod {
	objs, err := s.informer.GetIndexer().ByIndex(uidIndex, string(uid))
	if err != nil || len(objs) == 0 {
		return nil
	}
	return objs[0].(*corev1.Pod)
}

// sweepPodDirs queues every pod that has a directory on the node, so that one left behind by
// a kubelet that stopped between removing a pod's containers and its directory goes too.
func (s *podSource) sweepPodDirs() {
	entries, _ := os.ReadDir(filepath.Join(s.k.cfg.RootDir, "pods"))
	for _, e := range entries {
		if e.IsDir() {
			s.queue.Add(types.UID(e.Name()))
		}
	}
}

// list returns the pods bound to this node, as the informer has them (never to be modified).
func (s *podSource) list() []*corev1.Pod {
	var out []*corev1.Pod
	for _, o := range s.informer.GetStore().List() {
		out = append(out, o.(*corev1.Pod))
	}
	return out
}

// lastKnown returns the last version of a pod that was deleted from the API (its grace period
// and preStop hooks still apply to its containers), and forgets it.
func (s *podSource) lastKnown(uid types.UID) *corev1.Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.gone[uid]
	delete(s.gone, uid)
	return p
}

func (s *podSource) run(ctx context.Context) error {
	defer s.queue.ShutDown()
	go s.informer.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), s.informer.HasSynced, s.k.services.HasSynced) {
		return nil
	}
	// Only now may pods missing from the cache be treated as deleted: before the first list a
	// restarted kubelet would otherwise kill every pod it is meant to adopt.
	var wg sync.WaitGroup
	for range podWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s.work(ctx) {
			}
		}()
	}
	s.sweepPodDirs()
	go s.watchContainerEvents(ctx)
	s.relistLoop(ctx)
	s.queue.ShutDown()
	wg.Wait()
	return nil
}

func (s *podSource) work(ctx context.Context) bool {
	uid, quit := s.queue.Get()
	if quit {
		return false
	}
	defer s.queue.Done(uid)
	start := time.Now()
	// A runtime that hangs must not take a worker for good; a sync that times out is retried.
	sctx, cancel := context.WithTimeout(ctx, syncTimeout)
	after, err := s.k.syncPod(sctx, uid)
	cancel()
	s.k.log.Debug("pod synced", "uid", uid, "took", time.Since(start), "requeue", after)
	var we *waitingError
	switch {
	case err != nil && ctx.Err() == nil:
		if errors.As(err, &we) {
			s.k.log.Info("pod waiting", "uid", uid, "reason", we.reason, "err", err)
		} else {
			s.k.log.Error("syncing pod", "uid", uid, "err", err)
		}
		s.queue.AddRateLimited(uid)
	default:
		s.queue.Forget(uid)
		if after > 0 {
			s.queue.AddAfter(uid, after)
		}
	}
	return true
}

// relistLoop lists the runtime's sandboxes and containers every relistPeriod and queues the pods
// whose runtime state changed. containerd 1.6 has no container event stream over CRI, so this is
// how exits are noticed.
func (s *podSource) relistLoop(ctx context.Context) {
	tick := time.NewTicker(relistPeriod)
	defer tick.Stop()
	for {
		if err := s.relist(ctx); err != nil && ctx.Err() == nil {
			s.k.log.Warn("listing the runtime's containers", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *podSource) relist(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sbs, err := s.k.runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return err
	}
	cs, err := s.k.runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return err
	}
	parts := map[types.UID][]string{}
	for _, sb := range sbs.Items {
		if uid := sb.Labels[labelPodUID]; uid != "" {
			parts[types.UID(uid)] = append(parts[types.UID(uid)], fmt.Sprintf("s%s=%d", sb.Id, sb.State))
		}
	}
	for _, c := range cs.Containers {
		if uid := c.Labels[labelPodUID]; uid != "" {
			parts[types.UID(uid)] = append(parts[types.UID(uid)], fmt.Sprintf("c%s=%d", c.Id, c.State))
		}
	}
	now := map[types.UID]string{}
	for uid, p := range parts {
		sort.Strings(p)
		now[uid] = strings.Join(p, ",")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for uid, fp := range now {
		if s.seen[uid] != fp {
			s.queue.Add(uid)
		}
	}
	for uid := range s.seen {
		if _, ok := now[uid]; !ok {
			s.queue.Add(uid)
		}
	}
	s.seen = now
	s.relisted = time.Now()
	return nil
}

// listThenWatch makes the reflector list and then watch instead of asking for a watch-list
// stream (sendInitialEvents): a kubelet must work against API servers older than the feature,
// which never send the stream's closing bookmark (Berth's did not at first).
type listThenWatch struct{ *cache.ListWatch }

func (listThenWatch) IsWatchListSemanticsUnSupported() bool { return true }
