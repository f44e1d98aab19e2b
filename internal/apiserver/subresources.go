package apiserver

import (
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// createSub serves POST to a subresource: a pod's binding and eviction.
func (s *Server) createSub(w http.ResponseWriter, r *http.Request, req request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	switch {
	case req.res.kind == "ServiceAccount" && req.sub == "token":
		return s.tokenRequest(w, r, req, body)
	case req.res.kind == "Pod" && req.sub == "binding":
		obj, err := decodeObject(r, body, schema.GroupVersionKind{Version: "v1", Kind: "Binding"}, func() runtime.Object { return &corev1.Binding{} })
		if err != nil {
			return err
		}
		b := obj.(*corev1.Binding)
		// the binding writes spec.nodeName and the PodScheduled condition both
		_, _, err = s.storeUpdate(r.Context(), req, func(cur runtime.Object) (runtime.Object, error) {
			pod := cur.(*corev1.Pod)
			if pod.Spec.NodeName != "" {
				return nil, apierrors.NewConflict(req.res.gvr.GroupResource(), req.name, fmt.Errorf("pod %s is already assigned to node %q", req.name, pod.Spec.NodeName))
			}
			pod.Spec.NodeName = b.Target.Name
			// As upstream: the PodScheduled condition turns True (an earlier
			// Unschedulable one is replaced, not kept beside it).
			cond := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}
			replaced := false
			for i := range pod.Status.Conditions {
				if pod.Status.Conditions[i].Type == corev1.PodScheduled {
					pod.Status.Conditions[i], replaced = cond, true
				}
			}
			if !replaced {
				pod.Status.Conditions = append(pod.Status.Conditions, cond)
			}
			return pod, nil
		}, dryRun(r))
		if err != nil {
			return err
		}
		s.writeObject(w, r, http.StatusCreated, &metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusCreated}, schema.GroupVersion{Version: "v1"})
		return nil
	case req.res.kind == "Pod" && req.sub == "eviction":
		obj, err := decodeObject(r, body, schema.GroupVersionKind{Group: "policy", Version: "v1", Kind: "Eviction"}, func() runtime.Object { return &policyv1.Eviction{} })
		if err != nil {
			return err
		}
		if err := s.evict(r, req, obj.(*policyv1.Eviction)); err != nil {
			return err
		}
		s.writeObject(w, r, http.StatusCreated, &metav1.Status{Status: metav1.StatusSuccess, Code: http.StatusCreated}, schema.GroupVersion{Version: "v1"})
		return nil
	}
	return apierrors.NewMethodNotSupported(req.res.gvr.GroupResource(), "create "+req.sub)
}
