package apiserver

import (
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/berth-project/berth/internal/storage"
)

// evict deletes a pod unless that would break its PodDisruptionBudget: as upstream, a
// pod that is not running (pending, finished) or already going is deleted regardless;
// otherwise the one budget that selects it must allow a disruption, which the eviction
// uses up (status.disruptionsAllowed goes down by one and the pod is listed under
// status.disruptedPods until the disruption controller sees it gone). A budget that does
// not allow it answers 429, on which `kubectl drain` waits and retries.
func (s *Server) evict(r *http.Request, req request, ev *policyv1.Eviction) error {
	req.sub = ""
	obj, err := s.getObject(r.Context(), req.res, req.namespace, req.name)
	if err != nil {
		return err
	}
	pod := obj.(*corev1.Pod)
	opts := metav1.DeleteOptions{}
	if ev.DeleteOptions != nil {
		opts = *ev.DeleteOptions
	}
	ignorePDB := pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodPending ||
		pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
	if !ignorePDB {
		if err := s.takeDisruption(r, pod, dryRun(r)); err != nil {
			return err
		}
	}
	_, err = s.deleteObject(r.Context(), req, opts, dryRun(r))
	return err
}

func (s *Server) takeDisruption(r *http.Request, pod *corev1.Pod, dry bool) error {
	pdbRes := s.reg.get("policy", "v1", "poddisruptionbudgets")
	preq := request{gv: pdbRes.gvr.GroupVersion(), res: pdbRes, namespace: pod.Namespace}
	items, _, err := s.listMatching(r.Context(), preq, storage.ListOptions{}, listOptions{labels: labels.Everything(), fields: fields.Everything()})
	if err != nil {
		return err
	}
	var match []*policyv1.PodDisruptionBudget
	for _, o := range items {
		pdb := o.(*policyv1.PodDisruptionBudget)
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		match = append(match, pdb)
	}
	switch {
	case len(match) == 0:
		return nil
	case len(match) > 1:
		return apierrors.NewInternalError(fmt.Errorf("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."))
	}
	preq.name = match[0].Name
	preq.sub = "status"
	_, _, err = s.storeUpdate(r.Context(), preq, func(cur runtime.Object) (runtime.Object, error) {
		pdb := cur.(*policyv1.PodDisruptionBudget)
		if pdb.Status.ObservedGeneration < pdb.Generation {
			return nil, tooManyRequests(pdb, "Cannot evict pod as it would violate the pod's disruption budget.",
				"the disruption budget %s is still being processed by the server", pdb.Name)
		}
		if pdb.Status.DisruptionsAllowed <= 0 {
			return nil, tooManyRequests(pdb, "Cannot evict pod as it would violate the pod's disruption budget.",
				"The disruption budget %s needs %d healthy pods and has %d currently", pdb.Name, pdb.Status.DesiredHealthy, pdb.Status.CurrentHealthy)
		}
		pdb.Status.DisruptionsAllowed--
		if pdb.Status.DisruptedPods == nil {
			pdb.Status.DisruptedPods = map[string]metav1.Time{}
		}
		pdb.Status.DisruptedPods[pod.Name] = metav1.Now()
		return pdb, nil
	}, dry)
	return err
}

func tooManyRequests(pdb *policyv1.PodDisruptionBudget, msg, causeFormat string, args ...any) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusTooManyRequests, Reason: metav1.StatusReasonTooManyRequests,
		Message: msg,
		Details: &metav1.StatusDetails{
			Name: pdb.Name, Group: "policy", Kind: "poddisruptionbudgets",
			Causes: []metav1.StatusCause{{Type: policyv1.DisruptionBudgetCause, Message: fmt.Sprintf(causeFormat, args...)}},
		},
	}}
}
