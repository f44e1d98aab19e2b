// Package streaming tests the API server's pod streams (exec, attach, port-forward, cp)
// end to end: one `berth server` with its own node, driven by the real kubectl of several
// versions (1.32 and 1.33 try WebSocket first, 1.27 speaks SPDY only) and by client-go's
// WebSocket clients without their SPDY fallback.
package streaming

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
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	nodeName  = "tws-node"
	namespace = "tws"
	image     = "bb:1.0" // busybox, imported into the node's engine
	cgroup    = "berth-tws"
	webPod    = "web" // serves "hello" on port 80; the pod most tests exec into
)

var (
	setupErr   error
	dir        string
	kubeconfig string
	restConfig *rest.Config
	cs         *kubernetes.Clientset
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		setupErr = fmt.Errorf("the streaming tests run as root: namespaces, bridges and cgroups")
		return m.Run()
	}
	var err error
	if dir, err = os.MkdirTemp("", "tws"); err != nil {
		setupErr = err
		return m.Run()
	}
	server, err := startServer()
	defer cleanup(server)
	if err == nil {
		err = prepare()
	}
	if err != nil {
		setupErr = err
	}
	code := m.Run()
	if code != 0 {
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		fmt.Fprintf(os.Stderr, "--- server log (last 16 KiB):\n%s\n", tail(log, 16<<10))
	}
	return code
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startServer runs bin/berth server with its agent and waits for its kubeconfig.
func startServer() (*exec.Cmd, error) {
	root, _ := filepath.Abs("../../..")
	kubeconfig = filepath.Join(dir, "kubeconfig")
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(root, "bin", "berth"), "server", "--data-dir", filepath.Join(dir, "data"),
		"--run-dir", filepath.Join(dir, "run"), "--api-port", strconv.Itoa(freePort()), "--kubeconfig", kubeconfig,
		"--node-name", nodeName, "--kubelet-port", strconv.Itoa(freePort()), "--bridge", "tws0b", "--bridge-cidr", "10.225.0.0/24",
		"--pod-bridge", "tws0p", "--cluster-cidr", "10.226.0.0/16", "--cgroup-parent", cgroup)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting berth server (make build first): %w", err)
	}
	if err := poll(30*time.Second, func() error { _, err := os.Stat(kubeconfig); return err }); err != nil {
		return cmd, fmt.Errorf("berth server wrote no kubeconfig: %w", err)
	}
	if restConfig, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
		return cmd, err
	}
	cs, err = kubernetes.NewForConfig(restConfig)
	return cmd, err
}

// prepare waits for the node, imports the image and starts the web pod.
func prepare() error {
	ctx := context.Background()
	err := poll(90*time.Second, func() error {
		n, err := cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("node %s is not Ready", nodeName)
	})
	if err != nil {
		return err
	}
	rootfs := filepath.Join(dir, "rootfs")
	script := `set -e; r="$1"; mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/www"; cp /bin/busybox "$r/bin/busybox"
for a in $(/bin/busybox --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$r/etc/passwd"; echo hello > "$r/www/index.html"
tar -C "$r" -c . | docker -H "unix://$2/docker.sock" import - ` + image
	if out, err := exec.Command("sh", "-c", script, "sh", rootfs, filepath.Join(dir, "run")).CombinedOutput(); err != nil {
		return fmt.Errorf("importing the busybox image: %v\n%s", err, out)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	return startPod(ctx, pod(webPod, corev1.Container{Command: []string{"httpd", "-f", "-p", "80", "-h", "/www"}}))
}

// pod is a busybox pod of one container named c.
func pod(name string, c corev1.Container) *corev1.Pod {
	c.Name, c.Image, c.ImagePullPolicy = "c", image, corev1.PullNever
	grace := int64(1)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{c}, TerminationGracePeriodSeconds: &grace, RestartPolicy: corev1.RestartPolicyNever},
	}
}

// startPod creates p and waits for it to run.
func startPod(ctx context.Context, p *corev1.Pod) error {
	if _, err := cs.CoreV1().Pods(namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		return err
	}
	return poll(60*time.Second, func() error {
		got, err := cs.CoreV1().Pods(namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("pod %s is %s", p.Name, got.Status.Phase)
		}
		return nil
	})
}

// testPod starts a pod for one test and deletes it afterwards.
func testPod(t *testing.T, p *corev1.Pod) {
	t.Helper()
	if err := startPod(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.CoreV1().Pods(namespace).Delete(context.Background(), p.Name, metav1.DeleteOptions{}) })
}

func need(t *testing.T) {
	t.Helper()
	if setupErr != nil {
		t.Fatal(setupErr)
	}
}

// poll calls f until it succeeds or d has passed.
func poll(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v: %w", d, err)
		}
		time.Sleep(100 * time.Millisecond) // polling the cluster's state
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// cleanup stops the server and removes what it and its containers left: containers
// (they outlive the engine), processes of the node's cgroup, links, nftables tables,
// mounts and cgroups, then the directory.
func cleanup(server *exec.Cmd) {
	sock := "unix://" + filepath.Join(dir, "run", "docker.sock")
	if ids, _ := exec.Command("docker", "-H", sock, "ps", "-aq").Output(); len(bytes.TrimSpace(ids)) > 0 {
		exec.Command("docker", append([]string{"-H", sock, "rm", "-f"}, strings.Fields(string(ids))...)...).Run()
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
	for _, pid := range cgroupPIDs() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, l := range []string{"tws0b", "tws0p"} {
		exec.Command("ip", "link", "del", l).Run()
	}
	for _, tb := range []string{"berth_tws0b", "berth_tws0p"} {
		exec.Command("nft", "delete", "table", "ip", tb).Run()
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	var ours []string
	for _, l := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			ours = append(ours, f[1])
		}
	}
	for i := len(ours) - 1; i >= 0; i-- {
		syscall.Unmount(ours[i], syscall.MNT_DETACH)
	}
	poll(5*time.Second, func() error { // the cgroups go once the killed processes have left
		var ours []string
		filepath.WalkDir("/sys/fs/cgroup", func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() && d.Name() == cgroup {
				ours = append(ours, p)
				return filepath.SkipDir
			}
			return nil
		})
		for _, p := range ours {
			exec.Command("find", p, "-depth", "-type", "d", "-exec", "rmdir", "{}", ";").Run()
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("cgroup %s is busy", p)
			}
		}
		return nil
	})
	os.RemoveAll(dir)
}

// cgroupPIDs are the processes left in the node's cgroup (container supervisors).
func cgroupPIDs() []int {
	var pids []int
	filepath.Walk("/sys/fs/cgroup", func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Name() == "cgroup.procs" && strings.Contains(p, "/"+cgroup+"/") {
			data, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
		}
		return nil
	})
	return pids
}
