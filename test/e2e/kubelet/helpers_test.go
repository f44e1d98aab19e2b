package kubelet

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// namespace creates a namespace for one test; its pods are deleted when the test ends.
func namespace(t *testing.T) string {
	t.Helper()
	ns := fmt.Sprintf("tkl-%d", time.Now().UnixNano()%1000000000)
	if _, err := cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		zero := int64(1)
		cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		for ctx.Err() == nil { // the kubelet stops the pods, removes the objects and the sandboxes
			l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err == nil && len(l.Items) == 0 && sandboxesIn(ctx, ns) == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond) // polling for the kubelet to finish
		}
		cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	})
	return ns
}

// busybox is a container of the test image running a shell command.
func busybox(name, script string) corev1.Container {
	return corev1.Container{Name: name, Image: busyboxImage, ImagePullPolicy: corev1.PullIfNotPresent,
		Command: []string{"/bin/sh", "-c", script}}
}

func newPod(ns, name string, cs ...corev1.Container) *corev1.Pod {
	grace := int64(1) // test containers mostly ignore SIGTERM (sleep as PID 1): keep clean-up short
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name}},
		Spec:       corev1.PodSpec{NodeName: nodeName, Containers: cs, TerminationGracePeriodSeconds: &grace},
	}
}

func create(t *testing.T, p *corev1.Pod) *corev1.Pod {
	t.Helper()
	out, err := cs.CoreV1().Pods(p.Namespace).Create(t.Context(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitPod polls the pod until ok says yes, failing the test with its last status on timeout.
func waitPod(t *testing.T, ns, name string, timeout time.Duration, what string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last *corev1.Pod
	for time.Now().Before(deadline) {
		p, err := cs.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err == nil {
			last = p
			if ok(p) {
				return p
			}
		} else if !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // polling the API for the kubelet's status
	}
	t.Fatalf("pod %s/%s: not %s within %s; last status: %s", ns, name, what, timeout, statusString(last))
	return nil
}

func running(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running == nil {
			return false
		}
	}
	return true
}

func statusString(p *corev1.Pod) string {
	if p == nil {
		return "<none>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s podIP=%s", p.Status.Phase, p.Status.PodIP)
	for _, c := range p.Status.Conditions {
		fmt.Fprintf(&b, " %s=%s", c.Type, c.Status)
	}
	for _, c := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		fmt.Fprintf(&b, " [%s restarts=%d ready=%v %s]", c.Name, c.RestartCount, c.Ready, stateString(c.State))
	}
	return b.String()
}

func stateString(s corev1.ContainerState) string {
	switch {
	case s.Waiting != nil:
		return "waiting:" + s.Waiting.Reason + " " + s.Waiting.Message
	case s.Running != nil:
		return "running"
	case s.Terminated != nil:
		return fmt.Sprintf("terminated:%s(%d)", s.Terminated.Reason, s.Terminated.ExitCode)
	}
	return "?"
}

// execIn runs a command in the pod's container through CRI ExecSync and returns its stdout.
func execIn(t *testing.T, p *corev1.Pod, container string, cmd ...string) string {
	t.Helper()
	out, code := execCode(t, p, container, cmd...)
	if code != 0 {
		t.Fatalf("exec %v in %s/%s: exit %d: %s", cmd, p.Name, container, code, out)
	}
	return out
}

func execCode(t *testing.T, p *corev1.Pod, container string, cmd ...string) (string, int32) {
	t.Helper()
	id := containerID(t, p, container)
	rt, conn, err := ctrd.runtimeClient()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r, err := rt.ExecSync(t.Context(), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 10})
	if err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	return string(r.Stdout) + string(r.Stderr), r.ExitCode
}

func containerID(t *testing.T, p *corev1.Pod, container string) string {
	t.Helper()
	for _, c := range p.Status.ContainerStatuses {
		if c.Name == container {
			_, id, _ := strings.Cut(c.ContainerID, "://")
			return id
		}
	}
	t.Fatalf("pod %s has no status for container %s", p.Name, container)
	return ""
}

// criContainers lists the runtime's containers of a pod.
func criContainers(t *testing.T, uid string) []*runtimeapi.Container {
	t.Helper()
	rt, conn, err := ctrd.runtimeClient()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r, err := rt.ListContainers(t.Context(), &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		LabelSelector: map[string]string{"io.kubernetes.pod.uid": uid}}})
	if err != nil {
		t.Fatal(err)
	}
	return r.Containers
}

// sandboxesIn counts the runtime's sandboxes of pods in the namespace.
func sandboxesIn(ctx context.Context, ns string) int {
	rt, conn, err := ctrd.runtimeClient()
	if err != nil {
		return 0
	}
	defer conn.Close()
	r, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{"io.kubernetes.pod.namespace": ns}}})
	if err != nil {
		return 0
	}
	return len(r.Items)
}
