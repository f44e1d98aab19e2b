package kube

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/berth-project/berth/test/e2e/internal/berthserver"
)

// ownServer starts a berth server of the test's own on dir (kept across restarts).
func ownServer(t *testing.T, dir string, port int) *berthserver.Server {
	t.Helper()
	srv, err := berthserver.StartOn(dir, port, "--disable-agent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	return srv
}

func ownClient(t *testing.T, dir string) *kubernetes.Clientset {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	return kubernetes.NewForConfigOrDie(cfg)
}

// A server killed with SIGKILL while ten clients create objects loses none of the
// creates it acknowledged; after a restart resourceVersions keep growing and a watch
// from the last version seen before the kill resumes.
func TestKill9LosesNoAcknowledgedCreate(t *testing.T) {
	need(t)
	dir := t.TempDir()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	srv := ownServer(t, dir, port)
	cs := ownClient(t, dir)
	ctx := t.Context()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dur"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	acked := map[string]int64{} // name → resourceVersion the server answered
	var maxRV int64
	cctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for c := 0; c < 10; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; cctx.Err() == nil; i++ {
				name := fmt.Sprintf("c%d-%d", c, i)
				cm, err := cs.CoreV1().ConfigMaps("dur").Create(cctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"i": name}}, metav1.CreateOptions{})
				if err != nil {
					return // the server is gone: the create may or may not have landed
				}
				rv, _ := strconv.ParseInt(cm.ResourceVersion, 10, 64)
				mu.Lock()
				acked[name] = rv
				maxRV = max(maxRV, rv)
				mu.Unlock()
			}
		}(c)
	}
	// Kill once a good number of creates are in.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 1000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond) // polling the clients' progress
	}
	srv.Kill()
	stop()
	wg.Wait()
	if len(acked) < 1000 {
		t.Fatalf("only %d creates acknowledged before the kill", len(acked))
	}

	ownServer(t, dir, port)
	cs = ownClient(t, dir)
	list, err := cs.CoreV1().ConfigMaps("dur").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, cm := range list.Items {
		have[cm.Name] = true
	}
	for name := range acked {
		if !have[name] {
			t.Errorf("acknowledged create %s is gone after the restart", name)
		}
	}
	listRV, _ := strconv.ParseInt(list.ResourceVersion, 10, 64)
	if listRV < maxRV {
		t.Fatalf("resourceVersion went back: list at %d after acknowledging %d", listRV, maxRV)
	}

	w, err := cs.CoreV1().ConfigMaps("dur").Watch(ctx, metav1.ListOptions{ResourceVersion: strconv.FormatInt(maxRV, 10)})
	if err != nil {
		t.Fatalf("watch from the last version seen before the kill: %v", err)
	}
	defer w.Stop()
	cm, err := cs.CoreV1().ConfigMaps("dur").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rv, _ := strconv.ParseInt(cm.ResourceVersion, 10, 64); rv <= maxRV {
		t.Fatalf("a create after the restart got resourceVersion %d, not above %d", rv, maxRV)
	}
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the resumed watch ended")
			}
			if ev.Type == watch.Added && ev.Object.(*corev1.ConfigMap).Name == "after" {
				return
			}
		case <-timeout:
			t.Fatal("the resumed watch did not deliver the create made after the restart")
		}
	}
}
