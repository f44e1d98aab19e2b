package shim

import (
	"encoding/json"
	"io"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/utils"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/engine/runtime"
)

// exec runs one more process in the container and streams it over c: output frames,
// then a FrameExit with its status. Input read from c goes to the process's stdin.
func (s *Shim) exec(c *net.UnixConn, in io.Reader, spec *runtime.ExecSpec) {
	fail := func(err error) {
		data, _ := json.Marshal(runtime.Exit{Code: 126, Error: err.Error()})
		runtime.WriteFrame(c, runtime.FrameExit, data)
	}
	if spec == nil {
		fail(io.ErrUnexpectedEOF)
		return
	}
	var wmu sync.Mutex
	send := func(stream byte, b []byte) {
		wmu.Lock()
		runtime.WriteFrame(c, stream, b)
		wmu.Unlock()
	}
	p := &libcontainer.Process{
		Args: spec.Args, Env: spec.Env, Cwd: spec.Cwd,
		UID: spec.UID, GID: spec.GID, AdditionalGroups: spec.Groups,
	}
	var consoleParent, stdinW *os.File
	if spec.Tty {
		parent, child, err := utils.NewSockPair("console")
		if err != nil {
			fail(err)
			return
		}
		defer child.Close()
		consoleParent = parent
		p.ConsoleSocket = child
		p.ConsoleWidth, p.ConsoleHeight = spec.Width, spec.Height
	} else {
		p.Stdout = writerFunc(func(b []byte) { send(runtime.FrameStdout, b) })
		p.Stderr = writerFunc(func(b []byte) { send(runtime.FrameStderr, b) })
		if spec.Stdin {
			r, w, err := os.Pipe()
			if err != nil {
				fail(err)
				return
			}
			defer r.Close()
			p.Stdin = r
			stdinW = w
		}
	}
	if err := s.ctr.Run(p); err != nil {
		if stdinW != nil {
			stdinW.Close()
		}
		fail(err)
		return
	}
	var pumped sync.WaitGroup
	if spec.Tty {
		master, err := utils.RecvFile(consoleParent)
		consoleParent.Close()
		if err != nil {
			p.Signal(unix.SIGKILL)
			p.Wait()
			fail(err)
			return
		}
		defer master.Close()
		if spec.Width > 0 {
			unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: spec.Height, Col: spec.Width})
		}
		s.mu.Lock()
		s.execs[spec.ID] = master
		s.mu.Unlock()
		defer func() { s.mu.Lock(); delete(s.execs, spec.ID); s.mu.Unlock() }()
		pumped.Add(1)
		go func() {
			defer pumped.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := master.Read(buf)
				if n > 0 {
					send(runtime.FrameStdout, buf[:n])
				}
				if err != nil {
					return
				}
			}
		}()
		if spec.Stdin {
			go io.Copy(master, in)
		}
	} else if stdinW != nil {
		go func() { io.Copy(stdinW, in); stdinW.Close() }()
	}
	st, err := p.Wait()
	ex := runtime.Exit{}
	if st != nil {
		if ws, ok := st.Sys().(syscall.WaitStatus); ok {
			if ws.Signaled() {
				ex.Code = 128 + int(ws.Signal())
			} else {
				ex.Code = ws.ExitStatus()
			}
		}
	} else if err != nil {
		ex.Code = 126
		ex.Error = err.Error()
	}
	if spec.Tty {
		// The pty reports EIO once every holder of the other end has gone.
		pumped.Wait()
	}
	data, _ := json.Marshal(ex)
	send(runtime.FrameExit, data)
}
