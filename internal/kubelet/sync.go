package kubelet

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-project/berth/internal/kubelet/volume"
)

// syncResult carries what a sync learnt that the runtime does not record: why containers are
// waiting. The status is computed from it and a fresh read of the runtime.
type syncResult struct {
	waiting map[string]*corev1.ContainerStateWaiting // by container name
	after   time.Duration                            // sync again after this long (back-offs)
	images  map[string]*imageFuture                  // images resolved while the sandbox started
}

func (r *syncResult) wait(name, reason, msg string) {
	r.waiting[name] = &corev1.ContainerStateWaiting{Reason: reason, Message: msg}
}

func (r *syncResult) retryIn(d time.Duration) {
	if d > 0 && (r.after == 0 || d < r.after) {
		r.after = d
	}
}

// syncPod moves one pod a step toward its spec (or out of existence when it is being deleted
// or gone) and reports its status. It reads the pod from the informer and the containers from
// the runtime each time, so it is safe to run twice or after a crash.
func (k *Kubelet) syncPod(ctx context.Context, uid types.UID) (time.Duration, error) {
	pod := k.pods.pod(uid)
	st, err := k.podState(ctx, uid)
	if err != nil {
		return 0, err
	}
	switch {
	case pod == nil:
		return 0, k.removePod(ctx, uid, st, k.pods.lastKnown(uid))
	case pod.DeletionTimestamp != nil:
		return 0, k.terminatePod(ctx, pod, st)
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		return 0, k.finishPod(ctx, pod, st)
	case pastDeadline(pod):
		return 0, k.failPastDeadline(ctx, pod, st)
	}
	res := &syncResult{waiting: map[string]*corev1.ContainerStateWaiting{}}
	if d := pod.Spec.ActiveDeadlineSeconds; d != nil && pod.Status.StartTime != nil {
		res.retryIn(time.Until(pod.Status.StartTime.Add(time.Duration(*d) * time.Second)))
	}
	startErr := k.startPod(ctx, pod, st, res)
	if startErr != nil {
		var we *waitingError
		if !errors.As(startErr, &we) {
			k.log.Warn("starting pod", "pod", pod.Namespace+"/"+pod.Name, "err", startErr)
		}
	}
	if st, err = k.podState(ctx, uid); err != nil {
		return 0, err
	}
	if err := k.updateStatus(ctx, pod, k.podStatus(pod, st, res)); err != nil {
		return 0, err
	}
	var we *waitingError
	if startErr != nil && (!errors.As(startErr, &we) || res.after == 0) {
		return 0, startErr // retried with the rate limiter's back-off
	}
	return res.after, nil
}

