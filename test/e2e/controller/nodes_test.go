package controller

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func taintOf(n *corev1.Node, key string, effect corev1.TaintEffect) *corev1.Taint {
	for i := range n.Spec.Taints {
		if n.Spec.Taints[i].Key == key && n.Spec.Taints[i].Effect == effect {
			return &n.Spec.Taints[i]
		}
	}
	return nil
}

func TestLostNodeIsMarkedUnknownTaintedAndItsPodsEvicted(t *testing.T) {
	need(t)
	cs := client(t)
	ctx := context.Background()
	ns := namespace(t, "lost")
	n := startNode(t, cs, uniq("node"))
	n.serve(t, ns)
	unreachable := func(seconds *int64) []corev1.Toleration {
		return []corev1.Toleration{{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: seconds}}
	}
	for name, tol := range map[string][]corev1.Toleration{
		"brief":   unreachable(ptr.To[int64](2)),
		"default": nil, // the API server adds upstream's 300 s tolerations
		"forever": unreachable(nil),
	} {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       corev1.PodSpec{Tolerations: tol, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "pods ready", func() (bool, error) {
		_, ready := podCount(t, cs, ns, "")
		return ready == 3, nil
	})

	n.beating.Store(false)
	lost := time.Now()
	eventually(t, gracePeriod+10*time.Second, "node Ready=Unknown with the unreachable taint", func() (bool, error) {
		node, err := cs.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionUnknown && c.Reason == "NodeStatusUnknown" && c.Message == "Kubelet stopped posting node status." &&
					taintOf(node, corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute) != nil &&
					taintOf(node, corev1.TaintNodeUnreachable, corev1.TaintEffectNoSchedule) != nil, nil
			}
		}
		return false, nil
	})
	// The last heartbeat went out up to one beat (500 ms) before the beating stopped.
	if d := time.Since(lost); d < gracePeriod-500*time.Millisecond {
		t.Fatalf("node given up after %v, before its grace period of %v", d, gracePeriod)
	}
	mustContain(t, "kubectl get node", kubectl(t, "get", "node", n.name), "NotReady")

	// The pods left are marked not ready; the one tolerating 2 s goes after 2 s.
	eventually(t, 10*time.Second, "brief pod evicted", func() (bool, error) {
		_, err := cs.CoreV1().Pods(ns).Get(ctx, "brief", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	eventually(t, 5*time.Second, "remaining pods not ready", func() (bool, error) {
		all, ready := podCount(t, cs, ns, "")
		return all == 2 && ready == 0, nil
	})
	mustContain(t, "eviction event", kubectl(t, "-n", ns, "get", "events", "--field-selector", "involvedObject.name=brief"), "Marking for deletion Pod "+ns+"/brief")
	mustContain(t, "node event", kubectl(t, "get", "events", "-A", "--field-selector", "involvedObject.name="+n.name), "NodeNotReady")
	def, err := cs.CoreV1().Pods(ns).Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s := def.Spec.Tolerations; len(s) == 0 || s[len(s)-1].TolerationSeconds == nil || *s[len(s)-1].TolerationSeconds != 300 {
		t.Fatalf("the pod without tolerations has %+v; want the API server's 300 s defaults", s)
	}

	// The kubelet is back: taints go, pods that tolerated the outage stay.
	n.beating.Store(true)
	n.postReady(t)
	eventually(t, 10*time.Second, "taints removed", func() (bool, error) {
		node, err := cs.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
		return err == nil && len(node.Spec.Taints) == 0, err
	})
	if all, _ := podCount(t, cs, ns, ""); all != 2 {
		t.Fatalf("%d pods after the node came back, want 2", all)
	}
}

func TestNodesGetDistinctPodCIDRs(t *testing.T) {
	need(t)
	cs := client(t)
	_, cluster, _ := net.ParseCIDR("10.42.0.0/16")
	seen := map[string]string{}
	for range 3 {
		n := startNode(t, cs, uniq("node"))
		var cidr string
		eventually(t, 10*time.Second, "pod CIDR assigned to "+n.name, func() (bool, error) {
			node, err := cs.CoreV1().Nodes().Get(context.Background(), n.name, metav1.GetOptions{})
			if err != nil || node.Spec.PodCIDR == "" {
				return false, err
			}
			cidr = node.Spec.PodCIDR
			return len(node.Spec.PodCIDRs) == 1 && node.Spec.PodCIDRs[0] == cidr, nil
		})
		ip, block, err := net.ParseCIDR(cidr)
		if err != nil || !cluster.Contains(ip) || block.Mask.String() != net.CIDRMask(24, 32).String() {
			t.Fatalf("pod CIDR %q is not a /24 of %s", cidr, cluster)
		}
		if other, dup := seen[cidr]; dup {
			t.Fatalf("%s and %s both got %s", other, n.name, cidr)
		}
		seen[cidr] = n.name
	}
}

func TestCordonTaintsTheNodeUnschedulable(t *testing.T) {
	need(t)
	cs := client(t)
	n := startNode(t, cs, uniq("node"))
	kubectl(t, "cordon", n.name)
	eventually(t, 10*time.Second, "unschedulable taint", func() (bool, error) {
		node, err := cs.CoreV1().Nodes().Get(context.Background(), n.name, metav1.GetOptions{})
		return err == nil && taintOf(node, corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule) != nil, err
	})
	kubectl(t, "uncordon", n.name)
	eventually(t, 10*time.Second, "unschedulable taint removed", func() (bool, error) {
		node, err := cs.CoreV1().Nodes().Get(context.Background(), n.name, metav1.GetOptions{})
		return err == nil && taintOf(node, corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule) == nil, err
	})
}

func TestDisruptionBudgetGuardsEvictionsAndDrain(t *testing.T) {
	need(t)
	cs := client(t)
	ctx := context.Background()
	ns := namespace(t, "pdb")
	a := startNode(t, cs, uniq("node-a"))
	a.serve(t, ns)
	if out, err := kubectlRun(t, fmt.Appendf(nil, webYAML, 3, 1, 0), "-n", ns, "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	kubectl(t, "-n", ns, "rollout", "status", "deploy/web", "--timeout=30s")

	kubectl(t, "-n", ns, "create", "pdb", "web", "--selector=app=web", "--min-available=3")
	eventually(t, 10*time.Second, "budget computed", func() (bool, error) {
		pdb, err := cs.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		st := pdb.Status
		return st.ObservedGeneration == pdb.Generation && st.CurrentHealthy == 3 && st.DesiredHealthy == 3 && st.ExpectedPods == 3 && st.DisruptionsAllowed == 0, nil
	})
	pods, _ := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	err := cs.PolicyV1().Evictions(ns).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: pods.Items[0].Name, Namespace: ns}})
	if !apierrors.IsTooManyRequests(err) {
		t.Fatalf("eviction against a budget allowing none: %v, want 429", err)
	}

	// With one disruption allowed at a time, drain moves every pod to the other node.
	kubectl(t, "-n", ns, "patch", "pdb", "web", "--type=merge", "-p", `{"spec":{"minAvailable":2}}`)
	eventually(t, 10*time.Second, "one disruption allowed", func() (bool, error) {
		pdb, err := cs.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && pdb.Status.DisruptionsAllowed == 1 && pdb.Status.DesiredHealthy == 2, err
	})
	mustContain(t, "kubectl get pdb", kubectl(t, "-n", ns, "get", "pdb", "web", "-o", "jsonpath={.status.currentHealthy}/{.status.desiredHealthy}/{.status.expectedPods}/{.status.disruptionsAllowed}"), "3/2/3/1")
	b := startNode(t, cs, uniq("node-b"))
	b.serve(t, ns)
	out := kubectl(t, "drain", a.name, "--pod-selector=app=web", "--timeout=60s")
	mustContain(t, "kubectl drain", out, "drained")
	eventually(t, 10*time.Second, "3 ready pods, all on "+b.name, func() (bool, error) {
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(l.Items) != 3 {
			return false, err
		}
		for _, p := range l.Items {
			if p.Spec.NodeName != b.name || !isReady(&p) {
				return false, fmt.Errorf("pod %s on %q", p.Name, p.Spec.NodeName)
			}
		}
		return true, nil
	})
}
