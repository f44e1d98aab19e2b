package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/engine/runtime"
	"github.com/berth-project/berth/internal/program"
)

// Standby is "berth-shim standby": the shim half of a standby pair (see the runtime
// package's standby). It starts "berth-runtime standby" as its child, handing it the
// engine's request pipe (fd 4) and one end of a socket pair, and waits on the other
// end. berth-runtime makes and starts the container, sends the shim its settings and
// descriptors (runtime.Handover) and exits; the container's init, orphaned, passes to
// the shim, which is a child subreaper until then. The shim then serves the container
// as Run does, and reports on fd 3 (the engine's ready pipe). If berth-runtime exits
// without handing anything over (the engine let the pair go), the shim exits too.
//
// The shim is loaded and running before the create, so that a start waits for neither
// program's start-up, and the container runs while the engine attaches.
func Standby() error {
	ready := os.NewFile(3, "ready")
	request := os.NewFile(4, "request")
	path := os.Getenv(runtime.RuntimePathEnv)
	if path == "" {
		return errors.New("berth-shim standby is started by the engine, not by hand")
	}
	program.SetName(program.StandbyName)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("subreaper: %w", err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "handover"), os.NewFile(uintptr(fds[1]), "handover")
	cmd := exec.Command(path, append([]string{"standby"}, os.Args[2:]...)...) // --root, for ps
	cmd.Args[0] = "berth-runtime"
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{theirs, request}
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "GOMAXPROCS=1"}
	var sealed *os.File
	if os.Getenv(runtime.SealedEnv) != "" {
		// Executed through its own descriptor: the sealed copy the engine made.
		sealed = os.NewFile(runtime.SealedExeFd, "sealed")
		cmd.Path = fmt.Sprintf("/proc/self/fd/%d", runtime.SealedExeFd)
		cmd.ExtraFiles = append(cmd.ExtraFiles, sealed)
		cmd.Env = append(cmd.Env, runtime.RuntimePathEnv+"="+path)
	}
	err = cmd.Start()
	theirs.Close()
	request.Close()
	if sealed != nil {
		// Not kept: it is 10 MB of memory, and the shim's own helpers must not inherit it.
		sealed.Close()
	}
	if err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	warm()

	// Without a container to serve, the shim goes once berth-runtime has, taking along
	// whatever berth-runtime left (an init made before it failed passes to the shim).
	fail := func(err error) error {
		<-exited
		killOrphans()
		if errors.Is(err, errNothingHandedOver) {
			return nil // let go, or berth-runtime failed and its log says why
		}
		writeReady(ready, runtime.Reply{Error: err.Error()})
		return err
	}
	h, files, err := receiveHandover(mine)
	mine.Close()
	if err == nil && h.Error != "" {
		err = errors.New(h.Error)
	}
	if err != nil {
		return fail(err)
	}
	program.SetName("berth-shim")
	// It waited at idle priority (see the runtime package's startStandby); the
	// container's supervisor runs at the normal one. The engine reniced it already;
	// this covers a thread made meanwhile.
	program.Renice(os.Getpid(), 0)
	program.OutputTo(h.ShimLog) // berth-runtime's already: its failure is reported there
	os.Chdir(h.Bundle)
	adopted := make(chan struct{})
	go func() {
		<-exited
		// The init is ours now; later orphans (none are expected) go to init as usual.
		unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
		close(adopted)
	}()
	o := Options{ID: h.ID, Bundle: h.Bundle, Root: h.Root, LogPath: h.Log, CRILog: h.CRILog, Runtime: path,
		StdinOnce: h.StdinOnce, Held: h.Held, Pid: h.Pid, CgroupPaths: h.CgroupPaths, Adopted: adopted, Ready: ready}
	for i, name := range h.Files {
		f := files[i]
		switch name {
		case "listen":
			o.Listener = f
		case "stdout":
			o.Stdout = f
		case "stderr":
			o.Stderr = f
		case "stdin":
			o.Stdin = f
		case "console":
			o.Console = f
		default:
			f.Close()
		}
	}
	if o.Listener == nil || o.Pid <= 0 {
		return fail(errors.New("berth-runtime handed over no container"))
	}
	return Run(o)
}

var errNothingHandedOver = errors.New("nothing handed over")

// killOrphans kills and reaps what berth-runtime left behind when it handed nothing
// over: a container's init it made before failing passed to the shim, a subreaper,
// and must not live on unsupervised.
func killOrphans() {
	for {
		tasks, _ := filepath.Glob("/proc/self/task/*/children")
		var pids []int
		for _, t := range tasks {
			data, _ := os.ReadFile(t)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
					pids = append(pids, pid)
				}
			}
		}
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			unix.Kill(pid, unix.SIGKILL)
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, 0, nil)
		}
	}
}

// warm does ahead, while the shim waits, what would otherwise slow the first moments of
// its container: its code mapped (see program.Prefault), and encoding/json's tables
// for the hand-over and the messages it answers built.
func warm() {
	program.Prefault()
	var h runtime.Handover
	if data, err := json.Marshal(runtime.Handover{CgroupPaths: map[string]string{"": ""}, Files: []string{""}}); err == nil {
		json.Unmarshal(data, &h)
	}
	var req runtime.Request
	if data, err := json.Marshal(runtime.Request{Exec: &runtime.ExecSpec{}, Resources: &runtime.Resources{}}); err == nil {
		json.Unmarshal(data, &req)
	}
	json.Marshal(runtime.Exit{})
	json.Marshal(runtime.Reply{})
}

// receiveHandover reads berth-runtime's one message and the descriptors that come with
// it. End of file (berth-runtime exited without a word) is errNothingHandedOver.
func receiveHandover(sock *os.File) (runtime.Handover, []*os.File, error) {
	var h runtime.Handover
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(8*4))
	n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	for err == unix.EINTR {
		n, oobn, _, _, err = unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	}
	if err != nil {
		return h, nil, err
	}
	if n == 0 {
		return h, nil, errNothingHandedOver
	}
	var files []*os.File
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return h, nil, err
		}
		for _, m := range msgs {
			fds, err := unix.ParseUnixRights(&m)
			if err != nil {
				continue
			}
			for _, fd := range fds {
				files = append(files, os.NewFile(uintptr(fd), "handed-over"))
			}
		}
	}
	if err := json.Unmarshal(buf[:n], &h); err != nil {
		return h, nil, fmt.Errorf("hand-over: %w", err)
	}
	if len(files) != len(h.Files) {
		return h, nil, fmt.Errorf("hand-over: %d descriptors for %d names", len(files), len(h.Files))
	}
	return h, files, nil
}
