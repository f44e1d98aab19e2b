package kubelet

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// startEvents starts the broadcaster that sends the kubelet's Events (Pulled, Started, Killing,
// BackOff, Unhealthy, …) to the API, batched and rate-limited in the background.
func (k *Kubelet) startEvents(ctx context.Context) {
	b := record.NewBroadcaster(record.WithContext(ctx))
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: k.client.CoreV1().Events("")})
	k.recorder = b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: k.cfg.NodeName})
	go func() {
		<-ctx.Done()
		b.Shutdown()
	}()
}

func (k *Kubelet) event(pod *corev1.Pod, kind, reason, msg string) {
	if k.recorder != nil {
		k.recorder.Event(pod, kind, reason, msg)
	}
}
