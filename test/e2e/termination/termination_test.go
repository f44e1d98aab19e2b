package termination

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A shell that stops 3 s after SIGTERM (its trap runs once the current sleep ends).
var trapsTerm = []string{"sh", "-c", "trap 'sleep 3; exit 0' TERM; while true; do sleep 0.2; done"}

// PID 1 without a handler: SIGTERM does nothing, only the kill at the end of the grace period.
var ignoresTerm = []string{"sleep", "3600"}

func pod(ns, name string, grace int, labels map[string]string, command []string) string {
	p := map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name, "namespace": ns, "labels": labels},
		"spec": map[string]any{
			"terminationGracePeriodSeconds": grace,
			"containers":                    []any{map[string]any{"name": "main", "image": image, "imagePullPolicy": "Never", "command": command}},
		},
	}
	b, _ := json.Marshal(p)
	return string(b)
}

// runPod creates the pod and waits for it to be Ready.
func runPod(t *testing.T, ns, name string, grace int, labels map[string]string, command []string) {
	t.Helper()
	kubectl(t, pod(ns, name, grace, labels, command), "apply", "-f", "-")
	kubectl(t, "", "wait", "-n", ns, "--for=condition=Ready", "pod/"+name, "--timeout=90s")
}

// deletion is the pod's metadata.deletionTimestamp and deletionGracePeriodSeconds.
func deletion(t *testing.T, ns, name string) (time.Time, string) {
	t.Helper()
	out := kubectl(t, "", "get", "pod", "-n", ns, name, "-o", "jsonpath={.metadata.deletionTimestamp} {.metadata.deletionGracePeriodSeconds}")
	f := strings.Fields(out)
	if len(f) != 2 {
		t.Fatalf("pod %s/%s is not marked deleted: %q", ns, name, out)
	}
	ts, err := time.Parse(time.RFC3339, f[0])
	if err != nil {
		t.Fatalf("deletionTimestamp %q: %v", f[0], err)
	}
	return ts, f[1]
}

// waitGone polls until the pod is NotFound and returns when that was first seen.
func waitGone(t *testing.T, ns, name string, within time.Duration) time.Time {
	t.Helper()
	err := poll(within, func() error {
		out, err := kubectlOut("get", "pod", "-n", ns, name, "-o", "name")
		if err != nil && strings.Contains(out, "NotFound") {
			return nil
		}
		return fmt.Errorf("still there: %s %v", strings.TrimSpace(out), err)
	})
	if err != nil {
		t.Fatalf("pod %s/%s not gone within %v: %v", ns, name, within, err)
	}
	return time.Now()
}

func TestDeletedPodStaysUntilItsContainerStops(t *testing.T) {
	need(t)
	runPod(t, "default", "trap", 30, nil, trapsTerm)
	start := time.Now()
	kubectl(t, "", "delete", "pod", "trap", "--wait=false")
	ts, grace := deletion(t, "default", "trap")
	if grace != "30" {
		t.Errorf("deletionGracePeriodSeconds %s, want the pod's 30", grace)
	}
	if d := ts.Sub(start); d < 28*time.Second || d > 32*time.Second {
		t.Errorf("deletionTimestamp %v is %v after the delete, want the grace period's 30 s", ts, d)
	}
	if out := kubectl(t, "", "get", "pod", "trap"); !strings.Contains(out, "Terminating") {
		t.Errorf("kubectl get pod shows no Terminating:\n%s", out)
	}
	gone := waitGone(t, "default", "trap", 25*time.Second)
	if d := gone.Sub(start); d < 2*time.Second {
		t.Errorf("gone %v after the delete: before its container's 3 s of shutdown were over", d)
	}
}

