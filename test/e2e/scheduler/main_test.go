// Package scheduler tests Berth's scheduler against a real `berth server
// --disable-agent`: the tests create Node objects themselves (no kubelet) and watch
// where pods land, through client-go and the real kubectl.
package scheduler

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/berth-project/berth/internal/scheduler"
	"github.com/berth-project/berth/test/e2e/internal/berthserver"
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
	srv, err := startServer(dir)
	if err != nil {
		setupErr = err
		return m.Run()
	}
	defer srv.Stop(10 * time.Second)
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

// startServer runs `berth server` without nodes' agents. The nodes have no kubelet, so
// no controllers either: node lifecycle would taint them.
func startServer(dir string) (*berthserver.Server, error) {
	flags := []string{"--disable-agent", "--disable-controller-manager"}
	if os.Getenv("BERTH_SCHEDULER") != "server" {
		flags = append(flags, "--disable-scheduler") // the test runs its own
	}
	srv, err := berthserver.Start(dir, flags...)
	if err != nil {
		return nil, err
	}
	kubeconfig = srv.Kubeconfig
	return srv, nil
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
	return berthserver.Kubectl(t.Context(), 30*time.Second, kubectlBin, kubeconfig, nil, args...)
}
