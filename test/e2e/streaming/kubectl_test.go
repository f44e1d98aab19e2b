package streaming

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kubectl is one kubectl binary. Since 1.30 kubectl asks for a WebSocket first (exec,
// attach, cp: v5.channel.k8s.io; port-forward since 1.31: SPDY tunnelled in WebSocket)
// and falls back to SPDY when the upgrade is refused; 1.27 speaks SPDY only.
type kubectl struct {
	name, path string
	websocket  bool
}

var kubectls = []kubectl{
	{"1.32", "/usr/bin/kubectl", true},
	{"1.33", "/usr/lib/google-cloud-sdk/bin/kubectl.1.33", true},
	{"1.27", "/usr/lib/google-cloud-sdk/bin/kubectl.1.27", false},
}

// eachKubectl runs f as a subtest for every kubectl installed.
func eachKubectl(t *testing.T, f func(t *testing.T, k kubectl)) {
	need(t)
	for _, k := range kubectls {
		t.Run(k.name, func(t *testing.T) {
			if _, err := os.Stat(k.path); err != nil {
				t.Skip("kubectl is not installed at " + k.path)
			}
			f(t, k)
		})
	}
}

// run runs kubectl with stdin and returns its stdout, stderr and exit code. A kubectl
// that has not finished within 30 s fails the test: a bad request must not hang.
func (k kubectl) run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.path, append([]string{"--kubeconfig", kubeconfig, "-n", namespace}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("kubectl %s did not finish within 30s\nstdout: %s\nstderr: %s", strings.Join(args, " "), out.String(), errOut.String())
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

func TestKubectlExecSeparatesStdoutAndStderrAndReturnsTheExitCode(t *testing.T) {
	eachKubectl(t, func(t *testing.T, k kubectl) {
		out, errOut, code := k.run(t, "", "exec", webPod, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
		if out != "out\n" || !strings.HasPrefix(errOut, "err\n") || code != 3 {
			t.Fatalf("stdout %q, stderr %q, exit code %d; want %q, %q first and 3", out, errOut, code, "out\n", "err\n")
		}
	})
}

func TestKubectlUsesWebSocketWhereItCan(t *testing.T) {
	eachKubectl(t, func(t *testing.T, k kubectl) {
		// kubectl logs the subprotocol once the WebSocket is up; after a refused upgrade it
		// goes on with SPDY and logs nothing of the kind.
		_, errOut, code := k.run(t, "", "-v=4", "exec", webPod, "--", "true")
		if code != 0 {
			t.Fatalf("exit code %d: %s", code, errOut)
		}
		if got := strings.Contains(errOut, "subprotocol is v5.channel.k8s.io"); got != k.websocket {
			t.Fatalf("WebSocket v5 used: %v, want %v\n%s", got, k.websocket, errOut)
		}
	})
}

func TestKubectlExecStdinEndsWithItsInput(t *testing.T) {
	eachKubectl(t, func(t *testing.T, k kubectl) {
		out, errOut, code := k.run(t, "hi\n", "exec", "-i", webPod, "--", "cat")
		if out != "hi\n" || code != 0 {
			t.Fatalf("stdout %q, exit code %d (%s); want %q and 0", out, code, errOut, "hi\n")
		}
	})
}

func TestKubectlCpCopiesAFileInAndOut(t *testing.T) {
	data := make([]byte, 300<<10)
	rand.Read(data)
	eachKubectl(t, func(t *testing.T, k kubectl) {
		local := filepath.Join(t.TempDir(), "data.bin")
		if err := os.WriteFile(local, data, 0o644); err != nil {
			t.Fatal(err)
		}
		remote := webPod + ":/tmp/data-" + k.name
		if _, errOut, code := k.run(t, "", "cp", local, remote); code != 0 {
			t.Fatalf("cp in: exit code %d: %s", code, errOut)
		}
		back := filepath.Join(t.TempDir(), "back.bin")
		if _, errOut, code := k.run(t, "", "cp", remote, back); code != 0 {
			t.Fatalf("cp out: exit code %d: %s", code, errOut)
		}
		got, err := os.ReadFile(back)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("copied back %d bytes (%v), want the %d sent", len(got), err, len(data))
		}
	})
}

func TestKubectlAttachTalksToTheContainer(t *testing.T) {
	eachKubectl(t, func(t *testing.T, k kubectl) {
		name := "talk-" + strings.ReplaceAll(k.name, ".", "")
		testPod(t, pod(name, corev1.Container{Command: []string{"sh"}, Stdin: true}))
		out, errOut, code := k.run(t, "echo attached-$((6*7))\nexit 0\n", "attach", "-i", name)
		if !strings.Contains(out, "attached-42") || code != 0 {
			t.Fatalf("stdout %q, exit code %d (%s); want attached-42 and 0", out, code, errOut)
		}
	})
}

func TestKubectlPortForwardReachesThePod(t *testing.T) {
	eachKubectl(t, func(t *testing.T, k kubectl) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, k.path, "--kubeconfig", kubeconfig, "-n", namespace, "-v=4", "port-forward", "pod/"+webPod, ":80")
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Wait()
		defer cmd.Process.Kill()
		lines := bufio.NewScanner(stdout)
		forwarding := regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> 80`)
		var port string
		for port == "" && lines.Scan() {
			if m := forwarding.FindStringSubmatch(lines.Text()); m != nil {
				port = m[1]
			}
		}
		if port == "" {
			t.Fatalf("kubectl port-forward did not start forwarding: %s", errOut.String())
		}
		go io.Copy(io.Discard, stdout)
		for range 2 { // each connection is a new pair of streams in the same session
			resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://127.0.0.1:" + port + "/")
			if err != nil {
				t.Fatalf("GET through the forwarded port: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "hello\n" {
				t.Fatalf("body %q, want %q", body, "hello\n")
			}
		}
		cmd.Process.Kill()
		cmd.Wait()
		// kubectl logs the negotiated protocol once the tunnel is up.
		if got := strings.Contains(errOut.String(), "Before WebSocket Upgrade") && !strings.Contains(errOut.String(), "allback"); got != k.websocket {
			t.Fatalf("port-forward tunnelled through WebSocket: %v, want %v\n%s", got, k.websocket, errOut.String())
		}
	})
}

func TestKubectlBadRequestsFailWithTheUsualErrors(t *testing.T) {
	need(t)
	// A pod whose image the node does not have: scheduled, never running.
	p := pod("stuck", corev1.Container{Command: []string{"sh"}})
	p.Spec.Containers[0].Image = "bb:9.9"
	if _, err := cs.CoreV1().Pods(namespace).Create(t.Context(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.CoreV1().Pods(namespace).Delete(context.Background(), p.Name, metav1.DeleteOptions{}) })
	if err := poll(30*time.Second, func() error {
		got, err := cs.CoreV1().Pods(namespace).Get(t.Context(), p.Name, metav1.GetOptions{})
		if err == nil && got.Spec.NodeName == "" {
			err = fmt.Errorf("pod %s is not scheduled", p.Name)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	eachKubectl(t, func(t *testing.T, k kubectl) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"exec", webPod, "-c", "nope", "--", "true"}, "container nope is not valid for pod web"},
			{[]string{"exec", "stuck", "--", "true"}, `container "c" in pod "tws/stuck" is not running`},
			{[]string{"exec", "-i", "stuck", "--", "cat"}, `container "c" in pod "tws/stuck" is not running`},
			{[]string{"attach", "stuck"}, `container "c" in pod "tws/stuck" is not running`},
			{[]string{"exec", "gone", "--", "true"}, `pods "gone" not found`},
		} {
			_, errOut, code := k.run(t, "", tc.args...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("kubectl %s: exit code %d, stderr %q; want an error saying %q", strings.Join(tc.args, " "), code, errOut, tc.want)
			}
		}
	})
}
