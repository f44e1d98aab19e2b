package kubelet

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestPodRunsWithStatus(t *testing.T) {
	need(t)
	ns := namespace(t)
	create(t, newPod(ns, "web", busybox("main", "echo started; exec sleep 3600")))
	p := waitPod(t, ns, "web", 30*time.Second, "running", running)
	if !strings.HasPrefix(p.Status.PodIP, "10.77.0.") {
		t.Errorf("podIP %q is not from the test's pod subnet", p.Status.PodIP)
	}
	if p.Status.HostIP == "" || len(p.Status.PodIPs) != 1 || p.Status.StartTime == nil {
		t.Errorf("hostIP %q podIPs %v startTime %v", p.Status.HostIP, p.Status.PodIPs, p.Status.StartTime)
	}
	if p.Status.QOSClass != corev1.PodQOSBestEffort {
		t.Errorf("qosClass %q", p.Status.QOSClass)
	}
	c := p.Status.ContainerStatuses[0]
	if !strings.HasPrefix(c.ContainerID, "containerd://") || c.Image != busyboxImage || c.ImageID == "" || c.RestartCount != 0 {
		t.Errorf("container status: %+v", c)
	}
	p = waitPod(t, ns, "web", 10*time.Second, "ready", func(p *corev1.Pod) bool {
		return condition(p, corev1.PodReady) && condition(p, corev1.ContainersReady) && condition(p, corev1.PodInitialized) && condition(p, corev1.PodReadyToStartContainers)
	})
	if !p.Status.ContainerStatuses[0].Ready || p.Status.ContainerStatuses[0].Started == nil || !*p.Status.ContainerStatuses[0].Started {
		t.Errorf("container not ready/started: %+v", p.Status.ContainerStatuses[0])
	}
	if got := execIn(t, p, "main", "hostname"); strings.TrimSpace(got) != "web" {
		t.Errorf("hostname in the pod: %q", got)
	}
	if got := execIn(t, p, "main", "cat", "/etc/resolv.conf"); !strings.Contains(got, "10.43.0.10") || !strings.Contains(got, ns+".svc.cluster.local") || !strings.Contains(got, "ndots:5") {
		t.Errorf("resolv.conf for ClusterFirst: %q", got)
	}
	if got := execIn(t, p, "main", "cat", "/etc/hosts"); !strings.Contains(got, p.Status.PodIP+"\tweb") {
		t.Errorf("/etc/hosts: %q", got)
	}
}

func condition(p *corev1.Pod, t corev1.PodConditionType) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func TestHostNetworkPodUsesTheNodeAddress(t *testing.T) {
	need(t)
	ns := namespace(t)
	p := newPod(ns, "hostnet", busybox("main", "exec sleep 3600"))
	p.Spec.HostNetwork = true
	create(t, p)
	p = waitPod(t, ns, "hostnet", 30*time.Second, "running", running)
	if p.Status.PodIP == "" || p.Status.PodIP != p.Status.HostIP {
		t.Errorf("podIP %q, hostIP %q: a host-network pod has the node's address", p.Status.PodIP, p.Status.HostIP)
	}
	if got := execIn(t, p, "main", "cat", "/etc/resolv.conf"); strings.Contains(got, "10.43.0.10") {
		t.Errorf("a host-network pod with ClusterFirst uses the node's DNS: %q", got)
	}
}
