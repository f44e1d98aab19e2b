package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	dcontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/sys/signal"

	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/runtime"
	"github.com/berth-project/berth/internal/engine/sandbox"
	"github.com/berth-project/berth/internal/engine/snapshot"
)

// live is the engine's in-memory companion of a container record.
type live struct {
	mu        sync.Mutex // serialises lifecycle changes of one container
	exitCh    chan struct{}
	removedCh chan struct{}
	pending   []chan *net.UnixConn // attaches waiting for the next start
	restart   *time.Timer
	backoff   container.Backoff
	removed   bool
	early     *earlyStart // the runtime's create, made ahead of the start (see earlyStart)
}

// freshExit makes sure exitCh stands for the next exit: a channel closed by an earlier
// exit is replaced. Callers hold l.mu.
func (l *live) freshExit() {
	select {
	case <-l.exitCh:
		l.exitCh = make(chan struct{})
	default:
	}
}

func (e *Engine) liveOf(id string) *live {
	e.mu.Lock()
	defer e.mu.Unlock()
	l, ok := e.live[id]
	if !ok {
		l = &live{exitCh: make(chan struct{}), removedCh: make(chan struct{})}
		e.live[id] = l
	}
	return l
}

func (e *Engine) bundle(id string) string { return filepath.Join(e.cfg.RunDir, "containers", id) }

// shimSocket is short on purpose: unix socket paths are limited to 108 bytes.
func (e *Engine) shimSocket(id string) string {
	return filepath.Join(e.cfg.RunDir, "s", id[:24])
}

func (e *Engine) shim(c *container.Container) runtime.Shim {
	return runtime.Shim{Bundle: e.bundle(c.ID), Socket: e.shimSocket(c.ID)}
}

// lockContainer finds a container and takes its lifecycle lock; the caller unlocks.
func (e *Engine) lockContainer(ref string) (*container.Container, *live, error) {
	c, err := e.ctrs.Get(ref)
	if err != nil {
		return nil, nil, err
	}
	l := e.liveOf(c.ID)
	l.mu.Lock()
	return c, l, nil
}

// Get finds a container by id, name or id prefix.
func (e *Engine) Get(ref string) (*container.Container, error) { return e.ctrs.Get(ref) }

// List returns all containers, newest first.
func (e *Engine) List() []*container.Container { return e.ctrs.List() }

// Start starts a created or stopped container.
func (e *Engine) Start(ctx context.Context, ref string) error {
	c, l, err := e.lockContainer(ref)
	if err != nil {
		return err
	}
	defer l.mu.Unlock()
	switch c.State.Status {
	case container.Running:
		return errdefs.New(errdefs.ErrNotModified, "container already started")
	case container.Paused:
		return errdefs.Conflict("cannot start a paused container, try unpause instead")
	case container.Restarting:
		if l.restart != nil {
			l.restart.Stop()
		}
	}
	c.ManuallyStopped = false
	if err := e.startLocked(ctx, c, l); err != nil {
		c.State.Error = err.Error()
		c.State.ExitCode = startFailureCode(err.Error())
		e.ctrs.Save(c)
		if c.HostConfig.AutoRemove {
			// docker run --rm waits for the removal after a failed start.
			go e.Remove(context.Background(), c.ID, RemoveOptions{Force: true, Volumes: true})
		}
		return err
	}
	return nil
}

