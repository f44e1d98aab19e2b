package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ErrNotRunning means the container's shim is gone: the container has exited.
var ErrNotRunning = errors.New("container is not running")

// Runtime starts containers. Path is the berth-runtime binary (berth-shim sits next to
// it); Root is libcontainer's state root.
type Runtime struct {
	Path string
	Root string

	primer  Primer
	standby standby
}

// Prime readies for a container start that is coming soon: the kernel for its cgroup
// move (see Primer), and a berth-runtime loaded and waiting (see standby). Call it as
// early as a start is known to be on its way.
func (r *Runtime) Prime() {
	r.primer.Prime()
	// Starting the standby is a fork and exec: not on the API request's path.
	go r.standby.fill(r.Path, r.Root)
}

// Probe finds out, in the background, whether this machine needs priming (see
// Primer.Probe). Call it once, as the engine starts.
func (r *Runtime) Probe() { r.primer.Probe() }

// Close stops the berth-runtime kept waiting, if any.
func (r *Runtime) Close() { r.standby.close() }

// StartOptions describe one container start.
type StartOptions struct {
	ID        string
	Bundle    string // the shim's directory; config.json is written here
	LogPath   string
	CRILog    string // the CRI log file of a pod's container, written beside LogPath
	Socket    string // the shim's unix socket; keep it short (108 bytes at most)
	Spec      Spec
	OpenStdin bool
	StdinOnce bool
	// Hold leaves the process waiting until the shim's start (a create made ahead of
	// the start, which Abandon undoes if no start comes).
	Hold bool
	// Go, with Hold, is closed once the start has come: a create still under way then
	// lets the process go as soon as it is made, instead of at the shim's start. The
	// shim still passes on no output and reports no exit before Start.
	Go <-chan struct{}
}

// Create writes the bundle and has a standby make and start the container (see
// standby). The container's process is running when Create returns, but its shim
// passes on none of its output, and reports no exit, before Start: attach first if
// you need all of its output, then Start. It returns the pid of the container's init.
func (r *Runtime) Create(ctx context.Context, o StartOptions) (int, error) {
	if err := os.MkdirAll(filepath.Dir(o.Socket), 0o700); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(o.Bundle, 0o700); err != nil {
		return 0, err
	}
	os.Remove(filepath.Join(o.Bundle, "exit.json"))
	data, err := json.Marshal(OCISpec(o.Spec))
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(o.Bundle, "config.json"), data, 0o600); err != nil {
		return 0, err
	}
	args := []string{"--id", o.ID, "--bundle", o.Bundle, "--root", r.Root, "--log", o.LogPath, "--socket", o.Socket}
	if o.OpenStdin {
		args = append(args, "--stdin")
	}
	if o.StdinOnce {
		args = append(args, "--stdin-once")
	}
	if o.Hold {
		args = append(args, "--hold")
	}
	if o.CRILog != "" {
		args = append(args, "--cri-log", o.CRILog)
	}
	pr, req, err := r.launch(args, o.Bundle)
	// The next start's standby starts once this create has replied (see take).
	defer func() { go r.standby.done(r.Path, r.Root) }()
	if err != nil {
		return 0, err
	}
	defer pr.Close()
	replied := make(chan struct{})
	gave := make(chan bool, 1)
	go func() { gave <- passGo(req, o.Go, replied) }()
	var rep Reply
	err = json.NewDecoder(pr).Decode(&rep)
	close(replied)
	switch {
	case err != nil:
		logTail, _ := os.ReadFile(filepath.Join(o.Bundle, "shim.log"))
		err = fmt.Errorf("shim for %s failed: %s", o.ID, lastLine(logTail))
	case rep.Error != "":
		err = errors.New(rep.Error)
	}
	if err != nil && <-gave {
		err = fmt.Errorf("%w: %w", ErrMayHaveRun, err)
	}
	return rep.Pid, err
}

// ErrMayHaveRun marks a create that failed after it was given the go-ahead
// (StartOptions.Go): its process may have run (and been killed), so it must not simply
// be made again.
var ErrMayHaveRun = errors.New("the container's process may have run")

// passGo tells berth-runtime, on its request pipe, that the start has come (goNow) if
// that happens before the create has replied, and closes the pipe. It reports whether
// it did.
func passGo(req *os.File, start <-chan struct{}, replied <-chan struct{}) bool {
	defer req.Close()
	select {
	case <-start:
		_, err := req.Write([]byte{GoNow})
		return err == nil
	case <-replied:
		return false
	}
}

// GoNow, on a create's request pipe after the request, lets berth-runtime start a
// held process at once (StartOptions.Go).
const GoNow = 'g'

func lastLine(b []byte) string {
	s := string(b)
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			return s[i+1:]
		}
	}
	if s == "" {
		return "no output"
	}
	return s
}

// Shim is a client of one container's shim: Bundle holds its files, Socket is where it
// listens.
type Shim struct{ Bundle, Socket string }

func (s Shim) dial(ctx context.Context, req Request) (*net.UnixConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", s.Socket)
	if err != nil {
		return nil, ErrNotRunning
	}
	line, _ := json.Marshal(req)
	if _, err := c.Write(append(line, '\n')); err != nil {
		c.Close()
		return nil, ErrNotRunning
	}
	return c.(*net.UnixConn), nil
}