func TestForceDeleteGoesAtOnce(t *testing.T) {
	need(t)
	runPod(t, "default", "forced", 30, nil, ignoresTerm)
	out := kubectl(t, "", "delete", "pod", "forced", "--grace-period=0", "--force")
	if !strings.Contains(out, `"forced" force deleted`) {
		t.Errorf("kubectl delete --force said:\n%s", out)
	}
	if out, err := kubectlOut("get", "pod", "forced"); err == nil || !strings.Contains(out, "NotFound") {
		t.Fatalf("force-deleted pod still there: %s", out)
	}
	// Its kubelet saw the grace period 0 too: the container is killed at once, not in 30 s.
	err := poll(15*time.Second, func() error {
		// The pod's sandbox is listed too (as dockershim's pause container was): only
		// its containers count here.
		out, err := exec.Command("docker", "-H", dockerHost(), "ps", "--format", `{{.ID}} {{.Label "io.kubernetes.docker.type"}}`,
			"--filter", "label=io.kubernetes.pod.name=forced", "--filter", "status=running").Output()
		if err != nil {
			return fmt.Errorf("docker ps: %v", err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" && !strings.HasSuffix(l, " podsandbox") {
				return fmt.Errorf("running: %q", out)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the force-deleted pod's container still runs: %v", err)
	}
}

func TestGracePeriodEndsAPodThatIgnoresTerm(t *testing.T) {
	need(t)
	runPod(t, "default", "stubborn", 2, nil, ignoresTerm)
	start := time.Now()
	kubectl(t, "", "delete", "pod", "stubborn", "--wait=false")
	if _, grace := deletion(t, "default", "stubborn"); grace != "2" {
		t.Errorf("deletionGracePeriodSeconds %s, want the pod's 2", grace)
	}
	gone := waitGone(t, "default", "stubborn", 20*time.Second)
	if d := gone.Sub(start); d < 1500*time.Millisecond {
		t.Errorf("gone %v after the delete: the container was not given its 2 s", d)
	}
}

func TestDeleteCollectionIsGraceful(t *testing.T) {
	need(t)
	labels := map[string]string{"app": "coll"}
	runPod(t, "default", "coll-a", 30, labels, trapsTerm)
	runPod(t, "default", "coll-b", 30, labels, trapsTerm)
	kubectl(t, "", "delete", "--raw", "/api/v1/namespaces/default/pods?labelSelector=app%3Dcoll")
	for _, name := range []string{"coll-a", "coll-b"} {
		if _, grace := deletion(t, "default", name); grace != "30" {
			t.Errorf("%s: deletionGracePeriodSeconds %s, want 30", name, grace)
		}
	}
	for _, name := range []string{"coll-a", "coll-b"} {
		waitGone(t, "default", name, 25*time.Second)
	}
}

func TestEvictionUsesThePodsGracePeriod(t *testing.T) {
	need(t)
	runPod(t, "default", "evicted", 7, nil, trapsTerm)
	ev := `{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"evicted","namespace":"default"}}`
	kubectl(t, ev, "create", "--raw", "/api/v1/namespaces/default/pods/evicted/eviction", "-f", "-")
	if _, grace := deletion(t, "default", "evicted"); grace != "7" {
		t.Errorf("deletionGracePeriodSeconds %s, want the pod's 7", grace)
	}
	waitGone(t, "default", "evicted", 25*time.Second)
}

func TestNamespaceStaysUntilItsPodsStopped(t *testing.T) {
	need(t)
	kubectl(t, "", "create", "namespace", "tgr-ns")
	poll(10*time.Second, func() error { _, err := kubectlOut("get", "serviceaccount", "default", "-n", "tgr-ns"); return err })
	runPod(t, "tgr-ns", "trap", 30, nil, trapsTerm)
	kubectl(t, "", "delete", "namespace", "tgr-ns", "--wait=false")
	deletion(t, "tgr-ns", "trap")
	if out := kubectl(t, "", "get", "namespace", "tgr-ns", "-o", "jsonpath={.status.phase}"); out != "Terminating" {
		t.Errorf("namespace phase %q while its pod stops, want Terminating", out)
	}
	err := poll(30*time.Second, func() error {
		out, err := kubectlOut("get", "namespace", "tgr-ns", "-o", "name")
		if err != nil && strings.Contains(out, "NotFound") {
			return nil
		}
		return fmt.Errorf("still there: %s", out)
	})
	if err != nil {
		t.Fatalf("namespace not gone: %v", err)
	}
	if out, err := kubectlOut("get", "pod", "-n", "tgr-ns", "trap"); err == nil || !strings.Contains(out, "NotFound") {
		t.Errorf("the namespace went before its pod: %s", out)
	}
}
