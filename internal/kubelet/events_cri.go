package kubelet

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// watchContainerEvents queues pods as the runtime reports their containers starting, stopping
// or going, where the runtime streams such events (CRI GetContainerEvents); a container's exit
// then reaches the pod at once instead of at the next relist. Runtimes without the stream
// (containerd 1.6) answer Unimplemented, and the relist alone does the job.
func (s *podSource) watchContainerEvents(ctx context.Context) {
	for ctx.Err() == nil {
		stream, err := s.k.runtime.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
		for err == nil {
			var ev *runtimeapi.ContainerEventResponse
			if ev, err = stream.Recv(); err == nil {
				if uid := ev.GetPodSandboxStatus().GetMetadata().GetUid(); uid != "" {
					s.queue.Add(types.UID(uid))
				}
			}
		}
		if grpcstatus.Code(err) == codes.Unimplemented {
			s.k.log.Debug("the runtime streams no container events; relisting every second", "err", err)
			return
		}
		if ctx.Err() == nil {
			s.k.log.Warn("container event stream", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
