package controller

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// podIPs numbers the addresses the fake kubelets give pods.
var podIPs atomic.Int32

// node is a Node object the test keeps alive as a kubelet would: it renews the
// node's Lease every half second and, for the namespaces it serves, binds pending
// pods to itself and reports them running and ready.
type node struct {
	name      string
	cs        kubernetes.Interface
	beating   atomic.Bool
	readyPods atomic.Bool
}

func startNode(t *testing.T, cs kubernetes.Interface, name string) *node {
	t.Helper()
	ctx := context.Background()
	now := metav1.Now()
	n := &node{name: name, cs: cs}
	n.beating.Store(true)
	n.readyPods.Store(true)
	obj := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status",
			LastHeartbeatTime: now, LastTransitionTime: now,
		}}},
	}
	if _, err := cs.CoreV1().Nodes().Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: corev1.NamespaceNodeLease},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To(name), LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &metav1.MicroTime{Time: time.Now()}},
	}
	if _, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	go func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if !n.beating.Load() {
				continue
			}
			l, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				continue
			}
			l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
			cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Update(ctx, l, metav1.UpdateOptions{})
		}
	}()
	t.Cleanup(func() {
		close(stop)
		cs.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
		cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Delete(ctx, name, metav1.DeleteOptions{})
	})
	return n
}

// serve plays scheduler and kubelet for the pods of namespace ns until the test ends.
func (n *node) serve(t *testing.T, ns string) {
	f := informers.NewSharedInformerFactoryWithOptions(n.cs, 0, informers.WithNamespace(ns))
	sem := make(chan struct{}, 16)
	handle := func(obj any) {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return
		}
		switch {
		case p.DeletionTimestamp != nil && p.Spec.NodeName == n.name:
			go func() { // a graceful deletion: the containers are gone at once
				sem <- struct{}{}
				defer func() { <-sem }()
				n.cs.CoreV1().Pods(ns).Delete(context.Background(), p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
			}()
		case p.DeletionTimestamp != nil:
		case p.Spec.NodeName == "":
			go func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				if me, err := n.cs.CoreV1().Nodes().Get(context.Background(), n.name, metav1.GetOptions{}); err != nil || me.Spec.Unschedulable {
					return // cordoned: another node (or none) takes the pod
				}
				if pin := pinnedTo(p); pin != "" && pin != n.name {
					return // a daemon pod for another node
				}
				n.cs.CoreV1().Pods(ns).Bind(context.Background(), &corev1.Binding{
					ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: ns},
					Target:     corev1.ObjectReference{Kind: "Node", Name: n.name},
				}, metav1.CreateOptions{})
			}()
		case p.Spec.NodeName == n.name && p.Status.Phase == corev1.PodPending && n.readyPods.Load():
			go func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				n.setRunning(p)
			}()
		}
	}
	f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    handle,
		UpdateFunc: func(_, obj any) { handle(obj) },
	})
	stop := make(chan struct{})
	f.Start(stop)
	t.Cleanup(func() { close(stop); f.Shutdown() })
}

// pinnedTo is the node a pod's required node affinity names by metadata.name.
func pinnedTo(p *corev1.Pod) string {
	if a := p.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			for _, f := range term.MatchFields {
				if f.Key == "metadata.name" && len(f.Values) == 1 {
					return f.Values[0]
				}
			}
		}
	}
	return ""
}

// postReady reports the node Ready again, as a kubelet back in touch would.
func (n *node) postReady(t *testing.T) {
	t.Helper()
	node, err := n.cs.CoreV1().Nodes().Get(context.Background(), n.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	for i := range node.Status.Conditions {
		c := &node.Status.Conditions[i]
		c.LastHeartbeatTime = now
		if c.Type == corev1.NodeReady {
			c.Status, c.Reason, c.Message, c.LastTransitionTime = corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status", now
		} else {
			c.Status, c.Reason, c.Message = corev1.ConditionFalse, "KubeletHasSufficientResources", ""
		}
	}
	if _, err := n.cs.CoreV1().Nodes().UpdateStatus(context.Background(), node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// setRunning reports p running with every container ready, as a kubelet would. A pod
// that may finish (restartPolicy Never or OnFailure) finishes at once: it fails if its
// command says "exit 1", else it succeeds.
func (n *node) setRunning(p *corev1.Pod) {
	p = p.DeepCopy()
	now := metav1.Now()
	if p.Spec.RestartPolicy == corev1.RestartPolicyNever || p.Spec.RestartPolicy == corev1.RestartPolicyOnFailure {
		p.Status.Phase, p.Status.StartTime = corev1.PodSucceeded, &now
		code := int32(0)
		if c := p.Spec.Containers[0]; strings.Contains(strings.Join(append(c.Command, c.Args...), " "), "exit 1") {
			p.Status.Phase, code = corev1.PodFailed, 1
		}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: p.Spec.Containers[0].Name, Image: p.Spec.Containers[0].Image,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, StartedAt: now, FinishedAt: now}}}}
		n.cs.CoreV1().Pods(p.Namespace).UpdateStatus(context.Background(), p, metav1.UpdateOptions{})
		return
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.StartTime = &now
	ip := fmt.Sprintf("10.99.%d.%d", podIPs.Load()/250, podIPs.Add(1)%250+1)
	p.Status.PodIP, p.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
	p.Status.Conditions = nil
	for _, c := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: c, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	n.cs.CoreV1().Pods(p.Namespace).UpdateStatus(context.Background(), p, metav1.UpdateOptions{})
}

// podCount counts the pods in ns that are not being deleted, and the ready ones.
func podCount(t *testing.T, cs kubernetes.Interface, ns, selector string) (all, ready int) {
	t.Helper()
	l, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range l.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		all++
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	return all, ready
}