func (e *Engine) startLocked(ctx context.Context, c *container.Container, l *live) (err error) {
	e.rt.Prime()
	var act *snapshot.Active
	var pid int
	defer func() {
		if err != nil {
			if act != nil {
				act.Unmount()
			}
			e.detachNet(c)
			// Attaches waiting for this start get nothing: they end.
			for _, p := range l.pending {
				close(p)
			}
			l.pending = nil
		}
	}()
	t0 := time.Now()
	var t1, t2 time.Time
	es, err := e.takeEarly(l)
	if err != nil {
		return fmt.Errorf("failed to create task for container: %w", err)
	}
	if es != nil {
		act, pid = es.act, es.pid
		t1, t2 = t0, t0
	} else {
		img, err := e.images.Get(c.Image)
		if err != nil {
			return fmt.Errorf("image of container %s: %w", c.Name, err)
		}
		if act, err = e.prepareRootfs(c, img); err != nil {
			return err // unmounting what did not mount does no harm
		}
		t1 = time.Now()
		spec, err := e.buildSpec(c, act.Merged)
		if err != nil {
			return err
		}
		t2 = time.Now()
		if pid, err = e.rt.Create(ctx, e.startOptions(c, spec, false)); err != nil {
			return fmt.Errorf("failed to create task for container: %w", err)
		}
	}
	sh := e.shim(c)
	t3 := time.Now()
	// Its exit is awaited from now: by the time the start is through, the container
	// may well have ended. (The monitor settles an exit only once this start, which
	// holds l.mu, has marked the container running.)
	go e.monitor(c, l)
	started := false
	for i, p := range l.pending {
		attach := sh.Attach
		if i == len(l.pending)-1 {
			attach = sh.AttachAndStart // a round trip less
		}
		conn, err := attach(ctx, c.Config.AttachStdin || c.Config.OpenStdin, true, true)
		if err == nil {
			p <- conn
			started = started || i == len(l.pending)-1
		}
		close(p)
	}
	l.pending = nil
	if !started {
		if err := sh.Start(ctx); err != nil {
			// Not with ctx: a client that went away must not leave the process running.
			sh.Kill(context.WithoutCancel(ctx), syscall.SIGKILL, true)
			return err
		}
	}
	l.freshExit()
	c.State = container.State{Status: container.Running, Pid: pid, StartedAt: time.Now().UTC()}
	if err := e.ctrs.Save(c); err != nil {
		e.log.Error("save container", "container", c.ID[:12], "err", err)
	}
	e.publish(events.ContainerEventType, events.ActionStart, c.ID, map[string]string{"name": c.Name, "image": c.Config.Image})
	e.log.Debug("started", "container", c.ID[:12], "rootfs", t1.Sub(t0), "spec", t2.Sub(t1), "create", t3.Sub(t2), "start", time.Since(t3))
	return nil
}

// startFailureCode is the exit code Docker records for a start that failed: 127 for a
// missing command, 126 for one that cannot be run, 128 otherwise.
func startFailureCode(msg string) int {
	switch {
	case strings.Contains(msg, "executable file not found") || strings.Contains(msg, "no such file or directory"):
		return 127
	case strings.Contains(msg, "permission denied"):
		return 126
	}
	return 128
}

// monitor waits for the container's exit and settles it.
func (e *Engine) monitor(c *container.Container, l *live) {
	sh := e.shim(c)
	ex, err := sh.Wait(context.Background())
	if err != nil {
		if ex, err = sh.ReadExit(); err != nil {
			ex = runtime.Exit{Code: 255, FinishedAt: time.Now().UTC(), Error: "shim vanished"}
		}
	}
	e.log.Debug("monitor got exit", "container", c.ID[:12])
	l.mu.Lock()
	defer l.mu.Unlock()
	if !c.Running() {
		return
	}
	e.handleExit(c, l, ex)
}

// handleExit records an exit, releases the container's mounts and address, and applies
// --rm or the restart policy. Callers hold l.mu.
func (e *Engine) handleExit(c *container.Container, l *live, ex runtime.Exit) {
	ran := time.Since(c.State.StartedAt)
	c.State.Status = container.Exited
	c.State.Pid = 0
	c.State.ExitCode = ex.Code
	c.State.OOMKilled = ex.OOMKilled
	c.State.Error = ex.Error
	c.State.FinishedAt = ex.FinishedAt
	if c.State.FinishedAt.IsZero() {
		c.State.FinishedAt = time.Now().UTC()
	}
	if !c.HostConfig.AutoRemove { // else removeLocked releases all of it, below
		t0 := time.Now()
		e.releaseRootfs(c)
		t1 := time.Now()
		e.detachNet(c)
		t2 := time.Now()
		e.dropBundle(c.ID)
		e.log.Debug("exited", "container", c.ID[:12], "rootfs", t1.Sub(t0), "net", t2.Sub(t1), "bundle", time.Since(t2))
	}
	select {
	case <-l.exitCh:
	default:
		close(l.exitCh)
	}
	e.publish(events.ContainerEventType, events.ActionDie, c.ID, map[string]string{"name": c.Name, "exitCode": fmt.Sprint(ex.Code)})
	if c.HostConfig.AutoRemove {
		// Removed at once, under the same lock: nothing is saved that is deleted next.
		if err := e.removeLocked(c, l, RemoveOptions{Force: true, Volumes: true}); err != nil {
			e.log.Error("auto-remove", "container", c.ID[:12], "err", err)
			e.ctrs.Save(c)
		}
		return
	}
	if container.ShouldRestart(c.HostConfig.RestartPolicy, ex.Code, c.Restarts, c.ManuallyStopped) {
		c.State.Status = container.Restarting
		delay := l.backoff.Next(ran)
		l.restart = time.AfterFunc(delay, func() { e.autoRestart(c, l) })
	}
	e.ctrs.Save(c)
}

