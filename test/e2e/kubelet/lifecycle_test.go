package kubelet

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestCrashingContainerBacksOff(t *testing.T) {
	need(t)
	ns := namespace(t)
	create(t, newPod(ns, "crash", busybox("main", "echo dying; exit 3")))
	p := waitPod(t, ns, "crash", 30*time.Second, "in CrashLoopBackOff", func(p *corev1.Pod) bool {
		c := p.Status.ContainerStatuses
		return len(c) == 1 && c[0].State.Waiting != nil && c[0].State.Waiting.Reason == "CrashLoopBackOff" && c[0].RestartCount >= 1
	})
	c := p.Status.ContainerStatuses[0]
	if c.LastTerminationState.Terminated == nil || c.LastTerminationState.Terminated.ExitCode != 3 || c.LastTerminationState.Terminated.Reason != "Error" {
		t.Errorf("lastState: %+v", c.LastTerminationState)
	}
	if p.Status.Phase != corev1.PodRunning {
		t.Errorf("a restarting pod with restartPolicy Always is Running, got %s", p.Status.Phase)
	}
	// The previous instance's log, from the kubelet and through kubectl.
	if code, body := get(t, httpsClient(t), "/containerLogs/"+ns+"/crash/main?previous=true"); code != 200 || body != "dying\n" {
		t.Errorf("previous log: %d %q", code, body)
	}
	if _, err := os.Stat(kubectlBin); err == nil {
		if got := kubectl(t, "", "-n", ns, "logs", "--previous", "crash"); got != "dying\n" {
			t.Errorf("kubectl logs --previous: %q", got)
		}
	}
	first := c.RestartCount
	// The back-off starts at 10s: the next restart comes, and no sooner than that.
	start := time.Now()
	waitPod(t, ns, "crash", 30*time.Second, "restarted again", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount > first
	})
	if d := time.Since(start); d < 3*time.Second {
		t.Errorf("restarted again after %s: no back-off", d)
	}
}

