package kubelet

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const kubectlBin = "/usr/bin/kubectl"

func kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectlBin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

// TestKubectlReachesTheKubeletThroughTheAPIServer drives the real kubectl: logs, exec (with
// stdin), cp and port-forward go to the API server, which proxies them to this kubelet.
func TestKubectlReachesTheKubeletThroughTheAPIServer(t *testing.T) {
	need(t)
	if _, err := os.Stat(kubectlBin); err != nil {
		t.Skip("kubectl is not installed at " + kubectlBin)
	}
	ns := namespace(t)
	create(t, newPod(ns, "app", busybox("main", "echo hello from the log; mkdir -p /www && echo page > /www/index.html && exec httpd -f -p 8080 -h /www")))
	waitPod(t, ns, "app", 30*time.Second, "running", running)

	if got := kubectl(t, "", "-n", ns, "logs", "app"); got != "hello from the log\n" {
		t.Errorf("kubectl logs: %q", got)
	}
	if got := kubectl(t, "", "-n", ns, "exec", "app", "--", "sh", "-c", "echo $((6*7))"); got != "42\n" {
		t.Errorf("kubectl exec: %q", got)
	}
	if got := kubectl(t, "piped in\n", "-n", ns, "exec", "-i", "app", "--", "cat"); got != "piped in\n" {
		t.Errorf("kubectl exec -i: %q", got)
	}
	src := filepath.Join(t.TempDir(), "file.txt")
	os.WriteFile(src, []byte("copied\n"), 0o644)
	kubectl(t, "", "-n", ns, "cp", src, "app:/tmp/file.txt")
	if got := kubectl(t, "", "-n", ns, "exec", "app", "--", "cat", "/tmp/file.txt"); got != "copied\n" {
		t.Errorf("after kubectl cp: %q", got)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pf := exec.CommandContext(ctx, kubectlBin, "--kubeconfig", kubeconfig, "-n", ns, "port-forward", "pod/app", ":8080")
	stdout, _ := pf.StdoutPipe()
	pf.Stderr = os.Stderr
	if err := pf.Start(); err != nil {
		t.Fatal(err)
	}
	defer pf.Wait()
	defer cancel()
	port := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+)`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				port <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	var p string
	select {
	case p = <-port:
	case <-time.After(30 * time.Second):
		t.Fatal("kubectl port-forward did not start forwarding")
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%s/index.html", p))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) == "page\n" {
				break
			}
			err = fmt.Errorf("%d %q", resp.StatusCode, b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("through kubectl port-forward: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // polling for httpd to listen
	}
}
