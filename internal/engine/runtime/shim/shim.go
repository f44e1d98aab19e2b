// Package shim is the per-container supervisor that the berth-shim binary runs. It
// holds the container's stdio, writes its log, serves the engine over a unix socket,
// and records the exit status when the container ends. It outlives the engine, so the
// engine can restart without touching workloads.
//
// The shim starts before its container, on standby (see Standby), with berth-runtime
// as its child: berth-runtime creates and starts the container with libcontainer,
// hands it over and exits, so the container's init becomes our child, and the shim
// that lives as long as the container carries none of libcontainer's weight. Requests
// that need libcontainer (exec, pause, stats, ...) are handed, with their connection,
// to a short-lived berth-runtime process.
package shim

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/engine/runtime"
)

// Options are the shim's settings; the files are handed over by berth-runtime.
type Options struct {
	ID        string
	Bundle    string // holds config.json; the shim writes exit.json here
	Root      string // libcontainer state root
	LogPath   string // json-file log
	CRILog    string // the CRI's log file, for a pod's container ("" for none)
	Runtime   string // berth-runtime, for requests that need libcontainer
	StdinOnce bool
	Held      bool // the process waits at libcontainer's exec fifo for the start's release
	Pid       int  // the container's init, our child once Adopted is closed

	// CgroupPaths are the container's cgroups, as libcontainer recorded them: one per
	// v1 hierarchy, or the v2 one under "". Without them (nil) berth-runtime destroy
	// removes them after the exit.
	CgroupPaths map[string]string

	// Adopted is closed once the init is our child (berth-runtime, its parent, has
	// exited).
	Adopted <-chan struct{}

	Listener *os.File // the engine's socket, already listening
	Ready    *os.File // where to report readiness (then closed)
	Stdout   *os.File // read ends of the container's output (nil with a tty)
	Stderr   *os.File
	Stdin    *os.File // write end of the container's stdin, if kept open
	Console  *os.File // pty master, with a tty
}

