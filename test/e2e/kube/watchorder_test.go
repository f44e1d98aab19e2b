package kube

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// A watch sees every update of every object, in the order of their resource versions,
// while several writers update several objects at once: informers (and so every
// controller) rely on it.
func TestWatchDeliversEveryUpdateInOrder(t *testing.T) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 2000, 2000 // client-go's default 5/s would pace the writers
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := fmt.Sprintf("watch-order-%d", time.Now().UnixNano()%100000)
	if _, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	const objects, updates = 6, 300
	for i := range objects {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("cm", i)}, Data: map[string]string{"n": "0"}}
		if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := cs.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var wg sync.WaitGroup
	start := time.Now()
	defer func() { t.Logf("%d updates in %v", objects*updates, time.Since(start)) }()
	for i := range objects {
		wg.Go(func() {
			for n := 1; n <= updates; n++ {
				cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, fmt.Sprint("cm", i), metav1.GetOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				cm.Data["n"] = strconv.Itoa(n)
				if _, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	next := map[string]int{}
	var lastRV int64
	done := 0
	for done < objects {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("watch ended early; next values %v", next)
			}
			cm, isCM := ev.Object.(*corev1.ConfigMap)
			if !isCM || ev.Type != watch.Modified && ev.Type != watch.Added {
				t.Fatalf("unexpected event %s %T", ev.Type, ev.Object)
			}
			rv, _ := strconv.ParseInt(cm.ResourceVersion, 10, 64)
			if rv <= lastRV {
				t.Fatalf("%s %s at resource version %d after %d: out of order", ev.Type, cm.Name, rv, lastRV)
			}
			lastRV = rv
			n, _ := strconv.Atoi(cm.Data["n"])
			if ev.Type == watch.Added {
				continue // the initial state
			}
			if want := next[cm.Name] + 1; n != want {
				t.Fatalf("%s: saw value %d, want %d (an update was missed or repeated)", cm.Name, n, want)
			}
			next[cm.Name] = n
			if n == updates {
				done++
			}
		case <-ctx.Done():
			t.Fatalf("timed out; next values %v", next)
		}
	}
	wg.Wait()
}
