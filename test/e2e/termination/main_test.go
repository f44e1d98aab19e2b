// Package termination tests how pods end: graceful deletion as upstream does it, with the
// real kubectl against a real `berth server` whose own node (engine + kubelet) runs the pods.
package termination

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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
	kubeconfig = filepath.Join(dir, "kubeconfig")
	server, err := startServer()
	defer cleanup(server)
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

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer runs `berth server` with its node, with names and networks of this test's own,
// and waits for the node to be Ready.
func startServer() (*exec.Cmd, error) {
	root, _ := filepath.Abs("../../..")
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(root, "bin", "berth"), "server",
		"--data-dir", filepath.Join(dir, "data"), "--run-dir", filepath.Join(dir, "run"),
		"--api-port", strconv.Itoa(freePort()), "--kubeconfig", kubeconfig, "--node-name", nodeName,
		"--kubelet-port", strconv.Itoa(freePort()), "--bridge", "tgr0b", "--bridge-cidr", "10.217.0.0/24",
		"--pod-bridge", "tgr0p", "--cluster-cidr", "10.218.0.0/16", "--cgroup-parent", cgroup)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting berth server (make build first): %w", err)
	}
	err = poll(90*time.Second, func() error {
		if _, err := os.Stat(kubeconfig); err != nil {
			return err
		}
		out, err := kubectlOut("get", "node", nodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err != nil || strings.TrimSpace(out) != "True" {
			return fmt.Errorf("node not Ready: %s %v", out, err)
		}
		return nil
	})
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		return cmd, fmt.Errorf("%v\n%s", err, tail(log))
	}
	return cmd, nil
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

// cleanup removes the pods' containers, stops the server, and removes what its node made:
// processes left in its cgroups, bridges, nftables tables, mounts and the directory.
func cleanup(server *exec.Cmd) {
	if ids, _ := exec.Command("docker", "-H", dockerHost(), "ps", "-aq").Output(); len(bytes.TrimSpace(ids)) > 0 {
		exec.Command("docker", append([]string{"-H", dockerHost(), "rm", "-f"}, strings.Fields(string(ids))...)...).Run()
	}
	if server != nil && server.Process != nil {
		server.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { server.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			server.Process.Kill()
			<-done
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(data), dir) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil && pid != os.Getpid() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	filepath.Walk("/sys/fs/cgroup", func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Name() == "cgroup.procs" && strings.Contains(p, "/"+cgroup+"/") {
			data, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		return nil
	})
	for _, l := range []string{"tgr0b", "tgr0p"} {
		exec.Command("ip", "link", "del", l).Run()
		exec.Command("nft", "delete", "table", "ip", "berth_"+l).Run()
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	var ours []string
	for _, l := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], dir) {
			ours = append(ours, f[1])
		}
	}
	for i := len(ours) - 1; i >= 0; i-- {
		syscall.Unmount(ours[i], syscall.MNT_DETACH)
	}
	poll(5*time.Second, func() error {
		var left error
		filepath.Walk("/sys/fs/cgroup", func(p string, info os.FileInfo, err error) error {
			if err == nil && info.IsDir() && filepath.Base(p) == cgroup {
				if out, err := exec.Command("find", p, "-depth", "-type", "d", "-exec", "rmdir", "{}", ";").CombinedOutput(); err != nil {
					left = fmt.Errorf("%s: %s", p, out)
				}
				return filepath.SkipDir
			}
			return nil
		})
		return left
	})
	if os.Getenv("TGR_KEEP") == "" {
		os.RemoveAll(dir)
	}
}

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
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kubectlBin, append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
	return string(out), err
}

func kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectlBin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func tail(b []byte) []byte {
	if len(b) > 8000 {
		return b[len(b)-8000:]
	}
	return b
}
