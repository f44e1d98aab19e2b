package apiserver

import (
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCreatesOfAlikeObjectsRecordTheSameFields(t *testing.T) {
	pods := registryFor(t, "", "v1", "pods")
	r, _ := http.NewRequest(http.MethodPost, "/api/v1/namespaces/ns/pods", nil)
	r.Header.Set("User-Agent", "kube-controller-manager/v1.37")
	pod := func(name string, labels map[string]string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: typesUID(newUID()), Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x:1", Ports: []corev1.ContainerPort{{ContainerPort: 80}}}}}}
		defaultObject(p)
		return p
	}
	fields := func(s *Server, p *corev1.Pod) string {
		out := s.trackUpdate(r, pods, "", nil, p).(*corev1.Pod)
		if len(out.ManagedFields) != 1 || out.ManagedFields[0].Time == nil {
			t.Fatalf("managed fields %+v, want one entry with a time", out.ManagedFields)
		}
		e := out.ManagedFields[0]
		return e.Manager + " " + string(e.Operation) + " " + e.APIVersion + " " + string(e.FieldsV1.Raw)
	}
	memo := New(Config{})
	first := fields(memo, pod("a", map[string]string{"app": "web"}))
	again := fields(memo, pod("b", map[string]string{"app": "web"})) // from the memo
	if fresh := fields(New(Config{}), pod("b", map[string]string{"app": "web"})); again != fresh || first != fresh {
		t.Fatalf("remembered fields\n%s\ndiffer from computed ones\n%s", again, fresh)
	}
	other := fields(memo, pod("c", map[string]string{"app": "web", "tier": "front"}))
	if fresh := fields(New(Config{}), pod("c", map[string]string{"app": "web", "tier": "front"})); other != fresh {
		t.Fatalf("a pod with another label got\n%s\nwant\n%s", other, fresh)
	}
	if other == first {
		t.Fatal("a pod with another label key got the fields of one without it")
	}
}
