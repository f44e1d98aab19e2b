package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podStatus computes the pod's status from the runtime's state, the probes' results and what
// the sync learnt. Conditions the kubelet does not own (PodScheduled, readiness gates' own) are
// kept as they are.
func (k *Kubelet) podStatus(pod *corev1.Pod, st *podState, res *syncResult) corev1.PodStatus {
	old := pod.Status
	s := *old.DeepCopy()
	s.HostIP = k.cfg.NodeIP.String()
	s.HostIPs = []corev1.HostIP{{IP: s.HostIP}}
	if ip := sandboxIP(st.sandbox); ip != "" && st.ready() {
		s.PodIP, s.PodIPs = ip, []corev1.PodIP{{IP: ip}}
		for _, extra := range st.sandbox.Network.AdditionalIps {
			s.PodIPs = append(s.PodIPs, corev1.PodIP{IP: extra.Ip})
		}
	} else if pod.Spec.HostNetwork && st.ready() {
		s.PodIP, s.PodIPs = s.HostIP, []corev1.PodIP{{IP: s.HostIP}}
	}
	if s.StartTime == nil {
		now := metav1.NewTime(time.Now().Truncate(time.Second))
		s.StartTime = &now
	}
	s.QOSClass = qosClass(pod)

	initDone := true
	s.InitContainerStatuses = nil
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cs := k.containerStatus(pod, c, st, res, "")
		cur := st.current(c.Name)
		if isSidecar(c) {
			if cur == nil || cur.State != runtimeapi.ContainerState_CONTAINER_RUNNING || cs.Started == nil || !*cs.Started {
				initDone = false
			}
		} else {
			cs.Ready = cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0
			if cur == nil || cur.State != runtimeapi.ContainerState_CONTAINER_EXITED || cur.ExitCode != 0 {
				initDone = false
			}
		}
		s.InitContainerStatuses = append(s.InitContainerStatuses, cs)
	}
	if len(pod.Spec.InitContainers) > 0 && !st.ready() {
		initDone = false
	}
	s.ContainerStatuses = nil
	allReady := true
	for i, ic := range s.InitContainerStatuses {
		if isSidecar(&pod.Spec.InitContainers[i]) {
			allReady = allReady && ic.Ready // sidecars' readiness counts, as upstream's
		}
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		pending := ""
		if !initDone {
			pending = reasonPodInitializing
		}
		cs := k.containerStatus(pod, c, st, res, pending)
		allReady = allReady && cs.Ready
		s.ContainerStatuses = append(s.ContainerStatuses, cs)
	}
	s.EphemeralContainerStatuses = nil
	for i := range pod.Spec.EphemeralContainers {
		c := ephemeral(pod, i)
		s.EphemeralContainerStatuses = append(s.EphemeralContainerStatuses, k.containerStatus(pod, c, st, res, ""))
	}
	s.Phase = podPhase(pod, s, initDone)
	if old.Phase == corev1.PodSucceeded || old.Phase == corev1.PodFailed {
		s.Phase = old.Phase // terminal phases are final
	}
	terminal := s.Phase == corev1.PodSucceeded || s.Phase == corev1.PodFailed
	setCondition(&s, corev1.PodReadyToStartContainers, st.ready(), "")
	initReason := ""
	if !initDone {
		initReason = "ContainersNotInitialized"
	}
	setCondition(&s, corev1.PodInitialized, initDone || terminal && len(pod.Spec.InitContainers) == 0, initReason)
	notReady := ""
	if !allReady {
		notReady = "ContainersNotReady"
	}
	if terminal {
		allReady, notReady = false, "PodCompleted"
	}
	setCondition(&s, corev1.ContainersReady, allReady, notReady)
	setCondition(&s, corev1.PodReady, allReady && readinessGates(pod), notReady)
	return s
}

// containerStatus reports one container: its newest instance's state, the one before as
// lastState, readiness from the probes. pending is the waiting reason when it has not run yet.
func (k *Kubelet) containerStatus(pod *corev1.Pod, c *corev1.Container, st *podState, res *syncResult, pending string) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
	inst := st.instances(c.Name)
	if len(inst) == 0 {
		if w := res.waiting[c.Name]; w != nil {
			cs.State.Waiting = w
		} else if pending != "" {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: pending}
		} else {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reasonContainerCreating}
		}
		// A restarted kubelet whose containers were removed keeps counting from the API.
		for _, old := range append(pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses...) {
			if old.Name == c.Name {
				cs.RestartCount = old.RestartCount
			}
		}
		return cs
	}
	cur := inst[0]
	cs.ContainerID = k.runtimeName() + "://" + cur.Id
	cs.ImageID = cur.ImageRef
	cs.RestartCount = restartCount(cur)
	started := false
	switch cur.State {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: seconds(cur.StartedAt)}
		k.probes.ensure(pod, c, cur, k.podAddress(pod, st))
		started = k.probes.started(c, cur.Id)
		cs.Ready = started && k.probes.ready(c, cur.Id)
		if len(inst) > 1 {
			cs.LastTerminationState = k.terminated(pod, inst[1])
		}
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reasonContainerCreating}
		if len(inst) > 1 {
			cs.LastTerminationState = k.terminated(pod, inst[1])
		}
	default:
		if w := res.waiting[c.Name]; w != nil {
			cs.State.Waiting = w
			cs.LastTerminationState = k.terminated(pod, cur)
		} else {
			cs.State = k.terminated(pod, cur)
			if len(inst) > 1 {
				cs.LastTerminationState = k.terminated(pod, inst[1])
			}
		}
	}
	cs.Started = &started
	return cs
}

func (k *Kubelet) terminated(pod *corev1.Pod, c *container) corev1.ContainerState {
	reason := c.Reason
	if reason == "" {
		reason = "Error"
		if c.ExitCode == 0 {
			reason = "Completed"
		}
	}
	msg := c.Message
	if msg == "" {
		msg = k.terminationMessage(pod.UID, c.name(), c.Metadata.GetAttempt())
	}
	if spec := findContainer(pod, c.name()); msg == "" && c.ExitCode != 0 && spec != nil &&
		spec.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError {
		msg = logTail(c.LogPath)
	}
	return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: c.ExitCode, Reason: reason, Message: msg,
		StartedAt: seconds(c.StartedAt), FinishedAt: seconds(c.FinishedAt),
		ContainerID: k.runtimeName() + "://" + c.Id,
	}}
}

// podPhase follows upstream: Pending until initialised and every container has run; then
// Running while any container runs or will restart; Succeeded or Failed once all stopped for good.
func podPhase(pod *corev1.Pod, s corev1.PodStatus, initDone bool) corev1.PodPhase {
	for i, ic := range s.InitContainerStatuses {
		if i < len(pod.Spec.InitContainers) && isSidecar(&pod.Spec.InitContainers[i]) {
			continue
		}
		if t := ic.State.Terminated; t != nil && t.ExitCode != 0 && pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
			return corev1.PodFailed
		}
	}
	if !initDone {
		return corev1.PodPending
	}
	var running, waiting, stopped, succeeded int
	for _, cs := range s.ContainerStatuses {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil:
			stopped++ // restarting
			if cs.LastTerminationState.Terminated.ExitCode == 0 {
				succeeded++
			}
		default:
			waiting++
		}
	}
	switch {
	case waiting > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case stopped > 0:
		if pod.Spec.RestartPolicy == corev1.RestartPolicyAlways {
			return corev1.PodRunning
		}
		if stopped == succeeded {
			// OnFailure restarts nothing here; Never restarts nothing at all.
			for _, cs := range s.ContainerStatuses {
				if cs.State.Waiting != nil {
					return corev1.PodRunning
				}
			}
			return corev1.PodSucceeded
		}
		if pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
			return corev1.PodFailed
		}
		return corev1.PodRunning
	}
	return corev1.PodPending
}

func readinessGates(pod *corev1.Pod) bool {
	for _, g := range pod.Spec.ReadinessGates {
		ok := false
		for _, c := range pod.Status.Conditions {
			if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// setCondition sets a condition, keeping its transition time when its status is unchanged.
func setCondition(s *corev1.PodStatus, t corev1.PodConditionType, ok bool, reason string) {
	st := corev1.ConditionFalse
	if ok {
		st = corev1.ConditionTrue
		reason = ""
	}
	c := corev1.PodCondition{Type: t, Status: st, Reason: reason, LastTransitionTime: metav1.NewTime(time.Now().Truncate(time.Second))}
	for i := range s.Conditions {
		if s.Conditions[i].Type == t {
			if s.Conditions[i].Status == st {
				c.LastTransitionTime = s.Conditions[i].LastTransitionTime
			}
			s.Conditions[i] = c
			return
		}
	}
	s.Conditions = append(s.Conditions, c)
}

// updateStatus sends the status through pods/status when it differs from what the API holds,
// as a strategic merge patch computed from the informer's copy (no conflicts with others'
// writes to the pod).
func (k *Kubelet) updateStatus(ctx context.Context, pod *corev1.Pod, s corev1.PodStatus) error {
	if apiequality.Semantic.DeepEqual(pod.Status, s) {
		return nil
	}
	// The informer may not have our last write yet: what we sent is what the API holds unless
	// someone wrote the pod after us.
	rv, _ := strconv.ParseInt(pod.ResourceVersion, 10, 64)
	k.mu.Lock()
	last, ok := k.sent[pod.UID]
	k.mu.Unlock()
	if ok && rv <= last.rv && apiequality.Semantic.DeepEqual(last.status, s) {
		return nil
	}
	oldJSON, err := json.Marshal(corev1.Pod{Status: pod.Status})
	if err != nil {
		return err
	}
	newJSON, err := json.Marshal(corev1.Pod{Status: s})
	if err != nil {
		return err
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(oldJSON, newJSON, corev1.Pod{})
	if err != nil {
		return fmt.Errorf("status patch for %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	if string(patch) == "{}" {
		return nil
	}
	k.log.Debug("pod status", "pod", pod.Namespace+"/"+pod.Name, "patch", string(patch))
	out, err := k.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("status of %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	sentRV, _ := strconv.ParseInt(out.ResourceVersion, 10, 64)
	k.mu.Lock()
	k.sent[pod.UID] = sentStatus{status: s, rv: sentRV}
	k.mu.Unlock()
	return nil
}

// sentStatus is the last status the kubelet wrote for a pod and the resourceVersion it got.
type sentStatus struct {
	status corev1.PodStatus
	rv     int64
}

func (k *Kubelet) forgetStatus(uid types.UID) {
	k.mu.Lock()
	delete(k.sent, uid)
	k.mu.Unlock()
}

func seconds(ns int64) metav1.Time {
	if ns == 0 {
		return metav1.Time{}
	}
	return metav1.NewTime(time.Unix(0, ns).Truncate(time.Second))
}

// runtimeName is the scheme of containerIDs ("containerd://ID").
func (k *Kubelet) runtimeName() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.runtimeVer == nil {
		return "cri"
	}
	return k.runtimeVer.RuntimeName
}
