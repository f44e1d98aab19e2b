package kubelet

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"
)

// newServiceInformer watches Services for the docker-links style environment variables
// (FOO_SERVICE_HOST, FOO_PORT_80_TCP, …) every container gets.
func (k *Kubelet) newServiceInformer() cache.SharedIndexInformer {
	lw := cache.NewListWatchFromClient(k.client.CoreV1().RESTClient(), "services", metav1.NamespaceAll, fields.Everything())
	return cache.NewSharedIndexInformer(listThenWatch{lw}, &corev1.Service{}, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}

// serviceEnv lists the variables for the pod's namespace's Services (when enableServiceLinks is
// not false) and, always, for the API server's `kubernetes` Service in default, as upstream
// does. In-cluster clients find the API server through KUBERNETES_SERVICE_HOST and _PORT.
func (k *Kubelet) serviceEnv(pod *corev1.Pod) []corev1.EnvVar {
	if k.services == nil {
		return nil
	}
	byName := map[string]*corev1.Service{}
	links := pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks
	if links {
		objs, _ := k.services.GetIndexer().ByIndex(cache.NamespaceIndex, pod.Namespace)
		for _, o := range objs {
			s := o.(*corev1.Service)
			byName[s.Name] = s
		}
	}
	if pod.Namespace != metav1.NamespaceDefault || !links {
		if o, ok, _ := k.services.GetIndexer().GetByKey(metav1.NamespaceDefault + "/kubernetes"); ok {
			byName["kubernetes"] = o.(*corev1.Service)
		}
	}
	var out []corev1.EnvVar
	for _, s := range byName {
		ip := s.Spec.ClusterIP
		if ip == "" || ip == corev1.ClusterIPNone || len(s.Spec.Ports) == 0 {
			continue
		}
		name := strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
		out = append(out,
			corev1.EnvVar{Name: name + "_SERVICE_HOST", Value: ip},
			corev1.EnvVar{Name: name + "_SERVICE_PORT", Value: fmt.Sprint(s.Spec.Ports[0].Port)})
		for _, p := range s.Spec.Ports {
			if p.Name != "" {
				pn := strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_"))
				out = append(out, corev1.EnvVar{Name: name + "_SERVICE_PORT_" + pn, Value: fmt.Sprint(p.Port)})
			}
		}
		first := s.Spec.Ports[0]
		out = append(out, corev1.EnvVar{Name: name + "_PORT", Value: fmt.Sprintf("%s://%s:%d", strings.ToLower(string(protocol(first))), ip, first.Port)})
		for _, p := range s.Spec.Ports {
			proto := protocol(p)
			prefix := fmt.Sprintf("%s_PORT_%d_%s", name, p.Port, proto)
			out = append(out,
				corev1.EnvVar{Name: prefix, Value: fmt.Sprintf("%s://%s:%d", strings.ToLower(string(proto)), ip, p.Port)},
				corev1.EnvVar{Name: prefix + "_PROTO", Value: strings.ToLower(string(proto))},
				corev1.EnvVar{Name: prefix + "_PORT", Value: fmt.Sprint(p.Port)},
				corev1.EnvVar{Name: prefix + "_ADDR", Value: ip})
		}
	}
	return out
}

func protocol(p corev1.ServicePort) corev1.Protocol {
	if p.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return p.Protocol
}
