// Command scheduler measures Berth's scheduler as upstream's scheduler_perf measures
// SchedulingThroughput: hollow nodes (Node objects with no kubelet) and pods created
// through the API of a real `berth server --disable-agent`, timed from the first pod
// created to the last pod bound. It prints pods/s and the p50/p90/p99 of per-pod
// latency (pod create sent → binding seen in a watch).
//
//	go run ./bench/scheduler                     # starts bin/berth server itself
//	go run ./bench/scheduler -kubeconfig F       # an API server already running
//	go run ./bench/scheduler -scheduler=server   # time the scheduler `berth server` runs
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/berth-project/berth/internal/scheduler"
)

func main() {
	var c config
	flag.StringVar(&c.kubeconfig, "kubeconfig", "", "an API server to use (default: start bin/berth server --disable-agent)")
	flag.StringVar(&c.berth, "berth", "bin/berth", "the berth binary to start")
	flag.IntVar(&c.nodes, "nodes", 5000, "hollow nodes")
	flag.IntVar(&c.pods, "pods", 10000, "pods to schedule (measured)")
	flag.IntVar(&c.workers, "workers", 64, "concurrent create requests")
	flag.StringVar(&c.sched, "scheduler", "in-process", "in-process: run the scheduler here; server: the one berth server runs; bind-only: no scheduler, bind each pod round-robin as soon as it is seen (the API's ceiling)")
	flag.BoolVar(&c.precreate, "precreate", false, "create every pod before the scheduler starts (times scheduling alone)")
	flag.StringVar(&c.cpuprofile, "cpuprofile", "", "write this process's CPU profile (scheduler included) here")
	flag.BoolVar(&c.verbose, "v", false, "log the scheduler's lines")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench/scheduler:", err)
		os.Exit(1)
	}
}

type config struct {
	kubeconfig, berth, sched, cpuprofile string
	nodes, pods, workers                 int
	precreate, verbose                   bool
}

func run(c config) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var meter cpuMeter
	if c.kubeconfig == "" {
		srv, err := startServer(c.berth, c.sched == "server")
		if err != nil {
			return err
		}
		defer srv.stop()
		c.kubeconfig = srv.kubeconfig
		meter.serverPid = srv.cmd.Process.Pid
	}
	rc, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(scheduler.ClientConfig(rc))
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := createNodes(ctx, client, c.nodes, c.workers); err != nil {
		return err
	}
	fmt.Printf("created %d hollow nodes in %v\n", c.nodes, time.Since(t0).Round(time.Millisecond))
	ns := fmt.Sprintf("bench-%d", time.Now().Unix())
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}

	w := newWatcher(ns, c.pods)
	// The in-process scheduler's own pod informer also tells the watcher when pods are
	// bound: a second watch of every pod would cost this process (and the server) as
	// much as the scheduler's, and measure the measurement.
	var f informers.SharedInformerFactory
	if c.sched == "in-process" {
		f = informers.NewSharedInformerFactory(scheduler.ListThenWatch{Interface: client}, 0)
	} else {
		f = informers.NewSharedInformerFactoryWithOptions(scheduler.ListThenWatch{Interface: client}, 0, informers.WithNamespace(ns))
	}
	f.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { w.seen(o.(*corev1.Pod)) },
		UpdateFunc: func(_, o any) { w.seen(o.(*corev1.Pod)) },
	})
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())

	startScheduler := func() error { return nil }
	if c.sched == "in-process" {
		level := slog.LevelWarn
		if c.verbose {
			level = slog.LevelDebug
		}
		s, err := scheduler.New(client, scheduler.Options{Informers: f, Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))})
		if err != nil {
			return err
		}
		startScheduler = func() error {
			go s.Run(ctx)
			// A warm-up pod, bound before the measurement, says the scheduler has synced.
			return warmUp(ctx, client, ns)
		}
	}
	if c.sched == "bind-only" {
		startScheduler = func() error {
			go bindAll(ctx, client, f, c.nodes, c.workers)
			return nil
		}
	}
	if !c.precreate {
		if err := startScheduler(); err != nil {
			return err
		}
	}
	if c.cpuprofile != "" {
		f, err := os.Create(c.cpuprofile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	meter.start()
	created, err := createPods(ctx, client, ns, c.pods, c.workers, w)
	if err != nil {
		return err
	}
	fmt.Printf("created %d pods in %v (%.0f/s)\n", c.pods, created.Round(time.Millisecond), float64(c.pods)/created.Seconds())
	if c.precreate {
		start = time.Now()
		w.restart(start)
		if err := startScheduler(); err != nil {
			return err
		}
	}
	if err := w.wait(ctx, 5*time.Minute); err != nil {
		return err
	}
	elapsed := w.last.Sub(start)
	lat := w.latencies()
	fmt.Printf("nodes=%d pods=%d scheduled in %v: %.0f pods/s\n", c.nodes, c.pods, elapsed.Round(time.Millisecond), float64(c.pods)/elapsed.Seconds())
	if steady := w.last.Sub(w.first); steady > 0 {
		fmt.Printf("first pod bound after %v; from then on %.0f pods/s\n", w.first.Sub(start).Round(time.Millisecond), float64(c.pods-1)/steady.Seconds())
	}
	fmt.Printf("per-pod latency (create sent -> binding seen): p50=%v p90=%v p99=%v max=%v\n",
		pct(lat, 50), pct(lat, 90), pct(lat, 99), pct(lat, 100))
	meter.report(c.pods)
	return nil
}

// podSpec is upstream scheduler_perf's pod-default.yaml.
func podSpec(ns, name string) *corev1.Pod {
	rl := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("500Mi")}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "pause", Image: "registry.k8s.io/pause:3.10",
			Ports:     []corev1.ContainerPort{{ContainerPort: 80}},
			Resources: corev1.ResourceRequirements{Requests: rl, Limits: rl},
		}}},
	}
}

// nodeSpec is upstream scheduler_perf's node-default.yaml, named and labelled.
func nodeSpec(name string) *corev1.Node {
	rl := corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("32Gi")}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: corev1.NodeStatus{
			Capacity: rl, Allocatable: rl, Phase: corev1.NodeRunning,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := (len(d)*p + 99) / 100
	return d[min(max(i-1, 0), len(d)-1)].Round(time.Millisecond)
}

// parallel runs fn(i) for i in [0, n) on workers goroutines; the first error stops it.
func parallel(n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var first atomic.Pointer[error]
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first.Load() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					first.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	if e := first.Load(); e != nil {
		return *e
	}
	return nil
}

func sortDurations(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }
