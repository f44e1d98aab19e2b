// Command berth-runtime is Berth's libcontainer front end, as runc is containerd's: it
// makes and starts a container and hands it to the shim that started it (see
// shim.Standby), and it carries out the one-off requests that need libcontainer (exec,
// pause, stats, ...). It is also the container's init: libcontainer re-executes this
// binary as "berth-runtime init".
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"

	_ "github.com/opencontainers/cgroups/devices" // device cgroup rules
	"github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/engine/runtime"
	"github.com/berth-project/berth/internal/engine/runtime/libct"
	"github.com/berth-project/berth/internal/program"
)

func init() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		// Runs after nsenter's C constructor, before main.
		goruntime.GOMAXPROCS(1)
		goruntime.LockOSThread()
		libcontainer.Init()
	}
}

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: berth-runtime standby|op|destroy [flags]"))
	}
	var err error
	switch os.Args[1] {
	case "standby":
		err = standby()
	case "op":
		err = op(os.Args[2:])
	case "destroy":
		fs := flag.NewFlagSet("destroy", flag.ExitOnError)
		root, id := fs.String("root", "", "state root"), fs.String("id", "", "container id")
		fs.Parse(os.Args[2:])
		err = libct.Destroy(*root, *id)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "berth-runtime:", err)
	os.Exit(1)
}

// standby is started by a shim waiting on standby, as its child (see shim.Standby). It
// waits, loaded and initialised, for the arguments of a create on fd 4; end of file
// there means it is not needed. It makes and starts the container, in the directory
// and with the output file the engine names, and hands it to the shim on fd 3.
func standby() error {
	if os.Getenv(runtime.RuntimePathEnv) != "" {
		unix.CloseOnExec(runtime.SealedExeFd) // the sealed copy it was started from
	}
	program.SetName(program.StandbyName)
	// What the create runs is mostly warmed up by now; unlike the shim, it does not map
	// the rest of its code ahead (program.Prefault): it exits after the create, and the
	// container's exit waits for that, page tables torn down and all.
	libct.Warm()
	shim := os.NewFile(3, "shim")
	req, err := readRequest(requestFd)
	if err != nil {
		os.Exit(0)
	}
	var r runtime.StandbyRequest
	if err := json.Unmarshal(req.line, &r); err != nil {
		os.Exit(0)
	}
	program.SetName("berth-runtime")
	// It waited at idle priority (see runtime.startStandby); the container it creates,
	// and this process, run at the normal one. The engine has reniced the shim; this
	// process renices itself, twice to cover a thread made while it did.
	for i := 0; i < 2; i++ {
		program.Renice(os.Getpid(), 0)
	}
	if err := program.OutputTo(r.Log); err != nil {
		return handOver(shim, runtime.Handover{Error: err.Error()}, nil)
	}
	if err := os.Chdir(r.Dir); err != nil {
		return handOver(shim, runtime.Handover{Error: err.Error()}, nil)
	}
	h, files, err := create(r.Args, req.goNow)
	if err != nil {
		h = runtime.Handover{Error: err.Error()}
	}
	h.ShimLog = r.Log
	if herr := handOver(shim, h, files); herr != nil && err == nil {
		kill(h.Pid)
		libct.Destroy(h.Root, h.ID)
		return herr
	}
	return err
}

// requestFd is the pipe a standby's create request comes on (see runtime.launch).
const requestFd = 4

// request is a create's request line, and the pipe it came on: the engine writes
// runtime.GoNow there after it once the start has come (StartOptions.Go).
type request struct {
	fd   int
	line []byte
	rest []byte // read past the line
}

// readRequest reads the request line from fd; end of file first means the standby is
// not needed.
func readRequest(fd int) (*request, error) {
	r := &request{fd: fd}
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, io.EOF
		}
		r.line = append(r.line, buf[:n]...)
		if i := bytes.IndexByte(r.line, '\n'); i >= 0 {
			r.line, r.rest = r.line[:i], r.line[i+1:]
			return r, nil
		}
	}
}

// goNow reports whether the engine has said, by now, that the start has come: it does
// not wait for it.
func (r *request) goNow() bool {
	if bytes.IndexByte(r.rest, runtime.GoNow) >= 0 {
		return true
	}
	if err := unix.SetNonblock(r.fd, true); err != nil {
		return false
	}
	var b [16]byte
	n, _ := unix.Read(r.fd, b[:])
	return n > 0 && bytes.IndexByte(b[:n], runtime.GoNow) >= 0
}

