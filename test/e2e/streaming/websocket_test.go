package streaming

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"
)

// These tests use client-go's WebSocket clients directly, without the SPDY fallback
// kubectl has: they fail unless the API server serves the WebSocket protocols.

// streamURL is the URL of a pod's streaming subresource with its options.
func streamURL(sub, pod string, opts runtime.Object) *url.URL {
	req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource(sub)
	if opts != nil {
		req = req.VersionedParams(opts, scheme.ParameterCodec)
	}
	return req.URL()
}

// session runs a v5.channel.k8s.io session (exec or attach) and returns its error.
func session(t *testing.T, sub, pod string, params runtime.Object, opts remotecommand.StreamOptions) error {
	t.Helper()
	ex, err := remotecommand.NewWebSocketExecutor(restConfig, http.MethodGet, streamURL(sub, pod, params).String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err = ex.StreamWithContext(ctx, opts)
	if ctx.Err() != nil {
		t.Fatalf("the %s session did not end: %v", sub, err)
	}
	return err
}

func TestWebSocketExecSeparatesStreamsAndReportsTheExitCode(t *testing.T) {
	need(t)
	var out, errOut bytes.Buffer
	err := session(t, "exec", webPod, &corev1.PodExecOptions{Command: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, Stdout: true, Stderr: true},
		remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
	var exit exec.CodeExitError
	if !errors.As(err, &exit) || exit.Code != 3 {
		t.Fatalf("err = %v, want exit code 3", err)
	}
	if out.String() != "out\n" || errOut.String() != "err\n" {
		t.Fatalf("stdout %q, stderr %q", out.String(), errOut.String())
	}
}

func TestWebSocketExecStdinCloseEndsTheCommand(t *testing.T) {
	need(t)
	var out bytes.Buffer
	err := session(t, "exec", webPod, &corev1.PodExecOptions{Command: []string{"wc", "-c"}, Stdin: true, Stdout: true},
		remotecommand.StreamOptions{Stdin: strings.NewReader(strings.Repeat("x", 100000)), Stdout: &out})
	if err != nil || strings.TrimSpace(out.String()) != "100000" {
		t.Fatalf("stdout %q, err %v; want 100000 bytes counted", out.String(), err)
	}
}

func TestWebSocketExecTTYFollowsTerminalResizes(t *testing.T) {
	need(t)
	sizes := make(chan remotecommand.TerminalSize, 1)
	sizes <- remotecommand.TerminalSize{Width: 91, Height: 37}
	out := &syncBuffer{}
	go func() { // the second size once the command has seen the first
		if waitFor(out, "first", 20*time.Second) {
			sizes <- remotecommand.TerminalSize{Width: 132, Height: 50}
		}
	}()
	typing, keyboard := io.Pipe() // a terminal nobody types into
	defer keyboard.Close()
	script := `until [ "$(stty size)" = "37 91" ]; do sleep 0.05; done; echo first
until [ "$(stty size)" = "50 132" ]; do sleep 0.05; done; echo second`
	err := session(t, "exec", webPod, &corev1.PodExecOptions{Command: []string{"sh", "-c", script}, Stdin: true, Stdout: true, TTY: true},
		remotecommand.StreamOptions{Stdin: typing, Stdout: out, Tty: true, TerminalSizeQueue: sizeQueue(sizes)})
	if err != nil || !strings.Contains(out.String(), "second") {
		t.Fatalf("output %q, err %v; want both sizes seen", out.String(), err)
	}
}

func TestWebSocketAttachToATTY(t *testing.T) {
	need(t)
	testPod(t, pod("tty", corev1.Container{Command: []string{"sh"}, Stdin: true, TTY: true}))
	typing, keyboard := io.Pipe()
	defer keyboard.Close()
	out := &syncBuffer{}
	go func() {
		fmt.Fprint(keyboard, "echo tty-$((6*7))\n")
		if waitFor(out, "tty-42", 20*time.Second) {
			fmt.Fprint(keyboard, "exit\n")
		}
	}()
	err := session(t, "attach", "tty", &corev1.PodAttachOptions{Stdin: true, Stdout: true, TTY: true},
		remotecommand.StreamOptions{Stdin: typing, Stdout: out, Tty: true})
	if err != nil || !strings.Contains(out.String(), "tty-42") {
		t.Fatalf("output %q, err %v; want the shell's answer and its end", out.String(), err)
	}
}

func TestWebSocketPortForwardTunnelsSPDY(t *testing.T) {
	need(t)
	dialer, err := portforward.NewSPDYOverWebsocketDialer(streamURL("portforward", webPod, nil), restConfig)
	if err != nil {
		t.Fatal(err)
	}
	stop, ready := make(chan struct{}), make(chan struct{})
	defer close(stop)
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:80"}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- pf.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("port-forward: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("port-forward not ready within 20s")
	}
	ports, err := pf.GetPorts()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d/", ports[0].Local))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if body, _ := io.ReadAll(resp.Body); string(body) != "hello\n" {
		t.Fatalf("body %q, want %q", body, "hello\n")
	}
}

