package libct

import (
	"bytes"
	"encoding/json"
	"errors"
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

// Op carries out one request of the engine that needs libcontainer, on conn (the
// engine's connection, handed over by the shim). ptySink, when set, receives the pty
// master of a tty exec so the shim can resize it.
func Op(root, id string, req runtime.Request, conn net.Conn, ptySink *os.File) {
	// Exec'd processes are re-parented to us after runc's double fork; being a
	// subreaper is what lets us wait for them.
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	ctr, err := libcontainer.Load(root, id)
	if err != nil {
		if req.Op == "exec" {
			execFail(conn, err)
		} else {
			reply(conn, runtime.Reply{Error: err.Error()})
		}
		return
	}
	in := io.MultiReader(bytes.NewReader(req.Preface), conn)
	switch req.Op {
	case "exec":
		execProcess(ctr, conn, in, req.Exec, ptySink)
	case "pause":
		reply(conn, runtime.Reply{Error: errString(ctr.Pause())})
	case "resume":
		reply(conn, runtime.Reply{Error: errString(ctr.Resume())})
	case "ps":
		pids, err := ctr.Processes()
		reply(conn, runtime.Reply{Pids: pids, Error: errString(err)})
	case "kill":
		pids, err := ctr.Processes()
		for _, p := range pids {
			unix.Kill(p, unix.Signal(req.Signal))
		}
		reply(conn, runtime.Reply{Error: errString(err)})
	case "update":
		reply(conn, runtime.Reply{Error: errString(update(ctr, req.Resources))})
	case "stats":
		st, err := stats(ctr)
		reply(conn, runtime.Reply{Stats: st, Error: errString(err)})
	default:
		reply(conn, runtime.Reply{Error: "unknown op " + req.Op})
	}
}

func reply(w io.Writer, r runtime.Reply) { json.NewEncoder(w).Encode(r) }

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func execFail(c io.Writer, err error) {
	data, _ := json.Marshal(runtime.Exit{Code: 126, Error: err.Error()})
	runtime.WriteFrame(c, runtime.FrameExit, data)
}

type writerFunc func([]byte)

func (f writerFunc) Write(b []byte) (int, error) { f(b); return len(b), nil }

// execProcess runs one more process in the container and streams it over c: output
// frames, then a FrameExit with its status. Input read from c goes to its stdin.
func execProcess(ctr *libcontainer.Container, c net.Conn, in io.Reader, spec *runtime.ExecSpec, ptySink *os.File) {
	if spec == nil {
		execFail(c, errors.New("no process given"))
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
		UID: spec.UID, GID: spec.GID, AdditionalGroups: spec.Groups, LogLevel: initLogLevel,
	}
	var consoleParent, stdinW *os.File
	if spec.Tty {
		parent, child, err := utils.NewSockPair("console")
		if err != nil {
			execFail(c, err)
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
				execFail(c, err)
				return
			}
			defer r.Close()
			p.Stdin = r
			stdinW = w
		}
	}
	if err := ctr.Run(p); err != nil {
		if stdinW != nil {
			stdinW.Close()
		}
		execFail(c, err)
		return
	}
	var pumped sync.WaitGroup
	if spec.Tty {
		master, err := utils.RecvFile(consoleParent)
		consoleParent.Close()
		if err != nil {
			p.Signal(unix.SIGKILL)
			p.Wait()
			execFail(c, err)
			return
		}
		defer master.Close()
		if ptySink != nil {
			utils.SendFile(ptySink, master)
		}
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
	if spec.KillOnHangup && !spec.Stdin {
		go func() {
			io.Copy(io.Discard, in) // the engine sends nothing: this ends when it hangs up
			p.Signal(unix.SIGKILL)
		}()
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

// update sets the cgroup limits r names on the running container.
func update(ctr *libcontainer.Container, r *runtime.Resources) error {
	if r == nil {
		return errors.New("no resources given")
	}
	cfg := ctr.Config()
	res := cfg.Cgroups.Resources
	if r.CPUShares != 0 {
		res.CpuShares = r.CPUShares
	}
	if r.CPUQuota != 0 {
		res.CpuQuota = r.CPUQuota
	}
	if r.CPUPeriod != 0 {
		res.CpuPeriod = r.CPUPeriod
	}
	if r.Memory != 0 {
		res.Memory = r.Memory
	}
	if r.CpusetCpus != "" {
		res.CpusetCpus = r.CpusetCpus
	}
	if r.CpusetMems != "" {
		res.CpusetMems = r.CpusetMems
	}
	if r.PidsLimit != 0 {
		res.PidsLimit = r.PidsLimit
	}
	return ctr.Set(cfg)
}

func stats(ctr *libcontainer.Container) (*runtime.Stats, error) {
	st, err := ctr.Stats()
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
		out.MemoryInactiveFile = cg.MemoryStats.Stats["total_inactive_file"] // cgroup v1
		if v, ok := cg.MemoryStats.Stats["inactive_file"]; ok && out.MemoryInactiveFile == 0 {
			out.MemoryInactiveFile = v // cgroup v2
		}
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
	return out, nil
}
