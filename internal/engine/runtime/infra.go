package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Infra is a pod sandbox's infra process: berth-shim in its "pause" mode, a few
// hundred kilobytes of resident memory that hold the pod's IPC, UTS and (when the pod
// shares one) PID namespaces for its containers to join. The network namespace is
// pinned by the network package and needs no process.
//
// It is identified by pid and start time, so a recycled pid is never taken for it.
type Infra struct {
	Pid   int    `json:"pid"`
	Start uint64 `json:"start"` // field 22 of /proc/PID/stat: clock ticks after boot
}

// InfraOptions say which namespaces the infra process makes.
type InfraOptions struct {
	Shim     string // the berth-shim binary
	Hostname string // set in the new UTS namespace
	NewUTS   bool   // false for a pod on the host's network: it keeps the host's name
	NewIPC   bool
	NewPID   bool // the pod's containers share one PID namespace, the infra is its init
}

// StartInfra starts an infra process and returns once its namespaces are set up. It
// runs in a session of its own, so it outlives the engine.
func StartInfra(o InfraOptions) (Infra, error) {
	var flags uintptr
	if o.NewUTS {
		flags |= syscall.CLONE_NEWUTS
	}
	if o.NewIPC {
		flags |= syscall.CLONE_NEWIPC
	}
	if o.NewPID {
		flags |= syscall.CLONE_NEWPID
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return Infra{}, err
	}
	defer pr.Close()
	args := []string{"pause"}
	if o.NewUTS && o.Hostname != "" {
		args = append(args, "--hostname", o.Hostname)
	}
	cmd := exec.Command(o.Shim, args...)
	cmd.Args[0] = "berth-pause"
	cmd.Dir = "/"
	cmd.Env = []string{"GOMAXPROCS=1", "GOGC=200"}
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Cloneflags: flags}
	if err := cmd.Start(); err != nil {
		pw.Close()
		return Infra{}, fmt.Errorf("start infra process: %w", err)
	}
	pw.Close()
	// Reap it if it ends while the engine lives; after that, init does.
	go cmd.Wait()
	// The infra writes one line once its namespaces are ready ("ok" or an error).
	buf := make([]byte, 256)
	pr.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _ := pr.Read(buf)
	if msg := strings.TrimSpace(string(buf[:n])); msg != "ok" {
		cmd.Process.Kill()
		if msg == "" {
			msg = "it exited before it was ready"
		}
		return Infra{}, fmt.Errorf("infra process: %s", msg)
	}
	start, err := startTime(cmd.Process.Pid)
	if err != nil {
		cmd.Process.Kill()
		return Infra{}, err
	}
	return Infra{Pid: cmd.Process.Pid, Start: start}, nil
}

// startTime reads a process's start time from /proc; an error means it is gone.
func startTime(pid int) (uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses: fields count from the last ")".
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, errors.New("malformed /proc stat")
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, errors.New("process has exited")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// Alive reports whether the infra process still runs.
func (i Infra) Alive() bool {
	if i.Pid <= 0 {
		return false
	}
	st, err := startTime(i.Pid)
	return err == nil && st == i.Start
}

// NS is the path of one of the infra's namespaces ("ipc", "uts", "pid", "net").
func (i Infra) NS(kind string) string {
	return filepath.Join("/proc", strconv.Itoa(i.Pid), "ns", kind)
}

// Kill ends the infra process and waits (up to a few seconds) until it is gone.
func (i Infra) Kill() error {
	if !i.Alive() {
		return nil
	}
	if err := syscall.Kill(i.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for i.Alive() {
		if time.Now().After(deadline) {
			return fmt.Errorf("infra process %d did not end", i.Pid)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}
