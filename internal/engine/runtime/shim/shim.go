// Package shim is the per-container supervisor that the berth-shim binary runs. It
// creates the container with libcontainer, holds its stdio, writes its log, serves the
// engine over a unix socket, and records the exit status when the container ends. It
// outlives the engine, so the engine can restart without touching workloads.
package shim

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"github.com/opencontainers/runc/libcontainer/utils"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/engine/runtime"
)

// Options are the shim's command-line settings.
type Options struct {
	ID        string
	Bundle    string // holds config.json; the shim writes exit.json here
	Root      string // libcontainer state root
	LogPath   string // json-file log
	Socket    string // where to serve the engine
	OpenStdin bool
	StdinOnce bool
}

// Shim supervises one container.
type Shim struct {
	opts Options
	ctr  *libcontainer.Container
	proc *libcontainer.Process
	tty  bool

	console *os.File // pty master when tty
	stdinW  *os.File // write end of the process's stdin, when OpenStdin
	log     *jsonLog

	mu        sync.Mutex
	subs      map[*subscriber]struct{}
	execs     map[string]*os.File // exec id -> pty master, for resize
	stdinUsed bool

	started chan struct{}
	done    chan struct{} // closed once exit is set
	exit    runtime.Exit
}

type subscriber struct {
	ch     chan frame
	stdout bool
	stderr bool
}

type frame struct {
	stream byte
	data   []byte
}

// Run creates the container, reports its pid on ready (then closes it), serves the
// engine, and returns after the container has exited and its exit is recorded.
func Run(opts Options, ready *os.File) error {
	// Exec'd processes are re-parented to us after runc's double fork; being a
	// subreaper is what lets us wait for them.
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	s := &Shim{
		opts:    opts,
		subs:    map[*subscriber]struct{}{},
		execs:   map[string]*os.File{},
		started: make(chan struct{}),
		done:    make(chan struct{}),
	}
	pid, err := s.create()
	if err != nil {
		writeReady(ready, runtime.Reply{Error: err.Error()})
		return err
	}
	ln, err := listen(opts.Socket)
	if err != nil {
		s.ctr.Destroy()
		writeReady(ready, runtime.Reply{Error: err.Error()})
		return err
	}
	go s.serve(ln)
	writeReady(ready, runtime.Reply{Pid: pid})

	select {
	case <-s.started:
	case <-time.After(60 * time.Second):
		// The engine vanished between create and start: do not run a container
		// nobody asked to start.
		s.ctr.Signal(unix.SIGKILL)
	}
	if err := s.ctr.Exec(); err != nil {
		s.ctr.Signal(unix.SIGKILL)
	}
	s.wait()
	ln.Close()
	os.Remove(opts.Socket)
	return nil
}

func writeReady(f *os.File, r runtime.Reply) {
	if f == nil {
		return
	}
	json.NewEncoder(f).Encode(r)
	f.Close()
}

func listen(path string) (net.Listener, error) {
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	os.Chmod(path, 0o600)
	return ln, nil
}

func (s *Shim) create() (int, error) {
	data, err := os.ReadFile(filepath.Join(s.opts.Bundle, "config.json"))
	if err != nil {
		return 0, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return 0, fmt.Errorf("config.json: %w", err)
	}
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName: s.opts.ID, Spec: &spec, NoNewKeyring: true,
	})
	if err != nil {
		return 0, err
	}
	if old, err := libcontainer.Load(s.opts.Root, s.opts.ID); err == nil {
		old.Destroy()
	}
	s.ctr, err = libcontainer.Create(s.opts.Root, s.opts.ID, cfg)
	if err != nil {
		return 0, err
	}
	s.log, err = openJSONLog(s.opts.LogPath)
	if err != nil {
		s.ctr.Destroy()
		return 0, err
	}
	p := &libcontainer.Process{
		Args: spec.Process.Args, Env: spec.Process.Env, Cwd: spec.Process.Cwd,
		UID: int(spec.Process.User.UID), GID: int(spec.Process.User.GID),
		Init: true,
	}
	for _, g := range spec.Process.User.AdditionalGids {
		p.AdditionalGroups = append(p.AdditionalGroups, int(g))
	}
	s.tty = spec.Process.Terminal
	var consoleParent *os.File
	if s.tty {
		parent, child, err := utils.NewSockPair("console")
		if err != nil {
			s.ctr.Destroy()
			return 0, err
		}
		consoleParent = parent
		p.ConsoleSocket = child
		if cs := spec.Process.ConsoleSize; cs != nil {
			p.ConsoleWidth, p.ConsoleHeight = uint16(cs.Width), uint16(cs.Height)
		}
		defer child.Close()
	} else {
		p.Stdout = writerFunc(func(b []byte) { s.output(runtime.FrameStdout, b) })
		p.Stderr = writerFunc(func(b []byte) { s.output(runtime.FrameStderr, b) })
	}
	if s.opts.OpenStdin && !s.tty {
		r, w, err := os.Pipe()
		if err != nil {
			s.ctr.Destroy()
			return 0, err
		}
		p.Stdin = r
		s.stdinW = w
		defer r.Close()
	}
	if err := s.ctr.Start(p); err != nil {
		s.ctr.Destroy()
		return 0, err
	}
	s.proc = p
	if s.tty {
		master, err := utils.RecvFile(consoleParent)
		consoleParent.Close()
		if err != nil {
			s.ctr.Signal(unix.SIGKILL)
			s.ctr.Destroy()
			return 0, err
		}
		s.console = master
		go s.pumpConsole(master)
	}
	return p.Pid()
}

