package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/runtime"
)

// Streams are a client's ends of an attach or exec: Stdin may be nil. Output is written
// to Out in stdcopy frames when Framed, raw otherwise (TTY).
type Streams struct {
	Stdin  io.Reader
	Out    io.Writer
	Framed bool
	// Stdout and Stderr say which output streams the client wants.
	Stdout, Stderr bool
}

// pump moves a shim stream to the client until it ends, and the client's input to it.
func pump(conn *net.UnixConn, s Streams) (runtime.Exit, error) {
	if s.Stdin != nil {
		go func() {
			io.Copy(conn, s.Stdin)
			conn.CloseWrite()
		}()
	}
	return runtime.ReadFrames(conn, func(st byte, p []byte) error {
		if st == runtime.FrameStdout && !s.Stdout || st == runtime.FrameStderr && !s.Stderr {
			return nil
		}
		if s.Framed {
			return runtime.WriteFrame(s.Out, st, p)
		}
		_, err := s.Out.Write(p)
		return err
	})
}

// Attach connects a client to the container's stdio. On a container that is not
// running, it waits for the next start (that is how `docker run` sees all output).
func (e *Engine) Attach(ctx context.Context, ref string, s Streams) error {
	return e.AttachWhenReady(ctx, ref, s.Stdin != nil, func() (Streams, error) { return s, nil })
}

// AttachWhenReady is Attach for a client that must be told it is attached before it
// sends the start (docker run sends POST /start once it has the attach's 101): the
// client's place is taken first, then ready is called (the API hijacks the connection
// there) for the streams, so that no start can run ahead of the attach and its output
// go to nobody.
func (e *Engine) AttachWhenReady(ctx context.Context, ref string, stdin bool, ready func() (Streams, error)) error {
	c, err := e.ctrs.Get(ref)
	if err != nil {
		return err
	}
	l := e.liveOf(c.ID)
	l.mu.Lock()
	var conn *net.UnixConn
	var ch chan *net.UnixConn
	if c.Running() {
		conn, err = e.shim(c).Attach(ctx, stdin, true, true)
		l.mu.Unlock()
		if err != nil {
			return err
		}
	} else {
		ch = make(chan *net.UnixConn, 1)
		l.pending = append(l.pending, ch)
		l.mu.Unlock()
	}
	s, err := ready()
	if err != nil {
		if conn != nil {
			conn.Close()
		} else {
			e.dropPending(l, ch)
		}
		return err
	}
	if conn == nil {
		select {
		case conn = <-ch:
		case <-ctx.Done():
			e.dropPending(l, ch)
			return nil
		case <-l.removedCh:
			// A short-lived container (docker run --rm) may have started, run and been
			// removed before this attach got its turn: its output waits in the connection
			// the start handed over, which select may not have picked.
			select {
			case conn = <-ch:
			default:
			}
		}
		if conn == nil {
			return nil
		}
	}
	defer conn.Close()
	go func() { <-ctx.Done(); conn.SetDeadline(time.Now()) }()
	_, err = pump(conn, s)
	if err != nil && (ctx.Err() != nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)) {
		return nil
	}
	return err
}

// dropPending withdraws an attach that waited for a start it no longer wants, closing
// the connection a start may have handed it meanwhile.
func (e *Engine) dropPending(l *live, ch chan *net.UnixConn) {
	l.mu.Lock()
	for i, p := range l.pending {
		if p == ch {
			l.pending = append(l.pending[:i], l.pending[i+1:]...)
			break
		}
	}
	l.mu.Unlock()
	select {
	case conn := <-ch:
		if conn != nil {
			conn.Close()
		}
	default:
	}
}

// Resize changes the container's terminal size.
func (e *Engine) Resize(ctx context.Context, ref string, w, h uint16) error {
	c, err := e.ctrs.Get(ref)
	if err != nil {
		return err
	}
	if !c.Running() {
		return errdefs.Conflict(fmt.Sprintf("Container %s is not running", c.ID))
	}
	return e.shim(c).Resize(ctx, "", w, h)
}

// LogOptions are docker logs' flags.
type LogOptions struct {
	Stdout, Stderr bool
	Follow         bool
	Timestamps     bool
	Tail           int // -1: all
	Since, Until   time.Time
}

