package apiserver

import (
	"bytes"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	apiresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/berth-project/berth/internal/storage"
)

func TestEveryBuiltinIsStoredAsProtobuf(t *testing.T) {
	s := &Server{}
	for _, res := range newRegistry(builtins).all() {
		if res.custom != nil {
			continue
		}
		obj := res.new()
		acc, _ := meta.Accessor(obj)
		acc.SetName("x")
		acc.SetResourceVersion("7")
		data, err := s.encodeForStorage(res, obj)
		if err != nil {
			t.Errorf("%s: %v", res.gvr, err)
			continue
		}
		if !bytes.HasPrefix(data, protobufPrefix) {
			t.Errorf("%s: stored as %.20q, not protobuf", res.gvr, data)
		}
		if acc.GetResourceVersion() != "7" {
			t.Errorf("%s: the object's resourceVersion changed to %q", res.gvr, acc.GetResourceVersion())
		}
		back, err := s.decodeFromStorage(res, storage.KV{Value: data, ModRevision: 9})
		if err != nil {
			t.Errorf("%s: decode: %v", res.gvr, err)
			continue
		}
		if a, _ := meta.Accessor(back); a.GetName() != "x" || a.GetResourceVersion() != "9" {
			t.Errorf("%s: read back as %s at %s", res.gvr, a.GetName(), a.GetResourceVersion())
		}
	}
}

func TestStoredObjectsReadBackTheSame(t *testing.T) {
	s := &Server{}
	reg := newRegistry(builtins)
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	one := int32(1)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1", CreationTimestamp: now, Labels: map[string]string{"b": "2", "a": "1"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "u0"}}},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "x:1",
			Ports:          []corev1.ContainerPort{{ContainerPort: 80}},
			Resources:      corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: apiresource.MustParse("100m"), corev1.ResourceMemory: apiresource.MustParse("500Mi")}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromString("http")}}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now}}},
	}
	deploy := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "ns"}, Spec: appsv1.DeploymentSpec{Replicas: &one,
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "d"}}, Template: corev1.PodTemplateSpec{Spec: pod.Spec}}}
	for _, tt := range []struct {
		res *resource
		obj runtime.Object
	}{
		{reg.get("", "v1", "pods"), pod},
		{reg.get("apps", "v1", "deployments"), deploy},
	} {
		stored, err := s.encodeForStorage(tt.res, tt.obj.DeepCopyObject())
		if err != nil {
			t.Fatal(err)
		}
		asJSON, err := runtime.Encode(codecs.EncoderForVersion(storageJSON, tt.res.gvr.GroupVersion()), tt.obj.DeepCopyObject())
		if err != nil {
			t.Fatal(err)
		}
		// Objects stored as JSON (before protobuf) still read, and read the same.
		for name, data := range map[string][]byte{"protobuf": stored, "json": asJSON} {
			back, err := s.decodeFromStorage(tt.res, storage.KV{Value: data, ModRevision: 3})
			if err != nil {
				t.Fatalf("%s from %s: %v", tt.res.kind, name, err)
			}
			meta.NewAccessor().SetResourceVersion(back, "")
			want := tt.obj.DeepCopyObject()
			want.GetObjectKind().SetGroupVersionKind(tt.res.gvk())
			if !apiequality.Semantic.DeepEqual(back, want) {
				t.Errorf("%s from %s read back as\n%+v\nwant\n%+v", tt.res.kind, name, back, want)
			}
		}
		// Encoding is deterministic: an unchanged object is no write.
		again, _ := s.encodeForStorage(tt.res, tt.obj.DeepCopyObject())
		if !bytes.Equal(stored, again) {
			t.Errorf("%s: two encodings of one object differ", tt.res.kind)
		}
	}
}
