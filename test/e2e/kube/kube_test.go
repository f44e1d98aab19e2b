// Package kube tests `berth server` through the real kubectl and client-go.
package kube

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/berth-project/berth/test/e2e/internal/berthserver"
)

var (
	dataDir    string // the server's --data-dir
	kubeconfig string
	apiURL     string
	kubectlBin = "/usr/bin/kubectl"
	setupErr   error
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "bkube")
	if err != nil {
		setupErr = err
		return m.Run()
	}
	defer os.RemoveAll(dir)
	srv, err := berthserver.Start(dir, "--disable-agent")
	if err != nil {
		setupErr = err
		return m.Run()
	}
	defer srv.Stop(10 * time.Second)
	kubeconfig = srv.Kubeconfig
	dataDir = filepath.Join(dir, "data")
	apiURL = fmt.Sprintf("https://127.0.0.1:%d", srv.Port)
	return m.Run()
}

func need(t *testing.T) {
	t.Helper()
	if setupErr != nil {
		t.Fatal(setupErr)
	}
	if _, err := os.Stat(kubectlBin); err != nil {
		t.Skip("kubectl is not installed at " + kubectlBin)
	}
}

// kubectl runs kubectl against the server and returns its output; failing commands fail the test.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := kubectlRun(t, nil, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

func kubectlRun(t *testing.T, stdin []byte, args ...string) (string, error) {
	return berthserver.Kubectl(t.Context(), 30*time.Second, kubectlBin, kubeconfig, stdin, args...)
}

func client(t *testing.T) *kubernetes.Clientset {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func mustContain(t *testing.T, what, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Fatalf("%s: %q does not contain %q", what, got, want)
	}
}

func uniq(p string) string { return fmt.Sprintf("%s-%d", p, time.Now().UnixNano()%1000000) }

func TestKubeDefaultNamespaces(t *testing.T) {
	need(t)
	out := kubectl(t, "get", "ns")
	for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		mustContain(t, "kubectl get ns", out, ns)
	}
	mustContain(t, "namespaces have a STATUS column", out, "Active")
	mustContain(t, "default service account", kubectl(t, "get", "sa", "-n", "kube-system"), "default")
}