type sizeQueue chan remotecommand.TerminalSize

func (q sizeQueue) Next() *remotecommand.TerminalSize {
	s, ok := <-q
	if !ok {
		return nil
	}
	return &s
}

// syncBuffer is a terminal's screen, read while the session writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor reports whether s appears on the screen within d.
func waitFor(b *syncBuffer, s string, d time.Duration) bool {
	return poll(d, func() error {
		if !strings.Contains(b.String(), s) {
			return fmt.Errorf("%q not on the screen", s)
		}
		return nil
	}) == nil
}

func TestWebSocketExecNeedsCreateAsWellAsGet(t *testing.T) {
	need(t)
	ctx := t.Context()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "peek", Namespace: namespace},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods", "pods/exec"}, Verbs: []string{"get"}}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "peek", Namespace: namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "peek"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "peek", Namespace: namespace}},
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "peek", Namespace: namespace}}
	if _, err := cs.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role, err := cs.RbacV1().Roles(namespace).Create(ctx, role, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().RoleBindings(namespace).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, "peek", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(restConfig)
	cfg.BearerToken = tr.Status.Token
	exec := func() error {
		ex, err := remotecommand.NewWebSocketExecutor(cfg, http.MethodGet,
			streamURL("exec", webPod, &corev1.PodExecOptions{Command: []string{"true"}, Stdout: true}).String())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: io.Discard})
	}
	// The WebSocket's GET is authorized as get; the session it opens needs create, as a POST does.
	if err := exec(); err == nil || !strings.Contains(err.Error(), `cannot create resource "pods/exec"`) {
		t.Fatalf("exec with only get on pods/exec: err = %v, want forbidden to create pods/exec", err)
	}
	role.Rules[0].Verbs = []string{"get", "create"}
	if _, err := cs.RbacV1().Roles(namespace).Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := poll(10*time.Second, exec); err != nil {
		t.Fatalf("exec with get and create on pods/exec: %v", err)
	}
}

func TestWebSocketV4IsServedByTheRuntime(t *testing.T) {
	need(t)
	// Older clients (v4.channel.k8s.io has no stdin close) are passed through to the
	// kubelet and its runtime's streaming server, as upstream does.
	u := streamURL("exec", webPod, &corev1.PodExecOptions{Command: []string{"sh", "-c", "echo v4; exit 2"}, Stdout: true, Stderr: true})
	ex, err := remotecommand.NewWebSocketExecutorForProtocols(restConfig, http.MethodGet, u.String(), "v4.channel.k8s.io")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: io.Discard})
	var exit exec.CodeExitError
	if !errors.As(err, &exit) || exit.Code != 2 || out.String() != "v4\n" {
		t.Fatalf("stdout %q, err %v; want v4 and exit code 2", out.String(), err)
	}
}
