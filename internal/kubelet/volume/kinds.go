package volume

import (
	"context"
	"maps"
	"os"

	corev1 "k8s.io/api/core/v1"
)

// configMap projects a ConfigMap's keys as files.
type configMap struct{ src *sources }

func (*configMap) Kind() string                  { return "kubernetes.io~configmap" }
func (*configMap) Handles(v *corev1.Volume) bool { return v.ConfigMap != nil }

func (p *configMap) SetUp(ctx context.Context, pod *corev1.Pod, v *corev1.Volume, dir string) (string, error) {
	files, err := p.src.configMap(ctx, pod.Namespace, v.ConfigMap, v.ConfigMap.DefaultMode)
	if err != nil {
		return "", err
	}
	return dir, writeAtomic(dir, files)
}

// secret projects a Secret's keys as files.
type secret struct{ src *sources }

func (*secret) Kind() string                  { return "kubernetes.io~secret" }
func (*secret) Handles(v *corev1.Volume) bool { return v.Secret != nil }

func (p *secret) SetUp(ctx context.Context, pod *corev1.Pod, v *corev1.Volume, dir string) (string, error) {
	s := v.Secret
	files, err := p.src.secret(ctx, pod.Namespace, s.SecretName, s.Items, s.Optional != nil && *s.Optional, s.DefaultMode)
	if err != nil {
		return "", err
	}
	return dir, writeAtomic(dir, files)
}

// downwardAPI projects the pod's own fields as files.
type downwardAPI struct{}

func (*downwardAPI) Kind() string                  { return "kubernetes.io~downward-api" }
func (*downwardAPI) Handles(v *corev1.Volume) bool { return v.DownwardAPI != nil }

func (*downwardAPI) SetUp(_ context.Context, pod *corev1.Pod, v *corev1.Volume, dir string) (string, error) {
	files, err := downwardFiles(pod, v.DownwardAPI.Items, v.DownwardAPI.DefaultMode)
	if err != nil {
		return "", err
	}
	return dir, writeAtomic(dir, files)
}

// projected merges configMaps, secrets, downwardAPI items and service account tokens into one
// directory.
type projected struct{ src *sources }

func (*projected) Kind() string                  { return "kubernetes.io~projected" }
func (*projected) Handles(v *corev1.Volume) bool { return v.Projected != nil }

func (p *projected) SetUp(ctx context.Context, pod *corev1.Pod, v *corev1.Volume, dir string) (string, error) {
	all := map[string]file{}
	def := v.Projected.DefaultMode
	for _, s := range v.Projected.Sources {
		var files map[string]file
		var err error
		switch {
		case s.ConfigMap != nil:
			src := &corev1.ConfigMapVolumeSource{LocalObjectReference: s.ConfigMap.LocalObjectReference, Items: s.ConfigMap.Items, Optional: s.ConfigMap.Optional}
			files, err = p.src.configMap(ctx, pod.Namespace, src, def)
		case s.Secret != nil:
			files, err = p.src.secret(ctx, pod.Namespace, s.Secret.Name, s.Secret.Items, s.Secret.Optional != nil && *s.Secret.Optional, def)
		case s.DownwardAPI != nil:
			files, err = downwardFiles(pod, s.DownwardAPI.Items, def)
		case s.ServiceAccountToken != nil:
			var tok []byte
			tok, err = p.src.token(ctx, pod, s.ServiceAccountToken, dir)
			m := os.FileMode(0o600)
			if def != nil {
				m = os.FileMode(*def)
			}
			files = map[string]file{s.ServiceAccountToken.Path: {tok, m}}
		}
		if err != nil {
			return "", err
		}
		maps.Copy(all, files)
	}
	return dir, writeAtomic(dir, all)
}
