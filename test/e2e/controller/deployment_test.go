package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

const webYAML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    kubernetes.io/change-cause: first version
spec:
  replicas: %d
  selector:
    matchLabels: {app: web}
  strategy:
    rollingUpdate: {maxSurge: %d, maxUnavailable: %d}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: busybox
        image: busybox:1.36
        command: [sleep, "3600"]
`

func TestDeploymentRollsOutUpdatesAndRollsBack(t *testing.T) {
	need(t)
	cs := client(t)
	ns := namespace(t, "roll")
	n := startNode(t, cs, uniq("node"))
	n.serve(t, ns)

	if out, err := kubectlRun(t, fmt.Appendf(nil, webYAML, 3, 1, 1), "-n", ns, "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	mustContain(t, "rollout status", kubectl(t, "-n", ns, "rollout", "status", "deploy/web", "--timeout=30s"), `deployment "web" successfully rolled out`)
	get := kubectl(t, "-n", ns, "get", "deploy", "web")
	if f := strings.Fields(strings.Split(get, "\n")[1]); f[1] != "3/3" || f[2] != "3" || f[3] != "3" {
		t.Fatalf("kubectl get deploy:\n%s", get)
	}
	rs1 := kubectl(t, "-n", ns, "get", "rs", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}")
	if strings.Contains(rs1, " ") || !strings.HasPrefix(rs1, "web-") {
		t.Fatalf("replica sets after the first rollout: %q", rs1)
	}
	if all, ready := podCount(t, cs, ns, "app=web"); all != 3 || ready != 3 {
		t.Fatalf("%d pods, %d ready; want 3 and 3", all, ready)
	}

	// Roll to a new image, checking the strategy's bounds at every change.
	check := watchBounds(t, cs, ns, 3+1, 3-1)
	kubectl(t, "-n", ns, "set", "image", "deploy/web", "busybox=busybox:1.37")
	kubectl(t, "-n", ns, "annotate", "deploy/web", "kubernetes.io/change-cause=second version", "--overwrite")
	mustContain(t, "rollout status", kubectl(t, "-n", ns, "rollout", "status", "deploy/web", "--timeout=30s"), "successfully rolled out")
	check()
	replicas := kubectl(t, "-n", ns, "get", "rs", "-l", "app=web", "-o", `jsonpath={range .items[*]}{.metadata.name}={.spec.replicas} {end}`)
	if !strings.Contains(replicas, rs1+"=0") || strings.Count(replicas, "=") != 2 || !strings.Contains(replicas, "=3") {
		t.Fatalf("replica sets after the update: %s", replicas)
	}
	history := kubectl(t, "-n", ns, "rollout", "history", "deploy/web")
	mustContain(t, "history", history, "1         first version")
	mustContain(t, "history", history, "2         second version")

	// Undo to revision 1: the first ReplicaSet comes back as revision 3.
	check = watchBounds(t, cs, ns, 3+1, 3-1)
	kubectl(t, "-n", ns, "rollout", "undo", "deploy/web", "--to-revision=1")
	mustContain(t, "rollout status", kubectl(t, "-n", ns, "rollout", "status", "deploy/web", "--timeout=30s"), "successfully rolled out")
	check()
	replicas = kubectl(t, "-n", ns, "get", "rs", "-l", "app=web", "-o", `jsonpath={range .items[*]}{.metadata.name}={.spec.replicas} {end}`)
	if !strings.Contains(replicas, rs1+"=3") || strings.Count(replicas, "=") != 2 {
		t.Fatalf("replica sets after the undo: %s (want %s reused with 3 replicas)", replicas, rs1)
	}
	mustContain(t, "reused replica set revision", kubectl(t, "-n", ns, "get", "rs", rs1, "-o", `jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}/{.metadata.annotations.deployment\.kubernetes\.io/revision-history}`), "3/1")
	history = kubectl(t, "-n", ns, "rollout", "history", "deploy/web")
	mustContain(t, "history after undo", history, "3         first version")
	if strings.Contains(history, "\n1 ") {
		t.Fatalf("revision 1 still listed after it became 3:\n%s", history)
	}
	mustContain(t, "deployment revision", kubectl(t, "-n", ns, "get", "deploy", "web", "-o", `jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}`), "3")

	describe := kubectl(t, "-n", ns, "describe", "deploy", "web")
	mustContain(t, "describe deploy", describe, "ScalingReplicaSet")
	mustContain(t, "describe deploy", describe, "Scaled up replica set "+rs1+" from 0 to 3")
	mustContain(t, "describe deploy", describe, "NewReplicaSetAvailable")
	mustContain(t, "describe rs", kubectl(t, "-n", ns, "describe", "rs", rs1), "SuccessfulCreate")
}

// watchBounds watches the ReplicaSets and pods of ns from now on and, when the
// returned check is called, fails the test if the ReplicaSets ever asked for more
// than maxTotal pods or fewer than minReady pods were ready at any moment.
func watchBounds(t *testing.T, cs kubernetes.Interface, ns string, maxTotal, minReady int) (check func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var violations []string
	rsw, err := cs.AppsV1().ReplicaSets(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pw, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		spec := map[string]int32{}
		for ev := range rsw.ResultChan() {
			rs, ok := ev.Object.(*appsv1.ReplicaSet)
			if !ok {
				continue
			}
			if ev.Type == watch.Deleted {
				delete(spec, rs.Name)
			} else {
				spec[rs.Name] = *rs.Spec.Replicas
			}
			var total int32
			for _, n := range spec {
				total += n
			}
			if int(total) > maxTotal {
				mu.Lock()
				violations = append(violations, fmt.Sprintf("replica sets ask for %d pods: %v", total, spec))
				mu.Unlock()
			}
		}
	})
	wg.Go(func() {
		ready := map[string]bool{}
		started := false
		for ev := range pw.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			if ev.Type == watch.Deleted || p.DeletionTimestamp != nil {
				delete(ready, p.Name)
			} else {
				ready[p.Name] = isReady(p)
			}
			n := 0
			for _, r := range ready {
				if r {
					n++
				}
			}
			// The watch starts with the existing pods one by one; count from when all are in.
			if n >= minReady+1 {
				started = true
			}
			if started && n < minReady {
				mu.Lock()
				violations = append(violations, fmt.Sprintf("only %d pods ready", n))
				mu.Unlock()
			}
		}
	})
	return func() {
		t.Helper()
		cancel()
		rsw.Stop()
		pw.Stop()
		wg.Wait()
		if len(violations) > 0 {
			t.Fatalf("rollout went out of bounds: %v", violations)
		}
	}
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func TestHundredReplicaDeploymentBecomesReady(t *testing.T) {
	need(t)
	cs := client(t)
	ns := namespace(t, "hundred")
	n := startNode(t, cs, uniq("node"))
	n.serve(t, ns)
	w, err := cs.CoreV1().Pods(ns).Watch(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	hundred := make(chan time.Time, 1)
	go func() {
		seen := 0
		for ev := range w.ResultChan() {
			if ev.Type == watch.Added {
				if seen++; seen == 100 {
					hundred <- time.Now()
				}
			}
		}
	}()
	start := time.Now()
	if out, err := kubectlRun(t, fmt.Appendf(nil, webYAML, 100, 25, 25), "-n", ns, "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	applied := time.Now()
	var created time.Time
	select {
	case created = <-hundred:
	case <-time.After(15 * time.Second):
		t.Fatal("100 pods not created within 15s")
	}
	eventually(t, 15*time.Second, "deployment 100/100 ready", func() (bool, error) {
		d, err := cs.AppsV1().Deployments(ns).Get(context.Background(), "web", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == 100 && d.Status.AvailableReplicas == 100 && d.Status.UpdatedReplicas == 100, err
	})
	t.Logf("100 replicas: kubectl apply took %v; the 100th pod was created %v after it returned; 100/100 ready %v after kubectl apply started",
		applied.Sub(start), created.Sub(applied), time.Since(start))
	if all, _ := podCount(t, cs, ns, "app=web"); all != 100 {
		t.Fatalf("%d pods, want exactly 100", all)
	}
}

func TestDeletingADeploymentCascadesAsAsked(t *testing.T) {
	need(t)
	cs := client(t)
	ns := namespace(t, "cascade")
	n := startNode(t, cs, uniq("node"))
	n.serve(t, ns)
	for _, tc := range []struct {
		cascade  string
		keepsRSs bool
	}{{"background", false}, {"foreground", false}, {"orphan", true}} {
		t.Run(tc.cascade, func(t *testing.T) {
			if out, err := kubectlRun(t, fmt.Appendf(nil, webYAML, 2, 1, 0), "-n", ns, "apply", "-f", "-"); err != nil {
				t.Fatalf("kubectl apply: %v\n%s", err, out)
			}
			kubectl(t, "-n", ns, "rollout", "status", "deploy/web", "--timeout=30s")
			rs := kubectl(t, "-n", ns, "get", "rs", "-l", "app=web", "-o", "name")
			kubectl(t, "-n", ns, "delete", "deploy", "web", "--cascade="+tc.cascade, "--timeout=30s")
			if out, err := kubectlRun(t, nil, "-n", ns, "get", "deploy", "web"); err == nil {
				t.Fatalf("deployment still there after kubectl delete returned:\n%s", out)
			}
			if tc.keepsRSs {
				owners := kubectl(t, "-n", ns, "get", rs, "-o", "jsonpath={.metadata.ownerReferences}")
				if owners != "" {
					t.Fatalf("orphaned replica set still has owners: %s", owners)
				}
				eventually(t, 5*time.Second, "orphaned pods stay", func() (bool, error) {
					all, ready := podCount(t, cs, ns, "app=web")
					return all == 2 && ready == 2, nil
				})
				pods := kubectl(t, "-n", ns, "get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.ownerReferences[0].name}")
				mustContain(t, "pods still owned by the orphaned replica set", pods, strings.TrimPrefix(rs, "replicaset.apps/"))
				kubectl(t, "-n", ns, "delete", rs)
			} else if tc.cascade == "foreground" {
				// kubectl delete --cascade=foreground waits for the deployment, which waits for its dependents.
				if all, _ := podCount(t, cs, ns, "app=web"); all != 0 {
					t.Fatalf("%d pods left after a foreground delete returned", all)
				}
			}
			eventually(t, 15*time.Second, "replica sets and pods gone", func() (bool, error) {
				rss, err := cs.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{})
				if err != nil {
					return false, err
				}
				all, _ := podCount(t, cs, ns, "app=web")
				return len(rss.Items) == 0 && all == 0, nil
			})
		})
	}
}

func TestPausedDeploymentScalesButRollsOutOnlyWhenResumedAndRestartMakesANewReplicaSet(t *testing.T) {
	need(t)
	cs := client(t)
	ns := namespace(t, "pause")
	n := startNode(t, cs, uniq("node"))
	n.serve(t, ns)
	if out, err := kubectlRun(t, fmt.Appendf(nil, webYAML, 2, 1, 0), "-n", ns, "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	kubectl(t, "-n", ns, "rollout", "status", "deploy/web", "--timeout=30s")
	replicaSets := func() string {
		return kubectl(t, "-n", ns, "get", "rs", "-l", "app=web", "-o", `jsonpath={range .items[*]}{.spec.replicas} {end}`)
	}

	kubectl(t, "-n", ns, "rollout", "pause", "deploy/web")
	eventually(t, 10*time.Second, "paused condition", func() (bool, error) {
		out := kubectl(t, "-n", ns, "get", "deploy", "web", "-o", `jsonpath={.status.conditions[?(@.type=="Progressing")].reason}`)
		return out == "DeploymentPaused", nil
	})
	kubectl(t, "-n", ns, "set", "image", "deploy/web", "busybox=busybox:1.37")
	kubectl(t, "-n", ns, "scale", "deploy/web", "--replicas=3")
	eventually(t, 10*time.Second, "paused deployment scaled", func() (bool, error) {
		got := replicaSets()
		return got == "3", fmt.Errorf("replica sets %q", got)
	})

	kubectl(t, "-n", ns, "rollout", "resume", "deploy/web")
	kubectl(t, "-n", ns, "rollout", "status", "deploy/web", "--timeout=30s")
	if got := strings.Fields(replicaSets()); len(got) != 2 || !slices.Contains(got, "3") || !slices.Contains(got, "0") {
		t.Fatalf("after resume: replica sets %q, want the old at 0 and a new one at 3", got)
	}

	kubectl(t, "-n", ns, "rollout", "restart", "deploy/web")
	kubectl(t, "-n", ns, "rollout", "status", "deploy/web", "--timeout=30s")
	if got := strings.Fields(replicaSets()); len(got) != 3 {
		t.Fatalf("after restart: replica sets %q, want three", got)
	}
	mustContain(t, "restarted template", kubectl(t, "-n", ns, "get", "deploy", "web", "-o", "jsonpath={.spec.template.metadata.annotations}"), "kubectl.kubernetes.io/restartedAt")
	mustContain(t, "history", kubectl(t, "-n", ns, "rollout", "history", "deploy/web"), "3 ")
}
