package kubelet

import (
	"context"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// minGrace is the least time a container gets to stop, as upstream gives it.
const minGrace = 2

// terminatePod runs a deleted pod's preStop hooks, stops its containers within what is left
// of the grace period, stops the sandbox, reports the final status and then deletes the pod
// object for good (grace period 0), as upstream's status manager does.
func (k *Kubelet) terminatePod(ctx context.Context, pod *corev1.Pod, st *podState) error {
	grace := int64(time.Until(pod.DeletionTimestamp.Time).Seconds())
	if pod.DeletionGracePeriodSeconds != nil {
		grace = min(grace, *pod.DeletionGracePeriodSeconds)
	}
	grace = max(grace, minGrace)
	if running := st.running(); len(running) > 0 {
		if k.inBackground(pod.UID, func(ctx context.Context) { k.killAll(ctx, pod, running, grace) }) {
			k.log.Info("stopping pod", "pod", pod.Namespace+"/"+pod.Name, "grace", grace)
		}
		return nil // back here once they stopped
	}
	k.probes.forget(pod.UID)
	for _, sb := range st.sandboxes {
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			if _, err := k.runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
				return err
			}
		}
	}
	st, err := k.podState(ctx, pod.UID)
	if err != nil {
		return err
	}
	status := k.podStatus(pod, st, &syncResult{waiting: map[string]*corev1.ContainerStateWaiting{}})
	if status.Phase != corev1.PodSucceeded && status.Phase != corev1.PodFailed {
		phase := corev1.PodFailed
		if allSucceeded(status.ContainerStatuses) {
			phase = corev1.PodSucceeded
		}
		status = k.finalStatus(pod, st, phase, "", "")
	}
	if err := k.updateStatus(ctx, pod, status); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	uid := pod.UID
	err = k.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return err
	}
	k.log.Info("pod terminated and deleted", "pod", pod.Namespace+"/"+pod.Name)
	return nil
}

func allSucceeded(ss []corev1.ContainerStatus) bool {
	for _, s := range ss {
		if s.State.Terminated == nil || s.State.Terminated.ExitCode != 0 {
			return false
		}
	}
	return len(ss) > 0
}

// finishPod stops what is left of a pod that reached Succeeded or Failed: its containers stay
// (for their logs) until the pod is deleted.
func (k *Kubelet) finishPod(ctx context.Context, pod *corev1.Pod, st *podState) error {
	if running := st.running(); len(running) > 0 {
		k.inBackground(pod.UID, func(ctx context.Context) { k.killAll(ctx, pod, running, gracePeriod(pod)) })
		return nil // back here once they stopped
	}
	k.probes.forget(pod.UID)
	for _, sb := range st.sandboxes {
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			if _, err := k.runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
				return err
			}
		}
	}
	return nil
}

// removePod removes everything left of a pod that no longer exists in the API: containers,
// sandboxes, volumes, its directory and logs. last, the pod as last seen (nil after a kubelet
// restart), gives running containers their preStop hooks and grace period: an API server that
// deletes pods at once must not turn a deletion into a kill.
func (k *Kubelet) removePod(ctx context.Context, uid types.UID, st *podState, last *corev1.Pod) error {
	k.probes.forget(uid)
	k.forgetStatus(uid)
	k.backoff.forget(string(uid) + "/")
	k.backoff.forget("image/" + string(uid) + "/")
	if running := st.running(); len(running) > 0 {
		k.inBackground(uid, func(ctx context.Context) {
			if last != nil {
				k.killAll(ctx, last, running, gracePeriod(last))
				return
			}
			for _, c := range running {
				k.stopContainer(ctx, c.Id, minGrace)
			}
		})
		return nil // back here once they stopped
	}
	for _, sb := range st.sandboxes {
		if _, err := k.runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			return err
		}
		if _, err := k.runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			return err
		}
		if sb.Metadata != nil {
			os.RemoveAll(k.podLogDirFor(sb.Metadata))
		}
	}
	if err := k.volumes.TearDown(uid); err != nil {
		return err
	}
	if len(st.sandboxes) > 0 {
		k.log.Info("pod removed", "uid", uid, "sandboxes", len(st.sandboxes))
	}
	return os.RemoveAll(k.podDir(uid))
}

