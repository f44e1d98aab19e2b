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

// runtimeEnv is the environment of a standby's shim and berth-runtime.
var runtimeEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GOMAXPROCS=1"}

// standbyIdle is how long a standby waits before it is let go.
const standbyIdle = time.Minute

// A standby is a container's shim and berth-runtime started ahead of need, as a pair:
// "berth-shim standby" and its child "berth-runtime standby" (see shim.Standby), both
// loaded, their Go runtimes (and libcontainer) initialised. berth-runtime waits for
// the arguments of a create on a pipe. A container start hands it those instead of
// starting the programs then, which saves their start-up on every start:
// berth-runtime makes and starts the container, hands it to the shim and exits. At
// most one pair waits; it is let go after standbyIdle without a start. If the engine
// dies, the pipe closes and both exit.
type standby struct {
	mu     sync.Mutex
	p      *standbyProc
	timer  *time.Timer
	closed bool
	sealed *os.File // a sealed in-memory copy of berth-runtime (see sealedCopy); nil if none
	tried  bool
	busy   int // creates under way (between take and done): no standby starts meanwhile
}

type standbyProc struct {
	request *os.File  // write end: one JSON StandbyRequest, to berth-runtime
	ready   *os.File  // read end: the create's reply, from the shim
	cmd     *exec.Cmd // the shim
}

// StandbyRequest is what the engine sends a standby's berth-runtime: the create's
// flags, the directory to work in and the file for its output (and the shim's).
type StandbyRequest struct {
	Args []string `json:"args"`
	Dir  string   `json:"dir"`
	Log  string   `json:"log"`
}

// fill starts a standby if none is waiting.
func (s *standby) fill(path, root string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.p != nil || s.busy > 0 || path == "" {
		return
	}
	p, err := startStandby(path, root, s.sealedCopyLocked(path))
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

// sealedCopy is the sealed copy of berth-runtime at path, made now if it has not been
// tried yet; nil if there is none.
func (s *standby) sealedCopy(path string) *os.File {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sealedCopyLocked(path)
}

func (s *standby) sealedCopyLocked(path string) *os.File {
	if !s.tried && !s.closed {
		s.tried = true
		s.sealed = sealedCopy(path)
	}
	return s.sealed
}

// take hands out the waiting standby, if any, for a create. Until the create calls
// done, fill starts no other: on a small machine a start-up during the create would
// take CPU from it (a fill asked for just before, by Prime, may run only now).
func (s *standby) take() *standbyProc {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.p
	s.p = nil
	s.busy++
	return p
}

// done ends what take began, and starts a standby for the next create.
func (s *standby) done(path, root string) {
	s.mu.Lock()
	s.busy--
	s.mu.Unlock()
	s.fill(path, root)
}

// expire lets the waiting standby go after standbyIdle without a start, and the sealed
// copy with it (8 MB of memory): the next start makes a new one.
func (s *standby) expire() {
	s.mu.Lock()
	p := s.p
	s.p = nil
	s.mu.Unlock()
	if p != nil {
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

// A standby's shim passes the sealed copy on to berth-runtime as SealedExeFd, and
// berth-runtime, run from it, finds the path of the binary on disk in RuntimePathEnv.
// The shim itself is told that path in RuntimePathEnv, and whether it has the sealed
// copy on SealedExeFd in SealedEnv.
const (
	SealedExeFd    = 5
	RuntimePathEnv = "BERTH_RUNTIME"
	SealedEnv      = "BERTH_SEALED"
)

// startStandby starts a standby at program.IdleNice: while it loads and warms up it
// takes only the CPU that nothing else wants, so on a small machine it does not slow
// the start that asked for it. It is forked from a thread at that priority, so that
// every thread it makes has it too; launch gives it back normal priority when it
// hands it a create. Where that cannot be done (no CAP_SYS_NICE), it waits at the
// normal priority.
func startStandby(path, root string, sealed *os.File) (p *standbyProc, err error) {
	if !program.CanRaisePriority() {
		// Its container must not stay at idle priority: here it waits at the normal one.
		return startStandbyNow(path, root, sealed)
	}
	program.RunNiced(func() { p, err = startStandbyNow(path, root, sealed) })
	return p, err
}

// startStandbyNow starts "berth-shim standby" (berth-shim sits beside berth-runtime at
// path), which starts "berth-runtime standby" as its child (see shim.Standby): the
// pair a create needs, both loaded and waiting. The request goes to berth-runtime
// (fd 4), the reply comes from the shim (fd 3).
func startStandbyNow(path, root string, sealed *os.File) (*standbyProc, error) {
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
	// The state root names, in ps, the engine a pair (and the shim it becomes) is for.
	cmd := exec.Command(filepath.Join(filepath.Dir(path), "berth-shim"), "standby", "--root", root)
	cmd.Args[0] = "berth-shim"
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{readyW, reqR}
	cmd.Env = append(append([]string{}, runtimeEnv...), RuntimePathEnv+"="+path)
	if sealed != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, sealed)
		cmd.Env = append(cmd.Env, SealedEnv+"=1")
	}
	// Its own session: the shim must survive the engine and its signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	readyW.Close()
	reqR.Close()
	if err != nil {
		readyR.Close()
		reqW.Close()
		return nil, err
	}
	// Reap the shim if it ends while we are alive; if we die first, init adopts it.
	go cmd.Wait()
	return &standbyProc{request: reqW, ready: readyR, cmd: cmd}, nil
}

// stop lets an unused standby go: berth-runtime reads end of file and exits, and its
// shim with it.
func (p *standbyProc) stop() {
	p.request.Close()
	p.ready.Close()
}

// launch hands a create (berth-runtime's create flags, args) to a standby, to be done
// in dir with output to dir's shim.log, and returns the read end of the shim's reply
// pipe and the request pipe, still open for the go-ahead (see StartOptions.Go). The
// waiting standby is used when there is one, else one is started now; Create starts
// another for the next start once this one has replied (not during it: on a small
// machine the new one's start-up would take CPU from this).
func (r *Runtime) launch(args []string, dir string) (ready, request *os.File, err error) {
	req, _ := json.Marshal(StandbyRequest{Args: args, Dir: dir, Log: filepath.Join(dir, "shim.log")})
	req = append(req, '\n')
	p := r.standby.take()
	if p != nil {
		// Normal priority from here: it is the start now. The shim leads a process
		// group of its own (setsid), with berth-runtime in it; both also renice
		// themselves once they have work, for threads made meanwhile.
		program.ReniceGroup(p.cmd.Process.Pid, 0)
		if p.send(req) == nil {
			return p.ready, p.request, nil
		}
		// The waiting pair died (killed, out of memory): one started now instead.
	}
	p, err = startStandbyNow(r.Path, r.Root, r.standby.sealedCopy(r.Path))
	if err == nil {
		err = p.send(req)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("start shim: %w", err)
	}
	return p.ready, p.request, nil
}

// send hands the pair its one request; on failure the pair is let go.
func (p *standbyProc) send(req []byte) error {
	_, err := p.request.Write(req)
	if err != nil {
		p.request.Close()
		p.ready.Close()
	}
	return err
}