func TestRestartPolicyNeverFailsThePod(t *testing.T) {
	need(t)
	ns := namespace(t)
	p := newPod(ns, "once", busybox("main", "exit 7"))
	p.Spec.RestartPolicy = corev1.RestartPolicyNever
	create(t, p)
	p = waitPod(t, ns, "once", 30*time.Second, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if c := p.Status.ContainerStatuses[0]; c.State.Terminated == nil || c.State.Terminated.ExitCode != 7 || c.RestartCount != 0 {
		t.Errorf("container: %+v", c)
	}
	// The termination message: the file the container wrote, or its log's tail on failure.
	msg := busybox("main", "echo 'all went well' > /dev/termination-log")
	msg.TerminationMessagePath = "/dev/termination-log"
	fallback := busybox("logs", "echo 'last words'; exit 2")
	fallback.TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError
	tm := newPod(ns, "messages", msg, fallback)
	tm.Spec.RestartPolicy = corev1.RestartPolicyNever
	create(t, tm)
	tm = waitPod(t, ns, "messages", 30*time.Second, "Failed", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	for i, want := range []string{"all went well\n", "last words\n"} {
		if got := tm.Status.ContainerStatuses[i].State.Terminated; got == nil || got.Message != want {
			t.Errorf("%s: termination message %+v, want %q", tm.Status.ContainerStatuses[i].Name, got, want)
		}
	}
	ok := newPod(ns, "done", busybox("main", "exit 0"))
	ok.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	create(t, ok)
	waitPod(t, ns, "done", 30*time.Second, "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
}

func TestInitContainersRunFirst(t *testing.T) {
	need(t)
	ns := namespace(t)
	p := newPod(ns, "init", busybox("main", "cat /work/greeting; exec sleep 3600"))
	p.Spec.InitContainers = []corev1.Container{
		busybox("first", "echo hello > /work/greeting"),
		busybox("second", "echo world >> /work/greeting"),
	}
	p.Spec.Volumes = []corev1.Volume{{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	for _, cs := range []*[]corev1.Container{&p.Spec.InitContainers, &p.Spec.Containers} {
		for i := range *cs {
			(*cs)[i].VolumeMounts = []corev1.VolumeMount{{Name: "work", MountPath: "/work"}}
		}
	}
	create(t, p)
	p = waitPod(t, ns, "init", 30*time.Second, "running", running)
	if got := execIn(t, p, "main", "cat", "/work/greeting"); got != "hello\nworld\n" {
		t.Errorf("init containers ran out of order or not at all: %q", got)
	}
	for _, ic := range p.Status.InitContainerStatuses {
		if ic.State.Terminated == nil || ic.State.Terminated.Reason != "Completed" {
			t.Errorf("init container %s: %+v", ic.Name, ic.State)
		}
	}
	if !condition(p, corev1.PodInitialized) {
		t.Errorf("Initialized is not True: %s", statusString(p))
	}
}

func TestLivenessProbeRestartsContainer(t *testing.T) {
	need(t)
	ns := namespace(t)
	c := busybox("main", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; exec sleep 3600")
	c.LivenessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/healthy"}}},
		PeriodSeconds: 1, FailureThreshold: 1, SuccessThreshold: 1, TimeoutSeconds: 2,
	}
	create(t, newPod(ns, "live", c))
	p := waitPod(t, ns, "live", 40*time.Second, "restarted by its liveness probe", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	if lt := p.Status.ContainerStatuses[0].LastTerminationState.Terminated; lt == nil {
		t.Errorf("no lastState after the liveness restart: %s", statusString(p))
	}
}

func TestReadinessProbeFlipsReady(t *testing.T) {
	need(t)
	ns := namespace(t)
	c := busybox("main", "exec sleep 3600")
	c.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/ready"}}},
		PeriodSeconds: 1, FailureThreshold: 1, SuccessThreshold: 1, TimeoutSeconds: 2,
	}
	create(t, newPod(ns, "ready", c))
	p := waitPod(t, ns, "ready", 30*time.Second, "running", running)
	if condition(p, corev1.PodReady) {
		t.Fatalf("Ready before the readiness probe passed: %s", statusString(p))
	}
	execIn(t, p, "main", "touch", "/tmp/ready")
	waitPod(t, ns, "ready", 15*time.Second, "Ready", func(p *corev1.Pod) bool { return condition(p, corev1.PodReady) })
	execIn(t, p, "main", "rm", "/tmp/ready")
	p = waitPod(t, ns, "ready", 15*time.Second, "not Ready", func(p *corev1.Pod) bool { return !condition(p, corev1.PodReady) })
	if p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("readiness must not restart: %s", statusString(p))
	}
}

func TestDeletionRunsPreStopAndStopsWithinGrace(t *testing.T) {
	need(t)
	ns := namespace(t)
	host := t.TempDir()
	// The shell ignores SIGTERM: only the kill at the end of the grace period stops it.
	c := busybox("main", "trap '' TERM; while true; do sleep 1; done")
	c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo bye > /host/prestop"}}}}
	c.VolumeMounts = []corev1.VolumeMount{{Name: "host", MountPath: "/host"}}
	p := newPod(ns, "bye", c)
	grace := int64(3)
	p.Spec.TerminationGracePeriodSeconds = &grace
	p.Spec.Volumes = []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: host}}}}
	create(t, p)
	p = waitPod(t, ns, "bye", 30*time.Second, "running", running)
	start := time.Now()
	if err := cs.CoreV1().Pods(ns).Delete(t.Context(), "bye", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// An API server with graceful deletion keeps the object until the kubelet is done; one
	// without deletes it at once. Either way the container gets its grace period.
	for {
		_, err := cs.CoreV1().Pods(ns).Get(t.Context(), "bye", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Since(start) > 15*time.Second {
			t.Fatalf("pod object still there %s after delete: %v", time.Since(start), err)
		}
		time.Sleep(50 * time.Millisecond) // polling for the deletion
	}
	for len(criContainers(t, string(p.UID))) > 0 {
		if time.Since(start) > 15*time.Second {
			t.Fatalf("the runtime still has the deleted pod's containers after %s", time.Since(start))
		}
		time.Sleep(50 * time.Millisecond) // polling for the kubelet's clean-up
	}
	if d := time.Since(start); d < 2*time.Second || d > 8*time.Second {
		t.Errorf("a container that ignores SIGTERM went after %s; want about its 3s grace period", d)
	}
	if b, err := os.ReadFile(filepath.Join(host, "prestop")); err != nil || strings.TrimSpace(string(b)) != "bye" {
		t.Errorf("preStop hook did not run: %q %v", b, err)
	}
}

func TestRestartedKubeletAdoptsRunningPods(t *testing.T) {
	need(t)
	ns := namespace(t)
	create(t, newPod(ns, "stay", busybox("main", "exec sleep 3600")))
	before := waitPod(t, ns, "stay", 30*time.Second, "running", running)
	restartKubelet(t)
	// The new kubelet works (it starts a new pod) and has synced the old one meanwhile.
	create(t, newPod(ns, "after", busybox("main", "exec sleep 3600")))
	waitPod(t, ns, "after", 30*time.Second, "running", running)
	after, err := cs.CoreV1().Pods(ns).Get(t.Context(), "stay", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, a := before.Status.ContainerStatuses[0], after.Status.ContainerStatuses[0]
	if a.ContainerID != b.ContainerID || a.RestartCount != 0 || a.State.Running == nil || !a.State.Running.StartedAt.Equal(&b.State.Running.StartedAt) {
		t.Fatalf("the restarted kubelet did not adopt the running container:\nbefore %+v\nafter  %+v", b, a)
	}
	if after.Status.PodIP != before.Status.PodIP {
		t.Errorf("podIP changed across the restart: %s -> %s", before.Status.PodIP, after.Status.PodIP)
	}
	if n := len(criContainers(t, string(before.UID))); n != 1 {
		t.Errorf("the runtime has %d containers for the pod, want 1", n)
	}
}

func TestImagePullFailuresAreReported(t *testing.T) {
	need(t)
	ns := namespace(t)
	never := busybox("main", "true")
	never.Image, never.ImagePullPolicy = "berth.test/absent:1", corev1.PullNever
	create(t, newPod(ns, "never", never))
	waitPod(t, ns, "never", 30*time.Second, "ErrImageNeverPull", func(p *corev1.Pod) bool {
		c := p.Status.ContainerStatuses
		return len(c) == 1 && c[0].State.Waiting != nil && c[0].State.Waiting.Reason == "ErrImageNeverPull"
	})
	// Nothing listens on 127.0.0.1:1: the pull fails at once, then backs off. The first
	// status may last only until the next sync, so a watch sees it where polling might not.
	bad := busybox("main", "true")
	bad.Image = "127.0.0.1:1/absent:1"
	w, err := cs.CoreV1().Pods(ns).Watch(t.Context(), metav1.ListOptions{FieldSelector: "metadata.name=bad"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	create(t, newPod(ns, "bad", bad))
	seen := map[string]bool{}
	timeout := time.After(40 * time.Second)
	for !seen["ErrImagePull"] || !seen["ImagePullBackOff"] {
		select {
		case ev := <-w.ResultChan():
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				t.Fatalf("watch: %v", ev.Object)
			}
			if c := p.Status.ContainerStatuses; len(c) == 1 && c[0].State.Waiting != nil {
				seen[c[0].State.Waiting.Reason] = true
			}
			if p.Status.Phase != corev1.PodPending && p.Status.Phase != "" {
				t.Errorf("phase %s", p.Status.Phase)
			}
		case <-timeout:
			t.Fatalf("waiting reasons seen: %v; want ErrImagePull then ImagePullBackOff", seen)
		}
	}
}

func TestSidecarInitContainerRunsBesideTheApp(t *testing.T) {
	need(t)
	ns := namespace(t)
	always := corev1.ContainerRestartPolicyAlways
	side := busybox("side", "exec sleep 3600")
	side.RestartPolicy = &always
	p := newPod(ns, "sidecar", busybox("main", "exec sleep 3600"))
	p.Spec.InitContainers = []corev1.Container{side, busybox("setup", "true")}
	create(t, p)
	p = waitPod(t, ns, "sidecar", 30*time.Second, "running with its sidecar", func(p *corev1.Pod) bool {
		return running(p) && len(p.Status.InitContainerStatuses) == 2 && p.Status.InitContainerStatuses[0].State.Running != nil &&
			p.Status.InitContainerStatuses[1].State.Terminated != nil && condition(p, corev1.PodInitialized)
	})
	if !condition(p, corev1.PodInitialized) {
		t.Errorf("not Initialized: %s", statusString(p))
	}
	waitPod(t, ns, "sidecar", 10*time.Second, "Ready with its sidecar ready", func(p *corev1.Pod) bool {
		return condition(p, corev1.PodReady) && p.Status.InitContainerStatuses[0].Ready
	})
}

// TestTerminatingPodIsStoppedAndReported covers a pod the API keeps while it terminates (a
// deletionTimestamp, here held by a finalizer): the kubelet runs preStop, stops the containers,
// writes the final status and deletes the object with grace period 0.
func TestTerminatingPodIsStoppedAndReported(t *testing.T) {
	need(t)
	ns := namespace(t)
	host := t.TempDir()
	c := busybox("main", "exec sleep 3600")
	c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo bye > /host/prestop"}}}}
	c.VolumeMounts = []corev1.VolumeMount{{Name: "host", MountPath: "/host"}}
	p := newPod(ns, "held", c)
	p.Finalizers = []string{"berth.test/hold"}
	p.Spec.Volumes = []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: host}}}}
	create(t, p)
	p = waitPod(t, ns, "held", 30*time.Second, "running", running)
	if err := cs.CoreV1().Pods(ns).Delete(t.Context(), "held", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	p = waitPod(t, ns, "held", 20*time.Second, "stopped and reported", func(p *corev1.Pod) bool {
		return p.DeletionTimestamp != nil && (p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded) &&
			len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Terminated != nil
	})
	if condition(p, corev1.PodReady) {
		t.Errorf("a terminated pod is Ready: %s", statusString(p))
	}
	if b, err := os.ReadFile(filepath.Join(host, "prestop")); err != nil || strings.TrimSpace(string(b)) != "bye" {
		t.Errorf("preStop hook did not run: %q %v", b, err)
	}
	if _, err := cs.CoreV1().Pods(ns).Patch(t.Context(), "held", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); len(criContainers(t, string(p.UID))) > 0; {
		if time.Now().After(deadline) {
			t.Fatal("the runtime still has the pod's containers after the object went")
		}
		time.Sleep(50 * time.Millisecond) // polling for the kubelet's clean-up
	}
}

func TestActiveDeadlineFailsThePod(t *testing.T) {
	need(t)
	ns := namespace(t)
	p := newPod(ns, "deadline", busybox("main", "exec sleep 3600"))
	d := int64(2)
	p.Spec.ActiveDeadlineSeconds = &d
	create(t, p)
	p = waitPod(t, ns, "deadline", 20*time.Second, "Failed with DeadlineExceeded", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodFailed && p.Status.Reason == "DeadlineExceeded"
	})
	if c := p.Status.ContainerStatuses; len(c) != 1 || c[0].State.Terminated == nil {
		t.Errorf("container not stopped: %s", statusString(p))
	}
}

