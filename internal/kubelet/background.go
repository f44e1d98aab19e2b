package kubelet

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
)

// inBackground runs kill, which waits out grace periods, in a goroutine of the pod's own
// unless one already runs for the pod, and reports whether it started one. A worker must not
// wait 30 s for a container that ignores SIGTERM while other pods wait to start: upstream gives
// every pod a worker of its own for the same reason. The pod is synced again when kill is done.
func (k *Kubelet) inBackground(uid types.UID, kill func(context.Context)) bool {
	k.mu.Lock()
	if k.killing[uid] {
		k.mu.Unlock()
		return false
	}
	k.killing[uid] = true
	k.mu.Unlock()
	go func() {
		defer func() {
			k.mu.Lock()
			delete(k.killing, uid)
			k.mu.Unlock()
			k.pods.queue.Add(uid)
		}()
		kill(k.runCtx)
	}()
	return true
}

func (k *Kubelet) isKilling(uid types.UID) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.killing[uid]
}