// Shim supervises one container.
type Shim struct {
	opts Options
	log  *jsonLog
	cri  *criLog // nil unless the container has a CRI log

	mu        sync.Mutex
	subs      map[*subscriber]struct{}
	execs     map[string]*os.File // exec id -> pty master, for resize
	stdinUsed bool
	helpers   sync.WaitGroup

	// Exactly one of started and abandoned is ever closed (see decide).
	started   chan struct{}
	abandoned chan struct{} // closed by an abandon request: the held process never starts
	decided   chan struct{} // the one of the two that was closed; nil until then
	cleaned   chan struct{} // closed once the exited container's cgroups and state are gone
	done      chan struct{} // closed once exit is set
	exit      runtime.Exit
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

// Run serves the engine until the container has exited and its exit is recorded.
func Run(o Options) error {
	s := &Shim{
		opts: o, subs: map[*subscriber]struct{}{}, execs: map[string]*os.File{},
		started: make(chan struct{}), done: make(chan struct{}),
		abandoned: make(chan struct{}), cleaned: make(chan struct{}),
	}
	var err error
	if s.log, err = openJSONLog(o.LogPath); err != nil {
		unix.Kill(o.Pid, unix.SIGKILL)
		writeReady(o.Ready, runtime.Reply{Error: err.Error()})
		return err
	}
	if o.CRILog != "" {
		if s.cri, err = openCRILog(o.CRILog); err != nil {
			unix.Kill(o.Pid, unix.SIGKILL)
			writeReady(o.Ready, runtime.Reply{Error: err.Error()})
			return err
		}
	}
	fl, err := net.FileListener(o.Listener)
	if err != nil {
		unix.Kill(o.Pid, unix.SIGKILL)
		writeReady(o.Ready, runtime.Reply{Error: err.Error()})
		return err
	}
	o.Listener.Close()
	ln := fl.(*net.UnixListener)
	go s.serve(ln)
	writeReady(o.Ready, runtime.Reply{Pid: o.Pid})

	// The container runs already (unless held); its output waits in the pipes until
	// the engine's start, so that the clients it attached first get all of it.
	select {
	case <-s.started:
		if o.Held {
			if err := runtime.Release(filepath.Join(o.Root, o.ID), o.Pid); err != nil {
				unix.Kill(o.Pid, unix.SIGKILL)
			}
		}
	case <-s.abandoned:
		unix.Kill(o.Pid, unix.SIGKILL)
	case <-time.After(60 * time.Second):
		// The engine vanished between create and start: do not keep a container
		// nobody started.
		unix.Kill(o.Pid, unix.SIGKILL)
	}
	var pumps sync.WaitGroup
	for _, p := range []struct {
		f      *os.File
		stream byte
	}{{o.Stdout, runtime.FrameStdout}, {o.Stderr, runtime.FrameStderr}, {o.Console, runtime.FrameStdout}} {
		if p.f == nil {
			continue
		}
		pumps.Add(1)
		go func(f *os.File, stream byte) {
			defer pumps.Done()
			s.pump(f, stream)
		}(p.f, p.stream)
	}
	<-o.Adopted
	ex := s.waitInit()
	if o.Console != nil {
		// Give the pty a moment to drain what the process wrote last.
		o.Console.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	}
	pumpsDone := make(chan struct{})
	go func() { pumps.Wait(); close(pumpsDone) }()
	select {
	case <-pumpsDone:
	case <-time.After(2 * time.Second): // a grandchild kept the pipe open
	}
	s.log.flush()
	if s.cri != nil {
		s.cri.flush()
	}
	cgroups := o.CgroupPaths
	ex.OOMKilled = oomKilled(cgroups)
	// Report the exit first and clean up after: the engine and `docker run` are waiting.
	writeExit(filepath.Join(o.Bundle, "exit.json"), ex)
	s.mu.Lock()
	s.exit = ex
	for sub := range s.subs {
		delete(s.subs, sub)
		close(sub.ch)
	}
	s.mu.Unlock()
	close(s.done)
	// With one P, the goroutines that send the exit to waiting clients run only when
	// this one yields: let them go before the clean-up.
	goruntime.Gosched()
	s.helpers.Wait()
	if !removeCgroups(cgroups) {
		// Processes are left in the cgroup (the container shared a pid namespace):
		// libcontainer kills them before it removes the cgroup.
		if err := exec.Command(o.Runtime, "destroy", "--root", o.Root, "--id", o.ID).Run(); err != nil {
			os.Stderr.WriteString("berth-shim: destroy: " + err.Error() + "\n")
		}
	} else {
		os.RemoveAll(filepath.Join(o.Root, o.ID))
	}
	close(s.cleaned)
	ln.Close()
	// Let clients that asked for the exit read it before we go.
	time.Sleep(50 * time.Millisecond)
	return nil
}

func writeReady(f *os.File, r runtime.Reply) {
	if f == nil {
		return
	}
	json.NewEncoder(f).Encode(r)
	f.Close()
}

func (s *Shim) waitInit() runtime.Exit {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(s.opts.Pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		ex := runtime.Exit{FinishedAt: time.Now().UTC()}
		switch {
		case err != nil:
			ex.Code, ex.Error = 255, err.Error()
		case ws.Signaled():
			ex.Signal = int(ws.Signal())
			ex.Code = 128 + int(ws.Signal())
		default:
			ex.Code = ws.ExitStatus()
		}
		return ex
	}
}

func (s *Shim) pump(f *os.File, stream byte) {
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			s.output(stream, buf[:n])
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
	if s.cri != nil {
		s.cri.write(name, b)
	}
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

// oomKilled reads the memory cgroup's OOM kill counter (v1: memory.oom_control, v2:
// memory.events).
func oomKilled(paths map[string]string) bool {
	dir := paths["memory"]
	if dir == "" {
		dir = paths[""]
	}
	if dir == "" {
		return false
	}
	for _, f := range []string{"memory.oom_control", "memory.events"} {
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

// removeCgroups removes the exited container's cgroups itself, which is all that
// libcontainer's destroy does for a container whose processes are all gone, without
// starting berth-runtime for it. It reports false when a cgroup is still busy.
func removeCgroups(paths map[string]string) bool {
	if paths == nil {
		return false
	}
	for _, dir := range paths {
		if err := unix.Rmdir(dir); err != nil && err != unix.ENOENT {
			return false
		}
	}
	return true
}

func writeExit(path string, ex runtime.Exit) {
	data, _ := json.Marshal(ex)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err == nil {
		os.Rename(tmp, path)
	}
}

func (s *Shim) serve(ln *net.UnixListener) {
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		go s.handle(c)
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
		if !s.start() {
			reply(c, runtime.Reply{Error: "the container was abandoned"})
			return
		}
		reply(c, runtime.Reply{})
	case "abandon":
		if s.decide(s.abandoned) != s.abandoned {
			reply(c, runtime.Reply{Error: "the container has been started"})
			return
		}
		<-s.cleaned
		reply(c, runtime.Reply{})
	case "wait":
		<-s.done
		json.NewEncoder(c).Encode(s.exit)
	case "attach":
		s.attach(c, br, req)
	case "reopen-log":
		if s.cri == nil {
			reply(c, runtime.Reply{Error: "the container has no CRI log"})
			return
		}
		reply(c, runtime.Reply{Error: errString(s.cri.reopen())})
	case "resize":
		reply(c, runtime.Reply{Error: errString(s.resize(req))})
	case "kill":
		if !req.All {
			reply(c, runtime.Reply{Error: errString(s.signalInit(unix.Signal(req.Signal)))})
			return
		}
		s.handOff(c, br, line, req)
	case "exec", "pause", "resume", "ps", "stats", "update":
		s.handOff(c, br, line, req)
	default:
		reply(c, runtime.Reply{Error: "unknown op " + req.Op})
	}
}

// start lets the output flow and the exit be reported (see Run). It reports false if
// the container was abandoned first.
func (s *Shim) start() bool { return s.decide(s.started) == s.started }

// decide closes ch (started or abandoned) unless the other was closed first, and
// returns the one that was.
func (s *Shim) decide(ch chan struct{}) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.decided == nil {
		s.decided = ch
		close(ch)
	}
	return s.decided
}

func (s *Shim) signalInit(sig unix.Signal) error {
	select {
	case <-s.done:
		return errors.New("container is not running")
	default:
	}
	return unix.Kill(s.opts.Pid, sig)
}

// handOff gives the connection to a berth-runtime process that does the request with
// libcontainer and answers on the connection itself.
func (s *Shim) handOff(c *net.UnixConn, br *bufio.Reader, line []byte, req runtime.Request) {
	if br.Buffered() > 0 {
		// Input that arrived with the request line (exec stdin) would be lost.
		buffered, _ := br.Peek(br.Buffered())
		req.Preface = append([]byte(nil), buffered...)
		line, _ = json.Marshal(req)
	}
	f, err := c.File()
	if err != nil {
		reply(c, runtime.Reply{Error: err.Error()})
		return
	}
	defer f.Close()
	cmd := exec.Command(s.opts.Runtime, "op", "--root", s.opts.Root, "--id", s.opts.ID)
	cmd.Env = []string{"BERTH_REQUEST=" + string(line), "GOMAXPROCS=1"}
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{f}
	var sink *os.File
	if req.Op == "exec" && req.Exec != nil && req.Exec.Tty {
		// The helper sends us the exec's pty master, so resize requests can reach it.
		mine, theirs, err := socketPair()
		if err == nil {
			cmd.ExtraFiles = append(cmd.ExtraFiles, theirs)
			sink = mine
			defer theirs.Close()
		}
	}
	s.helpers.Add(1)
	defer s.helpers.Done()
	if err := cmd.Start(); err != nil {
		reply(c, runtime.Reply{Error: err.Error()})
		return
	}
	if sink != nil {
		go s.takePty(req.Exec.ID, sink)
	}
	cmd.Wait()
	if sink != nil {
		s.mu.Lock()
		if m := s.execs[req.Exec.ID]; m != nil {
			m.Close()
		}
		delete(s.execs, req.Exec.ID)
		s.mu.Unlock()
	}
}

func socketPair() (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "pty-sink"), os.NewFile(uintptr(fds[1]), "pty-source"), nil
}

func (s *Shim) takePty(id string, sink *os.File) {
	defer sink.Close()
	master, err := recvFile(sink)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.execs[id] = master
	s.mu.Unlock()
}

// recvFile receives one file descriptor sent with SCM_RIGHTS.
func recvFile(sock *os.File) (*os.File, error) {
	buf := make([]byte, 256)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, 0)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, errors.New("no file received")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, errors.New("no file received")
	}
	return os.NewFile(uintptr(fds[0]), "pty"), nil
}