type writerFunc func([]byte)

func (f writerFunc) Write(b []byte) (int, error) { f(b); return len(b), nil }

func (s *Shim) pumpConsole(master *os.File) {
	buf := make([]byte, 32<<10)
	for {
		n, err := master.Read(buf)
		if n > 0 {
			s.output(runtime.FrameStdout, buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// output logs a chunk and hands it to every attached client. A client that cannot keep
// up is cut off rather than stalling the container.
func (s *Shim) output(stream byte, b []byte) {
	name := "stdout"
	if stream == runtime.FrameStderr {
		name = "stderr"
	}
	s.log.write(name, b)
	data := append([]byte(nil), b...)
	s.mu.Lock()
	for sub := range s.subs {
		if (stream == runtime.FrameStdout && !sub.stdout) || (stream == runtime.FrameStderr && !sub.stderr) {
			continue
		}
		select {
		case sub.ch <- frame{stream, data}:
		default:
			delete(s.subs, sub)
			close(sub.ch)
		}
	}
	s.mu.Unlock()
}

func (s *Shim) wait() {
	st, err := s.proc.Wait()
	ex := runtime.Exit{FinishedAt: time.Now().UTC()}
	if st != nil {
		if ws, ok := st.Sys().(syscall.WaitStatus); ok {
			switch {
			case ws.Signaled():
				ex.Signal = int(ws.Signal())
				ex.Code = 128 + int(ws.Signal())
			default:
				ex.Code = ws.ExitStatus()
			}
		}
	} else if err != nil {
		ex.Code = 255
		ex.Error = err.Error()
	}
	ex.OOMKilled = s.oomKilled()
	if s.console != nil {
		// Give the pty a moment to drain what the process wrote last.
		s.console.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	}
	s.log.flush()
	// Report the exit first and clean up after: the engine and `docker run` are waiting.
	writeExit(filepath.Join(s.opts.Bundle, "exit.json"), ex)
	s.mu.Lock()
	s.exit = ex
	for sub := range s.subs {
		delete(s.subs, sub)
		close(sub.ch)
	}
	s.mu.Unlock()
	close(s.done)
	s.ctr.Destroy()
	// Let clients waiting on the socket read the exit before we go.
	time.Sleep(50 * time.Millisecond)
}

// oomKilled reads the memory cgroup's OOM kill counter (v1: memory.oom_control,
// v2: memory.events); it is one small file, unlike a full stats read.
func (s *Shim) oomKilled() bool {
	st, err := s.ctr.State()
	if err != nil {
		return false
	}
	for _, f := range []string{"memory.oom_control", "memory.events"} {
		dir := st.CgroupPaths["memory"]
		if dir == "" {
			dir = st.CgroupPaths[""]
		}
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
				return strings.TrimSpace(v) != "0"
			}
		}
	}
	return false
}

func writeExit(path string, ex runtime.Exit) {
	data, _ := json.Marshal(ex)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err == nil {
		os.Rename(tmp, path)
	}
}

func (s *Shim) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go s.handle(c.(*net.UnixConn))
	}
}

