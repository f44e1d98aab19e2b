package nodelifecycle

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The conditions a silent node's kubelet can no longer vouch for.
var kubeletConditions = []corev1.NodeConditionType{corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure}

// sync checks one node: a node silent for longer than its grace period has its
// conditions set to Unknown; its taints are brought in line with its conditions; when
// it stops being ready its pods are marked not ready.
func (c *Controller) sync(ctx context.Context, name string) error {
	node, err := c.nodeLister.Get(name)
	if apierrors.IsNotFound(err) {
		c.mu.Lock()
		delete(c.health, name)
		c.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	now := c.now()
	h := c.observe(node, now)
	grace := c.cfg.GracePeriod
	if condition(node, corev1.NodeReady) == nil {
		grace = c.cfg.StartupGracePeriod
	}
	if now.After(h.probe.Add(grace)) {
		if node, err = c.markUnknown(ctx, node, now); err != nil {
			return err
		}
	}
	if node, err = c.reconcileTaints(ctx, node, now); err != nil {
		return err
	}
	ready := corev1.ConditionUnknown
	if cond := condition(node, corev1.NodeReady); cond != nil {
		ready = cond.Status
	}
	c.mu.Lock()
	was := h.ready
	h.ready = ready
	c.mu.Unlock()
	if ready != corev1.ConditionTrue {
		if was == corev1.ConditionTrue {
			c.log.Info("node is not ready", "node", name, "ready", string(ready))
			c.recorder.Eventf(node, corev1.EventTypeNormal, "NodeNotReady", "Node %s status is now: NodeNotReady", name)
		}
		return c.markPodsNotReady(ctx, node)
	}
	return nil
}

// observe records the heartbeats the node sent since the last sync: a newer Ready
// condition heartbeat, or a renewed Lease.
func (c *Controller) observe(node *corev1.Node, now time.Time) *health {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.health[node.Name]
	if !ok {
		h = &health{probe: now, ready: corev1.ConditionUnknown}
		if cond := condition(node, corev1.NodeReady); cond != nil {
			h.ready = cond.Status
		}
		c.health[node.Name] = h
	}
	if cond := condition(node, corev1.NodeReady); cond != nil && cond.LastHeartbeatTime.Time.After(h.heartbeat) {
		if ok {
			h.probe = now
		}
		h.heartbeat = cond.LastHeartbeatTime.Time
	}
	if lease, err := c.leaseLister.Leases(corev1.NamespaceNodeLease).Get(node.Name); err == nil && lease.Spec.RenewTime != nil && lease.Spec.RenewTime.After(h.renewed) {
		if ok {
			h.probe = now
		}
		h.renewed = lease.Spec.RenewTime.Time
	}
	return h
}

// markUnknown sets the kubelet's conditions to Unknown: nobody knows them any more.
func (c *Controller) markUnknown(ctx context.Context, node *corev1.Node, now time.Time) (*corev1.Node, error) {
	n := node.DeepCopy()
	changed := false
	for _, t := range kubeletConditions {
		cond := condition(n, t)
		switch {
		case cond == nil:
			n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{
				Type: t, Status: corev1.ConditionUnknown, Reason: "NodeStatusNeverUpdated", Message: "Kubelet never posted node status.",
				LastHeartbeatTime: node.CreationTimestamp, LastTransitionTime: metav1.NewTime(now),
			})
			changed = true
		case cond.Status != corev1.ConditionUnknown:
			cond.Status, cond.Reason, cond.Message = corev1.ConditionUnknown, "NodeStatusUnknown", "Kubelet stopped posting node status."
			cond.LastTransitionTime = metav1.NewTime(now)
			changed = true
		}
	}
	if !changed {
		return node, nil
	}
	c.log.Info("node stopped posting status", "node", node.Name)
	return c.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
}

func condition(node *corev1.Node, t corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range node.Status.Conditions {
		if node.Status.Conditions[i].Type == t {
			return &node.Status.Conditions[i]
		}
	}
	return nil
}

// markPodsNotReady sets Ready=False on the node's pods that still claim readiness, so
// that Services and rollouts stop counting on them.
func (c *Controller) markPodsNotReady(ctx context.Context, node *corev1.Node) error {
	for _, p := range podsOn(c, node.Name) {
		cond := podCondition(p)
		if cond == nil || cond.Status != corev1.ConditionTrue || p.DeletionTimestamp != nil {
			continue
		}
		cp := p.DeepCopy()
		cond = podCondition(cp)
		cond.Status, cond.LastTransitionTime = corev1.ConditionFalse, metav1.NewTime(c.now())
		if _, err := c.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return err
		}
		c.recorder.Event(p, corev1.EventTypeWarning, "NodeNotReady", "Node is not ready")
	}
	return nil
}

func podCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}
