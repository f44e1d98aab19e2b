// Command cluster measures `berth server` as a one-node cluster: start → node Ready, pod
// startup latency (create → Running seen through a watch, pods one after another), a
// 100-replica Deployment from apply to all ready, and idle RSS with the agent.
//
//	go run ./bench/cluster -berth bin/berth [-pods 100 -replicas 100]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	berth := flag.String("berth", "bin/berth", "the berth binary")
	pods := flag.Int("pods", 100, "pods started one after another")
	replicas := flag.Int("replicas", 100, "replicas of the Deployment")
	flag.Parse()
	if err := run(*berth, *pods, *replicas); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func rssKiB(pid int) int {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return n
		}
	}
	return 0
}

func run(berth string, nPods, replicas int) error {
	dir, err := os.MkdirTemp("", "bench-cluster")
	if err != nil {
		return err
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	kl, _ := net.Listen("tcp", "127.0.0.1:0")
	kport := kl.Addr().(*net.TCPAddr).Port
	kl.Close()
	kc := filepath.Join(dir, "kubeconfig")
	logf, _ := os.Create(filepath.Join(dir, "server.log"))
	t0 := time.Now()
	srv := exec.Command(berth, "server", "--data-dir", filepath.Join(dir, "data"), "--run-dir", filepath.Join(dir, "run"),
		"--api-port", strconv.Itoa(port), "--kubeconfig", kc, "--node-name", "bench-node", "--kubelet-port", strconv.Itoa(kport),
		"--bridge", "bcb0", "--bridge-cidr", "10.211.0.0/24", "--pod-bridge", "bcp0", "--cluster-cidr", "10.212.0.0/16", "--cgroup-parent", "berth-bench")
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		return err
	}
	sock := "unix://" + filepath.Join(dir, "run", "docker.sock")
	var cs *kubernetes.Clientset
	defer func() {
		// The workloads go first, or the kubelet starts again what docker removes.
		if cs != nil {
			bg := context.Background()
			cs.AppsV1().Deployments("default").DeleteCollection(bg, metav1.DeleteOptions{}, metav1.ListOptions{})
			cs.CoreV1().Pods("default").DeleteCollection(bg, metav1.DeleteOptions{}, metav1.ListOptions{})
			for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
				if l, err := cs.CoreV1().Pods("default").List(bg, metav1.ListOptions{}); err == nil && len(l.Items) == 0 {
					break
				}
			}
		}
		ids, _ := exec.Command("docker", "-H", sock, "ps", "-aq").Output()
		if f := strings.Fields(string(ids)); len(f) > 0 {
			exec.Command("docker", append([]string{"-H", sock, "rm", "-f"}, f...)...).Run()
		}
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
		exec.Command("ip", "link", "del", "bcb0").Run()
		exec.Command("ip", "link", "del", "bcp0").Run()
		exec.Command("nft", "delete", "table", "ip", "berth_bcb0").Run()
		exec.Command("nft", "delete", "table", "ip", "berth_bcp0").Run()
		exec.Command("sh", "-c", "awk -v d="+dir+" 'index($2,d)==1{print $2}' /proc/mounts | sort -r | xargs -r umount -l").Run()
		os.RemoveAll(dir)
	}()
	for {
		if time.Since(t0) > 60*time.Second {
			return fmt.Errorf("no Ready node within 60s (log %s)", logf.Name())
		}
		if cs == nil {
			if cfg, err := clientcmd.BuildConfigFromFlags("", kc); err == nil {
				cfg.QPS, cfg.Burst = 1000, 1000
				cs = kubernetes.NewForConfigOrDie(cfg)
			}
		}
		if cs != nil {
			if n, err := cs.CoreV1().Nodes().Get(context.Background(), "bench-node", metav1.GetOptions{}); err == nil && ready(n) {
				break
			}
		}
		time.Sleep(10 * time.Millisecond) // polling the server under test
	}
	fmt.Printf("start → node Ready: %v\n", time.Since(t0).Round(time.Millisecond))
	time.Sleep(3 * time.Second) // let start-up work finish before sampling idle memory
	fmt.Printf("idle RSS (server + agent + engine, 0 pods): %.1f MiB\n", float64(rssKiB(srv.Process.Pid))/1024)

	if err := importImage(sock); err != nil {
		return err
	}
	ctx := context.Background()
	if err := podStartup(ctx, cs, nPods); err != nil {
		return err
	}
	return bigDeployment(ctx, cs, replicas)
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func importImage(sock string) error {
	script := `set -e; r=$(mktemp -d); mkdir -p "$r/bin" "$r/www"; cp /bin/busybox "$r/bin/busybox"
for a in $(/bin/busybox --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
echo hello > "$r/www/index.html"; tar -C "$r" -c . ; rm -rf "$r"`
	tarball, err := exec.Command("sh", "-c", script).Output()
	if err != nil {
		return err
	}
	cmd := exec.Command("docker", "-H", sock, "import", "-", "bb:1.0")
	cmd.Stdin = bytes.NewReader(tarball)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker import: %v: %s", err, out)
	}
	return nil
}

func podSpec() corev1.PodSpec {
	grace := int64(0)
	return corev1.PodSpec{TerminationGracePeriodSeconds: &grace, Containers: []corev1.Container{{
		Name: "c", Image: "bb:1.0", ImagePullPolicy: corev1.PullNever, Command: []string{"sleep", "3600"},
	}}}
}

// podStartup creates pods one after another, each once the one before is Running, and
// reports create → Running (as a watch shows it) percentiles.
func podStartup(ctx context.Context, cs *kubernetes.Clientset, n int) error {
	var lat []time.Duration
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("lat-%d", i)
		w, err := cs.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
		if err != nil {
			return err
		}
		t0 := time.Now()
		if _, err := cs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: podSpec()}, metav1.CreateOptions{}); err != nil {
			return err
		}
		timeout := time.After(60 * time.Second)
	wait:
		for {
			select {
			case ev := <-w.ResultChan():
				if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type != watch.Deleted && p.Status.Phase == corev1.PodRunning {
					lat = append(lat, time.Since(t0))
					break wait
				}
			case <-timeout:
				w.Stop()
				return fmt.Errorf("pod %s not Running within 60s", name)
			}
		}
		w.Stop()
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) time.Duration { return lat[int(float64(len(lat)-1)*q)].Round(time.Millisecond) }
	fmt.Printf("pod startup (create → Running via watch, %d pods one after another): p50 %v p90 %v p99 %v max %v\n", n, p(0.5), p(0.9), p(0.99), lat[len(lat)-1].Round(time.Millisecond))
	return cs.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
}

// bigDeployment applies a Deployment of n replicas and times it to n ready.
func bigDeployment(ctx context.Context, cs *kubernetes.Clientset, n int) error {
	replicas := int32(n)
	labels := map[string]string{"app": "big"}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "big"}, Spec: appsv1.DeploymentSpec{
		Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: podSpec()},
	}}
	t0 := time.Now()
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return err
	}
	for {
		got, err := cs.AppsV1().Deployments("default").Get(ctx, "big", metav1.GetOptions{})
		if err == nil && got.Status.ReadyReplicas == replicas {
			break
		}
		if time.Since(t0) > 120*time.Second {
			return fmt.Errorf("deployment not ready within 120s: %+v", got.Status)
		}
		time.Sleep(50 * time.Millisecond) // polling the deployment's status
	}
	fmt.Printf("deployment of %d replicas: apply → %d/%d ready in %v\n", n, n, n, time.Since(t0).Round(time.Millisecond))
	return nil
}
