package apiserver

import (
	"fmt"
	"strings"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// scaleFor is the Scale of a workload, or of a custom resource whose CRD declares a
// scale subresource (replicas and selector at the paths it names).
func scaleFor(res *resource, obj runtime.Object) (*autoscalingv1.Scale, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok || res.custom == nil || res.custom.scale == nil {
		return scaleOf(obj)
	}
	sc := res.custom.scale
	s := &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{Kind: "Scale", APIVersion: "autoscaling/v1"},
		ObjectMeta: metav1.ObjectMeta{Name: u.GetName(), Namespace: u.GetNamespace(), UID: u.GetUID(),
			ResourceVersion: u.GetResourceVersion(), CreationTimestamp: u.GetCreationTimestamp()},
	}
	if n, found, err := unstructured.NestedInt64(u.Object, jsonFields(sc.SpecReplicasPath)...); err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("%s: %w", sc.SpecReplicasPath, err))
	} else if found {
		s.Spec.Replicas = int32(n)
	}
	if n, found, _ := unstructured.NestedInt64(u.Object, jsonFields(sc.StatusReplicasPath)...); found {
		s.Status.Replicas = int32(n)
	}
	if sc.LabelSelectorPath != nil {
		if sel, found, _ := unstructured.NestedString(u.Object, jsonFields(*sc.LabelSelectorPath)...); found {
			s.Status.Selector = sel
		}
	}
	return s, nil
}

// setReplicasFor writes a Scale's replicas into the workload or custom resource.
func setReplicasFor(res *resource, obj runtime.Object, n int32) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok || res.custom == nil || res.custom.scale == nil {
		setReplicas(obj, n)
		return
	}
	unstructured.SetNestedField(u.Object, int64(n), jsonFields(res.custom.scale.SpecReplicasPath)...)
}

// jsonFields splits a CRD's simple JSON path (".spec.replicas") into field names.
func jsonFields(path string) []string {
	return strings.Split(strings.TrimPrefix(path, "."), ".")
}
