package kubelet

import (
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestNodeRegistersReadyWithLease(t *testing.T) {
	need(t)
	deadline := time.Now().Add(30 * time.Second)
	var node *corev1.Node
	for {
		n, err := cs.CoreV1().Nodes().Get(t.Context(), nodeName, metav1.GetOptions{})
		if err == nil && nodeReady(n) {
			node = n
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not Ready within 30s: %v %+v", nodeName, err, n)
		}
		time.Sleep(100 * time.Millisecond) // polling for the kubelet's registration
	}
	if got := node.Labels["kubernetes.io/hostname"]; got != nodeName {
		t.Errorf("hostname label %q", got)
	}
	if node.Labels["kubernetes.io/os"] != "linux" || node.Labels["berth.test/kubelet"] != "yes" {
		t.Errorf("labels: %v", node.Labels)
	}
	if p := node.Status.Capacity[corev1.ResourcePods]; p.Value() != 110 {
		t.Errorf("pods capacity %s", p.String())
	}
	if c := node.Status.Allocatable[corev1.ResourceCPU]; c.Value() < 1 {
		t.Errorf("allocatable cpu %s", c.String())
	}
	if !strings.HasPrefix(node.Status.NodeInfo.ContainerRuntimeVersion, "containerd://") {
		t.Errorf("containerRuntimeVersion %q", node.Status.NodeInfo.ContainerRuntimeVersion)
	}
	if node.Status.NodeInfo.KubeletVersion == "" || node.Status.NodeInfo.KernelVersion == "" || node.Status.NodeInfo.OSImage == "" {
		t.Errorf("nodeInfo: %+v", node.Status.NodeInfo)
	}
	if int(node.Status.DaemonEndpoints.KubeletEndpoint.Port) != servePort {
		t.Errorf("kubelet endpoint port %d, want %d", node.Status.DaemonEndpoints.KubeletEndpoint.Port, servePort)
	}
	var hasIP bool
	for _, a := range node.Status.Addresses {
		hasIP = hasIP || a.Type == corev1.NodeInternalIP && a.Address != ""
	}
	if !hasIP {
		t.Errorf("no InternalIP: %v", node.Status.Addresses)
	}
	for _, want := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure} {
		found := false
		for _, c := range node.Status.Conditions {
			found = found || c.Type == want && c.Status == corev1.ConditionFalse
		}
		if !found {
			t.Errorf("condition %s is not False: %v", want, node.Status.Conditions)
		}
	}
	hasBusybox := false
	for _, im := range node.Status.Images {
		for _, n := range im.Names {
			hasBusybox = hasBusybox || n == "docker.io/"+busyboxImage || n == busyboxImage
		}
	}
	if !hasBusybox {
		t.Errorf("status.images lacks %s: %v", busyboxImage, node.Status.Images)
	}
	var lease *coordinationv1.Lease
	for deadline := time.Now().Add(15 * time.Second); ; {
		var err error
		lease, err = cs.CoordinationV1().Leases("kube-node-lease").Get(t.Context(), nodeName, metav1.GetOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node lease: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling for the first renewal, right after registration
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != nodeName || lease.Spec.RenewTime == nil {
		t.Fatalf("lease spec: %+v", lease.Spec)
	}
	if time.Since(lease.Spec.RenewTime.Time) > 15*time.Second {
		t.Errorf("lease renewed %s ago", time.Since(lease.Spec.RenewTime.Time))
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
