// Command kubeapi measures `berth server` as a Kubernetes API server: how fast it is
// ready, the latency of creates at a fixed rate, and whether 1000 watchers all see
// every update (and what they cost in memory). It starts its own server on a temp
// data dir.
//
//	go run ./bench/kubeapi -berth bin/berth [-rate 500 -seconds 10 -watchers 1000 -updates 1000]
package main

import (
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
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	berth := flag.String("berth", "bin/berth", "the berth binary")
	kubectl := flag.String("kubectl", "/usr/bin/kubectl", "kubectl, for the ready-time measure")
	rate := flag.Int("rate", 500, "creates per second")
	seconds := flag.Int("seconds", 10, "how long to create at that rate")
	watchers := flag.Int("watchers", 1000, "concurrent watchers of pods")
	updates := flag.Int("updates", 1000, "pod updates the watchers must all see")
	flag.Parse()
	if err := run(*berth, *kubectl, *rate, *seconds, *watchers, *updates); err != nil {
		fmt.Fprintln(os.Stderr, "kubeapi:", err)
		os.Exit(1)
	}
}

type server struct {
	cmd        *exec.Cmd
	dir        string
	kubeconfig string
	port       int
}

func start(berth, dir string, port int) (*server, error) {
	s := &server{dir: dir, kubeconfig: filepath.Join(dir, "kubeconfig"), port: port}
	os.Remove(s.kubeconfig)
	log, err := os.OpenFile(filepath.Join(dir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(berth, "server", "--data-dir", filepath.Join(dir, "data"), "--run-dir", filepath.Join(dir, "run"),
		"--api-port", strconv.Itoa(port), "--kubeconfig", s.kubeconfig, "--disable-agent")
	s.cmd.Stdout, s.cmd.Stderr = log, log
	return s, s.cmd.Start()
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
}

// ready is the time from start to the first `kubectl get ns` that succeeds.
func ready(berth, kubectl, dir string, port int) (time.Duration, *server, error) {
	t0 := time.Now()
	s, err := start(berth, dir, port)
	if err != nil {
		return 0, nil, err
	}
	deadline := t0.Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(s.kubeconfig); err == nil {
			if exec.Command(kubectl, "--kubeconfig", s.kubeconfig, "get", "ns").Run() == nil {
				return time.Since(t0), s, nil
			}
		}
		time.Sleep(5 * time.Millisecond) // polling the server under test
	}
	s.stop()
	return 0, nil, fmt.Errorf("server not ready within 30s (log: %s)", filepath.Join(dir, "server.log"))
}

func freePort() int {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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

func run(berth, kubectl string, rate, seconds, watchers, updates int) error {
	dir, err := os.MkdirTemp("", "bench-kubeapi")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	port := freePort()

	cold, s, err := ready(berth, kubectl, dir, port)
	if err != nil {
		return err
	}
	s.stop()
	warm, s, err := ready(berth, kubectl, dir, port)
	if err != nil {
		return err
	}
	defer s.stop()
	fmt.Printf("ready (start → kubectl get ns served): cold %v, warm %v\n", cold.Round(time.Millisecond), warm.Round(time.Millisecond))

	cfg, err := clientcmd.BuildConfigFromFlags("", s.kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 100000, 100000
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx := context.Background()
	time.Sleep(2 * time.Second) // let the server settle before sampling idle memory
	idle := rssKiB(s.cmd.Process.Pid)
	fmt.Printf("idle RSS: %.1f MiB\n", float64(idle)/1024)

	if err := creates(ctx, cs, rate, seconds); err != nil {
		return err
	}
	return watches(ctx, cfg, cs, s.cmd.Process.Pid, watchers, updates)
}

// creates makes ConfigMaps at a fixed rate (open loop: a slow answer does not slow the
// arrivals) and reports the latency percentiles.
func creates(ctx context.Context, cs *kubernetes.Clientset, rate, seconds int) error {
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bench-create"}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	n := rate * seconds
	lat := make([]time.Duration, n)
	var failed atomic.Int64
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(rate)
	t0 := time.Now()
	for i := 0; i < n; i++ {
		if d := time.Until(t0.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d) // pacing the arrivals
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			start := time.Now()
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)}, Data: map[string]string{"k": strings.Repeat("v", 256)}}
			if _, err := cs.CoreV1().ConfigMaps("bench-create").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
				failed.Add(1)
			}
			lat[i] = time.Since(start)
		}(i)
	}
	wg.Wait()
	took := time.Since(t0)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[int(float64(len(lat)-1)*p)] }
	fmt.Printf("creates: %d at %d/s over %v (achieved %.0f/s), %d failed; latency p50 %v p90 %v p99 %v max %v\n",
		n, rate, took.Round(time.Millisecond), float64(n)/took.Seconds(), failed.Load(),
		pct(0.5).Round(100*time.Microsecond), pct(0.9).Round(100*time.Microsecond), pct(0.99).Round(100*time.Microsecond), lat[len(lat)-1].Round(time.Millisecond))
	if failed.Load() > 0 {
		return fmt.Errorf("%d creates failed", failed.Load())
	}
	return nil
}

// watches starts many watchers of pods, updates pods, and checks each watcher saw
// every update.
func watches(ctx context.Context, cfg *rest.Config, cs *kubernetes.Clientset, pid, watchers, updates int) error {
	ns := "bench-watch"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	pods := 100
	for i := 0; i < pods; i++ {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%d", i)}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "bb:1.0"}}}}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	before := rssKiB(pid)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	seen := make([]atomic.Int64, watchers)
	var started, done sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < watchers; i++ {
		started.Add(1)
		done.Add(1)
		go func(i int) {
			defer done.Done()
			c := kubernetes.NewForConfigOrDie(cfg) // its own connection pool, as separate clients would have
			w, err := c.CoreV1().Pods(ns).Watch(wctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
			started.Done()
			if err != nil {
				fmt.Fprintln(os.Stderr, "watch:", err)
				return
			}
			defer w.Stop()
			for ev := range w.ResultChan() {
				if ev.Type == watch.Modified {
					if seen[i].Add(1) == int64(updates) {
						return
					}
				}
			}
		}(i)
	}
	started.Wait()
	fmt.Printf("watchers: %d started in %v; RSS %.1f → ", watchers, time.Since(t0).Round(time.Millisecond), float64(before)/1024)
	withWatchers := rssKiB(pid)
	fmt.Printf("%.1f MiB\n", float64(withWatchers)/1024)
	t1 := time.Now()
	for i := 0; i < updates; i++ {
		patch := fmt.Sprintf(`{"metadata":{"labels":{"n":"%d"}}}`, i)
		if _, err := cs.CoreV1().Pods(ns).Patch(ctx, fmt.Sprintf("p-%d", i%pods), types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			return err
		}
	}
	updated := time.Since(t1)
	finished := make(chan struct{})
	go func() { done.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(60 * time.Second):
	}
	delivered := time.Since(t1)
	cancel()
	short := 0
	var total int64
	for i := range seen {
		total += seen[i].Load()
		if seen[i].Load() < int64(updates) {
			short++
		}
	}
	fmt.Printf("updates: %d in %v; all %d×%d=%d events delivered in %v; watchers that missed events: %d; peak RSS with watchers %.1f MiB\n",
		updates, updated.Round(time.Millisecond), watchers, updates, total, delivered.Round(time.Millisecond), short, float64(rssKiB(pid))/1024)
	if short > 0 {
		return fmt.Errorf("%d watchers missed events", short)
	}
	return nil
}
