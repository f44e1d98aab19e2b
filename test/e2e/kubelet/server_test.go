package kubelet

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
)

func kubeletURL(path string) string { return fmt.Sprintf("https://127.0.0.1:%d%s", servePort, path) }

func httpsClient(t *testing.T) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: clientTLS(t)}}
}

func get(t *testing.T, c *http.Client, path string) (int, string) {
	t.Helper()
	resp, err := c.Get(kubeletURL(path))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestContainerLogsOverHTTPS(t *testing.T) {
	need(t)
	ns := namespace(t)
	create(t, newPod(ns, "talk", busybox("main", "for i in 1 2 3 4 5; do echo line $i; done; echo oops >&2; i=6; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done")))
	waitPod(t, ns, "talk", 30*time.Second, "running", running)
	c := httpsClient(t)
	base := "/containerLogs/" + ns + "/talk/main"
	deadline := time.Now().Add(10 * time.Second)
	var body string
	for {
		var code int
		code, body = get(t, c, base)
		if code == 200 && strings.Contains(body, "tick 7") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs: %d %q", code, body)
		}
		time.Sleep(100 * time.Millisecond) // polling for the container to write
	}
	// stdout and stderr reach the log through separate pipes: their order is not kept.
	if !strings.HasPrefix(body, "line 1\nline 2\nline 3\nline 4\nline 5\n") || !strings.Contains(body, "\noops\n") {
		t.Errorf("logs start: %q", body)
	}
	if _, tail := get(t, c, base+"?tailLines=2"); strings.Count(tail, "\n") != 2 || !strings.Contains(tail, "tick ") {
		t.Errorf("tailLines=2: %q", tail)
	}
	if _, ts := get(t, c, base+"?timestamps=true&tailLines=1"); !strings.Contains(ts, "Z tick ") {
		t.Errorf("timestamps: %q", ts)
	}
	if _, lim := get(t, c, base+"?limitBytes=4"); lim != "line" {
		t.Errorf("limitBytes=4: %q", lim)
	}
	if code, _ := get(t, c, "/containerLogs/"+ns+"/talk/nope"); code != 404 {
		t.Errorf("unknown container: %d", code)
	}
	if code, _ := get(t, c, base+"?previous=true"); code != 404 {
		t.Errorf("previous of a container that never restarted: %d", code)
	}
	// follow streams lines as they are written.
	resp, err := c.Get(kubeletURL(base + "?follow=true&tailLines=0"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for i := 0; i < 3; i++ {
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), "tick ") {
			t.Fatalf("follow line %d: %q %v", i, sc.Text(), sc.Err())
		}
	}
}

func TestServerRequiresClientCertificate(t *testing.T) {
	need(t)
	anon := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	if resp, err := anon.Get(kubeletURL("/healthz")); err == nil {
		resp.Body.Close()
		t.Fatalf("a client without a certificate got %d", resp.StatusCode)
	}
	if code, body := get(t, httpsClient(t), "/healthz"); code != 200 || body != "ok" {
		t.Fatalf("healthz with a client certificate: %d %q", code, body)
	}
}

// restConfig is the kubelet server as client-go sees it with the API server's client certificate.
func restConfig(t *testing.T) *rest.Config {
	certPEM, keyPEM, err := ca.IssueClient(testDir+"/pki", "apiserver-kubelet-client", "kube-apiserver-kubelet-client", nil)
	if err != nil {
		t.Fatal(err)
	}
	return &rest.Config{Host: kubeletURL(""), TLSClientConfig: rest.TLSClientConfig{CertData: certPEM, KeyData: keyPEM, CAData: ca.CertPEM()}}
}

func TestExecAndPortForwardThroughTheServer(t *testing.T) {
	need(t)
	ns := namespace(t)
	c := busybox("main", "mkdir -p /www && echo served > /www/index.html && exec httpd -f -p 8080 -h /www")
	create(t, newPod(ns, "srv", c))
	waitPod(t, ns, "srv", 30*time.Second, "running", running)
	cfg := restConfig(t)

	u, _ := url.Parse(kubeletURL(fmt.Sprintf("/exec/%s/srv/main?command=sh&command=-c&command=%s&input=1&output=1&error=1",
		ns, url.QueryEscape("read x; echo got $x; echo err >&2"))))
	ex, err := remotecommand.NewSPDYExecutor(cfg, "POST", u)
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := ex.StreamWithContext(t.Context(), remotecommand.StreamOptions{Stdin: strings.NewReader("hi\n"), Stdout: &out, Stderr: &errOut}); err != nil {
		t.Fatalf("exec: %v (stderr %q)", err, errOut.String())
	}
	if out.String() != "got hi\n" || errOut.String() != "err\n" {
		t.Errorf("exec stdout %q stderr %q", out.String(), errOut.String())
	}

	rt, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pu, _ := url.Parse(kubeletURL(fmt.Sprintf("/portForward/%s/srv", ns)))
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, "POST", pu)
	stop, ready := make(chan struct{}), make(chan struct{})
	defer close(stop)
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:8080"}, stop, ready, io.Discard, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	go fw.ForwardPorts()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("port-forward not ready")
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		t.Fatal(ports, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/index.html", ports[0].Local))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) == "served\n" {
				break
			}
			err = fmt.Errorf("%d %q", resp.StatusCode, b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("through port-forward: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // polling for httpd to listen
	}
}
