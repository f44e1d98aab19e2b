package scheduler

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

func TestPodsSpreadOverTwoNodes(t *testing.T) {
	c := newCluster(t)
	c.node("a", nil)
	c.node("b", nil)
	for i := range 4 {
		c.pod(fmt.Sprintf("p%d", i), nil)
	}
	count := map[string]int{}
	for i := range 4 {
		count[c.bound(fmt.Sprintf("p%d", i))]++
	}
	if diff := cmp.Diff(map[string]int{"a": 2, "b": 2}, count); diff != "" {
		t.Errorf("pods per node (-want,+got):\n%s", diff)
	}
}

func TestCordonedNodeIsSkipped(t *testing.T) {
	c := newCluster(t)
	c.node("open", nil)
	c.node("cordoned", nil)
	kubectl(t, "cordon", c.nodeName("cordoned"))
	for i := range 3 {
		c.pod(fmt.Sprintf("p%d", i), nil)
	}
	for i := range 3 {
		if node := c.bound(fmt.Sprintf("p%d", i)); node != "open" {
			t.Errorf("p%d on %s, a cordoned node", i, node)
		}
	}
	c.pod("tolerant", func(p *corev1.Pod) {
		p.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": c.nodeName("cordoned")}
		p.Spec.Tolerations = []corev1.Toleration{{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	})
	if node := c.bound("tolerant"); node != "cordoned" {
		t.Errorf("a pod tolerating node.kubernetes.io/unschedulable went to %s", node)
	}
}

func TestNodeSelectorAndAffinityAreHonoured(t *testing.T) {
	c := newCluster(t)
	c.node("ssd", func(n *corev1.Node) { n.Labels["disk"] = "ssd" })
	c.node("hdd", func(n *corev1.Node) { n.Labels["disk"] = "hdd" })
	c.pod("selector", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "ssd"} })
	c.pod("affinity", func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"ssd"}}}}}}}}
	})
	c.pod("nowhere", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "nvme"} })
	if node := c.bound("selector"); node != "ssd" {
		t.Errorf("nodeSelector disk=ssd: on %s", node)
	}
	if node := c.bound("affinity"); node != "hdd" {
		t.Errorf("affinity disk NotIn ssd: on %s", node)
	}
	want := "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
	if got := c.unschedulable("nowhere"); got != want {
		t.Errorf("condition message:\n got %s\nwant %s", got, want)
	}
}

// TestTaintBlocksUntilRemoved: a NoSchedule taint keeps a pod without a toleration
// Pending with PodScheduled=False and a FailedScheduling event (as kubectl describe
// shows them); removing the taint schedules it.
func TestTaintBlocksUntilRemoved(t *testing.T) {
	c := newCluster(t)
	c.node("ops", func(n *corev1.Node) {
		n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "ops", Effect: corev1.TaintEffectNoSchedule}}
	})
	c.pod("tolerant", func(p *corev1.Pod) {
		p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "ops", Effect: corev1.TaintEffectNoSchedule}}
	})
	if node := c.bound("tolerant"); node != "ops" {
		t.Fatalf("tolerant pod on %s", node)
	}
	c.pod("blocked", nil)
	want := "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: ops}. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
	if got := c.unschedulable("blocked"); got != want {
		t.Errorf("condition message:\n got %s\nwant %s", got, want)
	}
	describe := waitDescribe(t, c, "blocked", "FailedScheduling")
	for _, s := range []string{"Warning", "FailedScheduling", "default-scheduler", "untolerated taint {dedicated: ops}", "PodScheduled", "False"} {
		if !strings.Contains(describe, s) {
			t.Errorf("kubectl describe pod does not show %q:\n%s", s, describe)
		}
	}
	kubectl(t, "taint", "node", c.nodeName("ops"), "dedicated=ops:NoSchedule-")
	if node := c.bound("blocked"); node != "ops" {
		t.Fatalf("after the taint went: on %s", node)
	}
	describe = waitDescribe(t, c, "blocked", "Scheduled ")
	if want := fmt.Sprintf("Successfully assigned %s/blocked to %s", c.ns, c.nodeName("ops")); !strings.Contains(describe, want) {
		t.Errorf("kubectl describe pod does not show %q:\n%s", want, describe)
	}
}

