package scheduler

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// testCluster is a namespace and a set of hollow nodes (Node objects with a Ready
// condition and allocatable, no kubelet) that one test owns and removes afterwards.
// Tests run one at a time, so each sees only its own nodes.
type testCluster struct {
	t     *testing.T
	cs    *kubernetes.Clientset
	ns    string
	nodes []string
}

func newCluster(t *testing.T) *testCluster {
	t.Helper()
	need(t)
	c := &testCluster{t: t, cs: client(t), ns: fmt.Sprintf("tsched-%d", time.Now().UnixNano()%1e9)}
	if _, err := c.cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		c.cs.CoreV1().Pods(c.ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, metav1.ListOptions{})
		c.cs.CoreV1().Namespaces().Delete(ctx, c.ns, metav1.DeleteOptions{})
		for _, n := range c.nodes {
			c.cs.CoreV1().Nodes().Delete(ctx, n, metav1.DeleteOptions{})
		}
	})
	return c
}

// node creates a Ready node with 2 cpu, 4Gi and 110 pods, and the given labels.
func (c *testCluster) node(name string, edit func(*corev1.Node)) {
	c.t.Helper()
	alloc := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi"), corev1.ResourcePods: resource.MustParse("110")}
	name = c.ns + "-" + name
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: corev1.NodeStatus{Capacity: alloc, Allocatable: alloc, Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: metav1.Now()}}},
	}
	if edit != nil {
		edit(n)
	}
	status := n.Status
	got, err := c.cs.CoreV1().Nodes().Create(c.t.Context(), n, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	c.nodes = append(c.nodes, name)
	if len(got.Status.Allocatable) == 0 { // status is the kubelet's to write: set it as the kubelet would
		got.Status = status
		if _, err := c.cs.CoreV1().Nodes().UpdateStatus(c.t.Context(), got, metav1.UpdateOptions{}); err != nil {
			c.t.Fatal(err)
		}
	}
}

// nodeName is the full name of a node the test made.
func (c *testCluster) nodeName(short string) string { return c.ns + "-" + short }

// pod creates a pod with one container requesting 100m cpu and 64Mi, edited by edit.
func (c *testCluster) pod(name string, edit func(*corev1.Pod)) {
	c.t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.ns, Labels: map[string]string{"test": "scheduler"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}}}}},
	}
	if edit != nil {
		edit(p)
	}
	if _, err := c.cs.CoreV1().Pods(c.ns).Create(c.t.Context(), p, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

// waitPod polls the pod until cond holds (30s).
func (c *testCluster) waitPod(name, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	c.t.Helper()
	var last *corev1.Pod
	err := wait.PollUntilContextTimeout(c.t.Context(), 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := c.cs.CoreV1().Pods(c.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = p
		return cond(p), nil
	})
	if err != nil {
		c.t.Fatalf("pod %s never %s: %v; last: nodeName %q, conditions %+v", name, what, err, last.Spec.NodeName, last.Status.Conditions)
	}
	return last
}

// bound waits for the pod to be bound and returns its node's short name.
func (c *testCluster) bound(name string) string {
	c.t.Helper()
	p := c.waitPod(name, "bound", func(p *corev1.Pod) bool { return p.Spec.NodeName != "" })
	return strings.TrimPrefix(p.Spec.NodeName, c.ns+"-")
}

// unschedulable waits for PodScheduled=False, reason Unschedulable, and returns its message.
func (c *testCluster) unschedulable(name string) string {
	c.t.Helper()
	p := c.waitPod(name, "marked unschedulable", func(p *corev1.Pod) bool { return scheduledCondition(p) != nil })
	if p.Spec.NodeName != "" {
		c.t.Fatalf("pod %s was bound to %s", name, p.Spec.NodeName)
	}
	return scheduledCondition(p).Message
}

func scheduledCondition(p *corev1.Pod) *corev1.PodCondition {
	for i, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// stillPending checks that the pod is not bound (it was found unschedulable before).
func (c *testCluster) stillPending(name string) {
	c.t.Helper()
	p, err := c.cs.CoreV1().Pods(c.ns).Get(c.t.Context(), name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		c.t.Fatal(err)
	}
	if err == nil && p.Spec.NodeName != "" {
		c.t.Fatalf("pod %s was bound to %s", name, p.Spec.NodeName)
	}
}
