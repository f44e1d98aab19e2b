package kubelet

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"

	"github.com/distribution/reference"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// dockerAuth is one registry's entry in a .dockerconfigjson or .dockercfg secret.
type dockerAuth struct {
	Username      string `json:"username"`
	Password      string `json:"password"`
	Auth          string `json:"auth"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// pullAuths returns the credentials the pod's imagePullSecrets (or, when it names none, its
// service account's) hold for the image's registry. None means an anonymous pull.
func (k *Kubelet) pullAuths(ctx context.Context, pod *corev1.Pod, image string) []*runtimeapi.AuthConfig {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return nil
	}
	host := reference.Domain(named)
	refs := pod.Spec.ImagePullSecrets
	if len(refs) == 0 && pod.Spec.ServiceAccountName != "" {
		if sa, err := k.client.CoreV1().ServiceAccounts(pod.Namespace).Get(ctx, pod.Spec.ServiceAccountName, metav1.GetOptions{}); err == nil {
			refs = sa.ImagePullSecrets
		}
	}
	var out []*runtimeapi.AuthConfig
	for _, ref := range refs {
		s, err := k.client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			k.log.Warn("image pull secret", "pod", pod.Namespace+"/"+pod.Name, "secret", ref.Name, "err", err)
			continue
		}
		for key, a := range dockerAuths(s) {
			if registryHost(key) != host {
				continue
			}
			if a.Username == "" && a.Auth != "" {
				if b, err := base64.StdEncoding.DecodeString(a.Auth); err == nil {
					a.Username, a.Password, _ = strings.Cut(string(b), ":")
				}
			}
			// No ServerAddress: the match is made here, and containerd 1.6 compares it with
			// the endpoint's host (registry-1.docker.io for docker.io) after a url.Parse that
			// refuses "host:port".
			out = append(out, &runtimeapi.AuthConfig{Username: a.Username, Password: a.Password,
				IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken})
		}
	}
	return out
}

func dockerAuths(s *corev1.Secret) map[string]dockerAuth {
	switch s.Type {
	case corev1.SecretTypeDockerConfigJson:
		var cfg struct {
			Auths map[string]dockerAuth `json:"auths"`
		}
		if json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg) == nil {
			return cfg.Auths
		}
	case corev1.SecretTypeDockercfg:
		var cfg map[string]dockerAuth
		if json.Unmarshal(s.Data[corev1.DockerConfigKey], &cfg) == nil {
			return cfg
		}
	}
	return nil
}

// registryHost normalises a docker config key ("https://index.docker.io/v1/", "reg:5000")
// to the registry host an image reference names ("docker.io", "reg:5000").
func registryHost(key string) string {
	if strings.Contains(key, "://") {
		if u, err := url.Parse(key); err == nil {
			key = u.Host
		}
	}
	key, _, _ = strings.Cut(key, "/")
	switch key {
	case "index.docker.io", "registry-1.docker.io":
		return "docker.io"
	}
	return key
}