// waitDescribe runs kubectl describe pod until its output contains want (events are
// written asynchronously).
func waitDescribe(t *testing.T, c *testCluster, pod, want string) string {
	t.Helper()
	var out string
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		out = kubectl(t, "-n", c.ns, "describe", "pod", pod)
		return strings.Contains(out, want), nil
	})
	if err != nil {
		t.Fatalf("kubectl describe pod %s never showed %q:\n%s", pod, want, out)
	}
	return out
}

func TestTooBigPodStaysPendingWithInsufficientCPU(t *testing.T) {
	c := newCluster(t)
	c.node("a", nil)
	c.node("b", nil)
	big := func(cpu string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
	}
	c.pod("big", big("3"))
	want := "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
	if got := c.unschedulable("big"); got != want {
		t.Errorf("condition message:\n got %s\nwant %s", got, want)
	}
	// Requests add up: two 1500m pods take a node each; a third fits nowhere.
	c.pod("half-1", big("1500m"))
	c.pod("half-2", big("1500m"))
	if a, b := c.bound("half-1"), c.bound("half-2"); a == b {
		t.Errorf("two 1500m pods on one 2-cpu node %s", a)
	}
	c.pod("half-3", big("1500m"))
	if got := c.unschedulable("half-3"); !strings.Contains(got, "2 Insufficient cpu") {
		t.Errorf("third 1500m pod: %s", got)
	}
	c.stillPending("big")
}

func TestHostPortConflicts(t *testing.T) {
	c := newCluster(t)
	c.node("a", nil)
	c.node("b", nil)
	withPort := func(p *corev1.Pod) {
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080, Protocol: corev1.ProtocolTCP}}
	}
	c.pod("web-1", withPort)
	first := c.bound("web-1")
	c.pod("web-2", withPort)
	if second := c.bound("web-2"); second == first {
		t.Errorf("both pods with hostPort 8080 on %s", first)
	}
	c.pod("web-3", withPort)
	want := "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
	if got := c.unschedulable("web-3"); got != want {
		t.Errorf("condition message:\n got %s\nwant %s", got, want)
	}
	// Freeing the port lets the waiting pod in.
	if err := c.cs.CoreV1().Pods(c.ns).Delete(t.Context(), "web-1", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	if node := c.bound("web-3"); node != first {
		t.Errorf("after web-1 left %s, web-3 went to %s", first, node)
	}
}

func TestAntiAffinityPlacesPodsOnDifferentNodes(t *testing.T) {
	c := newCluster(t)
	c.node("a", nil)
	c.node("b", nil)
	apart := func(p *corev1.Pod) {
		p.Labels["app"] = "db"
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
			TopologyKey: "kubernetes.io/hostname", LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
		}}}}
	}
	c.pod("db-1", apart)
	c.pod("db-2", apart)
	if a, b := c.bound("db-1"), c.bound("db-2"); a == b {
		t.Fatalf("both anti-affine pods on %s", a)
	}
	c.pod("db-3", apart)
	if got := c.unschedulable("db-3"); !strings.Contains(got, "2 node(s) didn't match pod anti-affinity rules") {
		t.Errorf("third anti-affine pod: %s", got)
	}
}

// TestBindingMarksPodScheduled: upstream's pods/binding sets PodScheduled=True,
// replacing the False the scheduler set while the pod waited (kubectl describe then
// shows "PodScheduled True"). That is the API server's part of binding.
func TestBindingMarksPodScheduled(t *testing.T) {
	c := newCluster(t)
	c.node("a", func(n *corev1.Node) { n.Spec.Unschedulable = true })
	c.pod("p", nil)
	c.unschedulable("p")
	kubectl(t, "uncordon", c.nodeName("a"))
	c.bound("p")
	p := c.waitPod("p", "marked PodScheduled=True", func(p *corev1.Pod) bool {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled {
				return cond.Status == corev1.ConditionTrue
			}
		}
		return false
	})
	n := 0
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodScheduled {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d PodScheduled conditions: %+v", n, p.Status.Conditions)
	}
}

// TestOneSchedulerHoldsTheLease: the scheduler leads through upstream's lease, which
// kubectl shows.
func TestOneSchedulerHoldsTheLease(t *testing.T) {
	need(t)
	var holder string
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		out, err := kubectlRun(t, "-n", "kube-system", "get", "lease", "kube-scheduler", "-o", "jsonpath={.spec.holderIdentity}")
		holder = strings.TrimSpace(out)
		return err == nil && holder != "", nil
	})
	if err != nil {
		t.Fatalf("no holder of kube-system/kube-scheduler: %v", err)
	}
}
