// Package streaming tests the API server's pod streams (exec, attach, port-forward, cp)
// end to end: one `berth server` with its own node, driven by the real kubectl of several
// versions (1.32 and 1.33 try WebSocket first, 1.27 speaks SPDY only) and by client-go's
// WebSocket clients without their SPDY fallback.
package streaming

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/berth-project/berth/test/e2e/internal/berthserver"
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
	defer func() {
		berthserver.RemoveNode(dir, server, berthserver.Node{Bridges: []string{"tws0b", "tws0p"}, Cgroups: []string{cgroup}})
		os.RemoveAll(dir)
	}()
	if err == nil {
		err = prepare()
	}
	if err != nil {
		setupErr = err
	}
	code := m.Run()
	if code != 0 {
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		fmt.Fprintf(os.Stderr, "--- server log (last 16 KiB):\n%s\n", berthserver.Tail(log, 16<<10))
	}
	return code
}

// startServer runs bin/berth server with its agent and waits for its kubeconfig.
func startServer() (*berthserver.Server, error) {
	srv, err := berthserver.Start(dir, "--node-name", nodeName, "--kubelet-port", strconv.Itoa(berthserver.FreePort()),
		"--bridge", "tws0b", "--bridge-cidr", "10.225.0.0/24", "--pod-bridge", "tws0p", "--cluster-cidr", "10.226.0.0/16",
		"--cgroup-parent", cgroup)
	if err != nil {
		return nil, err
	}
	kubeconfig = srv.Kubeconfig
	if restConfig, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
		return srv, err
	}
	cs, err = kubernetes.NewForConfig(restConfig)
	return srv, err
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
