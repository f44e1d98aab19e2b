package runtime

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer/exeseal"

	"github.com/berth-project/berth/internal/program"
)

// runtimeEnv is the environment of berth-runtime and so of the shim it becomes.
var runtimeEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GOMAXPROCS=1"}

// standbyIdle is how long a berth-runtime waits on standby before it is let go.
const standbyIdle = time.Minute

// A standby is one berth-runtime started ahead of need ("berth-runtime standby"): it
// has been loaded and its Go runtime and libcontainer initialised, and it waits for the
// arguments of a create on a pipe. A container start hands it those instead of
// starting the program then, which saves that program's start-up on every start. At
// most one waits; it is let go after standbyIdle without a start. If the engine dies,
// the pipe closes and the standby exits.
type standby struct {
	mu     sync.Mutex
	p      *standbyProc
	timer  *time.Timer
	closed bool
	sealed *os.File // a sealed in-memory copy of berth-runtime (see sealedCopy); nil if none
	tried  bool
}

type standbyProc struct {
	request *os.File // write end: one JSON standbyRequest
	ready   *os.File // read end of its fd 3: the create's reply
	cmd     *exec.Cmd
}

// StandbyRequest is what the engine sends a standby: the create command line, the
// directory to work in and the file for its output.
type StandbyRequest struct {
	Args []string `json:"args"`
	Dir  string   `json:"dir"`
	Log  string   `json:"log"`
}

// fill starts a standby if none is waiting.
func (s *standby) fill(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.p != nil || path == "" {
		return
	}
	if !s.tried {
		s.tried = true
		s.sealed = sealedCopy(path)
	}
	p, err := startStandby(path, s.sealed)
	if err != nil {
		return
	}
	s.p = p
	if s.timer == nil {
		s.timer = time.AfterFunc(standbyIdle, s.expire)
	} else {
		s.timer.Reset(standbyIdle)
	}
}

// take hands out the waiting standby, if any.
func (s *standby) take() *standbyProc {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.p
	s.p = nil
	return p
}

// expire lets the waiting standby go after standbyIdle without a start, and the sealed
// copy with it (8 MB of memory): the next start makes a new one.
func (s *standby) expire() {
	if p := s.take(); p != nil {
		p.stop()
	}
	s.mu.Lock()
	sealed := s.sealed
	s.sealed, s.tried = nil, false
	s.mu.Unlock()
	if sealed != nil {
		sealed.Close()
	}
}

func (s *standby) close() {
	s.mu.Lock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	s.expire()
}

// sealedCopy copies the berth-runtime binary at path into a sealed memfd, kept while
// starts come (see expire). A standby runs from it, so that libcontainer finds its own executable already
// safe from a container that would overwrite it (CVE-2019-5736) and runs the container's
// init from it as it is; otherwise it makes a sealed copy (a temporary overlay mount) for
// every container. Nil if the copy cannot be made: standbys then run from path.
func sealedCopy(path string) *os.File {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil
	}
	sealed, err := exeseal.CloneBinary(f, st.Size(), path, os.TempDir())
	if err != nil || !exeseal.IsCloned(sealed) {
		if sealed != nil {
			sealed.Close()
		}
		return nil
	}
	return sealed
}

// A standby started from the sealed copy finds it on SealedExeFd, and the path of the
// binary on disk (berth-shim sits beside it) in the environment variable RuntimePathEnv.
const (
	SealedExeFd    = 5
	RuntimePathEnv = "BERTH_RUNTIME"
)

// startStandby starts a standby at program.IdleNice: while it loads and warms up it
// takes only the CPU that nothing else wants, so on a small machine it does not slow
// the start that asked for it. It is forked from a thread at that priority, so that
// every thread it makes has it too; launch gives it back normal priority when it
// hands it a create. Where that cannot be done (no CAP_SYS_NICE), it waits at the
// normal priority.
func startStandby(path string, sealed *os.File) (p *standbyProc, err error) {
	if !program.CanRaisePriority() {
		// Its container must not stay at idle priority: here it waits at the normal one.
		return startStandbyNow(path, sealed)
	}
	program.RunNiced(func() { p, err = startStandbyNow(path, sealed) })
	return p, err
}

func startStandbyNow(path string, sealed *os.File) (*standbyProc, error) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		readyR.Close()
		readyW.Close()
		return nil, err
	}
	cmd := exec.Command(path, "standby")
	cmd.Args[0] = "berth-runtime"
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{readyW, reqR}
	cmd.Env = runtimeEnv
	if sealed != nil {
		// Executed through the child's own descriptor.
		cmd.Path = fmt.Sprintf("/proc/self/fd/%d", SealedExeFd)
		cmd.ExtraFiles = append(cmd.ExtraFiles, sealed)
		cmd.Env = append(append([]string{}, runtimeEnv...), RuntimePathEnv+"="+path)
	}
	// Its own session: the shim it becomes must survive the engine and its signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	readyW.Close()
	reqR.Close()
	if err != nil {
		readyR.Close()
		reqW.Close()
		return nil, err
	}
	// Reap it (or the shim it becomes) if it ends while we are alive.
	go cmd.Wait()
	return &standbyProc{request: reqW, ready: readyR, cmd: cmd}, nil
}

// stop lets an unused standby go: it reads end of file and exits.
func (p *standbyProc) stop() {
	p.request.Close()
	p.ready.Close()
}

// launch starts berth-runtime with args (a create) in dir, its output going to dir's
// shim.log, and returns the read end of its reply pipe. A waiting standby is used when
// there is one; Create starts another for the next start once this one has replied
// (not during it: on a small machine the new one's start-up would take CPU from this).
func (r *Runtime) launch(args []string, dir string) (*os.File, error) {
	logPath := filepath.Join(dir, "shim.log")
	if p := r.standby.take(); p != nil {
		// Normal priority from here: it is the start now (it also renices itself once it
		// has read the request, for a thread it made meanwhile).
		program.Renice(p.cmd.Process.Pid, 0)
		req, _ := json.Marshal(StandbyRequest{Args: args[1:], Dir: dir, Log: logPath})
		_, err := p.request.Write(append(req, '\n'))
		p.request.Close()
		if err == nil {
			return p.ready, nil
		}
		p.ready.Close()
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		readyR.Close()
		readyW.Close()
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(r.Path, args...)
	cmd.Args[0] = "berth-runtime"
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{readyW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Env = runtimeEnv
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		readyR.Close()
		return nil, fmt.Errorf("start shim: %w", err)
	}
	// Reap the shim if it ends while we are alive; if we die first, init adopts it.
	go cmd.Wait()
	return readyR, nil
}
