package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/pki"
)

// `kubectl create token` gives a service account token the server accepts, as that
// account, with only its account's rights; `--as` impersonates when allowed; deleting
// the account makes its tokens worthless.
func TestServiceAccountTokensAndImpersonation(t *testing.T) {
	need(t)
	ns := uniq("sa")
	kubectl(t, "create", "namespace", ns)
	defer kubectlRun(t, nil, "delete", "namespace", ns, "--wait=false")
	kubectl(t, "-n", ns, "create", "serviceaccount", "robot")
	token := kubectl(t, "-n", ns, "create", "token", "robot", "--duration=15m")
	if strings.Count(token, ".") != 2 {
		t.Fatalf("create token printed %q, not a JWT", token)
	}
	ca, err := os.ReadFile(filepath.Join(dataDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "robot.kubeconfig")
	if err := pki.WriteKubeconfig(kc, apiURL, "berth", "robot", ca, nil, nil, token); err != nil {
		t.Fatal(err)
	}
	as := func(args ...string) (string, error) {
		return kubectlRun(t, nil, append([]string{"--kubeconfig", kc}, args...)...)
	}
	out, err := as("auth", "whoami")
	if err != nil || !strings.Contains(out, "system:serviceaccount:"+ns+":robot") || !strings.Contains(out, "system:serviceaccounts:"+ns) {
		t.Fatalf("auth whoami with the token: %v\n%s", err, out)
	}
	if out, err := as("-n", ns, "get", "pods"); err == nil || !strings.Contains(out, "forbidden") {
		t.Fatalf("the account read pods without a role: %v %s", err, out)
	}
	kubectl(t, "-n", ns, "create", "rolebinding", "robot-view", "--clusterrole=view", "--serviceaccount="+ns+":robot")
	if out, err := as("-n", ns, "get", "pods"); err != nil {
		t.Fatalf("with the view role, get pods: %v %s", err, out)
	}
	if out, err := as("-n", ns, "auth", "can-i", "--list"); err != nil || !strings.Contains(out, "pods") || !strings.Contains(out, "[get list watch]") {
		t.Fatalf("auth can-i --list: %v\n%s", err, out)
	}

	// Impersonation: the admin may; a user without the impersonate verb may not.
	if out := kubectl(t, "--as=system:serviceaccount:"+ns+":robot", "auth", "whoami"); !strings.Contains(out, "system:serviceaccount:"+ns+":robot") {
		t.Fatalf("admin --as the account: %s", out)
	}
	if out, err := kubectlRun(t, nil, "--as=bob", "-n", ns, "get", "pods"); err == nil || !strings.Contains(out, `User "bob" cannot list`) {
		t.Fatalf("admin --as=bob get pods: %v %s", err, out)
	}
	mallory := asUser(t, "mallory-"+uniq("u"))
	if out, err := kubectlRun(t, nil, "--kubeconfig", mallory, "--as=admin", "get", "ns"); err == nil || !strings.Contains(out, "cannot impersonate") {
		t.Fatalf("a plain user impersonated: %v %s", err, out)
	}

	kubectl(t, "-n", ns, "delete", "serviceaccount", "robot")
	if out, err := as("auth", "whoami"); err == nil || !strings.Contains(out, "Unauthorized") {
		t.Fatalf("the token of a deleted account still works: %v %s", err, out)
	}
}
