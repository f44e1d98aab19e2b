package volume

import (
	"context"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// claim mounts a PersistentVolumeClaim through the PersistentVolume bound to it. The node can
// mount volumes that are paths on it: hostPath and local PVs (what the local provisioner
// makes); other sources need a driver this node does not have.
type claim struct{ client kubernetes.Interface }

func (*claim) ReadOnly(v *corev1.Volume) bool { return v.PersistentVolumeClaim.ReadOnly }
func (*claim) Kind() string                   { return "kubernetes.io~pvc" }
func (*claim) Handles(v *corev1.Volume) bool  { return v.PersistentVolumeClaim != nil }

func (p *claim) SetUp(ctx context.Context, pod *corev1.Pod, v *corev1.Volume, _ string) (string, error) {
	name := v.PersistentVolumeClaim.ClaimName
	pvc, err := p.client.CoreV1().PersistentVolumeClaims(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("persistentvolumeclaim %q: %w", name, err)
	}
	if pvc.Spec.VolumeName == "" || pvc.Status.Phase != corev1.ClaimBound {
		return "", fmt.Errorf("persistentvolumeclaim %q is not bound yet", name)
	}
	pv, err := p.client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("persistentvolume %q of claim %q: %w", pvc.Spec.VolumeName, name, err)
	}
	switch src := pv.Spec.PersistentVolumeSource; {
	case src.HostPath != nil:
		return hostPath{}.SetUp(ctx, pod, &corev1.Volume{Name: v.Name, VolumeSource: corev1.VolumeSource{HostPath: src.HostPath}}, "")
	case src.Local != nil:
		fi, err := os.Stat(src.Local.Path)
		if err != nil {
			return "", fmt.Errorf("local persistentvolume %q: %w", pv.Name, err)
		}
		if !fi.IsDir() {
			return "", fmt.Errorf("local persistentvolume %q: %s is not a directory", pv.Name, src.Local.Path)
		}
		return src.Local.Path, nil
	}
	return "", fmt.Errorf("persistentvolume %q: only hostPath and local volumes can be mounted on this node", pv.Name)
}
