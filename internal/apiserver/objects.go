package apiserver

import (
	"fmt"
	"reflect"

	"github.com/google/uuid"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func typesUID(s string) types.UID { return types.UID(s) }

// field returns the named top-level struct field of a typed object, if it has one.
func structField(obj runtime.Object, name string) (reflect.Value, bool) {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	f := v.Elem().FieldByName(name)
	return f, f.IsValid()
}

// hasSpec reports whether the object has a spec, whose changes move its generation.
func hasSpec(obj runtime.Object) bool {
	if _, ok := obj.(*unstructured.Unstructured); ok {
		return true // custom resources: see customSpecChanged
	}
	_, ok := structField(obj, "Spec")
	return ok
}

func specChanged(old, cur runtime.Object) bool {
	if u, ok := cur.(*unstructured.Unstructured); ok {
		return customSpecChanged(old, u)
	}
	a, ok1 := structField(old, "Spec")
	b, ok2 := structField(cur, "Spec")
	return ok1 && ok2 && !apiequality.Semantic.DeepEqual(a.Interface(), b.Interface())
}

// keepStatus: a write to the object itself does not change its status, when the
// status has its own subresource (as upstream's update strategies do).
func keepStatus(res *resource, old, cur runtime.Object) runtime.Object {
	if !contains(res.subresources, "status") {
		return cur
	}
	if u, ok := cur.(*unstructured.Unstructured); ok {
		return withCustomStatus(u, old)
	}
	a, ok1 := structField(old, "Status")
	b, ok2 := structField(cur, "Status")
	if ok1 && ok2 && b.CanSet() {
		b.Set(deepCopyValue(a)) // old may be shared: its status is copied, not aliased
	}
	return cur
}

// deepCopyValue copies an addressable API struct with its generated DeepCopy.
func deepCopyValue(v reflect.Value) reflect.Value {
	if v.CanAddr() {
		if m := v.Addr().MethodByName("DeepCopy"); m.IsValid() && m.Type().NumIn() == 0 && m.Type().NumOut() == 1 {
			if out := m.Call(nil)[0]; out.Kind() == reflect.Pointer && !out.IsNil() {
				return out.Elem()
			}
		}
	}
	return v
}

// withStatusOf: a write to /status changes only the status (and labels/annotations are
// kept from the stored object, as upstream does).
func withStatusOf(old, cur runtime.Object) runtime.Object {
	out := old.DeepCopyObject()
	if u, ok := out.(*unstructured.Unstructured); ok {
		withCustomStatus(u, cur)
		if c, ok := cur.(*unstructured.Unstructured); ok {
			u.SetResourceVersion(c.GetResourceVersion())
		}
		return u
	}
	a, ok1 := structField(out, "Status")
	b, ok2 := structField(cur, "Status")
	if ok1 && ok2 && a.CanSet() {
		a.Set(b)
	}
	oa, _ := meta.Accessor(out)
	ca, _ := meta.Accessor(cur)
	oa.SetResourceVersion(ca.GetResourceVersion())
	return out
}

// prepareForCreate clears what the server owns on a new object.
func prepareForCreate(res *resource, obj runtime.Object) {
	if u, ok := obj.(*unstructured.Unstructured); ok && contains(res.subresources, "status") {
		unstructured.RemoveNestedField(u.Object, "status")
	}
	if contains(res.subresources, "status") && res.kind != "Node" {
		if st, ok := structField(obj, "Status"); ok && st.CanSet() {
			st.Set(reflect.Zero(st.Type()))
		}
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		o.Status.Phase = corev1.PodPending
		o.Status.QOSClass = qosClass(o)
		addDefaultTolerations(&o.Spec)
	case *apiextensionsv1.CustomResourceDefinition:
		prepareCRD(o)
	case *corev1.Namespace:
		o.Status.Phase = corev1.NamespaceActive
		if !contains(finalizerNames(o.Spec.Finalizers), "kubernetes") {
			o.Spec.Finalizers = append(o.Spec.Finalizers, corev1.FinalizerKubernetes)
		}
	}
}

// addDefaultTolerations is upstream's DefaultTolerationSeconds admission: a new pod
// that does not tolerate its node going not-ready or unreachable gets tolerations of
// 300 s for both, so the node lifecycle controller evicts it five minutes after its
// node is lost rather than at once.
func addDefaultTolerations(spec *corev1.PodSpec) {
	for _, key := range []string{corev1.TaintNodeNotReady, corev1.TaintNodeUnreachable} {
		tolerated := false
		for _, t := range spec.Tolerations {
			if (t.Key == key || t.Key == "" && t.Operator == corev1.TolerationOpExists) &&
				(t.Effect == "" || t.Effect == corev1.TaintEffectNoExecute) {
				tolerated = true
			}
		}
		if !tolerated {
			spec.Tolerations = append(spec.Tolerations, corev1.Toleration{
				Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr(int64(300)),
			})
		}
	}
}

func finalizerNames(f []corev1.FinalizerName) []string {
	var out []string
	for _, x := range f {
		out = append(out, string(x))
	}
	return out
}

// markTerminating records that a namespace is going away.
func markTerminating(obj runtime.Object) {
	if ns, ok := obj.(*corev1.Namespace); ok {
		ns.Status.Phase = corev1.NamespaceTerminating
	}
}

// qosClass is the pod's quality of service class, from its containers' resources.
func qosClass(p *corev1.Pod) corev1.PodQOSClass {
	requests, limits, guaranteed := 0, 0, true
	for _, c := range p.Spec.Containers {
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			r, hasR := c.Resources.Requests[name]
			l, hasL := c.Resources.Limits[name]
			if hasR && !r.IsZero() {
				requests++
			}
			if hasL && !l.IsZero() {
				limits++
			}
			if !hasL || (hasR && r.Cmp(l) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case requests == 0 && limits == 0:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

// scaleOf is the Scale subresource of a workload.
func scaleOf(obj runtime.Object) (*autoscalingv1.Scale, error) {
	acc, _ := meta.Accessor(obj)
	sc := &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{Kind: "Scale", APIVersion: "autoscaling/v1"},
		ObjectMeta: metav1.ObjectMeta{Name: acc.GetName(), Namespace: acc.GetNamespace(), UID: acc.GetUID(),
			ResourceVersion: acc.GetResourceVersion(), CreationTimestamp: acc.GetCreationTimestamp()},
	}
	var sel *metav1.LabelSelector
	switch o := obj.(type) {
	case *appsv1.Deployment:
		sc.Spec.Replicas, sc.Status.Replicas, sel = deref(o.Spec.Replicas), o.Status.Replicas, o.Spec.Selector
	case *appsv1.ReplicaSet:
		sc.Spec.Replicas, sc.Status.Replicas, sel = deref(o.Spec.Replicas), o.Status.Replicas, o.Spec.Selector
	case *appsv1.StatefulSet:
		sc.Spec.Replicas, sc.Status.Replicas, sel = deref(o.Spec.Replicas), o.Status.Replicas, o.Spec.Selector
	case *corev1.ReplicationController:
		sc.Spec.Replicas, sc.Status.Replicas = deref(o.Spec.Replicas), o.Status.Replicas
		sel = &metav1.LabelSelector{MatchLabels: o.Spec.Selector}
	default:
		return nil, apierrors.NewBadRequest(fmt.Sprintf("%T has no scale", obj))
	}
	if sel != nil {
		if s, err := metav1.LabelSelectorAsSelector(sel); err == nil {
			sc.Status.Selector = s.String()
		}
	}
	return sc, nil
}

// setReplicas writes a Scale's replicas into the workload.
func setReplicas(obj runtime.Object, n int32) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		o.Spec.Replicas = &n
	case *appsv1.ReplicaSet:
		o.Spec.Replicas = &n
	case *appsv1.StatefulSet:
		o.Spec.Replicas = &n
	case *corev1.ReplicationController:
		o.Spec.Replicas = &n
	}
}

func deref(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

func fieldErrors(path string, value any, detail string) field.ErrorList {
	return field.ErrorList{field.Invalid(field.NewPath(path), value, detail)}
}

func newUID() string { return uuid.NewString() }
