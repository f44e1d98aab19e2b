// Package scheduler tests Berth's scheduler against a real `berth server
// --disable-agent`: the tests create Node objects themselves (no kubelet) and watch
// where pods land, through client-go and the real kubectl.
package scheduler

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/berth-project/berth/internal/scheduler"
)

var (
	kubeconfig string
	kubectlBin = "/usr/bin/kubectl"
	setupErr   error
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

// run starts the server and a scheduler in this process, over the API like any other
// client (with leader election, as a second server's would run); BERTH_SCHEDULER=server
// tests the scheduler `berth server` runs instead.
func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tsched")
	if err != nil {
		setupErr = err
		return m.Run()
	}
	defer os.RemoveAll(dir)
	stop, err := startServer(dir)
	if err != nil {
		setupErr = err
		return m.Run()
	}
	defer stop()
	if os.Getenv("BERTH_SCHEDULER") != "server" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			setupErr = err
			return m.Run()
		}
		cs, err := kubernetes.NewForConfig(scheduler.ClientConfig(cfg))
		if err != nil {
			setupErr = err
			return m.Run()
		}
		logf, _ := os.Create(filepath.Join(dir, "scheduler.log"))
		defer logf.Close()
		s, err := scheduler.New(cs, scheduler.Options{
			Log:         slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug})),
			LeaderElect: true, Identity: "e2e-test",
		})
		if err != nil {
			setupErr = err
			return m.Run()
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		defer func() {
			cancel()
			<-done
		}()
	}
	return m.Run()
}

func startServer(dir string) (stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	kubeconfig = filepath.Join(dir, "kubeconfig")
	root, _ := filepath.Abs("../../..")
	logf, _ := os.Create(filepath.Join(dir, "server.log"))
	args := []string{"server", "--data-dir", filepath.Join(dir, "data"), "--run-dir", filepath.Join(dir, "run"),
		"--api-port", fmt.Sprint(port), "--kubeconfig", kubeconfig, "--disable-agent",
		"--disable-controller-manager"} // the nodes have no kubelet: node lifecycle would taint them
	if os.Getenv("BERTH_SCHEDULER") != "server" {
		args = append(args, "--disable-scheduler") // the test runs its own
	}
	cmd := exec.Command(filepath.Join(root, "bin", "berth"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting berth server (make build first): %w", err)
	}
	stop = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(kubeconfig); err == nil {
			return stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			return nil, fmt.Errorf("berth server wrote no kubeconfig within 30s:\n%s", log)
		}
		time.Sleep(20 * time.Millisecond) // polling for the file the server writes when ready
	}
}

func need(t *testing.T) {
	t.Helper()
	if setupErr != nil {
		t.Fatal(setupErr)
	}
}

func client(t *testing.T) *kubernetes.Clientset {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// kubectl runs the real kubectl against the server; a failing command fails the test.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := kubectlRun(t, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func kubectlRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := os.Stat(kubectlBin); err != nil {
		t.Skip("kubectl is not installed at " + kubectlBin)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectlBin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}