func (k *Kubelet) podLogDirFor(m *runtimeapi.PodSandboxMetadata) string {
	return k.podLogDir(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: m.Name, UID: types.UID(m.Uid)}})
}

// killAll stops a pod's running containers within grace seconds, as upstream orders it: the
// app containers (and others) together first, then the sidecars, which may serve them to the end.
func (k *Kubelet) killAll(ctx context.Context, pod *corev1.Pod, running []*container, grace int64) {
	start := time.Now()
	var apps, sidecars []*container
	for _, c := range running {
		if spec := findContainer(pod, c.name()); spec != nil && isSidecar(spec) {
			sidecars = append(sidecars, c)
		} else {
			apps = append(apps, c)
		}
	}
	for _, group := range [][]*container{apps, sidecars} {
		left := max(grace-int64(time.Since(start).Seconds()), minGrace)
		var wg sync.WaitGroup
		for _, c := range group {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k.killContainer(ctx, pod, findContainer(pod, c.name()), c.Id, left)
			}()
		}
		wg.Wait()
	}
}

// killContainer runs the container's preStop hook, then stops it, all within grace seconds.
func (k *Kubelet) killContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, id string, grace int64) {
	start := time.Now()
	if c != nil && c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		hctx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second)
		if err := k.runHandler(hctx, pod, c, id, "", c.Lifecycle.PreStop, time.Duration(grace)*time.Second); err != nil {
			k.event(pod, corev1.EventTypeWarning, "FailedPreStopHook", "PreStopHook failed: "+err.Error())
		}
		cancel()
		grace -= int64(time.Since(start).Seconds())
	}
	if c != nil {
		k.event(pod, corev1.EventTypeNormal, "Killing", "Stopping container "+c.Name)
	}
	k.stopContainer(ctx, id, max(grace, minGrace))
}

func (k *Kubelet) stopContainer(ctx context.Context, id string, grace int64) {
	if _, err := k.runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: grace}); err != nil {
		k.log.Warn("stopping container", "id", id, "err", err)
	}
}

// ephemeral is the pod's i-th ephemeral container as a Container (the same fields).
func ephemeral(pod *corev1.Pod, i int) *corev1.Container {
	return (*corev1.Container)(&pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
}

func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.EphemeralContainers {
		if pod.Spec.EphemeralContainers[i].Name == name {
			return ephemeral(pod, i)
		}
	}
	return nil
}

func mkdirAll(p string) error { return os.MkdirAll(p, 0o755) }

// pastDeadline reports whether the pod has been active longer than activeDeadlineSeconds.
func pastDeadline(pod *corev1.Pod) bool {
	d := pod.Spec.ActiveDeadlineSeconds
	return d != nil && pod.Status.StartTime != nil && time.Since(pod.Status.StartTime.Time) >= time.Duration(*d)*time.Second
}

// failPastDeadline stops a pod that outlived its activeDeadlineSeconds and fails it with
// upstream's reason.
func (k *Kubelet) failPastDeadline(ctx context.Context, pod *corev1.Pod, st *podState) error {
	msg := "Pod was active on the node longer than the specified deadline"
	if len(st.running()) > 0 && !k.isKilling(pod.UID) {
		k.event(pod, corev1.EventTypeNormal, "DeadlineExceeded", msg)
	}
	if err := k.finishPod(ctx, pod, st); err != nil || len(st.running()) > 0 {
		return err
	}
	st, err := k.podState(ctx, pod.UID)
	if err != nil {
		return err
	}
	return k.updateStatus(ctx, pod, k.finalStatus(pod, st, corev1.PodFailed, "DeadlineExceeded", msg))
}

// finalStatus is the pod's status in a terminal phase the kubelet decided (a deletion, a
// deadline), with the conditions a terminal pod has, so that the next sync computes the same
// and writes nothing more.
func (k *Kubelet) finalStatus(pod *corev1.Pod, st *podState, phase corev1.PodPhase, reason, msg string) corev1.PodStatus {
	terminal := pod.DeepCopy()
	terminal.Status.Phase, terminal.Status.Reason, terminal.Status.Message = phase, reason, msg
	return k.podStatus(terminal, st, &syncResult{waiting: map[string]*corev1.ContainerStateWaiting{}})
}
