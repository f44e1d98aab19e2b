package kubelet

import (
	"net"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func statusKubelet(t *testing.T) *Kubelet {
	k := &Kubelet{cfg: Config{NodeIP: net.IPv4(10, 0, 0, 5), RootDir: t.TempDir()},
		runtimeVer: &runtimeapi.VersionResponse{RuntimeName: "containerd"}, runCtx: t.Context()}
	k.probes = newProber(k)
	return k
}

func readySandbox() *runtimeapi.PodSandboxStatus {
	return &runtimeapi.PodSandboxStatus{Id: "sb1", State: runtimeapi.PodSandboxState_SANDBOX_READY,
		Network: &runtimeapi.PodSandboxNetworkStatus{Ip: "10.42.0.7"}, Metadata: &runtimeapi.PodSandboxMetadata{}}
}

func ctr(name string, attempt uint32, state runtimeapi.ContainerState, exit int32) *container {
	now := time.Now()
	return &container{sandboxID: "sb1", ContainerStatus: &runtimeapi.ContainerStatus{
		Id: name + "-" + string(rune('0'+attempt)), Metadata: &runtimeapi.ContainerMetadata{Name: name, Attempt: attempt},
		State: state, ExitCode: exit, StartedAt: now.Add(-time.Minute).UnixNano(), FinishedAt: now.UnixNano(),
		ImageRef: "sha256:abc", Labels: map[string]string{labelContainerName: name},
	}}
}

func basePod(containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyAlways}}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: "img:1"})
	}
	sched := metav1.NewTime(time.Unix(1000, 0))
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: sched}}
	return p
}

func cond(s corev1.PodStatus, t corev1.PodConditionType) corev1.PodCondition {
	for _, c := range s.Conditions {
		if c.Type == t {
			return c
		}
	}
	return corev1.PodCondition{}
}

func TestStatusOfARunningPod(t *testing.T) {
	k := statusKubelet(t)
	pod := basePod("a")
	st := &podState{sandbox: readySandbox(), containers: []*container{ctr("a", 2, runtimeapi.ContainerState_CONTAINER_RUNNING, 0), ctr("a", 1, runtimeapi.ContainerState_CONTAINER_EXITED, 137)}}
	s := k.podStatus(pod, st, &syncResult{waiting: map[string]*corev1.ContainerStateWaiting{}})
	if s.Phase != corev1.PodRunning || s.PodIP != "10.42.0.7" || s.HostIP != "10.0.0.5" || s.QOSClass != corev1.PodQOSBestEffort {
		t.Errorf("status: phase %s podIP %s hostIP %s qos %s", s.Phase, s.PodIP, s.HostIP, s.QOSClass)
	}
	cs := s.ContainerStatuses[0]
	if cs.State.Running == nil || !cs.Ready || cs.RestartCount != 2 || cs.ContainerID != "containerd://a-2" || cs.ImageID != "sha256:abc" {
		t.Errorf("container status: %+v", cs)
	}
	if lt := cs.LastTerminationState.Terminated; lt == nil || lt.ExitCode != 137 || lt.Reason != "Error" {
		t.Errorf("lastState: %+v", cs.LastTerminationState)
	}
	for _, ty := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		if c := cond(s, ty); c.Status != corev1.ConditionTrue {
			t.Errorf("%s: %+v", ty, c)
		}
	}
	if c := cond(s, corev1.PodScheduled); c.Status != corev1.ConditionTrue || !c.LastTransitionTime.Equal(&pod.Status.Conditions[0].LastTransitionTime) {
		t.Errorf("PodScheduled not kept as it was: %+v", c)
	}
}

func TestStatusWhileBackingOff(t *testing.T) {
	k := statusKubelet(t)
	pod := basePod("a")
	st := &podState{sandbox: readySandbox(), containers: []*container{ctr("a", 3, runtimeapi.ContainerState_CONTAINER_EXITED, 1)}}
	res := &syncResult{waiting: map[string]*corev1.ContainerStateWaiting{}}
	res.wait("a", reasonCrashLoopBackOff, "back-off 40s")
	s := k.podStatus(pod, st, res)
	cs := s.ContainerStatuses[0]
	if cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" || cs.LastTerminationState.Terminated == nil || cs.RestartCount != 3 || cs.Ready {
		t.Errorf("container status: %+v", cs)
	}
	if s.Phase != corev1.PodRunning || cond(s, corev1.PodReady).Status != corev1.ConditionFalse || cond(s, corev1.PodReady).Reason != "ContainersNotReady" {
		t.Errorf("phase %s, Ready %+v", s.Phase, cond(s, corev1.PodReady))
	}
}

func TestStatusWhileInitialising(t *testing.T) {
	k := statusKubelet(t)
	pod := basePod("app")
	pod.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "img:1"}}
	st := &podState{sandbox: readySandbox(), containers: []*container{ctr("init", 0, runtimeapi.ContainerState_CONTAINER_RUNNING, 0)}}
	s := k.podStatus(pod, st, &syncResult{waiting: map[string]*corev1.ContainerStateWaiting{}})
	if s.Phase != corev1.PodPending || cond(s, corev1.PodInitialized).Status != corev1.ConditionFalse {
		t.Errorf("phase %s Initialized %+v", s.Phase, cond(s, corev1.PodInitialized))
	}
	if w := s.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "PodInitializing" {
		t.Errorf("app container: %+v", s.ContainerStatuses[0].State)
	}
	if s.InitContainerStatuses[0].State.Running == nil || s.InitContainerStatuses[0].Ready {
		t.Errorf("init container: %+v", s.InitContainerStatuses[0])
	}
	st.containers = []*container{ctr("init", 0, runtimeapi.ContainerState_CONTAINER_EXITED, 0), ctr("app", 0, runtimeapi.ContainerState_CONTAINER_RUNNING, 0)}
	s = k.podStatus(pod, st, &syncResult{waiting: map[string]*corev1.ContainerStateWaiting{}})
	if s.Phase != corev1.PodRunning || cond(s, corev1.PodInitialized).Status != corev1.ConditionTrue || !s.InitContainerStatuses[0].Ready {
		t.Errorf("after init: phase %s Initialized %+v init %+v", s.Phase, cond(s, corev1.PodInitialized), s.InitContainerStatuses[0])
	}
}

func TestTerminalPhaseIsFinal(t *testing.T) {
	k := statusKubelet(t)
	pod := basePod("a")
	pod.Status.Phase = corev1.PodSucceeded
	st := &podState{sandbox: readySandbox(), containers: []*container{ctr("a", 0, runtimeapi.ContainerState_CONTAINER_RUNNING, 0)}}
	if s := k.podStatus(pod, st, &syncResult{waiting: map[string]*corev1.ContainerStateWaiting{}}); s.Phase != corev1.PodSucceeded {
		t.Errorf("a Succeeded pod went back to %s", s.Phase)
	}
}
