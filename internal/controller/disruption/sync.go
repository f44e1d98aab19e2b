package disruption

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"

	"github.com/berth-project/berth/internal/controller/pods"
)

// sync computes one budget's status. A budget whose expected pod count cannot be
// worked out (a pod's controller is unknown) allows no disruption.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pdb, err := c.pdbLister.PodDisruptionBudgets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		return c.failSafe(ctx, pdb, err)
	}
	selected, err := c.podLister.Pods(ns).List(sel)
	if err != nil {
		return err
	}
	if len(selected) == 0 {
		c.recorder.Event(pdb, corev1.EventTypeNormal, "NoPods", "No matching pods found")
	}
	expected, desired, unmanaged, err := c.expectedPods(pdb, selected)
	if err != nil {
		c.recorder.Eventf(pdb, corev1.EventTypeWarning, "CalculateExpectedPodCountFailed", "Failed to calculate the number of expected pods: %v", err)
		return c.failSafe(ctx, pdb, err)
	}
	if len(unmanaged) > 0 {
		c.recorder.Eventf(pdb, corev1.EventTypeWarning, "UnmanagedPods", "Pods selected by this PodDisruptionBudget (selector: %v) were found "+
			"to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. "+
			"To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.", pdb.Spec.Selector)
	}
	now := c.now()
	disrupted, recheck := c.disruptedPods(pdb, selected, now)
	healthy := healthyPods(selected, disrupted, now)
	if err := c.updateStatus(ctx, pdb, Status(pdb, healthy, desired, expected, disrupted)); err != nil {
		return err
	}
	if !recheck.IsZero() {
		c.queue.AddAfter(key, recheck.Sub(now))
	}
	return nil
}

// Status is a budget's status for the given counts: disruptions are allowed while
// more pods are healthy than must be, and never while no pods are expected (a budget
// whose first pods just appeared is safe until it has been synced).
func Status(pdb *policyv1.PodDisruptionBudget, healthy, desired, expected int32, disrupted map[string]metav1.Time) policyv1.PodDisruptionBudgetStatus {
	allowed := healthy - desired
	if expected <= 0 || allowed <= 0 {
		allowed = 0
	}
	st := policyv1.PodDisruptionBudgetStatus{
		CurrentHealthy: healthy, DesiredHealthy: desired, ExpectedPods: expected, DisruptionsAllowed: allowed,
		DisruptedPods: disrupted, ObservedGeneration: pdb.Generation,
		Conditions: append([]metav1.Condition(nil), pdb.Status.Conditions...),
	}
	cond := metav1.Condition{Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionFalse, Reason: policyv1.InsufficientPodsReason, ObservedGeneration: pdb.Generation}
	if allowed > 0 {
		cond.Status, cond.Reason = metav1.ConditionTrue, policyv1.SufficientPodsReason
	}
	apimeta.SetStatusCondition(&st.Conditions, cond)
	return st
}

// expectedPods works out how many pods the budget covers and how many must stay
// healthy: an integer minAvailable counts the selected pods; a percentage or
// maxUnavailable counts the replicas their controllers want.
func (c *Controller) expectedPods(pdb *policyv1.PodDisruptionBudget, selected []*corev1.Pod) (expected, desired int32, unmanaged []string, err error) {
	switch {
	case pdb.Spec.MaxUnavailable != nil:
		if expected, unmanaged, err = c.expectedScale(selected); err != nil {
			return
		}
		var n int
		if n, err = intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, int(expected), true); err != nil {
			return
		}
		desired = max(0, expected-int32(n))
	case pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.Type == intstr.Int:
		desired, expected = pdb.Spec.MinAvailable.IntVal, int32(len(selected))
	case pdb.Spec.MinAvailable != nil:
		if expected, unmanaged, err = c.expectedScale(selected); err != nil {
			return
		}
		var n int
		n, err = intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, int(expected), true)
		desired = int32(n)
	}
	return
}

// expectedScale sums the desired replicas of the controllers of the selected pods,
// each controller once; pods without a controller are reported as unmanaged.
func (c *Controller) expectedScale(selected []*corev1.Pod) (int32, []string, error) {
	scales := map[types.UID]int32{} // by the controller that sets the scale
	seen := map[types.UID]bool{}    // the pods' own controllers
	var unmanaged []string
	for _, p := range selected {
		ref := metav1.GetControllerOfNoCopy(p)
		if ref == nil {
			unmanaged = append(unmanaged, p.Name)
			continue
		}
		if seen[ref.UID] {
			continue
		}
		seen[ref.UID] = true
		uid, scale, err := c.scaleOf(p.Namespace, ref)
		if err != nil {
			return 0, nil, fmt.Errorf("pod %q: %w", p.Name, err)
		}
		scales[uid] = scale
	}
	var total int32
	for _, s := range scales {
		total += s
	}
	return total, unmanaged, nil
}