func TestHTTPAndTCPProbes(t *testing.T) {
	need(t)
	ns := namespace(t)
	c := busybox("main", "mkdir -p /www && echo ok > /www/healthz && exec httpd -f -p 8080 -h /www")
	c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
	c.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
		PeriodSeconds: 1, FailureThreshold: 1, SuccessThreshold: 1, TimeoutSeconds: 1,
	}
	c.LivenessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1, FailureThreshold: 3, SuccessThreshold: 1, TimeoutSeconds: 1, InitialDelaySeconds: 1,
	}
	create(t, newPod(ns, "web", c))
	p := waitPod(t, ns, "web", 30*time.Second, "Ready through its httpGet probe", func(p *corev1.Pod) bool { return condition(p, corev1.PodReady) })
	execIn(t, p, "main", "rm", "/www/healthz")
	p = waitPod(t, ns, "web", 15*time.Second, "not Ready after a 404", func(p *corev1.Pod) bool { return !condition(p, corev1.PodReady) })
	if r := p.Status.ContainerStatuses[0].RestartCount; r != 0 {
		t.Errorf("the tcpSocket liveness probe restarted a listening container %d times", r)
	}
}

func TestStartupProbeGatesAndRestarts(t *testing.T) {
	need(t)
	ns := namespace(t)
	slow := busybox("main", "sleep 2; touch /tmp/up; exec sleep 3600")
	slow.StartupProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/up"}}},
		PeriodSeconds: 1, FailureThreshold: 30, SuccessThreshold: 1, TimeoutSeconds: 2,
	}
	create(t, newPod(ns, "slow", slow))
	p := waitPod(t, ns, "slow", 30*time.Second, "running", running)
	if s := p.Status.ContainerStatuses[0]; s.Started != nil && *s.Started && time.Since(s.State.Running.StartedAt.Time) < time.Second {
		t.Errorf("started before its startup probe could pass: %+v", s)
	}
	waitPod(t, ns, "slow", 15*time.Second, "started and Ready", func(p *corev1.Pod) bool {
		s := p.Status.ContainerStatuses[0]
		return s.Started != nil && *s.Started && condition(p, corev1.PodReady)
	})

	never := busybox("main", "exec sleep 3600")
	never.StartupProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"false"}}},
		PeriodSeconds: 1, FailureThreshold: 2, SuccessThreshold: 1, TimeoutSeconds: 1,
	}
	create(t, newPod(ns, "never", never))
	waitPod(t, ns, "never", 30*time.Second, "restarted by its startup probe", func(p *corev1.Pod) bool {
		s := p.Status.ContainerStatuses
		return len(s) == 1 && s[0].RestartCount >= 1 && !condition(p, corev1.PodReady)
	})
}