func TestKubeAnonymousIsRefused(t *testing.T) {
	need(t)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for path, want := range map[string]int{"/api/v1/namespaces": 401, "/apis": 401, "/healthz": 200, "/version": 200} {
		resp, err := c.Get(apiURL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("anonymous GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestKubeDeploymentLifecycle(t *testing.T) {
	need(t)
	ns := uniq("dep")
	kubectl(t, "create", "namespace", ns)
	defer kubectlRun(t, nil, "delete", "namespace", ns, "--wait=false")
	kubectl(t, "-n", ns, "create", "deployment", "web", "--image=nginx:1.25", "--replicas=2")
	mustContain(t, "upstream defaults", kubectl(t, "-n", ns, "get", "deploy", "web", "-o", "jsonpath={.spec.strategy.rollingUpdate.maxSurge} {.spec.revisionHistoryLimit} {.spec.progressDeadlineSeconds} {.spec.template.spec.containers[0].imagePullPolicy}"), "25% 10 600 IfNotPresent")
	kubectl(t, "-n", ns, "scale", "deploy", "web", "--replicas=4")
	mustContain(t, "scaled", kubectl(t, "-n", ns, "get", "deploy", "web", "-o", "jsonpath={.spec.replicas}/{.metadata.generation}"), "4/2")
	kubectl(t, "-n", ns, "label", "deploy", "web", "tier=front")
	mustContain(t, "label selector", kubectl(t, "-n", ns, "get", "deploy", "-l", "tier=front", "-o", "name"), "deployment.apps/web")
	kubectl(t, "-n", ns, "annotate", "deploy", "web", "note=hi")
	kubectl(t, "-n", ns, "patch", "deploy", "web", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.26"}]}}}}`)
	kubectl(t, "-n", ns, "patch", "deploy", "web", "--type=merge", "-p", `{"metadata":{"labels":{"m":"1"}}}`)
	kubectl(t, "-n", ns, "patch", "deploy", "web", "--type=json", "-p", `[{"op":"replace","path":"/spec/replicas","value":3}]`)
	got := kubectl(t, "-n", ns, "get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.metadata.labels.m} {.spec.replicas} {.metadata.annotations.note}")
	if got != "nginx:1.26 1 3 hi" {
		t.Fatalf("after the patches: %q", got)
	}
	mustContain(t, "get -o wide", kubectl(t, "-n", ns, "get", "deploy", "-o", "wide"), "nginx:1.26")
	kubectl(t, "-n", ns, "delete", "deploy", "web")
	if out, err := kubectlRun(t, nil, "-n", ns, "get", "deploy", "web"); err == nil || !strings.Contains(out, "NotFound") {
		t.Fatalf("get after delete: %v %s", err, out)
	}
}

func TestKubeBadInput(t *testing.T) {
	need(t)
	out, err := kubectlRun(t, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n"), "create", "-f", "-", "--validate=false")
	if err == nil || !strings.Contains(out, "Invalid value") {
		t.Fatalf("invalid name accepted: %v %s", err, out)
	}
	out, err = kubectlRun(t, nil, "get", "pods", "--field-selector", "spec.bogus=x")
	if err == nil || !strings.Contains(out, "field label not supported") {
		t.Fatalf("bad field selector: %v %s", err, out)
	}
	out, err = kubectlRun(t, nil, "get", "pods", "-l", "a in (")
	if err == nil {
		t.Fatalf("bad label selector accepted: %s", out)
	}
}

func TestKubeClientGoConflictAndWatch(t *testing.T) {
	need(t)
	cs := client(t)
	ctx := t.Context()
	name := uniq("cm")
	cm, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"a": "1"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.CoreV1().ConfigMaps("default").Delete(context.Background(), name, metav1.DeleteOptions{})
	w, err := cs.CoreV1().ConfigMaps("default").Watch(ctx, metav1.ListOptions{ResourceVersion: cm.ResourceVersion, FieldSelector: "metadata.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	stale := cm.DeepCopy()
	cm.Data["a"] = "2"
	if _, err := cs.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	stale.Data["a"] = "3"
	if _, err := cs.CoreV1().ConfigMaps("default").Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("an update with a stale resourceVersion: %v, want a 409 Conflict", err)
	}
	select {
	case ev := <-w.ResultChan():
		got, ok := ev.Object.(*corev1.ConfigMap)
		if ev.Type != watch.Modified || !ok || got.Data["a"] != "2" {
			t.Fatalf("watch event %s %#v", ev.Type, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
	}
}

func TestKubeNamespaceDeletionEmptiesIt(t *testing.T) {
	need(t)
	ns := uniq("gone")
	kubectl(t, "create", "namespace", ns)
	kubectl(t, "-n", ns, "create", "configmap", "c", "--from-literal=a=b")
	kubectl(t, "delete", "namespace", ns)
	cs := client(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := cs.CoreV1().Namespaces().Get(t.Context(), ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace %s still there after 20s (%v)", ns, err)
		}
		time.Sleep(100 * time.Millisecond) // polling the API for the namespace to go
	}
	if cms, err := cs.CoreV1().ConfigMaps(ns).List(t.Context(), metav1.ListOptions{}); err != nil || len(cms.Items) != 0 {
		t.Fatalf("configmaps left in the deleted namespace: %v %v", cms, err)
	}
}

// TestKubeApply: `kubectl apply -f` with kubectl's default validation (strict, done by the
// server through fieldValidation, which the OpenAPI v3 documents announce): create, then
// update, then a manifest with an unknown field is refused and changes nothing; server-side
// apply and create -f work too.
func TestKubeApply(t *testing.T) {
	need(t)
	ns := uniq("apply")
	kubectl(t, "create", "namespace", ns)
	defer kubectlRun(t, nil, "delete", "namespace", ns, "--wait=false")
	manifest := func(replicas int, extra string) []byte {
		return []byte(fmt.Sprintf("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: %s\nspec:\n  replicas: %d\n%s  selector: {matchLabels: {app: api}}\n  template:\n    metadata: {labels: {app: api}}\n    spec:\n      containers:\n      - {name: api, image: bb:1.0}\n", ns, replicas, extra))
	}
	for i, step := range []struct {
		body []byte
		want string
	}{{manifest(2, ""), "created"}, {manifest(3, ""), "configured"}} {
		out, err := kubectlRun(t, step.body, "apply", "-f", "-")
		if err != nil || !strings.Contains(out, step.want) {
			t.Fatalf("apply %d: %v %s", i, err, out)
		}
	}
	out, err := kubectlRun(t, manifest(5, "  bogus: 1\n"), "apply", "-f", "-")
	if err == nil || !strings.Contains(out, `unknown field "spec.bogus"`) {
		t.Fatalf("a manifest with an unknown field was applied: %v %s", err, out)
	}
	mustContain(t, "replicas after the refused apply", kubectl(t, "-n", ns, "get", "deploy", "api", "-o", "jsonpath={.spec.replicas}"), "3")
	if out, err := kubectlRun(t, manifest(4, ""), "apply", "--server-side", "-f", "-"); err != nil {
		t.Fatalf("server-side apply: %v %s", err, out)
	}
	mustContain(t, "replicas after server-side apply", kubectl(t, "-n", ns, "get", "deploy", "api", "-o", "jsonpath={.spec.replicas}"), "4")
	out, err = kubectlRun(t, []byte(strings.ReplaceAll(string(manifest(1, "")), "name: api\n  namespace", "name: api2\n  namespace")), "create", "-f", "-")
	if err != nil || !strings.Contains(out, "api2 created") {
		t.Fatalf("create -f: %v %s", err, out)
	}
}
