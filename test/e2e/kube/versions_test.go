package kube

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// kubectlVersions are the clients the server must serve alike (the issue names 1.27,
// 1.32 and 1.33; the ones between come free).
var kubectlVersions = []string{
	"/usr/lib/google-cloud-sdk/bin/kubectl.1.27",
	"/usr/bin/kubectl",
	"/usr/lib/google-cloud-sdk/bin/kubectl.1.33",
}

// TestKubectlVersions runs the everyday kubectl commands with each client version, each
// in a namespace of its own.
func TestKubectlVersions(t *testing.T) {
	need(t)
	for _, bin := range kubectlVersions {
		if _, err := os.Stat(bin); err != nil {
			t.Logf("skipping %s: not installed", bin)
			continue
		}
		t.Run(filepath.Base(bin), func(t *testing.T) { everydayKubectl(t, bin) })
	}
}

func everydayKubectl(t *testing.T, bin string) {
	ns := uniq("v")
	run := func(stdin string, env []string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		if stdin != "" {
			cmd.Stdin = strings.NewReader(stdin)
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	k := func(args ...string) string {
		t.Helper()
		out, err := run("", nil, args...)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
		}
		return out
	}
	want := func(what, got string, subs ...string) {
		t.Helper()
		for _, s := range subs {
			if !strings.Contains(got, s) {
				t.Fatalf("%s: want %q in:\n%s", what, s, got)
			}
		}
	}
	k("create", "namespace", ns)
	defer run("", nil, "delete", "namespace", ns, "--wait=false")
	n := []string{"-n", ns}
	kn := func(args ...string) string { t.Helper(); return k(append(n, args...)...) }

	want("api-resources", k("api-resources"), "deployments", "deploy", "apps/v1", "true", "Deployment")
	want("api-versions", k("api-versions"), "apps/v1", "rbac.authorization.k8s.io/v1", "v1")
	want("auth can-i", k("auth", "can-i", "create", "deployments", "-n", ns), "yes")

	// create, in its many forms (deployment and configmap send protobuf bodies).
	kn("create", "deployment", "web", "--image=bb:1.0", "--replicas=2")
	kn("create", "configmap", "cfg", "--from-literal=a=1")
	kn("create", "secret", "generic", "sec", "--from-literal=p=s3cret")
	kn("create", "role", "r", "--verb=get", "--resource=pods")
	kn("create", "rolebinding", "rb", "--role=r", "--user=someone")
	kn("run", "solo", "--image=bb:1.0", "--labels=app=solo,tier=x")
	kn("expose", "deployment", "web", "--port=80")
	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"fromfile","labels":{"app":"ff"}},"spec":{"containers":[{"name":"c","image":"bb:1.0"}]}}`
	if out, err := run(pod, nil, append(n, "create", "-f", "-")...); err != nil {
		t.Fatalf("create -f: %v %s", err, out)
	}

	// get, in every output format.
	want("get deploy", kn("get", "deploy"), "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "web")
	want("get -o wide", kn("get", "deploy", "-o", "wide"), "CONTAINERS", "IMAGES", "SELECTOR", "bb:1.0")
	want("get -o yaml", kn("get", "cm", "cfg", "-o", "yaml"), "kind: ConfigMap", "a: \"1\"")
	want("get -o json", kn("get", "cm", "cfg", "-o", "json"), `"kind": "ConfigMap"`)
	want("jsonpath", kn("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"), "2")
	want("-o name", kn("get", "pods", "-o", "name"), "pod/solo", "pod/fromfile")
	want("custom-columns", kn("get", "pods", "-o", "custom-columns=N:.metadata.name,I:.spec.containers[0].image"), "N", "solo", "bb:1.0")
	want("-l", kn("get", "pods", "-l", "app=solo"), "solo")
	want("--field-selector", kn("get", "pods", "--field-selector", "metadata.name=fromfile"), "fromfile")
	want("--show-labels", kn("get", "pods", "--show-labels"), "app=solo,tier=x")
	want("-A", k("get", "pods", "-A"), "NAMESPACE", ns)
	want("get pods columns", kn("get", "pods"), "READY", "STATUS", "RESTARTS", "AGE")
	want("describe", kn("describe", "deploy", "web"), "Name:", "web", "Replicas:", "StrategyType:", "RollingUpdate")
	want("describe pod", kn("describe", "pod", "solo"), "Image:", "bb:1.0")

	// get -w prints the current state and then waits; it is cut off by --request-timeout.
	out, _ := run("", nil, append(n, "get", "cm", "-w", "--request-timeout=2s")...)
	want("get -w", out, "cfg")

	// change things.
	kn("label", "pod", "solo", "color=blue")
	kn("annotate", "pod", "solo", "note=hi")
	want("label+annotate", kn("get", "pod", "solo", "-o", "jsonpath={.metadata.labels.color}/{.metadata.annotations.note}"), "blue/hi")
	kn("scale", "deploy", "web", "--replicas=4")
	want("scale", kn("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"), "4")
	kn("patch", "cm", "cfg", "--type=merge", "-p", `{"data":{"b":"2"}}`)
	kn("patch", "cm", "cfg", "--type=json", "-p", `[{"op":"add","path":"/data/c","value":"3"}]`)
	kn("patch", "deploy", "web", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"bb","image":"bb:2.0"}]}}}}`)
	want("patches", kn("get", "cm", "cfg", "-o", "jsonpath={.data.b}{.data.c}"), "23")
	want("strategic merge patch", kn("get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"), "bb:2.0")
	yaml := kn("get", "cm", "cfg", "-o", "yaml")
	yaml = strings.Replace(yaml, `a: "1"`, `a: "replaced"`, 1)
	if out, err := run(yaml, nil, append(n, "replace", "-f", "-")...); err != nil {
		t.Fatalf("replace: %v %s", err, out)
	}
	want("replace", kn("get", "cm", "cfg", "-o", "jsonpath={.data.a}"), "replaced")
	editor := filepath.Join(t.TempDir(), "editor.sh")
	os.WriteFile(editor, []byte("#!/bin/sh\nsed -i 's/a: replaced/a: edited/' \"$1\"\n"), 0o755)
	if out, err := run("", []string{"EDITOR=" + editor, "KUBE_EDITOR=" + editor}, append(n, "edit", "cm", "cfg")...); err != nil {
		t.Fatalf("edit: %v %s", err, out)
	}
	want("edit", kn("get", "cm", "cfg", "-o", "jsonpath={.data.a}"), "edited")

	// apply, client- and server-side.
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  k: VALUE\n"
	for i, args := range [][]string{{"apply", "-f", "-"}, {"apply", "-f", "-"}, {"apply", "--server-side", "-f", "-"}} {
		out, err := run(strings.Replace(cm, "VALUE", "v"+string(rune('1'+i)), 1), nil, append(n, args...)...)
		if err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
	want("apply", kn("get", "cm", "applied", "-o", "jsonpath={.data.k}"), "v3")

	// delete, with each cascade: orphan leaves the ReplicaSet, foreground waits for it.
	kn("delete", "pod", "fromfile", "--wait=false")
	kn("delete", "cm", "applied")
	kn("create", "deployment", "orph", "--image=bb:1.0")
	kn("create", "deployment", "fg", "--image=bb:1.0")
	rsOf := func(app string) (string, error) {
		return run("", nil, append(n, "get", "rs", "-l", "app="+app, "-o", "name")...)
	}
	for _, app := range []string{"orph", "fg"} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			if out, _ := rsOf(app); strings.Contains(out, "replicaset") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no ReplicaSet for deployment %s", app)
			}
			time.Sleep(100 * time.Millisecond) // polling for the deployment controller
		}
	}
	kn("delete", "deploy", "orph", "--cascade=orphan")
	if out, _ := rsOf("orph"); !strings.Contains(out, "replicaset") {
		t.Fatalf("--cascade=orphan took the ReplicaSet too: %q", out)
	}
	kn("delete", "deploy", "fg", "--cascade=foreground")
	if out, _ := rsOf("fg"); strings.Contains(out, "replicaset") {
		t.Fatalf("--cascade=foreground returned with the ReplicaSet still there: %q", out)
	}
	kn("delete", "deploy", "web", "--cascade=background")
	kn("delete", "svc", "web")
	if out, _ := run("", nil, append(n, "get", "cm", "applied")...); !strings.Contains(out, "NotFound") && !strings.Contains(out, "not found") {
		t.Fatalf("deleted configmap still there: %s", out)
	}
	var buf bytes.Buffer
	buf.WriteString(kn("get", "all"))
	want("get all", buf.String(), "pod/solo")
}
