package kubelet

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// TestPodStartupLatency creates pods one after another and measures create → Running as a
// client watching the pod sees it. TKL_PODS sets how many (the cluster target is measured
// with 100: p50 ≤ 300 ms, p99 ≤ 1 s).
func TestPodStartupLatency(t *testing.T) {
	need(t)
	n := 20
	if v, err := strconv.Atoi(os.Getenv("TKL_PODS")); err == nil && v > 0 {
		n = v
	}
	ns := namespace(t)
	var lat []time.Duration
	for i := range n {
		name := fmt.Sprintf("p%03d", i)
		w, err := cs.CoreV1().Pods(ns).Watch(t.Context(), metav1.ListOptions{FieldSelector: "metadata.name=" + name})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		create(t, newPod(ns, name, busybox("main", "exec sleep 3600")))
		deadline := time.After(30 * time.Second)
	wait:
		for {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					t.Fatalf("watch closed before %s ran", name)
				}
				if p, isPod := ev.Object.(*corev1.Pod); isPod && ev.Type != watch.Deleted && p.Status.Phase == corev1.PodRunning {
					lat = append(lat, time.Since(start))
					break wait
				}
			case <-deadline:
				t.Fatalf("%s not Running within 30s", name)
			}
		}
		w.Stop()
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	t.Logf("pod startup (create → Running through a watch), %d pods one after another on containerd: p50 %s, p90 %s, p99 %s, max %s",
		n, pct(0.5).Round(time.Millisecond), pct(0.9).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	if p50 := pct(0.5); p50 > 2*time.Second {
		t.Errorf("p50 %s: pod start-up is far slower than it should be", p50)
	}
}