func (e *Engine) autoRestart(c *container.Container, l *live) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.removed || c.State.Status != container.Restarting {
		return
	}
	c.Restarts++
	if err := e.startLocked(context.Background(), c, l); err != nil {
		e.log.Error("restart failed", "container", c.ID[:12], "err", err)
		c.State.Status = container.Exited
		c.State.Error = err.Error()
		e.ctrs.Save(c)
	}
}

// Stop signals the container (its stop signal, or sig) and kills it after timeout.
// A negative timeout waits forever.
func (e *Engine) Stop(ctx context.Context, ref string, sig string, timeout *int) error {
	c, err := e.ctrs.Get(ref)
	if err != nil {
		return e.orSandbox(ref, err, func(s sandbox.Sandbox) error { return e.stopSandboxRef(ctx, s, sig, timeout) })
	}
	l := e.liveOf(c.ID)
	l.mu.Lock()
	c.ManuallyStopped = true
	if l.restart != nil {
		l.restart.Stop()
	}
	if c.State.Status == container.Restarting {
		c.State.Status = container.Exited
	}
	running := c.Running()
	paused := c.State.Status == container.Paused
	exitCh := l.exitCh
	e.ctrs.Save(c)
	l.mu.Unlock()
	if !running {
		return errdefs.New(errdefs.ErrNotModified, "container already stopped")
	}
	if sig == "" {
		sig = c.Config.StopSignal
	}
	s, err := parseSignal(sig, syscall.SIGTERM)
	if err != nil {
		return err
	}
	t := 10
	if c.Config.StopTimeout != nil {
		t = *c.Config.StopTimeout
	}
	if timeout != nil {
		t = *timeout
	}
	sh := e.shim(c)
	sh.Kill(ctx, s, false)
	if paused {
		sh.Resume(ctx)
	}
	var wait <-chan time.Time
	if t >= 0 {
		wait = time.After(time.Duration(t) * time.Second)
	}
	select {
	case <-exitCh:
	case <-wait:
		sh.Kill(ctx, syscall.SIGKILL, true)
		select {
		case <-exitCh:
		case <-time.After(30 * time.Second):
			return fmt.Errorf("container %s did not stop", c.ID[:12])
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	e.publish(events.ContainerEventType, events.ActionStop, c.ID, map[string]string{"name": c.Name})
	return nil
}

func parseSignal(s string, def syscall.Signal) (syscall.Signal, error) {
	if s == "" {
		return def, nil
	}
	sig, err := signal.ParseSignal(s)
	if err != nil {
		return 0, errdefs.Invalid(err.Error())
	}
	return sig, nil
}

// Kill sends a signal to the container's main process (SIGKILL by default).
func (e *Engine) Kill(ctx context.Context, ref, sig string) error {
	c, err := e.ctrs.Get(ref)
	if err != nil {
		// A pod sandbox (see ListWithSandboxes) stops at once.
		return e.orSandbox(ref, err, func(s sandbox.Sandbox) error { return e.StopSandbox(ctx, s.ID) })
	}
	s, err := parseSignal(sig, syscall.SIGKILL)
	if err != nil {
		return err
	}
	if !c.Running() {
		return errdefs.Conflict(fmt.Sprintf("cannot kill container: %s: container %s is not running", ref, c.ID))
	}
	l := e.liveOf(c.ID)
	if s == syscall.SIGKILL || s == syscall.SIGTERM || s == syscall.SIGINT {
		l.mu.Lock()
		c.ManuallyStopped = true
		e.ctrs.Save(c)
		l.mu.Unlock()
	}
	if err := e.shim(c).Kill(ctx, s, false); err != nil {
		return err
	}
	e.publish(events.ContainerEventType, events.ActionKill, c.ID, map[string]string{"name": c.Name, "signal": fmt.Sprint(int(s))})
	if s == syscall.SIGKILL {
		select {
		case <-l.exitCh:
		case <-time.After(10 * time.Second):
		}
	}
	return nil
}

// Restart stops (if running) and starts a container.
func (e *Engine) Restart(ctx context.Context, ref string, sig string, timeout *int) error {
	c, err := e.ctrs.Get(ref)
	if err != nil {
		return err
	}
	if c.Running() {
		if err := e.Stop(ctx, c.ID, sig, timeout); err != nil && !errors.Is(err, errdefs.ErrNotModified) {
			return err
		}
	}
	if err := e.Start(ctx, c.ID); err != nil {
		return err
	}
	e.publish(events.ContainerEventType, events.ActionRestart, c.ID, map[string]string{"name": c.Name})
	return nil
}

// Pause freezes all processes of a container.
func (e *Engine) Pause(ctx context.Context, ref string) error {
	c, l, err := e.lockContainer(ref)
	if err != nil {
		return err
	}
	defer l.mu.Unlock()
	switch c.State.Status {
	case container.Running:
	case container.Paused:
		return errdefs.Conflict(fmt.Sprintf("container %s is already paused", c.ID))
	default:
		return errdefs.Conflict(fmt.Sprintf("container %s is not running", c.ID))
	}
	if err := e.shim(c).Pause(ctx); err != nil {
		return err
	}
	c.State.Status = container.Paused
	e.publish(events.ContainerEventType, events.ActionPause, c.ID, map[string]string{"name": c.Name})
	return e.ctrs.Save(c)
}

// Unpause thaws a paused container.
func (e *Engine) Unpause(ctx context.Context, ref string) error {
	c, l, err := e.lockContainer(ref)
	if err != nil {
		return err
	}
	defer l.mu.Unlock()
	if c.State.Status != container.Paused {
		return errdefs.Conflict(fmt.Sprintf("container %s is not paused", c.ID))
	}
	if err := e.shim(c).Resume(ctx); err != nil {
		return err
	}
	c.State.Status = container.Running
	e.publish(events.ContainerEventType, events.ActionUnPause, c.ID, map[string]string{"name": c.Name})
	return e.ctrs.Save(c)
}

// RemoveOptions are docker rm's flags.
type RemoveOptions struct {
	Force   bool
	Volumes bool
}

// Remove deletes a container; a running one only with Force (it is killed first).
func (e *Engine) Remove(ctx context.Context, ref string, o RemoveOptions) error {
	c, err := e.ctrs.Get(ref)
	if err != nil {
		return e.orSandbox(ref, err, func(s sandbox.Sandbox) error { return e.removeSandboxRef(ctx, s, o.Force) })
	}
	l := e.liveOf(c.ID)
	if c.Running() {
		if !o.Force {
			what := "running"
			if c.State.Status == container.Paused {
				what = "paused"
			}
			return errdefs.Conflict(fmt.Sprintf("cannot remove container \"/%s\": container is %s: stop the container before removing or force remove", c.Name, what))
		}
		l.mu.Lock()
		c.ManuallyStopped = true
		exitCh := l.exitCh
		l.mu.Unlock()
		sh := e.shim(c)
		sh.Kill(ctx, syscall.SIGKILL, true)
		sh.Resume(ctx)
		select {
		case <-exitCh:
		case <-time.After(20 * time.Second):
			return fmt.Errorf("could not kill running container %s, cannot remove", c.ID)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return e.removeLocked(c, l, o)
}

// removeLocked deletes a container that is not running. Callers hold l.mu.
func (e *Engine) removeLocked(c *container.Container, l *live, o RemoveOptions) error {
	if l.removed {
		return nil
	}
	e.dropEarly(c, l)
	if l.restart != nil {
		l.restart.Stop()
	}
	t0 := time.Now()
	e.snaps.Remove(c.ID) // unmounts the rootfs first
	t1 := time.Now()
	if err := e.ctrs.Delete(c); err != nil {
		return err
	}
	if o.Volumes {
		for _, m := range c.Mounts {
			if m.Type == "volume" && m.Anonymous && !e.volumeInUse(m.Name) {
				e.vols.Remove(m.Name)
			}
		}
	}
	// Gone for every client from here: wake `docker run --rm` (waiting for the removal)
	// before the clean-up that no client can observe.
	l.removed = true
	close(l.removedCh)
	e.mu.Lock()
	delete(e.live, c.ID)
	e.mu.Unlock()
	e.publish(events.ContainerEventType, events.ActionDestroy, c.ID, map[string]string{"name": c.Name})
	t2 := time.Now()
	e.detachNet(c)
	e.dropBundle(c.ID)
	e.log.Debug("removed", "container", c.ID[:12], "rootfs", t1.Sub(t0), "record", t2.Sub(t1), "net and files", time.Since(t2))
	return nil
}

// dropBundle removes the files of a container's last shim: its bundle and its socket.
func (e *Engine) dropBundle(id string) {
	os.RemoveAll(e.bundle(id))
	os.Remove(e.shimSocket(id))
}

// Rename gives a container a new name.
func (e *Engine) Rename(ctx context.Context, ref, name string) error {
	c, err := e.ctrs.Get(ref)
	if err != nil {
		return err
	}
	if err := container.ValidateName(name); err != nil {
		return err
	}
	name = trimSlash(name)
	if name == c.Name {
		return errdefs.Invalid("Renaming a container with the same name as its current name")
	}
	if err := e.ctrs.Rename(c, name); err != nil {
		return err
	}
	e.publish(events.ContainerEventType, events.ActionRename, c.ID, map[string]string{"name": c.Name})
	return nil
}

func trimSlash(s string) string {
	if len(s) > 0 && s[0] == '/' {
		return s[1:]
	}
	return s
}

// WaitCondition is docker wait's condition.
type WaitCondition string

const (
	WaitNotRunning WaitCondition = "not-running"
	WaitNextExit   WaitCondition = "next-exit"
	WaitRemoved    WaitCondition = "removed"
)

// Wait blocks until the condition holds and returns the exit code. ready is called
// once the wait is armed (the API sends its headers then).
func (e *Engine) Wait(ctx context.Context, ref string, cond WaitCondition, ready func()) (int, error) {
	c, err := e.ctrs.Get(ref)
	if err != nil {
		return 0, err
	}
	l := e.liveOf(c.ID)
	l.mu.Lock()
	status := c.State.Status
	if cond == WaitNextExit {
		l.freshExit()
	}
	exitCh, removedCh := l.exitCh, l.removedCh
	l.mu.Unlock()
	if ready != nil {
		ready()
	}
	switch cond {
	case WaitRemoved:
		select {
		case <-removedCh:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	case WaitNextExit:
		select {
		case <-exitCh:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	default:
		if status == container.Running || status == container.Paused || status == container.Restarting {
			select {
			case <-exitCh:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
	}
	return c.State.ExitCode, nil
}

// UpdateRestartPolicy changes a container's restart policy (docker update --restart).
func (e *Engine) UpdateRestartPolicy(ref string, p dcontainer.RestartPolicy) error {
	if p.Name == "" {
		return nil
	}
	c, l, err := e.lockContainer(ref)
	if err != nil {
		return err
	}
	defer l.mu.Unlock()
	hc := *c.HostConfig
	hc.RestartPolicy = p
	if err := validateHostConfig(&hc); err != nil {
		return err
	}
	if hc.AutoRemove && p.Name != dcontainer.RestartPolicyDisabled {
		return errdefs.Invalid("Restart policy cannot be updated because AutoRemove is enabled for the container")
	}
	c.HostConfig.RestartPolicy = p
	e.publish(events.ContainerEventType, events.ActionUpdate, c.ID, map[string]string{"name": c.Name})
	return e.ctrs.Save(c)
}

// PruneContainers removes every stopped container (that match) and reports the ids
// removed and the bytes their writable layers held.
func (e *Engine) PruneContainers(ctx context.Context, match func(*container.Container) bool) ([]string, uint64) {
	deleted := []string{}
	var space uint64
	for _, c := range e.ctrs.List() {
		if c.Running() || c.State.Status == container.Restarting || (match != nil && !match(c)) {
			continue
		}
		size := e.RootfsSize(c)
		if e.Remove(ctx, c.ID, RemoveOptions{}) == nil {
			deleted = append(deleted, c.ID)
			space += uint64(size)
		}
	}
	return deleted, space
}
