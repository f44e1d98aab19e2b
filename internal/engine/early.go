package engine

import (
	"context"
	"errors"
	"time"

	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/image"
	"github.com/berth-project/berth/internal/engine/runtime"
	"github.com/berth-project/berth/internal/engine/snapshot"
)

// An early start is the runtime's part of a container's start, done ahead at its
// create: `docker run` creates and then starts, and between the two the client spends
// about ten milliseconds of its own (setting up its signal forwarding, attaching,
// arming its wait), time that the runtime's create (namespaces, cgroups, mounts:
// twenty milliseconds) can use. The container's process is made but held at
// libcontainer's exec fifo, so nothing of it runs before the start; the start only
// releases it. If no start comes within earlyHold, or the container is removed or
// changed first, the early start is abandoned: the shim kills the held process and
// cleans up, and a later start does all of it then.
//
// Only containers whose start sets up no network (--network none or host) are
// started early: a created container holds no address or published port, as with
// Docker, and nothing the early start makes is visible through the API.
type earlyStart struct {
	done  chan struct{} // closed once the create has returned
	start chan struct{} // closed by the start: the create need not hold the process
	act   *snapshot.Active
	pid   int
	err   error
	timer *time.Timer
}

// earlyHold is how long an early start waits for its start.
const earlyHold = 5 * time.Second

func startsEarly(c *container.Container) bool {
	mode := c.HostConfig.NetworkMode
	return c.Pod == nil && (mode == "none" || mode == "host")
}

// beginEarlyStart starts c's runtime create ahead (c qualifies: startsEarly). It
// returns at once; the create runs in the background. Callers hold l.mu; c was just
// created.
func (e *Engine) beginEarlyStart(c *container.Container, l *live, img *image.Image) {
	act, err := e.prepareRootfs(c, img)
	if err != nil {
		return // the start reports it
	}
	spec, err := e.buildSpec(c, act.Merged)
	if err != nil {
		return
	}
	es := &earlyStart{done: make(chan struct{}), start: make(chan struct{}), act: act}
	o := e.startOptions(c, spec, true)
	o.Go = es.start
	go func() {
		defer close(es.done)
		es.pid, es.err = e.rt.Create(context.Background(), o)
	}()
	es.timer = time.AfterFunc(earlyHold, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.early == es {
			e.dropEarly(c, l)
		}
	})
	l.early = es
}

// takeEarly hands the start the early start made for it, once its create is done; nil
// if there is none, or it failed before its process could run (the start then does all
// of it). A create that failed after the go-ahead is the start's failure: its process
// may have run already. Callers hold l.mu.
func (e *Engine) takeEarly(l *live) (*earlyStart, error) {
	es := l.early
	if es == nil {
		return nil, nil
	}
	l.early = nil
	es.timer.Stop()
	// A create still under way lets the process go as soon as it is made: the start
	// has come. The shim still holds its output and exit until the start below.
	close(es.start)
	<-es.done
	if errors.Is(es.err, runtime.ErrMayHaveRun) {
		es.act.Unmount()
		return nil, es.err
	}
	if es.err != nil {
		return nil, nil
	}
	return es, nil
}

// dropEarly abandons c's early start, if any: the held process is killed, its shim
// cleans up and goes. Callers hold l.mu.
func (e *Engine) dropEarly(c *container.Container, l *live) {
	es := l.early
	if es == nil {
		return
	}
	l.early = nil
	es.timer.Stop()
	<-es.done
	if es.err != nil {
		return
	}
	if err := e.abandonShim(c); err != nil {
		return
	}
	es.act.Unmount() // as for any container not running: the start mounts it again
}

// abandonShim has c's shim let its held process go, and removes the shim's files once it
// has. If it cannot, they stay: a shim that still lives must not find a later start's
// files in their place.
func (e *Engine) abandonShim(c *container.Container) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.shim(c).Abandon(ctx); err != nil {
		e.log.Error("abandon early start", "container", c.ID[:12], "err", err)
		return err
	}
	e.dropBundle(c.ID)
	return nil
}

func (e *Engine) startOptions(c *container.Container, spec runtime.Spec, hold bool) runtime.StartOptions {
	return runtime.StartOptions{
		ID: c.ID, Bundle: e.bundle(c.ID), LogPath: c.LogPath(), CRILog: c.CRILogPath(), Spec: spec, Socket: e.shimSocket(c.ID),
		OpenStdin: c.Config.OpenStdin, StdinOnce: c.Config.StdinOnce, Hold: hold,
	}
}
