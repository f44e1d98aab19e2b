package kube

import (
	"net"
	"strings"
	"testing"
)

// Services get a cluster IP from the service range (and node ports for NodePort), as
// `kubectl expose` and `kubectl create service` users expect; the kubernetes Service
// points at the API server.
func TestServicesGetClusterIPsAndNodePorts(t *testing.T) {
	need(t)
	kubectl(t, "create", "namespace", "svc-test")
	t.Cleanup(func() { kubectlRun(t, nil, "delete", "namespace", "svc-test", "--wait=false") })
	_, svcNet, _ := net.ParseCIDR("10.43.0.0/16")

	if ip := kubectl(t, "get", "svc", "kubernetes", "-n", "default", "-o", "jsonpath={.spec.clusterIP}"); ip != "10.43.0.1" {
		t.Fatalf("the kubernetes Service has cluster IP %q, want 10.43.0.1", ip)
	}
	kubectl(t, "-n", "svc-test", "create", "deployment", "web", "--image=bb:1.0", "--port=80")
	kubectl(t, "-n", "svc-test", "expose", "deployment", "web", "--port=8080", "--target-port=80")
	ip := kubectl(t, "-n", "svc-test", "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")
	if p := net.ParseIP(ip); p == nil || !svcNet.Contains(p) {
		t.Fatalf("exposed Service got cluster IP %q, want one in %s", ip, svcNet)
	}
	mustContain(t, "get svc", kubectl(t, "-n", "svc-test", "get", "svc", "web"), ip)

	kubectl(t, "-n", "svc-test", "create", "service", "nodeport", "np", "--tcp=80:80")
	np := kubectl(t, "-n", "svc-test", "get", "svc", "np", "-o", "jsonpath={.spec.ports[0].nodePort}")
	if len(np) != 5 || np < "30000" || np > "32767" {
		t.Fatalf("NodePort Service got node port %q", np)
	}
	// Re-applying a manifest without clusterIP keeps the address.
	kubectl(t, "-n", "svc-test", "label", "svc", "web", "x=y")
	if again := kubectl(t, "-n", "svc-test", "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"); again != ip {
		t.Fatalf("cluster IP changed on update: %s → %s", ip, again)
	}
	// An address already taken is refused with upstream's wording.
	out, err := kubectlRun(t, []byte(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"dup","namespace":"svc-test"},"spec":{"clusterIP":"`+ip+`","ports":[{"port":80}]}}`), "create", "-f", "-")
	if err == nil || !strings.Contains(out, "provided IP is already allocated") {
		t.Fatalf("duplicate cluster IP: err %v, output %s", err, out)
	}
	out, err = kubectlRun(t, []byte(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"far","namespace":"svc-test"},"spec":{"clusterIP":"192.168.7.7","ports":[{"port":80}]}}`), "create", "-f", "-")
	if err == nil || !strings.Contains(out, "not in the valid range") {
		t.Fatalf("cluster IP out of range: err %v, output %s", err, out)
	}
	kubectl(t, "-n", "svc-test", "create", "service", "clusterip", "headless", "--clusterip=None")
	if hip := kubectl(t, "-n", "svc-test", "get", "svc", "headless", "-o", "jsonpath={.spec.clusterIP}"); hip != "None" {
		t.Fatalf("headless Service has cluster IP %q", hip)
	}
}
