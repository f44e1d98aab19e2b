// Package controller tests Berth's controllers against a real `berth server` through
// kubectl and client-go. The controllers run in the test process; there is no
// scheduler or kubelet yet, so the tests play both: they bind pods to Node objects
// they created and report the pods running and ready.
package controller

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
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/berth-project/berth/internal/controller"
)

var (
	kubeconfig string
	restConfig *rest.Config
	kubectlBin = "/usr/bin/kubectl"
	setupErr   error
	logPath    string
)

// gracePeriod is the node monitor grace period the controllers run with here: short,
// so that a lost node is noticed within the test's patience.
const gracePeriod = 4 * time.Second

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tctl")
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
	if restConfig, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
		setupErr = err
		return m.Run()
	}
	logf, _ := os.Create(filepath.Join(dir, "controllers.log"))
	logPath = logf.Name()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- controller.Run(ctx, controller.Config{
			RESTConfig: restConfig, Log: slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug})),
			NodeMonitorGracePeriod: gracePeriod, NodeMonitorPeriod: 500 * time.Millisecond,
		})
	}()
	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "controllers:", err)
		code = 1
	}
	if code != 0 {
		log, _ := os.ReadFile(logPath)
		fmt.Fprintf(os.Stderr, "--- controller log (last 8 KiB):\n%s\n", tail(log, 8192))
		log, _ = os.ReadFile(filepath.Join(dir, "server.log"))
		fmt.Fprintf(os.Stderr, "--- server log (last 8 KiB):\n%s\n", tail(log, 8192))
	}
	return code
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// startServer runs `bin/berth server --disable-agent` and waits for its kubeconfig.
func startServer(dir string) (func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	kubeconfig = filepath.Join(dir, "kubeconfig")
	root, _ := filepath.Abs("../../..")
	logf, _ := os.Create(filepath.Join(dir, "server.log"))
	cmd := exec.Command(filepath.Join(root, "bin", "berth"), "server", "--data-dir", filepath.Join(dir, "data"),
		"--run-dir", filepath.Join(dir, "run"), "--api-port", fmt.Sprint(port), "--kubeconfig", kubeconfig, "--disable-agent",
		"--disable-scheduler", "--disable-controller-manager") // the test runs its own controllers and plays the scheduler
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting berth server (make build first): %w", err)
	}
	stop := func() {
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
	if _, err := os.Stat(kubectlBin); err != nil {
		t.Skip("kubectl is not installed at " + kubectlBin)
	}
}

// kubectl runs kubectl against the server and returns its output; failing commands fail the test.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := kubectlRun(t, nil, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

func kubectlRun(t *testing.T, stdin []byte, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectlBin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func client(t *testing.T) *kubernetes.Clientset {
	t.Helper()
	cfg := rest.CopyConfig(restConfig)
	cfg.QPS, cfg.Burst = 200, 400
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// eventually polls cond every 50 ms until it returns true or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond) // polling the API server for the state we wait for
	}
	t.Fatalf("%s: not within %v (last error: %v)", what, timeout, lastErr)
}

func mustContain(t *testing.T, what, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Fatalf("%s: %q does not contain %q", what, got, want)
	}
}

func uniq(p string) string { return fmt.Sprintf("tctl-%s-%d", p, time.Now().UnixNano()%1000000) }

// namespace creates a namespace for one test and deletes it afterwards.
func namespace(t *testing.T, p string) string {
	ns := uniq(p)
	kubectl(t, "create", "namespace", ns)
	t.Cleanup(func() { kubectlRun(t, nil, "delete", "namespace", ns, "--wait=false") })
	return ns
}