func (s Shim) call(ctx context.Context, req Request) (Reply, error) {
	c, err := s.dial(ctx, req)
	if err != nil {
		return Reply{}, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	var rep Reply
	if err := json.NewDecoder(c).Decode(&rep); err != nil {
		return Reply{}, ErrNotRunning
	}
	if rep.Error != "" {
		return rep, errors.New(rep.Error)
	}
	return rep, nil
}

// Alive reports whether the shim answers.
func (s Shim) Alive() bool {
	c, err := net.DialTimeout("unix", s.Socket, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Start has the shim pass on the container's output, to the log and to the clients
// attached by then, and report its exit.
func (s Shim) Start(ctx context.Context) error {
	_, err := s.call(ctx, Request{Op: "start"})
	return err
}

// Abandon undoes a create made with Hold that no start followed: the shim kills the
// waiting process, removes its cgroups and state, and answers once it has.
func (s Shim) Abandon(ctx context.Context) error {
	_, err := s.call(ctx, Request{Op: "abandon"})
	return err
}

// Wait blocks until the container exits and returns how.
func (s Shim) Wait(ctx context.Context) (Exit, error) {
	c, err := s.dial(ctx, Request{Op: "wait"})
	if err != nil {
		return Exit{}, err
	}
	defer c.Close()
	go func() { <-ctx.Done(); c.SetDeadline(time.Now()) }()
	var ex Exit
	if err := json.NewDecoder(c).Decode(&ex); err != nil {
		if ctx.Err() != nil {
			return Exit{}, ctx.Err()
		}
		return Exit{}, ErrNotRunning
	}
	return ex, nil
}

// ReadExit reads the exit status a shim recorded before it went away.
func (s Shim) ReadExit() (Exit, error) {
	var ex Exit
	data, err := os.ReadFile(filepath.Join(s.Bundle, "exit.json"))
	if err != nil {
		return ex, err
	}
	err = json.Unmarshal(data, &ex)
	return ex, err
}

// Attach opens a stream: frames out (ending with FrameExit), raw stdin in. It returns
// once the shim has subscribed the stream, so no output after that is missed.
func (s Shim) Attach(ctx context.Context, stdin, stdout, stderr bool) (*net.UnixConn, error) {
	return s.attach(ctx, Request{Op: "attach", Stdin: stdin, Stdout: stdout, Stderr: stderr})
}

// AttachAndStart attaches as Attach does and then, in the same request, starts the
// container as Start does.
func (s Shim) AttachAndStart(ctx context.Context, stdin, stdout, stderr bool) (*net.UnixConn, error) {
	return s.attach(ctx, Request{Op: "attach", Stdin: stdin, Stdout: stdout, Stderr: stderr, Start: true})
}

func (s Shim) attach(ctx context.Context, req Request) (*net.UnixConn, error) {
	c, err := s.dial(ctx, req)
	if err != nil {
		return nil, err
	}
	var h [8]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		c.Close()
		return nil, ErrNotRunning
	}
	if h[0] != FrameAttached {
		c.Close()
		return nil, fmt.Errorf("shim answered an attach with frame type %d", h[0])
	}
	return c, nil
}

// Exec starts a process in the container and returns its stream, as Attach does.
func (s Shim) Exec(ctx context.Context, spec ExecSpec) (*net.UnixConn, error) {
	return s.dial(ctx, Request{Op: "exec", Exec: &spec})
}

// Resize changes the terminal size of the container (execID "") or of an exec session.
func (s Shim) Resize(ctx context.Context, execID string, w, h uint16) error {
	_, err := s.call(ctx, Request{Op: "resize", ExecID: execID, Width: w, Height: h})
	return err
}

// Kill sends sig to the container's init, or to all of its processes.
func (s Shim) Kill(ctx context.Context, sig syscall.Signal, all bool) error {
	_, err := s.call(ctx, Request{Op: "kill", Signal: int(sig), All: all})
	return err
}

// Pause freezes the container; Resume thaws it.
func (s Shim) Pause(ctx context.Context) error {
	_, err := s.call(ctx, Request{Op: "pause"})
	return err
}

func (s Shim) Resume(ctx context.Context) error {
	_, err := s.call(ctx, Request{Op: "resume"})
	return err
}

// ReopenLog makes the shim start a new CRI log file at its path (after the kubelet
// rotated the old one away).
func (s Shim) ReopenLog(ctx context.Context) error {
	_, err := s.call(ctx, Request{Op: "reopen-log"})
	return err
}

// Update changes the cgroup limits of the running container.
func (s Shim) Update(ctx context.Context, r Resources) error {
	_, err := s.call(ctx, Request{Op: "update", Resources: &r})
	return err
}

// Processes lists the host pids of the container's processes.
func (s Shim) Processes(ctx context.Context) ([]int, error) {
	rep, err := s.call(ctx, Request{Op: "ps"})
	return rep.Pids, err
}

// Stats reads the container's cgroup counters.
func (s Shim) Stats(ctx context.Context) (*Stats, error) {
	rep, err := s.call(ctx, Request{Op: "stats"})
	return rep.Stats, err
}

// ReadFrames hands each output frame of a shim stream to onFrame until FrameExit, and
// returns the exit it carries.
func ReadFrames(r io.Reader, onFrame func(stream byte, p []byte) error) (Exit, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	for {
		st, p, err := ReadFrame(br, buf)
		if err != nil {
			return Exit{}, err
		}
		buf = p[:0]
		if st == FrameExit {
			var ex Exit
			err := json.Unmarshal(p, &ex)
			return ex, err
		}
		if err := onFrame(st, p); err != nil {
			return Exit{}, err
		}
	}
}

// RemoveCgroupParent removes the engine's parent cgroup in every hierarchy once it is
// empty (rmdir fails, harmlessly, while containers remain in it).
func RemoveCgroupParent(parent string) {
	if parent == "" || parent == "/" {
		return
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		os.Remove(filepath.Join("/sys/fs/cgroup", parent))
		return
	}
	hier, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, h := range hier {
		os.Remove(filepath.Join(h, parent))
	}
}
