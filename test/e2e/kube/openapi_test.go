package kube

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// The kubectl releases the OpenAPI documents are checked with: today's, and the oldest
// and newest Google's SDK ships.
var kubectls = []string{"/usr/bin/kubectl", "/usr/lib/google-cloud-sdk/bin/kubectl.1.27", "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"}

// kubectlWith runs one kubectl binary against the server, with extra environment.
func kubectlWith(t *testing.T, bin string, env []string, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestKubectlExplain: kubectl explain reads the served OpenAPI (v3, and v2 protobuf when
// told to use the old explain), for a top-level field and recursively, in three releases.
func TestKubectlExplain(t *testing.T) {
	need(t)
	for _, bin := range kubectls {
		if _, err := os.Stat(bin); err != nil {
			t.Logf("%s is not installed", bin)
			continue
		}
		for _, env := range [][]string{nil, {"KUBECTL_EXPLAIN_OPENAPIV3=false"}} {
			out, err := kubectlWith(t, bin, env, "", "explain", "deployment.spec")
			if err != nil {
				t.Fatalf("%s %v explain deployment.spec: %v\n%s", bin, env, err, out)
			}
			for _, want := range []string{"KIND:", "Deployment", "replicas", "<integer>", "Number of desired pods"} {
				mustContain(t, bin+" explain deployment.spec", out, want)
			}
			out, err = kubectlWith(t, bin, env, "", "explain", "pod.spec.containers", "--recursive")
			if err != nil {
				t.Fatalf("%s %v explain --recursive: %v\n%s", bin, env, err, out)
			}
			for _, want := range []string{"livenessProbe", "httpGet", "containerPort", "image"} {
				mustContain(t, bin+" explain pod.spec.containers --recursive", out, want)
			}
		}
	}
}

// TestKubectlValidatesUnknownFields: kubectl's default validation (strict, left to the
// server because its OpenAPI offers fieldValidation) refuses an unknown field with
// upstream's message; --validate=warn creates the object and prints the warning.
func TestKubectlValidatesUnknownFields(t *testing.T) {
	need(t)
	ns := uniq("oav")
	kubectl(t, "create", "namespace", ns)
	defer kubectlRun(t, nil, "delete", "namespace", ns, "--wait=false")
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: NAME\n  namespace: " + ns + "\n  bogus: 1\ndata:\n  a: b\n"
	for i, bin := range kubectls {
		if _, err := os.Stat(bin); err != nil {
			continue
		}
		name := "cm" + string(rune('a'+i))
		body := strings.ReplaceAll(cm, "NAME", name)
		for _, verb := range []string{"apply", "create"} {
			out, err := kubectlWith(t, bin, nil, body, verb, "-f", "-")
			if err == nil {
				t.Fatalf("%s %s accepted an unknown field: %s", bin, verb, out)
			}
			mustContain(t, bin+" "+verb, out, `ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "metadata.bogus"`)
		}
		out, err := kubectlWith(t, bin, nil, body, "create", "--validate=warn", "-f", "-")
		if err != nil {
			t.Fatalf("%s create --validate=warn: %v %s", bin, err, out)
		}
		mustContain(t, bin+" create --validate=warn", out, `Warning: unknown field "metadata.bogus"`)
	}
}

// warnings collects the Warning headers client-go receives.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// TestFieldValidationModes: fieldValidation=Strict refuses unknown fields (400), Warn
// (and no parameter) accepts them with a Warning header, Ignore accepts them silently —
// on create, update and each patch type.
func TestFieldValidationModes(t *testing.T) {
	need(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	warn := &warnings{}
	cfg.WarningHandler = warn
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns := uniq("oafv")
	kubectl(t, "create", "namespace", ns)
	defer kubectlRun(t, nil, "delete", "namespace", ns, "--wait=false")
	rc := cs.CoreV1().RESTClient()
	ctx := t.Context()
	for _, mode := range []string{"Strict", "Warn", "Ignore", ""} {
		name := "fv-" + strings.ToLower(mode)
		if mode == "" {
			name = "fv-default"
		}
		check := func(what string, res rest.Result) {
			t.Helper()
			err := res.Error()
			got := warn.take()
			switch mode {
			case "Strict":
				if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), `unknown field "spec.foo"`) {
					t.Fatalf("%s Strict: %v", what, err)
				}
			case "Ignore":
				if err != nil || len(got) != 0 {
					t.Fatalf("%s Ignore: %v, warnings %q", what, err, got)
				}
			default:
				if err != nil || len(got) != 1 || got[0] != `unknown field "spec.foo"` {
					t.Fatalf("%s %q: %v, warnings %q", what, mode, err, got)
				}
			}
		}
		params := func(r *rest.Request) *rest.Request {
			if mode != "" {
				r = r.Param("fieldValidation", mode)
			}
			return r
		}
		body := `{"apiVersion":"v1","kind":"Service","metadata":{"name":"` + name + `"},"spec":{"foo":1,"ports":[{"port":80}]}}`
		check("create", params(rc.Post().Namespace(ns).Resource("services")).SetHeader("Content-Type", "application/json").Body([]byte(body)).Do(ctx))
		if mode == "Strict" {
			kubectl(t, "-n", ns, "create", "service", "clusterip", name, "--tcp=80")
		}
		svc, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		upd := `{"apiVersion":"v1","kind":"Service","metadata":{"name":"` + name + `","resourceVersion":"` + svc.ResourceVersion + `"},"spec":{"foo":2,"ports":[{"port":81}]}}`
		check("update", params(rc.Put().Namespace(ns).Resource("services").Name(name)).SetHeader("Content-Type", "application/json").Body([]byte(upd)).Do(ctx))
		for pt, patch := range map[types.PatchType]string{
			types.MergePatchType:          `{"spec":{"foo":3}}`,
			types.StrategicMergePatchType: `{"spec":{"foo":3}}`,
			types.JSONPatchType:           `[{"op":"add","path":"/spec/foo","value":3}]`,
		} {
			check("patch "+string(pt), params(rc.Patch(pt).Namespace(ns).Resource("services").Name(name)).Body([]byte(patch)).Do(ctx))
		}
	}
}
