// Package cluster tests Berth as a cluster: `berth server` with its own node, and a
// second node (`berth agent`) in a network namespace of its own playing another
// machine, driven by the real kubectl and client-go.
package cluster

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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/berth-project/berth/test/e2e/internal/berthserver"
)

const (
	kubectlBin = "/usr/bin/kubectl"
	hostIP     = "10.203.0.1" // the server's end of the link to node 2
	node2IP    = "10.203.0.2"
)

// cluster is a server (node tcl-n1) and an agent (node tcl-n2) in their own netns.
type cluster struct {
	t          *testing.T
	dir        string
	root       string // the repository, for bin/berth
	port       int
	kubeconfig string
	netns      string
	server     *proc
	agent      *proc
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newCluster(t *testing.T) *cluster {
	if os.Geteuid() != 0 {
		t.Skip("needs root: namespaces, bridges and cgroups")
	}
	if _, err := os.Stat(kubectlBin); err != nil {
		t.Skip("kubectl is not installed at " + kubectlBin)
	}
	root, _ := filepath.Abs("../../..")
	c := &cluster{t: t, dir: t.TempDir(), root: root, port: freePort(t), netns: fmt.Sprintf("tcl-n2-%d", os.Getpid()%100000)}
	c.kubeconfig = filepath.Join(c.dir, "kubeconfig")
	t.Cleanup(c.cleanup)

	// Node 2's "machine": a network namespace joined to the host by a veth pair.
	run(t, "ip", "netns", "add", c.netns)
	run(t, "ip", "link", "add", "tclv0", "type", "veth", "peer", "name", "tclv1")
	run(t, "ip", "link", "set", "tclv1", "netns", c.netns)
	run(t, "ip", "addr", "add", hostIP+"/24", "dev", "tclv0")
	run(t, "ip", "link", "set", "tclv0", "up")
	for _, args := range [][]string{
		{"addr", "add", node2IP + "/24", "dev", "tclv1"}, {"link", "set", "tclv1", "up"}, {"link", "set", "lo", "up"},
		{"route", "add", "default", "via", hostIP},
	} {
		run(t, "ip", append([]string{"-n", c.netns}, args...)...)
	}
	c.startServer()
	c.startAgent()
	c.waitReady("tcl-n1", "tcl-n2")
	c.image(filepath.Join(c.dir, "s-run"), "")
	c.image(filepath.Join(c.dir, "a-run"), c.netns)
	return c
}

func (c *cluster) startServer() {
	c.t.Helper()
	os.Remove(c.kubeconfig)
	c.server = c.spawn("server.log", "", "server", "--data-dir", filepath.Join(c.dir, "s-data"), "--run-dir", filepath.Join(c.dir, "s-run"),
		"--api-port", strconv.Itoa(c.port), "--kubeconfig", c.kubeconfig, "--node-name", "tcl-n1", "--advertise-address", hostIP,
		"--kubelet-port", strconv.Itoa(freePort(c.t)), "--bridge", "tcl1b", "--bridge-cidr", "10.201.0.0/24", "--pod-bridge", "tcl1p",
		"--cluster-cidr", "10.202.0.0/16", "--cgroup-parent", "berth-tcl1", "--node-monitor-grace-period", "15s") // the kubelet renews its Lease every 10 s
	c.eventually(30*time.Second, "server ready", func() error { _, err := os.Stat(c.kubeconfig); return err })
}

func (c *cluster) startAgent() {
	c.t.Helper()
	c.agent = c.spawn("agent.log", c.netns, "agent", "--server", fmt.Sprintf("https://%s:%d", hostIP, c.port),
		"--token-file", filepath.Join(c.dir, "s-data", "node-token"), "--data-dir", filepath.Join(c.dir, "a-data"),
		"--run-dir", filepath.Join(c.dir, "a-run"), "--node-name", "tcl-n2", "--node-ip", node2IP,
		"--kubelet-port", "10250", "--bridge", "tcl2b", "--bridge-cidr", "10.204.0.0/24", "--pod-bridge", "tcl2p",
		"--cluster-cidr", "10.202.0.0/16", "--cgroup-parent", "berth-tcl2")
}

// spawn starts bin/berth ARGS (in netns if given), logging to the test's directory.
// proc is a started process; done closes when it has exited (noted in its log).
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (c *cluster) spawn(logName, netns string, args ...string) *proc {
	c.t.Helper()
	logf, err := os.OpenFile(filepath.Join(c.dir, logName), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	bin := filepath.Join(c.root, "bin", "berth")
	cmd := exec.Command(bin, args...)
	if netns != "" {
		// Only the network namespace: `ip netns exec` would also remount /sys and hide
		// the cgroup hierarchy from the node.
		cmd = exec.Command("nsenter", append([]string{"--net=/run/netns/" + netns, bin}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logf, "=== %s exited: %v\n", args[0], err)
		logf.Close()
		close(p.done)
	}()
	return p
}

func stopCmd(p *proc, sig syscall.Signal) {
	if p == nil {
		return
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (c *cluster) cleanup() {
	// Containers outlive the engines: remove them first, through each node's engine.
	for _, node := range []struct{ run, netns string }{{"s-run", ""}, {"a-run", c.netns}} {
		sock := "unix://" + filepath.Join(c.dir, node.run, "docker.sock")
		ids, _ := exec.Command("docker", "-H", sock, "ps", "-aq").Output()
		if f := strings.Fields(string(ids)); len(f) > 0 {
			exec.Command("docker", append([]string{"-H", sock, "rm", "-f"}, f...)...).Run()
		}
	}
	stopCmd(c.agent, syscall.SIGTERM)
	stopCmd(c.server, syscall.SIGTERM)
	if c.t.Failed() {
		for _, f := range []string{"server.log", "agent.log"} {
			data, _ := os.ReadFile(filepath.Join(c.dir, f))
			if len(data) > 20000 {
				data = data[len(data)-20000:]
			}
			c.t.Logf("--- %s (tail)\n%s", f, data)
		}
	}
	// What the kubelets started again after the removal above, the supervisors and the
	// pods' infra processes of both nodes, their links, tables, mounts and cgroups.
	berthserver.Sweep(c.dir, berthserver.Node{Bridges: []string{"tcl1b", "tcl1p"}, Cgroups: []string{"berth-tcl1", "berth-tcl2"}})
	exec.Command("ip", "netns", "del", c.netns).Run()
	exec.Command("ip", "link", "del", "tclv0").Run()
}

func (c *cluster) eventually(d time.Duration, what string, f func() error) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(200 * time.Millisecond) // polling the cluster's state
	}
}

func (c *cluster) kubectl(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(c.t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectlBin, append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *cluster) mustKubectl(stdin string, args ...string) string {
	c.t.Helper()
	out, err := c.kubectl(stdin, args...)
	if err != nil {
		c.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (c *cluster) client() *kubernetes.Clientset {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		c.t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(cfg)
}

func (c *cluster) waitReady(nodes ...string) {
	c.t.Helper()
	c.eventually(90*time.Second, "nodes Ready", func() error {
		for _, n := range nodes {
			out, err := c.kubectl("", "get", "node", n, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
			if err != nil || strings.TrimSpace(out) != "True" {
				return fmt.Errorf("node %s: %s %v", n, out, err)
			}
		}
		return nil
	})
}

// image imports a busybox image as bb:1.0 (and bb:2.0) into one node's engine.
func (c *cluster) image(runDir, netns string) {
	c.t.Helper()
	rootfs := filepath.Join(c.dir, "rootfs")
	if _, err := os.Stat(rootfs); err != nil {
		script := `set -e; r="$1"; mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/www"; cp /bin/busybox "$r/bin/busybox"
for a in $(/bin/busybox --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$r/etc/passwd"; echo hello > "$r/www/index.html"`
		run(c.t, "sh", "-c", script, "sh", rootfs)
	}
	tarball, err := exec.Command("tar", "-C", rootfs, "-c", ".").Output()
	if err != nil {
		c.t.Fatal(err)
	}
	for _, tag := range []string{"bb:1.0", "bb:2.0"} {
		cmd := exec.Command("docker", "-H", "unix://"+filepath.Join(runDir, "docker.sock"), "import", "-", tag)
		cmd.Stdin = bytes.NewReader(tarball)
		if out, err := cmd.CombinedOutput(); err != nil {
			c.t.Fatalf("docker import into %s: %v\n%s", runDir, err, out)
		}
	}
}

// runningPods maps the running, not terminating pods of a label selector to their nodes.
func (c *cluster) runningPods(selector string) (map[string]string, error) {
	pods, err := c.client().CoreV1().Pods("default").List(c.t.Context(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			out[p.Name] = p.Spec.NodeName
		}
	}
	return out, nil
}

func deployment(name, image string, replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: %[3]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      containers:
      - {name: web, image: "%[2]s", imagePullPolicy: Never, command: [httpd, -f, -p, "80", -h, /www]}
`, name, image, replicas)
}
