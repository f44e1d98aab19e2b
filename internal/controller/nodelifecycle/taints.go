package nodelifecycle

import (
	"context"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/berth-project/berth/internal/controller/pods"
)

// The taints this controller owns: NoExecute by readiness (they evict), NoSchedule by
// every condition and by cordoning (they only keep new pods away).
var (
	notReadyNoExecute    = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}
	unreachableNoExecute = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute}
	conditionTaints      = []struct {
		t      corev1.NodeConditionType
		status corev1.ConditionStatus
		key    string
	}{
		{corev1.NodeReady, corev1.ConditionFalse, corev1.TaintNodeNotReady},
		{corev1.NodeReady, corev1.ConditionUnknown, corev1.TaintNodeUnreachable},
		{corev1.NodeMemoryPressure, corev1.ConditionTrue, corev1.TaintNodeMemoryPressure},
		{corev1.NodeDiskPressure, corev1.ConditionTrue, corev1.TaintNodeDiskPressure},
		{corev1.NodeNetworkUnavailable, corev1.ConditionTrue, corev1.TaintNodeNetworkUnavailable},
		{corev1.NodePIDPressure, corev1.ConditionTrue, corev1.TaintNodePIDPressure},
	}
)

func managed(t corev1.Taint) bool {
	if t.Effect == corev1.TaintEffectNoExecute {
		return t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable
	}
	if t.Effect != corev1.TaintEffectNoSchedule {
		return false
	}
	if t.Key == corev1.TaintNodeUnschedulable {
		return true
	}
	for _, ct := range conditionTaints {
		if ct.key == t.Key {
			return true
		}
	}
	return false
}

// wantedTaints are the taints node's conditions and spec call for.
func wantedTaints(node *corev1.Node) []corev1.Taint {
	var out []corev1.Taint
	if ready := condition(node, corev1.NodeReady); ready != nil {
		switch ready.Status {
		case corev1.ConditionFalse:
			out = append(out, notReadyNoExecute)
		case corev1.ConditionUnknown:
			out = append(out, unreachableNoExecute)
		}
	}
	for _, ct := range conditionTaints {
		if cond := condition(node, ct.t); cond != nil && cond.Status == ct.status {
			out = append(out, corev1.Taint{Key: ct.key, Effect: corev1.TaintEffectNoSchedule})
		}
	}
	if node.Spec.Unschedulable {
		out = append(out, corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule})
	}
	return out
}

// Taints returns node's taints with the ones this controller owns replaced by the
// ones its conditions call for; taints that stay keep their time, new NoExecute
// taints are stamped with now (tolerationSeconds count from it).
func Taints(node *corev1.Node, now time.Time) []corev1.Taint {
	var out []corev1.Taint
	for _, t := range node.Spec.Taints {
		if !managed(t) {
			out = append(out, t)
		}
	}
	for _, w := range wantedTaints(node) {
		i := slices.IndexFunc(node.Spec.Taints, func(t corev1.Taint) bool { return t.MatchTaint(&w) })
		switch {
		case i >= 0:
			w = node.Spec.Taints[i]
		case w.Effect == corev1.TaintEffectNoExecute:
			w.TimeAdded = &metav1.Time{Time: now}
		}
		out = append(out, w)
	}
	return out
}

func (c *Controller) reconcileTaints(ctx context.Context, node *corev1.Node, now time.Time) (*corev1.Node, error) {
	taints := Taints(node, now)
	if sameTaints(taints, node.Spec.Taints) {
		return node, nil
	}
	n := node.DeepCopy()
	n.Spec.Taints = taints
	c.log.Info("node taints", "node", node.Name, "taints", taintKeys(taints))
	return c.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
}

func sameTaints(a, b []corev1.Taint) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(t corev1.Taint) bool {
		return !slices.ContainsFunc(b, func(u corev1.Taint) bool { return t.MatchTaint(&u) })
	})
}

func taintKeys(ts []corev1.Taint) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.ToString())
	}
	return out
}

func podsOn(c *Controller, node string) []*corev1.Pod { return pods.OnNode(c.podInformer, node) }
