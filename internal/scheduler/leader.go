package scheduler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// ErrLostLeadership: another scheduler holds the lease now.
var ErrLostLeadership = errors.New("scheduler: lost the leader lease")

// leaderConfig is the lease the scheduler must hold: upstream's kube-system/kube-scheduler
// with its default timings (15s lease, 10s renew deadline, 2s retry).
type leaderConfig struct {
	namespace, name, identity string
	lease, renew, retry       time.Duration
}

func newLeaderConfig(scheduler, identity string) *leaderConfig {
	if identity == "" {
		host, _ := os.Hostname()
		identity = host + "_" + rand.String(8)
	}
	name := "kube-scheduler"
	if scheduler != "default-scheduler" {
		name = scheduler
	}
	return &leaderConfig{namespace: metav1.NamespaceSystem, name: name, identity: identity,
		lease: 15 * time.Second, renew: 10 * time.Second, retry: 2 * time.Second}
}

// runLeading waits for the lease, schedules while holding it, and gives it up when
// ctx ends.
func (s *Scheduler) runLeading(ctx context.Context) error {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	started := make(chan struct{})
	done := make(chan error, 1)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: s.leader.namespace, Name: s.leader.name},
			Client:     s.client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: s.leader.identity},
		},
		LeaseDuration: s.leader.lease, RenewDeadline: s.leader.renew, RetryPeriod: s.leader.retry,
		ReleaseOnCancel: true,
		Name:            s.name,
		Callbacks: leaderelection.LeaderCallbacks{
			// c ends when the lease is lost; run stopping for any reason gives the lease up.
			OnStartedLeading: func(c context.Context) {
				close(started)
				s.log.Info("leading", "lease", s.leader.namespace+"/"+s.leader.name, "identity", s.leader.identity)
				done <- s.run(c)
				cancel()
			},
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return fmt.Errorf("scheduler: leader election: %w", err)
	}
	le.Run(lctx)
	select {
	case <-started:
	default:
		return nil // ctx ended before this scheduler led
	}
	if err := <-done; err != nil {
		return err
	}
	if ctx.Err() == nil {
		return ErrLostLeadership
	}
	return nil
}

// RunElected runs a leader-elected scheduler until ctx is done. A Scheduler runs once;
// one that loses the lease ends, and a new one stands for election again a second
// later, so that servers sharing one etcd always have one scheduler between them.
func RunElected(ctx context.Context, cs kubernetes.Interface, o Options) {
	o.LeaderElect = true
	for ctx.Err() == nil {
		sched, err := New(cs, o)
		if err == nil {
			err = sched.Run(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		if o.Log != nil {
			o.Log.Error("scheduler stopped; starting another", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