// startPod sets up volumes and the sandbox, runs the init containers one by one, then starts
// (or restarts, per restartPolicy) the app containers.
func (k *Kubelet) startPod(ctx context.Context, pod *corev1.Pod, st *podState, res *syncResult) error {
	all := func(reason, msg string) {
		for _, c := range pod.Spec.InitContainers {
			res.wait(c.Name, reason, msg)
		}
		for _, c := range pod.Spec.Containers {
			res.wait(c.Name, reason, msg)
		}
	}
	mounts, err := k.volumes.SetUp(ctx, pod)
	if err != nil {
		k.event(pod, corev1.EventTypeWarning, "FailedMount", err.Error())
		if len(st.containers) == 0 {
			// Often a claim not bound yet or a configMap still to come: look again soon.
			all(reasonContainerCreating, "")
			res.retryIn(2 * time.Second)
			return &waitingError{reason: reasonContainerCreating, err: err, retry: 2 * time.Second}
		}
		// Containers that ran keep theirs; the refresh is retried on the next sync.
		k.log.Warn("refreshing volumes", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
	if !st.ready() && len(st.sandboxes) > 0 && pod.Spec.RestartPolicy == corev1.RestartPolicyNever && len(st.containers) > 0 {
		// Upstream does not give a pod that must never restart a second sandbox: what ran in
		// the dead one is stopped and the pod ends with what its containers did.
		for _, c := range st.running() {
			k.stopContainer(ctx, c.Id, minGrace)
		}
		return nil
	}
	if !st.ready() {
		res.images = k.prefetchImages(pod)
		if err := k.runSandbox(ctx, pod, st); err != nil {
			k.event(pod, corev1.EventTypeWarning, "FailedCreatePodSandBox", err.Error())
			all(reasonContainerCreating, "")
			return err
		}
	}
	podIP := sandboxIP(st.sandbox)
	if _, err := k.writeHosts(pod, podIP); err != nil {
		return err
	}
	k.collectGarbage(ctx, st)
	defer k.probes.retain(pod.UID, st)
	var errs []error
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cur := st.current(c.Name)
		if isSidecar(c) {
			// A sidecar (an init container that restarts Always) runs beside the app
			// containers; the next one starts once it has started.
			err := k.syncContainer(ctx, pod, c, "init", corev1.RestartPolicyAlways, st, res, podIP, mounts)
			if err != nil {
				errs = append(errs, err)
			}
			if cur != nil && cur.State == runtimeapi.ContainerState_CONTAINER_RUNNING && k.probes.started(c, cur.Id) {
				continue
			}
			if err == nil && res.waiting[c.Name] == nil && c.StartupProbe == nil {
				res.retryIn(10 * time.Millisecond) // just started: go on without waiting for the relist
			}
		} else if cur != nil && cur.State == runtimeapi.ContainerState_CONTAINER_EXITED && cur.ExitCode == 0 {
			continue
		}
		for _, app := range pod.Spec.Containers {
			res.wait(app.Name, reasonPodInitializing, "")
		}
		if isSidecar(c) {
			return errors.Join(errs...)
		}
		if cur != nil && cur.State == runtimeapi.ContainerState_CONTAINER_EXITED && pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
			return nil // a failed init container fails the pod
		}
		return k.syncContainer(ctx, pod, c, "init", pod.Spec.RestartPolicy, st, res, podIP, mounts)
	}
	for i := range pod.Spec.Containers {
		if err := k.syncContainer(ctx, pod, &pod.Spec.Containers[i], "app", pod.Spec.RestartPolicy, st, res, podIP, mounts); err != nil {
			errs = append(errs, err)
		}
	}
	// Ephemeral containers (kubectl debug) run once, never restarted.
	for i := range pod.Spec.EphemeralContainers {
		c := ephemeral(pod, i)
		if st.latest(c.Name) == nil {
			if err := k.startContainer(ctx, pod, c, "ephemeral", st, res, podIP, mounts); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// shareTargetPID puts an ephemeral container into the process namespace of the container it
// targets (kubectl debug --target), so it sees that container's processes.
func shareTargetPID(pod *corev1.Pod, name string, st *podState, cfg *runtimeapi.ContainerConfig) {
	for _, ec := range pod.Spec.EphemeralContainers {
		if ec.Name != name || ec.TargetContainerName == "" {
			continue
		}
		if t := st.current(ec.TargetContainerName); t != nil && t.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			ns := cfg.Linux.SecurityContext.NamespaceOptions
			ns.Pid, ns.TargetId = runtimeapi.NamespaceMode_TARGET, t.Id
		}
	}
}

// isSidecar reports whether an init container is a sidecar: restartPolicy Always.
func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// syncContainer moves one container a step: start it when it never ran, restart it after an
// exit when the restart policy and back-off allow, kill it when its spec changed or its
// liveness or startup probe failed.
func (k *Kubelet) syncContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, kind string, policy corev1.RestartPolicy, st *podState, res *syncResult, podIP string, mounts map[string]volume.Mount) error {
	cur := st.current(c.Name)
	switch {
	case cur == nil:
		return k.startContainer(ctx, pod, c, kind, st, res, podIP, mounts)
	case cur.State == runtimeapi.ContainerState_CONTAINER_CREATED:
		if _, err := k.runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cur.Id}); err != nil {
			res.wait(c.Name, reasonRunError, err.Error())
			return &waitingError{reason: reasonRunError, err: err}
		}
		return nil
	case cur.State == runtimeapi.ContainerState_CONTAINER_RUNNING:
		why := ""
		if h, ok := cur.Annotations[annotationHash]; ok && h != containerHash(c) {
			why = "definition changed"
		} else if kind == "app" || isSidecar(c) {
			why = k.probes.failed(cur.Id)
		}
		if why != "" {
			id := cur.Id
			if k.inBackground(pod.UID, func(ctx context.Context) { k.killContainer(ctx, pod, c, id, gracePeriod(pod)) }) {
				k.event(pod, corev1.EventTypeNormal, "Killing", fmt.Sprintf("Container %s %s, will be restarted", c.Name, why))
			}
			return nil // restarted once it stopped
		}
		if kind == "app" || isSidecar(c) {
			k.probes.ensure(pod, c, cur, k.podAddress(pod, st))
		}
		return nil
	}
	// Exited (or unknown, which the runtime could not stop: treat it as exited).
	if !shouldRestart(policy, cur.ExitCode) {
		return nil
	}
	key := string(pod.UID) + "/" + c.Name
	if d := k.backoff.wait(key, time.Unix(0, cur.FinishedAt)); d > 0 {
		msg := fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", k.backoff.delay(key), c.Name, pod.Name, pod.Namespace, pod.UID)
		res.wait(c.Name, reasonCrashLoopBackOff, msg)
		res.retryIn(d)
		return nil
	}
	k.backoff.next(key)
	return k.startContainer(ctx, pod, c, kind, st, res, podIP, mounts)
}

func shouldRestart(p corev1.RestartPolicy, exitCode int32) bool {
	switch p {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return exitCode != 0
	}
	return true
}