type logLine struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// Logs writes the container's log to w, as frames when framed (no TTY).
func (e *Engine) Logs(ctx context.Context, ref string, o LogOptions, w io.Writer, framed bool) error {
	c, err := e.ctrs.Get(ref)
	if err != nil {
		return err
	}
	f, err := os.Open(c.LogPath())
	if err != nil {
		if os.IsNotExist(err) && !o.Follow {
			return nil
		}
		if !os.IsNotExist(err) {
			return err
		}
	}
	emit := func(l logLine) error {
		if l.Stream == "stdout" && !o.Stdout || l.Stream == "stderr" && !o.Stderr {
			return nil
		}
		if !o.Since.IsZero() && l.Time.Before(o.Since) {
			return nil
		}
		if !o.Until.IsZero() && l.Time.After(o.Until) {
			return nil
		}
		text := l.Log
		if o.Timestamps {
			text = l.Time.Format("2006-01-02T15:04:05.000000000Z07:00") + " " + text
		}
		if framed {
			st := byte(runtime.FrameStdout)
			if l.Stream == "stderr" {
				st = runtime.FrameStderr
			}
			return runtime.WriteFrame(w, st, []byte(text))
		}
		_, err := io.WriteString(w, text)
		return err
	}
	var offset int64
	if f != nil {
		lines, n, err := readLogLines(f)
		if err != nil {
			f.Close()
			return err
		}
		offset = n
		if o.Tail >= 0 && len(lines) > o.Tail {
			lines = lines[len(lines)-o.Tail:]
		}
		for _, l := range lines {
			if err := emit(l); err != nil {
				f.Close()
				return err
			}
		}
		f.Close()
	}
	if !o.Follow {
		return nil
	}
	if fl, ok := w.(interface{ Flush() }); ok {
		fl.Flush()
	}
	// Follow: read what the shim appends until the container stops.
	l := e.liveOf(c.ID)
	l.mu.Lock()
	exitCh := l.exitCh
	running := c.Running() || c.State.Status == container.Restarting
	l.mu.Unlock()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		done := !running
		select {
		case <-ctx.Done():
			return nil
		case <-exitCh:
			done = true
		case <-tick.C:
		}
		f, err := os.Open(c.LogPath())
		if err == nil {
			f.Seek(offset, io.SeekStart)
			lines, n, _ := readLogLines(f)
			f.Close()
			offset += n
			for _, l := range lines {
				if err := emit(l); err != nil {
					return nil
				}
			}
			if fl, ok := w.(interface{ Flush() }); ok && len(lines) > 0 {
				fl.Flush()
			}
		}
		if done {
			return nil
		}
	}
}

// readLogLines parses complete json-file lines and returns how many bytes they took.
func readLogLines(r io.Reader) ([]logLine, int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var out []logLine
	var n int64
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return out, n, nil // a partial last line is read on the next round
		}
		n += int64(len(line))
		var l logLine
		if json.Unmarshal(line, &l) == nil {
			out = append(out, l)
		}
	}
}

// Exec is a process created by docker exec.
type Exec struct {
	ID          string
	ContainerID string
	Spec        runtime.ExecSpec
	User        string
	Privileged  bool
	AttachStdin bool

	mu       sync.Mutex
	Running  bool
	ExitCode *int
	Pid      int
}

// State reads whether the exec runs, its exit code once done, and its pid.
func (x *Exec) State() (bool, *int, int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.Running, x.ExitCode, x.Pid
}

// ExecOptions is docker exec's request.
type ExecOptions struct {
	Cmd         []string
	Env         []string
	User        string
	WorkingDir  string
	Tty         bool
	AttachStdin bool
	Privileged  bool
}

