package kube

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/pki"
)

// asUser writes a kubeconfig for a user with a client certificate from the cluster CA.
func asUser(t *testing.T, user string, groups ...string) string {
	t.Helper()
	ca, err := pki.LoadOrCreateCA(filepath.Join(dataDir, "pki"), "berth-ca")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPEM, keyPEM, err := ca.IssueClient(dir, user, user, groups)
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(dir, "kubeconfig")
	if err := pki.WriteKubeconfig(kc, apiURL, "berth", user, ca.CertPEM(), certPEM, keyPEM, ""); err != nil {
		t.Fatal(err)
	}
	return kc
}

// TestKubeRBAC: a user with no role is refused (403, upstream's wording) and `kubectl auth
// can-i` says no; a Role and RoleBinding made by the admin let them read pods in that one
// namespace, and nothing more.
func TestKubeRBAC(t *testing.T) {
	need(t)
	alice := asUser(t, "alice-"+uniq("u"), "dev")
	as := func(args ...string) (string, error) {
		return kubectlRun(t, nil, append([]string{"--kubeconfig", alice}, args...)...)
	}
	ns := uniq("rbac")
	kubectl(t, "create", "namespace", ns)
	defer kubectlRun(t, nil, "delete", "namespace", ns, "--wait=false")

	out, err := as("-n", ns, "get", "pods")
	if err == nil || !strings.Contains(out, "forbidden") || !strings.Contains(out, `cannot list resource "pods"`) {
		t.Fatalf("a user without roles listed pods: %v %s", err, out)
	}
	if out, _ := as("-n", ns, "auth", "can-i", "list", "pods"); strings.TrimSpace(out) != "no" {
		t.Fatalf("auth can-i before the binding: %q", out)
	}
	kubectl(t, "-n", ns, "create", "role", "pod-reader", "--verb=get,list,watch", "--resource=pods")
	kubectl(t, "-n", ns, "create", "rolebinding", "read-pods", "--role=pod-reader", "--group=dev")
	if out, err := as("-n", ns, "get", "pods"); err != nil {
		t.Fatalf("after the binding, get pods: %v %s", err, out)
	}
	for args, want := range map[string]string{
		"list pods":            "yes",
		"delete pods":          "no",
		"list pods -n default": "no",
		"create deployments":   "no",
	} {
		a := append([]string{"-n", ns, "auth", "can-i"}, strings.Fields(args)...)
		if out, _ := as(a...); strings.TrimSpace(out) != want {
			t.Errorf("auth can-i %s: %q, want %s", args, strings.TrimSpace(out), want)
		}
	}
	if out, err := as("get", "namespaces"); err == nil {
		t.Fatalf("a namespaced role listed namespaces: %s", out)
	}
	if strings.TrimSpace(kubectl(t, "-n", "kube-system", "auth", "can-i", "delete", "deployments")) != "yes" {
		t.Fatal("the admin (system:masters) is not allowed everything")
	}
}
