package downward

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestFieldPaths(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "u1",
			Labels: map[string]string{"app": "web", "tier": "front"}, Annotations: map[string]string{"note": `say "hi"`}},
		Spec: corev1.PodSpec{NodeName: "n1", ServiceAccountName: "sa"},
	}
	for path, want := range map[string]string{
		"metadata.name": "web", "metadata.namespace": "shop", "metadata.uid": "u1",
		"metadata.labels['tier']": "front", "metadata.annotations['note']": `say "hi"`,
		"metadata.labels": "app=\"web\"\ntier=\"front\"", "metadata.annotations": `note="say \"hi\""`,
		"spec.nodeName": "n1", "spec.serviceAccountName": "sa", "status.hostIP": "10.0.0.1", "status.podIP": "10.42.0.5",
	} {
		got, err := Field(pod, path, "10.0.0.1", "10.42.0.5")
		if err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", path, got, err, want)
		}
	}
	if _, err := Field(pod, "spec.bogus", "", ""); err == nil {
		t.Errorf("unknown field path accepted")
	}
}

func TestResourceFieldsRoundUpInTheDivisor(t *testing.T) {
	c := &corev1.Container{Name: "c", Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
	}}
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{*c}}}
	node := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")}
	for _, tc := range []struct {
		res, div, want string
	}{
		{"requests.cpu", "", "1"},
		{"requests.cpu", "1m", "250"},
		{"limits.memory", "1Mi", "64"},
		{"limits.cpu", "", "4"}, // no limit: the node's allocatable
	} {
		sel := &corev1.ResourceFieldSelector{Resource: tc.res}
		if tc.div != "" {
			sel.Divisor = resource.MustParse(tc.div)
		}
		got, err := Resource(pod, c, sel, node)
		if err != nil || got != tc.want {
			t.Errorf("%s/%s = %q, %v; want %q", tc.res, tc.div, got, err, tc.want)
		}
	}
}