// ExecCreate registers a process to run in a running container.
func (e *Engine) ExecCreate(ctx context.Context, ref string, o ExecOptions) (string, error) {
	c, err := e.ctrs.Get(ref)
	if err != nil {
		return "", err
	}
	if !c.Running() {
		return "", errdefs.Conflict(fmt.Sprintf("container %s is not running", c.ID))
	}
	if c.State.Status == container.Paused {
		return "", errdefs.Conflict(fmt.Sprintf("container %s is paused, unpause the container before exec", c.ID))
	}
	if len(o.Cmd) == 0 {
		return "", errdefs.Invalid("No exec command specified")
	}
	id := container.NewID()
	x := &Exec{ID: id, ContainerID: c.ID, User: o.User, Privileged: o.Privileged, AttachStdin: o.AttachStdin}
	if x.Spec, err = e.execSpec(c, id, o); err != nil {
		return "", err
	}
	e.mu.Lock()
	e.execs[id] = x
	e.mu.Unlock()
	return id, nil
}

// execSpec is the process an exec runs: the container's user, environment and
// working directory unless o says otherwise.
func (e *Engine) execSpec(c *container.Container, id string, o ExecOptions) (runtime.ExecSpec, error) {
	spec := runtime.ExecSpec{ID: id, Args: o.Cmd, Tty: o.Tty, Stdin: o.AttachStdin, Cwd: o.WorkingDir}
	usr := o.User
	if usr == "" {
		usr = c.Config.User
	}
	act, err := e.activeOf(c)
	if err != nil {
		return spec, err
	}
	u, err := resolveUser(act.Merged, usr)
	if err != nil {
		return spec, err
	}
	spec.UID, spec.GID, spec.Groups = u.Uid, u.Gid, u.Sgids
	if len(c.HostConfig.GroupAdd) > 0 {
		if groups, err := extraGroups(act.Merged, c.HostConfig.GroupAdd); err == nil {
			spec.Groups = append(spec.Groups, groups...)
		}
	}
	env := append(append([]string{}, c.Config.Env...), o.Env...)
	spec.Env = processEnv(env, c.Config.Hostname, u.Home, o.Tty)
	if spec.Cwd == "" {
		spec.Cwd = c.Config.WorkingDir
	}
	if spec.Cwd == "" {
		spec.Cwd = "/"
	}
	return spec, nil
}

// GetExec finds an exec by id.
func (e *Engine) GetExec(id string) (*Exec, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.execs[id]
	if !ok {
		return nil, errdefs.NotFound("No such exec instance: " + id)
	}
	return x, nil
}

// ExecStart runs the exec and streams it; it returns when the process has exited.
func (e *Engine) ExecStart(ctx context.Context, id string, s Streams, w, h uint16) error {
	x, err := e.GetExec(id)
	if err != nil {
		return err
	}
	x.mu.Lock()
	if x.Running || x.ExitCode != nil {
		x.mu.Unlock()
		return errdefs.Conflict(fmt.Sprintf("Error: Exec command %s has already run", id))
	}
	x.Running = true
	x.mu.Unlock()
	c, err := e.ctrs.Get(x.ContainerID)
	if err != nil {
		return err
	}
	spec := x.Spec
	spec.Width, spec.Height = w, h
	if s.Stdin == nil {
		spec.Stdin = false
	}
	finish := func(code int) {
		x.mu.Lock()
		x.Running = false
		x.ExitCode = &code
		x.mu.Unlock()
	}
	conn, err := e.shim(c).Exec(ctx, spec)
	if err != nil {
		finish(126)
		return errdefs.Conflict(fmt.Sprintf("container %s is not running", c.ID))
	}
	defer conn.Close()
	ex, err := pump(conn, s)
	if err != nil {
		finish(126)
		return nil
	}
	if ex.Error != "" {
		msg := ex.Error
		if strings.Contains(msg, "no such file") || strings.Contains(msg, "executable file not found") {
			finish(127)
		} else {
			finish(ex.Code)
		}
		if s.Framed {
			runtime.WriteFrame(s.Out, runtime.FrameStderr, []byte("OCI runtime exec failed: "+msg+"\n"))
		}
		return nil
	}
	finish(ex.Code)
	return nil
}

// ExecResize resizes an exec's terminal.
func (e *Engine) ExecResize(ctx context.Context, id string, w, h uint16) error {
	x, err := e.GetExec(id)
	if err != nil {
		return err
	}
	c, err := e.ctrs.Get(x.ContainerID)
	if err != nil {
		return err
	}
	return e.shim(c).Resize(ctx, id, w, h)
}