func reply(w io.Writer, r runtime.Reply) { json.NewEncoder(w).Encode(r) }

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (s *Shim) resize(req runtime.Request) error {
	s.mu.Lock()
	f := s.opts.Console
	if req.ExecID != "" {
		f = s.execs[req.ExecID]
	}
	s.mu.Unlock()
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
		runtime.WriteFrame(c, runtime.FrameAttached, nil)
		s.sendExit(c)
		return
	default:
	}
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	if req.Start && !s.start() {
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
		return // the container was abandoned: the client reads no ack and gives up
	}
	if err := runtime.WriteFrame(c, runtime.FrameAttached, nil); err != nil {
		return
	}
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
	case s.opts.Console != nil:
		dst = s.opts.Console
	case s.opts.Stdin != nil:
		dst = s.opts.Stdin
	default:
		io.Copy(io.Discard, in)
		return
	}
	io.Copy(dst, in)
	// docker run -i sets StdinOnce: the process sees EOF when the client's input ends.
	if s.opts.StdinOnce && s.opts.Stdin != nil {
		s.mu.Lock()
		if !s.stdinUsed {
			s.stdinUsed = true
			s.opts.Stdin.Close()
		}
		s.mu.Unlock()
	}
	if s.opts.StdinOnce && s.opts.Console != nil {
		s.opts.Console.Write([]byte{4}) // ^D: end of input on a terminal
	}
}
