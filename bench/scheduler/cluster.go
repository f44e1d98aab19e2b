package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

type server struct {
	dir, kubeconfig string
	cmd             *exec.Cmd
}

// startServer starts `berth server --disable-agent` (and --disable-scheduler unless
// serverScheduler) on a free port in a temporary directory and waits for its kubeconfig.
func startServer(berth string, serverScheduler bool) (*server, error) {
	dir, err := os.MkdirTemp("", "bsched-bench")
	if err != nil {
		return nil, err
	}
	port, err := freeTCPPort()
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir, kubeconfig: filepath.Join(dir, "kubeconfig")}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	// Hollow nodes send no heartbeats: node lifecycle would taint them, so no controllers.
	args := []string{"server", "--data-dir", filepath.Join(dir, "data"), "--run-dir", filepath.Join(dir, "run"),
		"--api-port", fmt.Sprint(port), "--kubeconfig", s.kubeconfig, "--disable-agent", "--disable-controller-manager"}
	if !serverScheduler {
		args = append(args, "--disable-scheduler")
	}
	s.cmd = exec.Command(berth, args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (make build first): %w", berth, err)
	}
	fmt.Printf("berth server pid %d, logs in %s\n", s.cmd.Process.Pid, logf.Name())
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(s.kubeconfig); err == nil {
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("berth server wrote no kubeconfig within 30s (see %s)", logf.Name())
		}
		time.Sleep(20 * time.Millisecond) // polling for the file the server writes when ready
	}
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(s.dir)
}

// createNodes creates the hollow nodes (or finds them there from an earlier run), and
// writes their status when the server kept none from the create.
func createNodes(ctx context.Context, client kubernetes.Interface, n, workers int) error {
	return parallel(n, workers, func(i int) error {
		node := nodeSpec(fmt.Sprintf("hollow-%05d", i))
		got, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("create node %s: %w", node.Name, err)
		}
		if len(got.Status.Allocatable) == 0 {
			got.Status = node.Status
			if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("node %s status: %w", node.Name, err)
			}
		}
		return nil
	})
}

// warmUp creates one pod and waits for it to be bound.
func warmUp(ctx context.Context, client kubernetes.Interface, ns string) error {
	if _, err := client.CoreV1().Pods(ns).Create(ctx, podSpec(ns, "warm-up"), metav1.CreateOptions{}); err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods(ns).Get(ctx, "warm-up", metav1.GetOptions{})
		return err == nil && p.Spec.NodeName != "", nil
	})
}

// createPods creates pods pod-0..pod-(n-1), noting when each create was sent.
func createPods(ctx context.Context, client kubernetes.Interface, ns string, n, workers int, w *watcher) (time.Duration, error) {
	start := time.Now()
	err := parallel(n, workers, func(i int) error {
		name := fmt.Sprintf("pod-%d", i)
		w.sent(name)
		if _, err := client.CoreV1().Pods(ns).Create(ctx, podSpec(ns, name), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create pod %s: %w", name, err)
		}
		return nil
	})
	return time.Since(start), err
}

func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
