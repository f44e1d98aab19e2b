package apiserver

import (
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// customSpecChanged: a custom resource's generation moves when anything but its
// metadata and status changes (as upstream counts it).
func customSpecChanged(old runtime.Object, cur *unstructured.Unstructured) bool {
	o, ok := old.(*unstructured.Unstructured)
	if !ok {
		return true
	}
	strip := func(m map[string]any) map[string]any {
		out := make(map[string]any, len(m))
		for k, v := range m {
			if k != "metadata" && k != "status" && k != "apiVersion" && k != "kind" {
				out[k] = v
			}
		}
		return out
	}
	return !equality.Semantic.DeepEqual(strip(o.Object), strip(cur.Object))
}

// withCustomStatus sets obj's status to from's (none if from has none).
func withCustomStatus(obj *unstructured.Unstructured, from runtime.Object) runtime.Object {
	f, ok := from.(*unstructured.Unstructured)
	if !ok {
		return obj
	}
	if st, found := f.Object["status"]; found {
		obj.Object["status"] = runtime.DeepCopyJSONValue(st)
	} else {
		delete(obj.Object, "status")
	}
	return obj
}

// servedAs labels a custom resource with the version it is served in: the versions of
// a CRD share their stored objects (and the watch's decoded events), differing only in
// apiVersion. obj must be the caller's to change.
func servedAs(res *resource, obj runtime.Object) runtime.Object {
	if u, ok := obj.(*unstructured.Unstructured); ok && res.custom != nil {
		u.SetGroupVersionKind(res.gvk())
	}
	return obj
}