// kill kills the container's init, this process's child until the hand-over, and reaps
// it: libcontainer's destroy refuses a container whose init still runs.
func kill(pid int) {
	unix.Kill(pid, unix.SIGKILL)
	var ws unix.WaitStatus
	unix.Wait4(pid, &ws, 0, nil)
}

// handOver sends h, and files as SCM_RIGHTS, to the shim in one message.
func handOver(shim *os.File, h runtime.Handover, files []*os.File) error {
	data, err := json.Marshal(h)
	if err != nil {
		return err
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if err := unix.Sendmsg(int(shim.Fd()), data, oob, nil, 0); err != nil {
		return fmt.Errorf("hand over to the shim: %w", err)
	}
	if h.Error != "" {
		return errors.New(h.Error)
	}
	return nil
}

// create makes and starts the container and listens on the shim's socket; it returns
// what the shim needs.
func create(args []string, goNow func() bool) (runtime.Handover, []*os.File, error) {
	fs := flag.NewFlagSet("create", flag.ContinueOnError)
	id := fs.String("id", "", "container id")
	bundle := fs.String("bundle", "", "directory with config.json")
	root := fs.String("root", "", "libcontainer state root")
	logPath := fs.String("log", "", "json-file log path")
	criLog := fs.String("cri-log", "", "CRI log path, passed on to the shim")
	socket := fs.String("socket", "", "unix socket to serve the engine on")
	stdin := fs.Bool("stdin", false, "keep stdin open")
	stdinOnce := fs.Bool("stdin-once", false, "close stdin when the first attached client detaches")
	hold := fs.Bool("hold", false, "leave the process waiting for the shim's release")
	if err := fs.Parse(args); err != nil {
		return runtime.Handover{}, nil, err
	}
	if *id == "" || *bundle == "" || *root == "" || *logPath == "" || *socket == "" {
		return runtime.Handover{}, nil, errors.New("create needs --id, --bundle, --root, --log and --socket")
	}
	c, err := libct.Create(*root, *id, *bundle, *stdin, *hold)
	if err != nil {
		return runtime.Handover{}, nil, err
	}
	h := runtime.Handover{ID: *id, Bundle: *bundle, Root: *root, Log: *logPath, CRILog: *criLog,
		StdinOnce: *stdinOnce, Held: *hold, Pid: c.Pid, CgroupPaths: c.CgroupPaths}
	undo := func(err error) (runtime.Handover, []*os.File, error) {
		kill(c.Pid)
		libct.Destroy(*root, *id)
		return runtime.Handover{}, nil, err
	}
	os.Remove(*socket)
	ln, err := net.Listen("unix", *socket)
	if err != nil {
		return undo(err)
	}
	os.Chmod(*socket, 0o600)
	lnFile, err := ln.(*net.UnixListener).File()
	if err != nil {
		return undo(err)
	}
	var files []*os.File
	for _, f := range []struct {
		name string
		f    *os.File
	}{{"listen", lnFile}, {"stdout", c.Stdout}, {"stderr", c.Stderr}, {"stdin", c.Stdin}, {"console", c.Console}} {
		if f.f != nil {
			h.Files = append(h.Files, f.name)
			files = append(files, f.f)
		}
	}
	// A held process waits for the shim's release, unless the start has come while the
	// container was being made: then it goes now. Only the hand-over comes after this
	// (and the engine does not make again a container it gave the go-ahead).
	if *hold && goNow() {
		if err := runtime.Release(filepath.Join(*root, *id), c.Pid); err != nil {
			return undo(err)
		}
		h.Held = false
	}
	return h, files, nil
}

// op carries out one request handed over by a shim: the connection is fd 3 (and a
// socket for a tty exec's pty master fd 4); the request is in $BERTH_REQUEST.
func op(args []string) error {
	fs := flag.NewFlagSet("op", flag.ExitOnError)
	root := fs.String("root", "", "libcontainer state root")
	id := fs.String("id", "", "container id")
	fs.Parse(args)
	var req runtime.Request
	if err := json.Unmarshal([]byte(os.Getenv("BERTH_REQUEST")), &req); err != nil {
		return fmt.Errorf("request: %w", err)
	}
	connFile := os.NewFile(3, "conn")
	conn, err := net.FileConn(connFile)
	if err != nil {
		return err
	}
	connFile.Close()
	defer conn.Close()
	var sink *os.File
	if _, err := unix.FcntlInt(4, unix.F_GETFD, 0); err == nil {
		sink = os.NewFile(4, "pty-sink")
	}
	libct.Op(*root, *id, req, conn, sink)
	return nil
}
