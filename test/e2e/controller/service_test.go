package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestServiceEndpointsFollowReadyPods(t *testing.T) {
	need(t)
	cs := client(t)
	ctx := context.Background()
	ns := namespace(t, "svc")
	n := startNode(t, cs, uniq("node"))
	n.serve(t, ns)
	if out, err := kubectlRun(t, fmt.Appendf(nil, webYAML, 3, 1, 0), "-n", ns, "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	kubectl(t, "-n", ns, "rollout", "status", "deploy/web", "--timeout=30s")
	kubectl(t, "-n", ns, "expose", "deploy/web", "--port=80", "--target-port=8080")

	readyAddresses := func() (int, error) {
		l, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		if err != nil {
			return 0, err
		}
		n := 0
		for _, s := range l.Items {
			if s.Ports[0].Port == nil || *s.Ports[0].Port != 8080 {
				return 0, fmt.Errorf("slice ports %v", s.Ports)
			}
			for _, ep := range s.Endpoints {
				if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
					n++
				}
			}
		}
		return n, nil
	}
	eventually(t, 10*time.Second, "3 ready endpoints", func() (bool, error) {
		n, err := readyAddresses()
		return n == 3, err
	})
	eps := kubectl(t, "-n", ns, "get", "endpoints", "web", "-o", "jsonpath={.subsets[0].addresses[*].ip}")
	if len(strings.Fields(eps)) != 3 || !strings.HasPrefix(eps, "10.99.") {
		t.Fatalf("endpoints addresses %q", eps)
	}
	kubectl(t, "-n", ns, "scale", "deploy/web", "--replicas=1")
	eventually(t, 10*time.Second, "1 ready endpoint", func() (bool, error) {
		n, err := readyAddresses()
		return n == 1, err
	})
	kubectl(t, "-n", ns, "delete", "service", "web")
	eventually(t, 10*time.Second, "slices and endpoints gone with the service", func() (bool, error) {
		l, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		_, err = cs.CoreV1().Endpoints(ns).Get(ctx, "web", metav1.GetOptions{})
		return len(l.Items) == 0 && err != nil, nil
	})
}
