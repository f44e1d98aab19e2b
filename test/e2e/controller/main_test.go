// Package controller tests Berth's controllers against a real `berth server` through
// kubectl and client-go. The controllers run in the test process; there is no
// scheduler or kubelet yet, so the tests play both: they bind pods to Node objects
// they created and report the pods running and ready.
package controller

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/berth-project/berth/internal/controller"
	"github.com/berth-project/berth/test/e2e/internal/berthserver"
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
	// The test runs its own controllers and plays the scheduler.
	srv, err := berthserver.Start(dir, "--disable-agent", "--disable-scheduler", "--disable-controller-manager")
	if err != nil {
		setupErr = err
		return m.Run()
	}
	defer srv.Stop(10 * time.Second)
	kubeconfig = srv.Kubeconfig
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
		fmt.Fprintf(os.Stderr, "--- controller log (last 8 KiB):\n%s\n", berthserver.Tail(log, 8192))
		fmt.Fprintf(os.Stderr, "--- server log (last 8 KiB):\n%s\n", berthserver.Tail(srv.Log(), 8192))
	}
	return code
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
	return berthserver.Kubectl(context.Background(), 60*time.Second, kubectlBin, kubeconfig, stdin, args...)
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
