// Command berth-runtime is Berth's libcontainer front end, as runc is containerd's: it
// creates a container and then becomes its shim (exec'ing berth-shim in place, so the
// container's init stays the shim's child), and it carries out the one-off requests
// that need libcontainer (exec, pause, stats, ...). It is also the container's init:
// libcontainer re-executes this binary as "berth-runtime init".
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"syscall"
	"unsafe"

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
		fail(errors.New("usage: berth-runtime create|op|destroy [flags]"))
	}
	var err error
	switch os.Args[1] {
	case "create":
		err = create(os.Args[2:])
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

// create makes the container, listens on the shim's socket and execs berth-shim with
// everything the shim needs as inherited descriptors. fd 3 is the engine's ready pipe.
func create(args []string) error {
	fs := flag.NewFlagSet("create", flag.ExitOnError)
	id := fs.String("id", "", "container id")
	bundle := fs.String("bundle", "", "directory with config.json")
	root := fs.String("root", "", "libcontainer state root")
	logPath := fs.String("log", "", "json-file log path")
	criLog := fs.String("cri-log", "", "CRI log path, passed on to the shim")
	socket := fs.String("socket", "", "unix socket to serve the engine on")
	stdin := fs.Bool("stdin", false, "keep stdin open")
	stdinOnce := fs.Bool("stdin-once", false, "close stdin when the first attached client detaches")
	fs.Parse(args)
	ready := os.NewFile(3, "ready")
	report := func(err error) error {
		json.NewEncoder(ready).Encode(runtime.Reply{Error: err.Error()})
		return err
	}
	if *id == "" || *bundle == "" || *root == "" || *logPath == "" || *socket == "" {
		return report(errors.New("create needs --id, --bundle, --root, --log and --socket"))
	}
	self := os.Getenv(runtime.RuntimePathEnv) // a standby run from a sealed copy (see standby)
	if self == "" {
		var err error
		if self, err = os.Executable(); err != nil {
			return report(err)
		}
	}
	shim := filepath.Join(filepath.Dir(self), "berth-shim")
	c, err := libct.Create(*root, *id, *bundle, *stdin)
	if err != nil {
		return report(err)
	}
	os.Remove(*socket)
	ln, err := net.Listen("unix", *socket)
	if err != nil {
		unix.Kill(c.Pid, unix.SIGKILL)
		libct.Destroy(*root, *id)
		return report(err)
	}
	os.Chmod(*socket, 0o600)
	lnFile, err := ln.(*net.UnixListener).File()
	if err != nil {
		return report(err)
	}
	argv := []string{"berth-shim", "--id", *id, "--bundle", *bundle, "--root", *root, "--log", *logPath,
		"--runtime", self, "--pid", strconv.Itoa(c.Pid)}
	if *stdinOnce {
		argv = append(argv, "--stdin-once")
	}
	if *criLog != "" {
		argv = append(argv, "--cri-log", *criLog)
	}
	pass := func(flagName string, f *os.File) {
		if f == nil {
			return
		}
		fd := int(f.Fd())
		// Keep it open across exec.
		unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0)
		argv = append(argv, "--"+flagName, strconv.Itoa(fd))
	}
	pass("listen-fd", lnFile)
	pass("ready-fd", ready)
	pass("stdout-fd", c.Stdout)
	pass("stderr-fd", c.Stderr)
	pass("stdin-fd", c.Stdin)
	pass("console-fd", c.Console)
	env := []string{"GOMAXPROCS=1", "GOGC=50"}
	if err := syscall.Exec(shim, argv, env); err != nil {
		unix.Kill(c.Pid, unix.SIGKILL)
		libct.Destroy(*root, *id)
		return report(fmt.Errorf("exec %s: %w", shim, err))
	}
	return nil
}

// standby waits, loaded and initialised, for the arguments of a create on fd 4, then
// carries it out as `create` would, in the directory and with the output file the
// engine names (see runtime.standby). End of file on fd 4 means it is not needed.
func standby() error {
	if os.Getenv(runtime.RuntimePathEnv) != "" {
		unix.CloseOnExec(runtime.SealedExeFd) // the sealed copy it was started from: not for the shim
		// Executed as /proc/self/fd/N, its command name would be "N".
		unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&[]byte("berth-runtime\x00")[0])), 0, 0, 0)
	}
	libct.Warm()
	req := os.NewFile(4, "request")
	var r runtime.StandbyRequest
	err := json.NewDecoder(req).Decode(&r)
	req.Close()
	if err != nil {
		os.Exit(0)
	}
	// It waited at idle priority (see runtime.startStandby); the container it creates,
	// and this process, run at the normal one. The engine has reniced it already; twice
	// more here covers a thread made while it did.
	for i := 0; i < 2; i++ {
		program.Renice(os.Getpid(), 0)
	}
	logf, err := os.OpenFile(r.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	for _, fd := range []int{1, 2} {
		if err := unix.Dup3(int(logf.Fd()), fd, 0); err != nil {
			return err
		}
	}
	logf.Close()
	if err := os.Chdir(r.Dir); err != nil {
		return err
	}
	return create(r.Args)
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
