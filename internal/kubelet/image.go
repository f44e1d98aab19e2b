package kubelet

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Waiting reasons upstream reports while a container's image is being resolved.
const (
	reasonErrImagePull       = "ErrImagePull"
	reasonImagePullBackOff   = "ImagePullBackOff"
	reasonErrImageNeverPull  = "ErrImageNeverPull"
	reasonCreateConfigError  = "CreateContainerConfigError"
	reasonCreateError        = "CreateContainerError"
	reasonRunError           = "RunContainerError"
	reasonCrashLoopBackOff   = "CrashLoopBackOff"
	reasonContainerCreating  = "ContainerCreating"
	reasonPodInitializing    = "PodInitializing"
	reasonPostStartHookError = "PostStartHookError"
)

// waitingError is a failure to start a container that its status reports as a waiting reason.
type waitingError struct {
	reason string
	err    error
	retry  time.Duration // when to try again; zero: on the next event or the rate limiter
}

func (e *waitingError) Error() string { return e.err.Error() }
func (e *waitingError) Unwrap() error { return e.err }

// ensureImage makes the container's image present according to its imagePullPolicy and returns
// the runtime's reference to it (its ID).
func (k *Kubelet) ensureImage(ctx context.Context, pod *corev1.Pod, c *corev1.Container) (string, error) {
	spec := &runtimeapi.ImageSpec{Image: c.Image, UserSpecifiedImage: c.Image}
	st, err := k.images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: spec})
	if err != nil {
		return "", &waitingError{reason: reasonErrImagePull, err: fmt.Errorf("image status %s: %w", c.Image, err)}
	}
	present := st.Image != nil
	switch policy(c) {
	case corev1.PullNever:
		if !present {
			msg := fmt.Errorf("container image %q is not present with pull policy of Never", c.Image)
			k.event(pod, corev1.EventTypeWarning, reasonErrImageNeverPull, msg.Error())
			return "", &waitingError{reason: reasonErrImageNeverPull, err: msg}
		}
		return st.Image.Id, nil
	case corev1.PullIfNotPresent:
		if present {
			k.event(pod, corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Container image %q already present on machine", c.Image))
			return st.Image.Id, nil
		}
	}
	key := "image/" + string(pod.UID) + "/" + c.Image
	if d := k.backoff.wait(key, time.Now()); d > 0 {
		return "", &waitingError{reason: reasonImagePullBackOff, retry: d,
			err: fmt.Errorf("Back-off pulling image %q", c.Image)}
	}
	k.event(pod, corev1.EventTypeNormal, "Pulling", fmt.Sprintf("Pulling image %q", c.Image))
	start := time.Now()
	resp, err := k.pull(ctx, pod, spec)
	if err != nil {
		k.backoff.next(key)
		msg := fmt.Sprintf("Failed to pull image %q: %v", c.Image, err)
		k.event(pod, corev1.EventTypeWarning, "Failed", msg)
		return "", &waitingError{reason: reasonErrImagePull, err: errors.New(msg), retry: k.backoff.delay(key)}
	}
	k.event(pod, corev1.EventTypeNormal, "Pulled", fmt.Sprintf("Successfully pulled image %q in %s", c.Image, time.Since(start).Round(time.Millisecond)))
	return resp.ImageRef, nil
}

func policy(c *corev1.Container) corev1.PullPolicy {
	if c.ImagePullPolicy != "" {
		return c.ImagePullPolicy
	}
	return corev1.PullIfNotPresent
}

// pull pulls with each credential the pod has for the registry until one works, anonymously
// when it has none.
func (k *Kubelet) pull(ctx context.Context, pod *corev1.Pod, spec *runtimeapi.ImageSpec) (*runtimeapi.PullImageResponse, error) {
	auths := k.pullAuths(ctx, pod, spec.Image)
	if len(auths) == 0 {
		return k.images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: spec})
	}
	var errs []error
	for _, a := range auths {
		resp, err := k.images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: spec, Auth: a})
		if err == nil {
			return resp, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// imageFuture is an image being resolved in the background.
type imageFuture struct {
	done chan struct{}
	ref  string
	err  error
}

// prefetchImages resolves (pulling where the policy says so) the images of every container of
// a pod that starts afresh, all at once and while its sandbox is being created: a pod's first
// start then waits for the slowest of them, not for their sum plus the sandbox.
func (k *Kubelet) prefetchImages(pod *corev1.Pod) map[string]*imageFuture {
	out := map[string]*imageFuture{}
	byImage := map[string]*imageFuture{}
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			c := &cs[i]
			key := c.Image + "\x00" + string(policy(c))
			if f := byImage[key]; f != nil {
				out[c.Name] = f
				continue
			}
			f := &imageFuture{done: make(chan struct{})}
			byImage[key], out[c.Name] = f, f
			go func() {
				defer close(f.done)
				// Not the sync's context: a pull for a container that starts in a later sync
				// (after the init containers) goes on when this sync is over.
				pctx, cancel := context.WithTimeout(k.runCtx, syncTimeout)
				defer cancel()
				f.ref, f.err = k.ensureImage(pctx, pod, c)
			}()
		}
	}
	return out
}