// scaleOf finds the controller scaling a pod's controller (a ReplicaSet's Deployment)
// and its desired replicas.
func (c *Controller) scaleOf(ns string, ref *metav1.OwnerReference) (types.UID, int32, error) {
	replicas := func(p *int32) int32 {
		if p == nil {
			return 1
		}
		return *p
	}
	switch ref.Kind {
	case "ReplicaSet":
		rs, err := c.rsLister.ReplicaSets(ns).Get(ref.Name)
		if err != nil || rs.UID != ref.UID {
			break
		}
		if dref := metav1.GetControllerOfNoCopy(rs); dref != nil && dref.Kind == "Deployment" {
			d, err := c.dLister.Deployments(ns).Get(dref.Name)
			if err == nil && d.UID == dref.UID {
				return d.UID, replicas(d.Spec.Replicas), nil
			}
		}
		return rs.UID, replicas(rs.Spec.Replicas), nil
	case "StatefulSet":
		ss, err := c.ssLister.StatefulSets(ns).Get(ref.Name)
		if err == nil && ss.UID == ref.UID {
			return ss.UID, replicas(ss.Spec.Replicas), nil
		}
	case "ReplicationController":
		rc, err := c.rcLister.ReplicationControllers(ns).Get(ref.Name)
		if err == nil && rc.UID == ref.UID {
			return rc.UID, replicas(rc.Spec.Replicas), nil
		}
	}
	return "", 0, fmt.Errorf("found no controllers for %s %s", ref.Kind, ref.Name)
}

// disruptedPods keeps the evicted pods not yet seen deleted within the deletion
// timeout, and says when the earliest of them times out.
func (c *Controller) disruptedPods(pdb *policyv1.PodDisruptionBudget, selected []*corev1.Pod, now time.Time) (map[string]metav1.Time, time.Time) {
	var out map[string]metav1.Time
	var recheck time.Time
	for _, p := range selected {
		if p.DeletionTimestamp != nil {
			continue
		}
		at, ok := pdb.Status.DisruptedPods[p.Name]
		if !ok {
			continue
		}
		expires := at.Add(deletionTimeout)
		if expires.Before(now) {
			c.recorder.Eventf(p, corev1.EventTypeWarning, "NotDeleted", "Pod was expected by PDB %s/%s to be deleted but it wasn't", pdb.Namespace, pdb.Name)
			continue
		}
		if out == nil {
			out = map[string]metav1.Time{}
		}
		out[p.Name] = at
		if recheck.IsZero() || expires.Before(recheck) {
			recheck = expires
		}
	}
	return out, recheck
}

// healthyPods counts the ready pods that are neither being deleted nor just evicted.
func healthyPods(selected []*corev1.Pod, disrupted map[string]metav1.Time, now time.Time) int32 {
	var n int32
	for _, p := range selected {
		if p.DeletionTimestamp != nil {
			continue
		}
		if at, ok := disrupted[p.Name]; ok && at.Add(deletionTimeout).After(now) {
			continue
		}
		if pods.Ready(p) {
			n++
		}
	}
	return n
}

func (c *Controller) updateStatus(ctx context.Context, pdb *policyv1.PodDisruptionBudget, st policyv1.PodDisruptionBudgetStatus) error {
	if equality.Semantic.DeepEqual(pdb.Status, st) {
		return nil
	}
	cp := pdb.DeepCopy()
	cp.Status = st
	_, err := c.client.PolicyV1().PodDisruptionBudgets(pdb.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	return err
}

// failSafe allows no disruption when the budget cannot be computed.
func (c *Controller) failSafe(ctx context.Context, pdb *policyv1.PodDisruptionBudget, cause error) error {
	st := *pdb.Status.DeepCopy()
	st.DisruptionsAllowed = 0
	st.ObservedGeneration = pdb.Generation
	apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionFalse,
		Reason: policyv1.SyncFailedReason, Message: cause.Error(), ObservedGeneration: pdb.Generation})
	if err := c.updateStatus(ctx, pdb, st); err != nil {
		return err
	}
	return cause
}
