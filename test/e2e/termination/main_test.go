// Package termination tests how pods end: graceful deletion as upstream does it, with the
// real kubectl against a real `berth server` whose own node (engine + kubelet) runs the pods.
package termination

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/test/e2e/internal/berthserver"
)

const (
	kubectlBin = "/usr/bin/kubectl"
	nodeName   = "tgr-node"
	image      = "tgr-bb:1"
	cgroup     = "berth-tgr"
)

var (
	setupErr   error
	dir        string
	kubeconfig string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		setupErr = fmt.Errorf("needs root: namespaces, bridges and cgroups")
		return m.Run()
	}
	if _, err := os.Stat(kubectlBin); err != nil {
		setupErr = fmt.Errorf("kubectl is not installed at %s", kubectlBin)
		return m.Run()
	}
	var err error
	if dir, err = os.MkdirTemp("", "tgr"); err != nil {
		setupErr = err
		return m.Run()
	}
	server, err := startServer()
	defer func() {
		berthserver.RemoveNode(dir, server, berthserver.Node{Bridges: []string{"tgr0b", "tgr0p"}, Cgroups: []string{cgroup}})
		if os.Getenv("TGR_KEEP") == "" {
			os.RemoveAll(dir)
		}
	}()
	if err == nil {
		err = importImage()
	}
	setupErr = err
	return m.Run()
}

func need(t *testing.T) {
	t.Helper()
	if setupErr != nil {
		if strings.HasPrefix(setupErr.Error(), "needs root") || strings.Contains(setupErr.Error(), "not installed") {
			t.Skip(setupErr)
		}
		t.Fatal(setupErr)
	}
}

// startServer runs `berth server` with its node, with names and networks of this test's own,
// and waits for the node to be Ready.
func startServer() (*berthserver.Server, error) {
	srv, err := berthserver.Start(dir, "--node-name", nodeName, "--kubelet-port", strconv.Itoa(berthserver.FreePort()),
		"--bridge", "tgr0b", "--bridge-cidr", "10.217.0.0/24", "--pod-bridge", "tgr0p", "--cluster-cidr", "10.218.0.0/16",
		"--cgroup-parent", cgroup)
	if err != nil {
		return nil, err
	}
	kubeconfig = srv.Kubeconfig
	err = poll(90*time.Second, func() error {
		out, err := kubectlOut("get", "node", nodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err != nil || strings.TrimSpace(out) != "True" {
			return fmt.Errorf("node not Ready: %s %v", out, err)
		}
		return nil
	})
	if err != nil {
		return srv, fmt.Errorf("%v\n%s", err, berthserver.Tail(srv.Log(), 8000))
	}
	return srv, nil
}

// importImage puts a busybox image into the node's engine (no registry is reachable).
func importImage() error {
	rootfs := filepath.Join(dir, "rootfs")
	script := `set -e; r="$1"; mkdir -p "$r/bin" "$r/etc" "$r/tmp"; cp /bin/busybox "$r/bin/busybox"
for a in $(/bin/busybox --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$r/etc/passwd"`
	if out, err := exec.Command("sh", "-c", script, "sh", rootfs).CombinedOutput(); err != nil {
		return fmt.Errorf("busybox rootfs: %v\n%s", err, out)
	}
	tarball, err := exec.Command("tar", "-C", rootfs, "-c", ".").Output()
	if err != nil {
		return err
	}
	cmd := exec.Command("docker", "-H", dockerHost(), "import", "-", image)
	cmd.Stdin = bytes.NewReader(tarball)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker import: %v\n%s", err, out)
	}
	return nil
}

func dockerHost() string { return "unix://" + filepath.Join(dir, "run", "docker.sock") }

// poll calls f until it returns nil or d has passed; it returns f's last error.
func poll(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond) // polling the cluster's state
	}
}

func kubectlOut(args ...string) (string, error) {
	return berthserver.Kubectl(context.Background(), 90*time.Second, kubectlBin, kubeconfig, nil, args...)
}

func kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	var in []byte
	if stdin != "" {
		in = []byte(stdin)
	}
	out, err := berthserver.Kubectl(t.Context(), 90*time.Second, kubectlBin, kubeconfig, in, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}
