package kube

import (
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func deploymentYAML(ns, name string, replicas string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ` + name + `
  namespace: ` + ns + `
spec:
  replicas: ` + replicas + `
  selector:
    matchLabels: {app: ` + name + `}
  template:
    metadata:
      labels: {app: ` + name + `}
    spec:
      containers:
      - name: c
        image: nginx:1.25
`
}

// TestServerSideApply: kubectl apply --server-side creates, re-applies, meets a conflict
// with a second field manager (upstream's message), takes the field with
// --force-conflicts; the managed fields say who owns what; generation counts spec changes.
func TestServerSideApply(t *testing.T) {
	need(t)
	ns := uniq("ssa")
	kubectl(t, "create", "namespace", ns)
	defer kubectlRun(t, nil, "delete", "namespace", ns, "--wait=false")
	mustContain(t, "create", kubectlStdin(t, deploymentYAML(ns, "web", "2"), "apply", "--server-side", "-f", "-"), "serverside-applied")
	mustContain(t, "re-apply", kubectlStdin(t, deploymentYAML(ns, "web", "2"), "apply", "--server-side", "-f", "-"), "serverside-applied")
	if got := kubectl(t, "-n", ns, "get", "deploy", "web", "-o", "jsonpath={.metadata.generation}"); got != "1" {
		t.Fatalf("generation after an unchanged re-apply: %s", got)
	}
	out, err := kubectlRun(t, []byte(deploymentYAML(ns, "web", "5")), "apply", "--server-side", "--field-manager=other", "-f", "-")
	if err == nil {
		t.Fatalf("a second manager changed a field the first owns: %s", out)
	}
	mustContain(t, "conflict", out, `Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas`)
	kubectlStdin(t, deploymentYAML(ns, "web", "5"), "apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-")
	if got := kubectl(t, "-n", ns, "get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.metadata.generation}"); got != "5 2" {
		t.Fatalf("after the forced apply: %q", got)
	}
	yaml := kubectl(t, "-n", ns, "get", "deploy", "web", "-o", "yaml", "--show-managed-fields")
	for _, want := range []string{"manager: kubectl", "manager: other", "operation: Apply", "f:replicas: {}", "fieldsType: FieldsV1"} {
		mustContain(t, "managed fields", yaml, want)
	}
	if plain := kubectl(t, "-n", ns, "get", "deploy", "web", "-o", "yaml"); strings.Contains(plain, "managedFields") {
		t.Error("kubectl shows managed fields without --show-managed-fields")
	}
}

func kubectlStdin(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := kubectlRun(t, []byte(stdin), args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestClientSideApplyAndManagers: client-side apply (last-applied annotation and a
// strategic merge patch) keeps working beside managed fields, each writer recorded
// under the manager kubectl names for it.
func TestClientSideApplyAndManagers(t *testing.T) {
	need(t)
	ns := uniq("csa")
	kubectl(t, "create", "namespace", ns)
	defer kubectlRun(t, nil, "delete", "namespace", ns, "--wait=false")
	mustContain(t, "create", kubectlStdin(t, deploymentYAML(ns, "api", "2"), "apply", "-f", "-"), "created")
	mustContain(t, "update", kubectlStdin(t, deploymentYAML(ns, "api", "3"), "apply", "-f", "-"), "configured")
	kubectl(t, "-n", ns, "label", "deploy", "api", "tier=back")
	got := kubectl(t, "-n", ns, "get", "deploy", "api", "--show-managed-fields", "-o",
		`jsonpath={.spec.replicas} {.metadata.labels.tier} {.metadata.managedFields[*].manager}`)
	// (The deployment controller, writing the status, is a manager too.)
	if !strings.HasPrefix(got, "3 back ") || !strings.Contains(got, " kubectl-client-side-apply") || !strings.Contains(got, " kubectl-label") {
		t.Fatalf("after client-side apply and label: %q", got)
	}
	mustContain(t, "last-applied", kubectl(t, "-n", ns, "get", "deploy", "api", "-o", "yaml"), "kubectl.kubernetes.io/last-applied-configuration")
}

// TestApplyThroughClientGo: an apply patch without a field manager, and force on a
// merge patch, are refused as upstream refuses them; a client-go apply records the
// manager it names.
func TestApplyThroughClientGo(t *testing.T) {
	need(t)
	cs := client(t)
	ns := uniq("ssag")
	kubectl(t, "create", "namespace", ns)
	defer kubectlRun(t, nil, "delete", "namespace", ns, "--wait=false")
	ctx := t.Context()
	cm := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"1"}}`)
	_, err := cs.CoreV1().ConfigMaps(ns).Patch(ctx, "c", types.ApplyPatchType, cm, metav1.PatchOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "fieldManager: Required value") {
		t.Fatalf("apply without a field manager: %v", err)
	}
	force := true
	got, err := cs.CoreV1().ConfigMaps(ns).Patch(ctx, "c", types.ApplyPatchType, cm, metav1.PatchOptions{FieldManager: "tool", Force: &force})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.ManagedFields) != 1 || got.ManagedFields[0].Manager != "tool" || got.ManagedFields[0].Operation != metav1.ManagedFieldsOperationApply {
		t.Fatalf("managed fields after apply: %+v", got.ManagedFields)
	}
	_, err = cs.CoreV1().ConfigMaps(ns).Patch(ctx, "c", types.MergePatchType, []byte(`{"data":{"b":"2"}}`), metav1.PatchOptions{Force: &force})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "may not be specified for non-apply patch") {
		t.Fatalf("force on a merge patch: %v", err)
	}
	got, err = cs.CoreV1().ConfigMaps(ns).Patch(ctx, "c", types.MergePatchType, []byte(`{"data":{"b":"2"}}`), metav1.PatchOptions{FieldManager: "patcher"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.ManagedFields) != 2 || got.ManagedFields[1].Manager != "patcher" || got.ManagedFields[1].Operation != metav1.ManagedFieldsOperationUpdate {
		t.Fatalf("managed fields after a merge patch: %+v", got.ManagedFields)
	}
}
