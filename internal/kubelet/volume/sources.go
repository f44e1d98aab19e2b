package volume

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/berth-project/berth/internal/kubelet/downward"
)

// sources reads what configMap, secret and projected volumes hold from the API, fresh on every
// set-up so that changes reach running pods.
type sources struct {
	client kubernetes.Interface
}

func mode(m *int32, def *int32) os.FileMode {
	switch {
	case m != nil:
		return os.FileMode(*m)
	case def != nil:
		return os.FileMode(*def)
	}
	return 0o644
}

// keyed turns a configMap's or secret's data into files: every key, or only the items listed.
func keyed(data map[string][]byte, items []corev1.KeyToPath, defMode *int32, optional bool, what string) (map[string]file, error) {
	out := map[string]file{}
	if len(items) == 0 {
		for key, v := range data {
			out[key] = file{v, mode(nil, defMode)}
		}
		return out, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("configuration error: %s has no key %q", what, it.Key)
		}
		out[it.Path] = file{v, mode(it.Mode, defMode)}
	}
	return out, nil
}

func (s *sources) configMap(ctx context.Context, ns string, src *corev1.ConfigMapVolumeSource, defMode *int32) (map[string]file, error) {
	cm, err := s.client.CoreV1().ConfigMaps(ns).Get(ctx, src.Name, metav1.GetOptions{})
	optional := src.Optional != nil && *src.Optional
	if apierrors.IsNotFound(err) && optional {
		return map[string]file{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("configmap %q: %w", src.Name, err)
	}
	data := map[string][]byte{}
	for key, v := range cm.Data {
		data[key] = []byte(v)
	}
	for key, v := range cm.BinaryData {
		data[key] = v
	}
	return keyed(data, src.Items, defMode, optional, "configmap "+src.Name)
}

func (s *sources) secret(ctx context.Context, ns, name string, items []corev1.KeyToPath, optional bool, defMode *int32) (map[string]file, error) {
	sec, err := s.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) && optional {
		return map[string]file{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secret %q: %w", name, err)
	}
	return keyed(sec.Data, items, defMode, optional, "secret "+name)
}

// downwardFiles renders a downwardAPI volume's items from the pod.
func downwardFiles(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, defMode *int32) (map[string]file, error) {
	out := map[string]file{}
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = downward.Field(pod, it.FieldRef.FieldPath, pod.Status.HostIP, pod.Status.PodIP)
		case it.ResourceFieldRef != nil:
			c := containerNamed(pod, it.ResourceFieldRef.ContainerName)
			if c == nil {
				return nil, fmt.Errorf("resourceFieldRef: no container %q", it.ResourceFieldRef.ContainerName)
			}
			v, err = downward.Resource(pod, c, it.ResourceFieldRef, nil)
		}
		if err != nil {
			return nil, fmt.Errorf("downwardAPI item %q: %w", it.Path, err)
		}
		out[it.Path] = file{[]byte(v), mode(it.Mode, defMode)}
	}
	return out, nil
}

func containerNamed(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}

// token is a bound service account token for the pod, reused from the volume while it has
// more than a fifth of its life left (upstream's refresh rule).
func (s *sources) token(ctx context.Context, pod *corev1.Pod, t *corev1.ServiceAccountTokenProjection, dir string) ([]byte, error) {
	exp := int64(3600)
	if t.ExpirationSeconds != nil {
		exp = *t.ExpirationSeconds
	}
	if fi, err := os.Stat(filepath.Join(dir, t.Path)); err == nil && time.Since(fi.ModTime()) < time.Duration(exp)*time.Second*4/5 {
		if b, err := os.ReadFile(filepath.Join(dir, t.Path)); err == nil {
			return b, nil
		}
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &exp,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if t.Audience != "" {
		req.Spec.Audiences = []string{t.Audience}
	}
	resp, err := s.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, req, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token for service account %q: %w", pod.Spec.ServiceAccountName, err)
	}
	return []byte(resp.Status.Token), nil
}