func TestPostStartHook(t *testing.T) {
	need(t)
	ns := namespace(t)
	c := busybox("main", "exec sleep 3600")
	c.Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo hooked > /tmp/poststart"}}}}
	create(t, newPod(ns, "hooked", c))
	p := waitPod(t, ns, "hooked", 30*time.Second, "running", running)
	if got := execIn(t, p, "main", "cat", "/tmp/poststart"); got != "hooked\n" {
		t.Errorf("postStart output: %q", got)
	}
	bad := busybox("main", "exec sleep 3600")
	bad.Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"false"}}}}
	create(t, newPod(ns, "badhook", bad))
	waitPod(t, ns, "badhook", 30*time.Second, "restarted after its postStart hook failed", func(p *corev1.Pod) bool {
		s := p.Status.ContainerStatuses
		return len(s) == 1 && s[0].RestartCount >= 1
	})
}

func TestImageChangeReplacesTheContainer(t *testing.T) {
	need(t)
	if out, err := ctrd.ctr("images", "tag", "--force", busyboxImage, "berth.test/busybox:2"); err != nil {
		t.Fatalf("ctr images tag: %v %s", err, out)
	}
	ns := namespace(t)
	create(t, newPod(ns, "upd", busybox("main", "exec sleep 3600")))
	p := waitPod(t, ns, "upd", 30*time.Second, "running", running)
	before := p.Status.ContainerStatuses[0].ContainerID
	p.Spec.Containers[0].Image = "berth.test/busybox:2"
	if _, err := cs.CoreV1().Pods(ns).Update(t.Context(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	p = waitPod(t, ns, "upd", 30*time.Second, "running the new image", func(p *corev1.Pod) bool {
		s := p.Status.ContainerStatuses
		return running(p) && len(s) == 1 && s[0].Image == "berth.test/busybox:2" && s[0].ContainerID != before
	})
	if r := p.Status.ContainerStatuses[0].RestartCount; r != 1 {
		t.Errorf("restartCount %d after the image change, want 1", r)
	}
}

// TestStoppingPodsDoNotDelayNewOnes: pods waiting out a long grace period (their containers
// ignore SIGTERM) must not hold up a new pod's start.
func TestStoppingPodsDoNotDelayNewOnes(t *testing.T) {
	need(t)
	ns := namespace(t)
	grace := int64(20)
	const n = 20
	for i := range n {
		p := newPod(ns, fmt.Sprintf("slow%02d", i), busybox("main", "trap '' TERM; while true; do sleep 1; done"))
		p.Spec.TerminationGracePeriodSeconds = &grace
		create(t, p)
	}
	for i := range n {
		waitPod(t, ns, fmt.Sprintf("slow%02d", i), 60*time.Second, "running", running)
	}
	for i := range n {
		if err := cs.CoreV1().Pods(ns).Delete(t.Context(), fmt.Sprintf("slow%02d", i), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	create(t, newPod(ns, "fresh", busybox("main", "exec sleep 3600")))
	waitPod(t, ns, "fresh", 15*time.Second, "running while the others stop", running)
	t.Logf("a new pod ran %s after %d pods began a %ds grace period", time.Since(start).Round(time.Millisecond), n, grace)
}
