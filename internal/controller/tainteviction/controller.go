// Package tainteviction deletes pods from nodes with NoExecute taints they do not
// tolerate: at once, or when the shortest tolerationSeconds of the tolerations they
// need runs out.
package tainteviction

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/berth-project/berth/internal/controller/pods"
	"github.com/berth-project/berth/internal/controller/queue"
)

// Controller is the taint eviction controller.
type Controller struct {
	client      kubernetes.Interface
	podLister   corelisters.PodLister
	nodeLister  corelisters.NodeLister
	podInformer cache.SharedIndexInformer
	synced      []cache.InformerSynced
	recorder    record.EventRecorder
	log         *slog.Logger
	queue       *queue.Queue[string]
	now         func() time.Time

	mu    sync.Mutex
	since map[string]time.Time // pod key → when its toleration countdown started
}

// New returns a taint eviction controller.
func New(client kubernetes.Interface, podInformer coreinformers.PodInformer, nodeInformer coreinformers.NodeInformer, recorder record.EventRecorder, log *slog.Logger) (*Controller, error) {
	c := &Controller{
		client: client, podLister: podInformer.Lister(), nodeLister: nodeInformer.Lister(), podInformer: podInformer.Informer(),
		synced:   []cache.InformerSynced{podInformer.Informer().HasSynced, nodeInformer.Informer().HasSynced},
		recorder: recorder, log: log, now: time.Now, since: map[string]time.Time{},
	}
	if err := pods.IndexByNode(c.podInformer); err != nil {
		return nil, fmt.Errorf("taint eviction: %w", err)
	}
	c.queue = queue.New("tainteviction", log, c.sync)
	podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if p := obj.(*corev1.Pod); p.Spec.NodeName != "" {
				queue.Enqueue(c.queue, obj)
			}
		},
		UpdateFunc: func(old, cur any) {
			o, p := old.(*corev1.Pod), cur.(*corev1.Pod)
			if p.Spec.NodeName != "" && (o.Spec.NodeName != p.Spec.NodeName || !equality.Semantic.DeepEqual(o.Spec.Tolerations, p.Spec.Tolerations)) {
				queue.Enqueue(c.queue, cur)
			}
		},
		DeleteFunc: func(obj any) {
			if key, ok := queue.Key(obj); ok {
				c.forget(key)
			}
		},
	})
	nodeChanged := func(old, cur any) {
		n, ok := cur.(*corev1.Node)
		if !ok {
			return
		}
		if o, ok := old.(*corev1.Node); ok && slices.EqualFunc(noExecute(o.Spec.Taints), noExecute(n.Spec.Taints), sameTaint) {
			return
		}
		for _, p := range pods.OnNode(c.podInformer, n.Name) {
			queue.Enqueue(c.queue, p)
		}
	}
	nodeInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { nodeChanged(nil, obj) },
		UpdateFunc: nodeChanged,
	})
	return c, nil
}

func sameTaint(a, b corev1.Taint) bool { return a.MatchTaint(&b) && a.Value == b.Value }

// Run evicts with the given number of workers until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.queue.RunSynced(ctx, workers, c.synced...)
}

func noExecute(taints []corev1.Taint) []corev1.Taint {
	var out []corev1.Taint
	for _, t := range taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			out = append(out, t)
		}
	}
	return out
}

// Tolerance says how long a pod may stay on a node with the given NoExecute taints:
// not at all (false) if one of them is not tolerated; forever (a negative duration)
// if no toleration that matches one of them has tolerationSeconds; otherwise the
// shortest tolerationSeconds among the matching tolerations.
func Tolerance(tolerations []corev1.Toleration, taints []corev1.Taint) (time.Duration, bool) {
	least := time.Duration(-1)
	for i := range taints {
		tolerated := false
		for j := range tolerations {
			if !tolerations[j].ToleratesTaint(logr.Discard(), &taints[i], false) {
				continue
			}
			tolerated = true
			if s := tolerations[j].TolerationSeconds; s != nil {
				d := max(0, time.Duration(*s)*time.Second)
				if least < 0 || d < least {
					least = d
				}
			}
		}
		if !tolerated {
			return 0, false
		}
	}
	return least, true
}

// sync evicts the pod now, schedules its eviction, or cancels a scheduled one.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := c.podLister.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) || (err == nil && (pod.DeletionTimestamp != nil || pod.Spec.NodeName == "")) {
		c.forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	node, err := c.nodeLister.Get(pod.Spec.NodeName)
	if apierrors.IsNotFound(err) {
		c.forget(key)
		return nil
	}
	if err != nil {
		return err
	}
	taints := noExecute(node.Spec.Taints)
	if len(taints) == 0 {
		c.cancel(pod, key)
		return nil
	}
	tolerance, tolerated := Tolerance(pod.Spec.Tolerations, taints)
	if tolerated && tolerance < 0 {
		c.cancel(pod, key)
		return nil
	}
	now := c.now()
	c.mu.Lock()
	start, ok := c.since[key]
	if !ok {
		start = now
		c.since[key] = start
	}
	c.mu.Unlock()
	if tolerated && now.Before(start.Add(tolerance)) {
		c.queue.AddAfter(key, start.Add(tolerance).Sub(now))
		return nil
	}
	return c.evict(ctx, pod, key)
}

func (c *Controller) cancel(pod *corev1.Pod, key string) {
	c.mu.Lock()
	_, scheduled := c.since[key]
	delete(c.since, key)
	c.mu.Unlock()
	if scheduled {
		c.recorder.Eventf(pod, corev1.EventTypeNormal, "TaintManagerEviction", "Cancelling deletion of Pod %s", key)
	}
}

func (c *Controller) forget(key string) {
	c.mu.Lock()
	delete(c.since, key)
	c.mu.Unlock()
}

// evict records why the pod goes (an event and the DisruptionTarget condition) and
// deletes it.
func (c *Controller) evict(ctx context.Context, pod *corev1.Pod, key string) error {
	c.log.Info("evicting pod from tainted node", "pod", key, "node", pod.Spec.NodeName)
	c.recorder.Eventf(pod, corev1.EventTypeNormal, "TaintManagerEviction", "Marking for deletion Pod %s", key)
	cp := pod.DeepCopy()
	cp.Status.Conditions = append(slices.DeleteFunc(cp.Status.Conditions, func(c corev1.PodCondition) bool { return c.Type == corev1.DisruptionTarget }),
		corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "DeletionByTaintManager",
			Message: "Taint manager: deleting due to NoExecute taint", LastTransitionTime: metav1.NewTime(c.now())})
	if _, err := c.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		c.log.Info("could not mark pod as disrupted", "pod", key, "err", err)
	}
	err := c.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	c.forget(key)
	return nil
}