// startContainer pulls the image, creates and starts one new instance of the container and runs
// its postStart hook.
func (k *Kubelet) startContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, kind string, st *podState, res *syncResult, podIP string, mounts map[string]volume.Mount) error {
	fail := func(err error) error {
		var we *waitingError
		if errors.As(err, &we) {
			res.wait(c.Name, we.reason, we.Error())
			res.retryIn(we.retry)
		}
		return err
	}
	start := time.Now()
	var image string
	var err error
	if f := res.images[c.Name]; f != nil {
		<-f.done
		image, err = f.ref, f.err
	} else {
		image, err = k.ensureImage(ctx, pod, c)
	}
	if err != nil {
		return fail(err)
	}
	attempt := uint32(0)
	if last := st.latest(c.Name); last != nil {
		attempt = last.Metadata.GetAttempt() + 1
	}
	cfg, err := k.containerConfig(ctx, pod, c, kind, attempt, image, podIP, mounts)
	if err != nil {
		k.event(pod, corev1.EventTypeWarning, "Failed", "Error: "+err.Error())
		return fail(&waitingError{reason: reasonCreateConfigError, err: err})
	}
	if kind == "ephemeral" {
		shareTargetPID(pod, c.Name, st, cfg)
	}
	created, err := k.runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: st.sandbox.Id, Config: cfg, SandboxConfig: k.sandboxConfig(pod, st.sandbox.Metadata.GetAttempt()),
	})
	if err != nil {
		k.event(pod, corev1.EventTypeWarning, "Failed", "Error: "+err.Error())
		return fail(&waitingError{reason: reasonCreateError, err: err})
	}
	k.event(pod, corev1.EventTypeNormal, "Created", "Created container "+c.Name)
	if _, err := k.runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: created.ContainerId}); err != nil {
		// The runtime records the failed start as an exit (StartError); the restart policy and
		// back-off take it from here.
		k.event(pod, corev1.EventTypeWarning, "Failed", "Error: "+err.Error())
		return fail(&waitingError{reason: reasonRunError, err: err})
	}
	k.log.Info("container started", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "id", created.ContainerId, "attempt", attempt, "took", time.Since(start))
	k.event(pod, corev1.EventTypeNormal, "Started", "Started container "+c.Name)
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		if err := k.runHandler(ctx, pod, c, created.ContainerId, podIP, c.Lifecycle.PostStart, time.Duration(gracePeriod(pod))*time.Second); err != nil {
			msg := fmt.Sprintf("PostStartHook failed: %v", err)
			k.event(pod, corev1.EventTypeWarning, "FailedPostStartHook", msg)
			k.killContainer(ctx, pod, c, created.ContainerId, gracePeriod(pod))
			return fail(&waitingError{reason: reasonPostStartHookError, err: errors.New(msg)})
		}
	}
	return nil
}

// runSandbox creates a new sandbox for the pod, after stopping whatever ran in a dead one.
func (k *Kubelet) runSandbox(ctx context.Context, pod *corev1.Pod, st *podState) error {
	for _, c := range st.running() {
		k.stopContainer(ctx, c.Id, 2)
	}
	attempt := uint32(0)
	if len(st.sandboxes) > 0 {
		attempt = st.sandboxes[0].Metadata.GetAttempt() + 1
		for _, sb := range st.sandboxes {
			k.runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id})
		}
	}
	if err := mkdirAll(k.podLogDir(pod)); err != nil {
		return err
	}
	cfg := k.sandboxConfig(pod, attempt)
	start := time.Now()
	resp, err := k.runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return fmt.Errorf("run pod sandbox: %w", err)
	}
	s, err := k.runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: resp.PodSandboxId})
	if err != nil {
		return err
	}
	st.sandbox = s.Status
	st.sandboxes = append([]*runtimeapi.PodSandbox{{Id: resp.PodSandboxId, Metadata: cfg.Metadata, State: s.Status.State, CreatedAt: s.Status.CreatedAt}}, st.sandboxes...)
	k.log.Info("pod sandbox started", "pod", pod.Namespace+"/"+pod.Name, "sandbox", resp.PodSandboxId, "ip", sandboxIP(s.Status), "took", time.Since(start))
	return nil
}

func sandboxIP(s *runtimeapi.PodSandboxStatus) string {
	if s == nil || s.Network == nil {
		return ""
	}
	return s.Network.Ip
}

// collectGarbage removes dead containers beyond the newest two of each name (the previous
// one stays for `kubectl logs --previous`) and dead sandboxes older than the previous one.
func (k *Kubelet) collectGarbage(ctx context.Context, st *podState) {
	seen := map[string]int{}
	for _, c := range st.containers {
		name := c.name()
		seen[name]++
		if seen[name] > 2 && c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			k.runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.Id})
		}
	}
	for _, sb := range st.sandboxes[min(2, len(st.sandboxes)):] {
		if sb.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			k.runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id})
		}
	}
}
