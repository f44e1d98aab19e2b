package kubelet

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

type probeKind string

const (
	liveness  probeKind = "Liveness"
	readiness probeKind = "Readiness"
	startup   probeKind = "Startup"
)

// prober runs a goroutine per running container and probe, and remembers each probe's result.
// A result that changes queues the pod, so readiness and restarts follow at once.
type prober struct {
	k       *Kubelet
	mu      sync.Mutex
	workers map[probeKey]*probeWorker
	results map[probeKey]bool // after the thresholds
	doomed  map[string]bool   // containers whose startup probe failed, by ID
}

type probeKey struct {
	id   string // the container's
	kind probeKind
}

type probeWorker struct {
	pod  types.UID
	stop context.CancelFunc
}

// newProber returns a prober whose workers all end when the kubelet's run does.
func newProber(k *Kubelet) *prober {
	return &prober{k: k, workers: map[probeKey]*probeWorker{}, results: map[probeKey]bool{}, doomed: map[string]bool{}}
}

// ensure starts the container's probe workers that are not running yet. ip is the address
// httpGet and tcpSocket probes reach the pod at (the sandbox's, or the node's).
func (p *prober) ensure(pod *corev1.Pod, c *corev1.Container, cur *container, ip string) {
	for kind, pr := range map[probeKind]*corev1.Probe{liveness: c.LivenessProbe, readiness: c.ReadinessProbe, startup: c.StartupProbe} {
		if pr == nil {
			continue
		}
		key := probeKey{cur.Id, kind}
		p.mu.Lock()
		if _, ok := p.workers[key]; ok {
			p.mu.Unlock()
			continue
		}
		ctx, cancel := context.WithCancel(p.k.runCtx)
		p.workers[key] = &probeWorker{pod: pod.UID, stop: cancel}
		if kind == liveness {
			p.results[key] = true
		}
		p.mu.Unlock()
		go p.run(ctx, pod.DeepCopy(), c.DeepCopy(), cur.Id, ip, time.Unix(0, cur.StartedAt), kind, pr.DeepCopy())
	}
}

func (p *prober) result(key probeKey) (bool, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.results[key]
	return v, ok
}

// started reports whether a running container passed its startup probe (true without one).
func (p *prober) started(c *corev1.Container, id string) bool {
	if c.StartupProbe == nil {
		return true
	}
	v, _ := p.result(probeKey{id, startup})
	return v
}

// ready reports whether a running container passes its readiness probe (true without one).
func (p *prober) ready(c *corev1.Container, id string) bool {
	if c.ReadinessProbe == nil {
		return true
	}
	v, _ := p.result(probeKey{id, readiness})
	return v
}

// failed says why the container must be restarted ("failed liveness probe"), or "".
func (p *prober) failed(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if v, ok := p.results[probeKey{id, liveness}]; ok && !v {
		return "failed liveness probe"
	}
	if p.doomed[id] {
		return "failed startup probe"
	}
	return ""
}

// retain stops the pod's workers whose containers no longer run.
func (p *prober) retain(uid types.UID, st *podState) {
	live := map[string]bool{}
	for _, c := range st.running() {
		live[c.Id] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, w := range p.workers {
		if w.pod == uid && !live[key.id] {
			p.drop(key, w)
		}
	}
}

// forget stops every worker of the pod.
func (p *prober) forget(uid types.UID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, w := range p.workers {
		if w.pod == uid {
			p.drop(key, w)
		}
	}
}

func (p *prober) drop(key probeKey, w *probeWorker) {
	w.stop()
	delete(p.workers, key)
	delete(p.results, key)
	delete(p.doomed, key.id)
}

// run probes one container every period until stopped, applying the success and failure
// thresholds; liveness and readiness wait for the startup probe to pass.
func (p *prober) run(ctx context.Context, pod *corev1.Pod, c *corev1.Container, id, ip string, startedAt time.Time, kind probeKind, pr *corev1.Probe) {
	period := time.Duration(max(pr.PeriodSeconds, 1)) * time.Second
	timeout := time.Duration(max(pr.TimeoutSeconds, 1)) * time.Second
	successes, failures := int32(0), int32(0)
	needSuccess, needFailure := max(pr.SuccessThreshold, 1), max(pr.FailureThreshold, 1)
	key := probeKey{id, kind}
	first := time.Until(startedAt.Add(time.Duration(pr.InitialDelaySeconds) * time.Second))
	timer := time.NewTimer(max(first, 0))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		timer.Reset(period)
		if kind != startup && !p.started(c, id) {
			continue
		}
		if kind == startup && p.started(c, id) {
			return // startup probes stop once they passed
		}
		a := action{exec: pr.Exec, httpGet: pr.HTTPGet, tcp: pr.TCPSocket, grpc: pr.GRPC}
		out, err := p.k.runAction(ctx, pod, c, id, ip, a, timeout)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
			p.k.event(pod, corev1.EventTypeWarning, "Unhealthy", fmt.Sprintf("%s probe failed: %v", kind, err))
			p.k.log.Info("probe failed", "pod", pod.Namespace+"/"+pod.Name, "container", c.Name, "probe", string(kind), "err", err, "output", out)
		}
		var set, val bool
		switch {
		case successes >= needSuccess:
			set, val = true, true
		case failures >= needFailure:
			set, val = true, false
		}
		if !set {
			continue
		}
		p.mu.Lock()
		old, had := p.results[key]
		if _, live := p.workers[key]; live {
			p.results[key] = val
			if kind == startup && !val {
				p.doomed[id] = true
			}
		}
		p.mu.Unlock()
		if !had || old != val {
			p.k.pods.queue.Add(pod.UID)
		}
		if !val && kind != readiness {
			return // the container is killed; its successor gets a worker of its own
		}
	}
}
