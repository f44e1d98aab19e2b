package pki

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	clientcmdlatest "k8s.io/client-go/tools/clientcmd/api/latest"
)

// WriteKubeconfig writes a kubeconfig (mode 0600, atomically) for server with the CA and
// a client cert or a bearer token (whichever are given). Its one context, named after
// the cluster, is the current one.
func WriteKubeconfig(path, server, clusterName, user string, caPEM, certPEM, keyPEM []byte, token string) error {
	cfg := clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{
			clusterName: {Server: server, CertificateAuthorityData: caPEM},
		},
		AuthInfos: map[string]*clientcmdapi.AuthInfo{
			user: {ClientCertificateData: certPEM, ClientKeyData: keyPEM, Token: token},
		},
		Contexts: map[string]*clientcmdapi.Context{
			clusterName: {Cluster: clusterName, AuthInfo: user},
		},
		CurrentContext: clusterName,
	}
	// What clientcmd.Write does, without the rest of clientcmd.
	data, err := runtime.Encode(clientcmdlatest.Codec, &cfg)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return nil
}
