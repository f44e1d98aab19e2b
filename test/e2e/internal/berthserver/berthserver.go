// Package berthserver runs the repository's real `berth server` (bin/berth, from
// `make build`) for end-to-end tests: on a free API port, with its data, run directory,
// kubeconfig and log under a directory of the test's, until Stop.
package berthserver

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"time"
)

// Server is one running `berth server`.
type Server struct {
	Dir        string // DIR/data, DIR/run, DIR/kubeconfig and DIR/server.log
	Kubeconfig string // written by the server once it serves
	Port       int    // the API port, on 127.0.0.1
	cmd        *exec.Cmd
	done       chan struct{}
}

// Binary is the path of the repository's bin/berth.
func Binary() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "bin", "berth")
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs `berth server` under dir on a free port with the given flags besides its
// directories, port and kubeconfig, and returns once the kubeconfig is written (within
// 30 s).
func Start(dir string, flags ...string) (*Server, error) {
	// A port found free can be taken by another test's process (packages are tested in
	// parallel) before the server binds it; it then exits at once, and another is tried.
	for try := 1; ; try++ {
		s, err := StartOn(dir, FreePort(), flags...)
		if err == nil || try == 3 || !strings.Contains(err.Error(), "address already in use") {
			return s, err
		}
	}
}

// StartOn is Start on a given port: a server started again on the same directory and
// port is the same server to its clients. Its log goes on after the earlier one's.
func StartOn(dir string, port int, flags ...string) (*Server, error) {
	s := &Server{Dir: dir, Kubeconfig: filepath.Join(dir, "kubeconfig"), Port: port, done: make(chan struct{})}
	os.Remove(s.Kubeconfig) // an earlier run's: readiness is a new one
	logf, err := os.OpenFile(filepath.Join(dir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	args := append([]string{"server", "--data-dir", filepath.Join(dir, "data"), "--run-dir", filepath.Join(dir, "run"),
		"--api-port", fmt.Sprint(s.Port), "--kubeconfig", s.Kubeconfig}, flags...)
	s.cmd = exec.Command(Binary(), args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting berth server (make build first): %w", err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(s.Kubeconfig); err == nil {
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("berth server exited before serving:\n%s", s.Log())
		default:
		}
		if time.Now().After(deadline) {
			s.Stop(10 * time.Second)
			return nil, fmt.Errorf("berth server wrote no kubeconfig within 30s:\n%s", s.Log())
		}
		time.Sleep(20 * time.Millisecond) // polling for the file the server writes when ready
	}
}

// Stop sends SIGTERM and kills the server if it has not exited within grace.
func (s *Server) Stop(grace time.Duration) {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(grace):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// Kill kills the server with SIGKILL, as a crash would, and waits for it.
func (s *Server) Kill() {
	s.cmd.Process.Kill()
	<-s.done
}

// Log is what the server has logged so far.
func (s *Server) Log() []byte {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "server.log"))
	return b
}

// Tail is the last n bytes of b.
func Tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// Kubectl runs the kubectl at bin against kubeconfig with stdin (nil for none), for at
// most timeout, and returns its combined output.
func Kubectl(ctx context.Context, timeout time.Duration, bin, kubeconfig string, stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}