func (s *Shim) handle(c *net.UnixConn) {
	defer c.Close()
	br := bufio.NewReader(c)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return
	}
	var req runtime.Request
	if err := json.Unmarshal(line, &req); err != nil {
		reply(c, runtime.Reply{Error: "bad request: " + err.Error()})
		return
	}
	switch req.Op {
	case "start":
		select {
		case <-s.started:
		default:
			close(s.started)
		}
		reply(c, runtime.Reply{})
	case "wait":
		<-s.done
		json.NewEncoder(c).Encode(s.exit)
	case "attach":
		s.attach(c, br, req)
	case "resize":
		reply(c, runtime.Reply{Error: errString(s.resize(req))})
	case "kill":
		var err error
		if req.All {
			err = s.signalAll(unix.Signal(req.Signal))
		} else {
			err = s.ctr.Signal(unix.Signal(req.Signal))
		}
		reply(c, runtime.Reply{Error: errString(err)})
	case "pause":
		reply(c, runtime.Reply{Error: errString(s.ctr.Pause())})
	case "resume":
		reply(c, runtime.Reply{Error: errString(s.ctr.Resume())})
	case "ps":
		pids, err := s.ctr.Processes()
		reply(c, runtime.Reply{Pids: pids, Error: errString(err)})
	case "stats":
		st, err := s.stats()
		reply(c, runtime.Reply{Stats: st, Error: errString(err)})
	case "exec":
		s.exec(c, br, req.Exec)
	default:
		reply(c, runtime.Reply{Error: "unknown op " + req.Op})
	}
}

func (s *Shim) signalAll(sig unix.Signal) error {
	pids, err := s.ctr.Processes()
	if err != nil {
		return err
	}
	for _, p := range pids {
		unix.Kill(p, sig)
	}
	return nil
}

func reply(w io.Writer, r runtime.Reply) { json.NewEncoder(w).Encode(r) }

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (s *Shim) resize(req runtime.Request) error {
	f := s.console
	if req.ExecID != "" {
		s.mu.Lock()
		f = s.execs[req.ExecID]
		s.mu.Unlock()
	}
	if f == nil {
		return errors.New("no tty")
	}
	return unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: req.Height, Col: req.Width})
}

// attach streams output frames to c until the container exits, and copies c's input to
// the container's stdin. The last frame is FrameExit.
func (s *Shim) attach(c *net.UnixConn, in io.Reader, req runtime.Request) {
	sub := &subscriber{ch: make(chan frame, 1024), stdout: req.Stdout, stderr: req.Stderr}
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		s.sendExit(c)
		return
	default:
	}
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	if req.Stdin {
		go s.copyStdin(in)
	}
	for f := range sub.ch {
		if err := runtime.WriteFrame(c, f.stream, f.data); err != nil {
			s.mu.Lock()
			if _, ok := s.subs[sub]; ok {
				delete(s.subs, sub)
				close(sub.ch)
			}
			s.mu.Unlock()
			for range sub.ch {
			}
			return
		}
	}
	select {
	case <-s.done:
		s.sendExit(c)
	default: // cut off for being slow
	}
}

func (s *Shim) sendExit(c io.Writer) {
	data, _ := json.Marshal(s.exit)
	runtime.WriteFrame(c, runtime.FrameExit, data)
}

func (s *Shim) copyStdin(in io.Reader) {
	var dst io.Writer
	switch {
	case s.tty:
		dst = s.console
	case s.stdinW != nil:
		dst = s.stdinW
	default:
		io.Copy(io.Discard, in)
		return
	}
	io.Copy(dst, in)
	// docker run -i sets StdinOnce: the process sees EOF when the client's input ends.
	if s.opts.StdinOnce && s.stdinW != nil {
		s.mu.Lock()
		if !s.stdinUsed {
			s.stdinUsed = true
			s.stdinW.Close()
		}
		s.mu.Unlock()
	}
	if s.opts.StdinOnce && s.tty {
		s.console.Write([]byte{4}) // ^D: end of input on a terminal
	}
}

func (s *Shim) stats() (*runtime.Stats, error) {
	st, err := s.ctr.Stats()
	if err != nil {
		return nil, err
	}
	out := &runtime.Stats{}
	if cg := st.CgroupStats; cg != nil {
		out.CPUTotal = cg.CpuStats.CpuUsage.TotalUsage
		out.CPUSystem = cg.CpuStats.CpuUsage.UsageInKernelmode
		out.CPUUser = cg.CpuStats.CpuUsage.UsageInUsermode
		out.MemoryUsage = cg.MemoryStats.Usage.Usage
		out.MemoryLimit = cg.MemoryStats.Usage.Limit
		out.MemoryCache = cg.MemoryStats.Cache
		out.Pids = cg.PidsStats.Current
		out.PidsLimit = cg.PidsStats.Limit
		for _, e := range cg.BlkioStats.IoServiceBytesRecursive {
			switch e.Op {
			case "Read", "read":
				out.BlkRead += e.Value
			case "Write", "write":
				out.BlkWrite += e.Value
			}
		}
	}
	for _, i := range st.Interfaces {
		if i != nil {
			out.NetRx += i.RxBytes
			out.NetTx += i.TxBytes
		}
	}
	return out, nil
}
