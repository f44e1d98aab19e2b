package volume

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// A running pod's claim keeps its volume's path when the API cannot be read for a while
// (here: the claim is gone): its containers restart on the PV's files, not on an empty
// per-pod directory.
func TestClaimKeepsItsVolumeWhenTheClaimCannotBeRead(t *testing.T) {
	pvDir := t.TempDir()
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: "default"},
		Spec:       corev1.PersistentVolumeClaimSpec{VolumeName: "pv1"},
		Status:     corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound},
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pv1"},
		Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{
			Local: &corev1.LocalVolumeSource{Path: pvDir}}},
	}
	client := fake.NewSimpleClientset(pvc, pv)
	set := NewSet(client, t.TempDir(), nil)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "u1"},
		Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}},
	}
	ctx := context.Background()
	mounts, err := set.SetUp(ctx, pod)
	if err != nil || mounts["data"].Path != pvDir {
		t.Fatalf("first set-up: %v, %+v; want %s", err, mounts, pvDir)
	}
	if err := client.CoreV1().PersistentVolumeClaims("default").Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	mounts, err = set.SetUp(ctx, pod)
	if err == nil {
		t.Fatal("set-up of a claim that cannot be read succeeded")
	}
	if mounts["data"].Path != pvDir {
		t.Fatalf("after a failed set-up the volume is at %q, want the PV's %s", mounts["data"].Path, pvDir)
	}
}
