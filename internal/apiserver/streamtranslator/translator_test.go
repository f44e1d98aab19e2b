package streamtranslator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"
	kubeletpf "k8s.io/cri-streaming/pkg/streaming/portforward"
	kubeletrc "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// The tests put the translator between client-go's WebSocket clients (no SPDY fallback:
// they fail unless the WebSocket is served) and a kubelet played by the SPDY servers of
// k8s.io/cri-streaming, which the kubelet's runtimes use, over a fake container runtime.

// runtime plays the containers: commands "report" (out, err, exit 3), "cat" (stdin to
// stdout), "sizes" (prints the first two terminal sizes) and anything else fails to start.
type runtime struct{ echo string }

func (runtime) ExecInContainer(ctx context.Context, _, _, _ string, cmd []string, in io.Reader, out, errw io.WriteCloser, _ bool, resize <-chan kubeletrc.TerminalSize, _ time.Duration) error {
	switch cmd[0] {
	case "report":
		fmt.Fprintln(out, "out")
		fmt.Fprintln(errw, "err")
		return utilexec.CodeExitError{Err: errors.New("exit status 3"), Code: 3}
	case "cat":
		_, err := io.Copy(out, in)
		return err
	case "sizes":
		for range 2 {
			select {
			case s := <-resize:
				fmt.Fprintf(out, "%dx%d\n", s.Width, s.Height)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	return fmt.Errorf("executable %q not found", cmd[0])
}

func (r runtime) AttachContainer(_ context.Context, _, _, _ string, in io.Reader, out, _ io.WriteCloser, _ bool, _ <-chan kubeletrc.TerminalSize) error {
	fmt.Fprint(out, r.echo)
	_, err := io.Copy(out, in)
	return err
}

func (runtime) PortForward(ctx context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		return err
	}
	defer c.Close()
	go io.Copy(c, stream)
	_, err = io.Copy(stream, c)
	return err
}

// kubelet serves /exec/POD, /attach/POD and /portForward/POD over SPDY; pod "gone" is
// refused the way a kubelet refuses a container that is not running.
func kubelet(t *testing.T) *httptest.Server {
	rt := runtime{echo: "attached\n"}
	mux := http.NewServeMux()
	gone := func(w http.ResponseWriter, r *http.Request) bool {
		if r.PathValue("pod") == "gone" {
			http.Error(w, `container "c" in pod "ns/gone" is not running`, http.StatusNotFound)
			return true
		}
		return false
	}
	opts := func(r *http.Request) *kubeletrc.Options {
		s := streamsOf(r)
		return &kubeletrc.Options{Stdin: s.stdin, Stdout: s.stdout, Stderr: s.stderr && !s.tty, TTY: s.tty}
	}
	mux.HandleFunc("/exec/{pod}", func(w http.ResponseWriter, r *http.Request) {
		if !gone(w, r) {
			kubeletrc.ServeExec(w, r, rt, r.PathValue("pod"), "", "c", r.URL.Query()["command"], opts(r), time.Minute, 10*time.Second, kubeletrc.SupportedStreamingProtocols)
		}
	})
	mux.HandleFunc("/attach/{pod}", func(w http.ResponseWriter, r *http.Request) {
		kubeletrc.ServeAttach(w, r, rt, r.PathValue("pod"), "", "c", opts(r), time.Minute, 10*time.Second, kubeletrc.SupportedStreamingProtocols)
	})
	mux.HandleFunc("/portForward/{pod}", func(w http.ResponseWriter, r *http.Request) {
		if !gone(w, r) {
			kubeletpf.ServePortForward(w, r, rt, r.PathValue("pod"), "", nil, time.Minute, 10*time.Second, kubeletpf.SupportedProtocols)
		}
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// apiServer translates every request to the same path on the kubelet, as proxy.go does
// with the real paths.
func apiServer(t *testing.T) *httptest.Server {
	k := kubelet(t)
	tr := &Translator{Transport: &http.Transport{}}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		loc, _ := url.Parse(k.URL + r.URL.Path)
		loc.RawQuery = r.URL.RawQuery
		switch {
		case IsRemoteCommand(r):
			tr.ServeRemoteCommand(w, r, loc)
		case IsPortForwardTunnel(r):
			if err := tr.ServePortForward(w, r, loc); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
			}
		default:
			http.Error(w, "not a translated stream", http.StatusBadRequest)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// stream runs a WebSocket (v5 only) session against path and returns stdout, stderr and
// the session's error.
func stream(t *testing.T, path string, opts remotecommand.StreamOptions) (string, string, error) {
	t.Helper()
	s := apiServer(t)
	exec, err := remotecommand.NewWebSocketExecutor(&rest.Config{Host: s.URL}, http.MethodGet, s.URL+path)
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if opts.Stdout != nil {
		opts.Stdout = &out
	}
	if opts.Stderr != nil {
		opts.Stderr = &errOut
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = exec.StreamWithContext(ctx, opts)
	if ctx.Err() != nil {
		t.Fatalf("the session did not end: %v", err)
	}
	return out.String(), errOut.String(), err
}

func TestExecSeparatesStdoutAndStderrAndReportsTheExitCode(t *testing.T) {
	out, errOut, err := stream(t, "/exec/p?command=report&stdout=true&stderr=true", remotecommand.StreamOptions{Stdout: io.Discard, Stderr: io.Discard})
	var exit exec.CodeExitError
	if !errors.As(err, &exit) || exit.Code != 3 {
		t.Fatalf("err = %v, want exit code 3", err)
	}
	if out != "out\n" || errOut != "err\n" {
		t.Fatalf("stdout %q stderr %q, want %q and %q", out, errOut, "out\n", "err\n")
	}
}

func TestExecStdinEndsWhenTheClientClosesIt(t *testing.T) {
	out, _, err := stream(t, "/exec/p?command=cat&stdin=true&stdout=true", remotecommand.StreamOptions{Stdin: strings.NewReader("hi\n"), Stdout: io.Discard})
	if err != nil || out != "hi\n" {
		t.Fatalf("stdout %q err %v, want %q and success", out, err, "hi\n")
	}
}

func TestExecTTYPassesTerminalSizes(t *testing.T) {
	sizes := make(chan remotecommand.TerminalSize, 2)
	sizes <- remotecommand.TerminalSize{Width: 80, Height: 24}
	sizes <- remotecommand.TerminalSize{Width: 132, Height: 50}
	typing, keyboard := io.Pipe() // a terminal nobody types into
	defer keyboard.Close()
	out, _, err := stream(t, "/exec/p?command=sizes&stdin=true&stdout=true&tty=true", remotecommand.StreamOptions{
		Stdin: typing, Stdout: io.Discard, Tty: true, TerminalSizeQueue: queue(sizes)})
	if err != nil || strings.ReplaceAll(out, "\r", "") != "80x24\n132x50\n" {
		t.Fatalf("stdout %q err %v, want both sizes", out, err)
	}
}

func TestExecFailuresReachTheClient(t *testing.T) {
	_, _, err := stream(t, "/exec/p?command=nothing&stdout=true", remotecommand.StreamOptions{Stdout: io.Discard})
	if err == nil || !strings.Contains(err.Error(), `executable "nothing" not found`) {
		t.Fatalf("err = %v, want the runtime's failure", err)
	}
	_, _, err = stream(t, "/exec/gone?command=cat&stdout=true", remotecommand.StreamOptions{Stdout: io.Discard})
	if err == nil || !strings.Contains(err.Error(), `container "c" in pod "ns/gone" is not running`) {
		t.Fatalf("err = %v, want the kubelet's refusal", err)
	}
	t.Logf("exec into a container that is not running: %v", err)
}

func TestAttach(t *testing.T) {
	out, _, err := stream(t, "/attach/p?stdin=true&stdout=true", remotecommand.StreamOptions{Stdin: strings.NewReader("typed\n"), Stdout: io.Discard})
	if err != nil || out != "attached\ntyped\n" {
		t.Fatalf("stdout %q err %v", out, err)
	}
}

func TestPortForwardTunnelsSPDYThroughWebSocket(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello from the pod") }))
	defer web.Close()
	webPort := web.Listener.Addr().(*net.TCPAddr).Port
	s := apiServer(t)
	u, _ := url.Parse(s.URL + "/portForward/p")
	dialer, err := portforward.NewSPDYOverWebsocketDialer(u, &rest.Config{Host: s.URL})
	if err != nil {
		t.Fatal(err)
	}
	stop, ready := make(chan struct{}), make(chan struct{})
	defer close(stop)
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", webPort)}, stop, ready, io.Discard, io.Discard)
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
		t.Fatal("port-forward not ready")
	}
	ports, err := pf.GetPorts()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // two connections through one tunnel
		resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}).Get(fmt.Sprintf("http://127.0.0.1:%d/", ports[0].Local))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "hello from the pod" {
			t.Fatalf("body %q", body)
		}
	}
}

func TestPortForwardRefusalReachesTheClient(t *testing.T) {
	s := apiServer(t)
	u, _ := url.Parse(s.URL + "/portForward/gone")
	dialer, err := portforward.NewSPDYOverWebsocketDialer(u, &rest.Config{Host: s.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = dialer.Dial(kubeletpf.ProtocolV1Name)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "is not running") {
		t.Fatalf("err = %v, want the kubelet's 404", err)
	}
	t.Logf("port-forward to a pod that is not running: %v", err)
}

func TestWhichRequestsAreTranslated(t *testing.T) {
	for _, tc := range []struct {
		name             string
		upgrade          string
		protocols        string
		remote, pfTunnel bool
	}{
		{"v5 websocket", "websocket", "v5.channel.k8s.io, v4.channel.k8s.io", true, false},
		{"v4 only websocket", "websocket", "v4.channel.k8s.io", false, false},
		{"spdy", "SPDY/3.1", "", false, false},
		{"tunnelled port-forward", "websocket", "SPDY/3.1+portforward.k8s.io", false, true},
		{"tunnel of something else", "websocket", "SPDY/3.1+portforward.example.com", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/x", nil)
			r.Header.Set("Connection", "Upgrade")
			r.Header.Set("Upgrade", tc.upgrade)
			if tc.protocols != "" {
				r.Header.Set("Sec-WebSocket-Protocol", tc.protocols)
			}
			if got := IsRemoteCommand(r); got != tc.remote {
				t.Errorf("IsRemoteCommand = %v, want %v", got, tc.remote)
			}
			if got := IsPortForwardTunnel(r); got != tc.pfTunnel {
				t.Errorf("IsPortForwardTunnel = %v, want %v", got, tc.pfTunnel)
			}
		})
	}
}

func TestQueryBoolsReadAsTheParameterCodecDoes(t *testing.T) {
	for q, want := range map[string]bool{"": false, "stdin=true": true, "stdin=1": true, "stdin=false": false, "stdin=False": false, "stdin=0": false, "stdin=": true} {
		r := httptest.NewRequest(http.MethodGet, "/x?"+q, nil)
		if got := queryBool(r, "stdin"); got != want {
			t.Errorf("%q: %v, want %v", q, got, want)
		}
	}
}

type queue chan remotecommand.TerminalSize

func (q queue) Next() *remotecommand.TerminalSize {
	s, ok := <-q
	if !ok {
		return nil
	}
	return &s
}
