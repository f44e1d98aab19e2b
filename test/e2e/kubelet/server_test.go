package kubelet

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
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
	if stdout := strings.Replace(body, "oops\n", "", 1); !strings.HasPrefix(stdout, "line 1\nline 2\nline 3\nline 4\nline 5\n") || !strings.Contains(body, "oops\n") {
		t.Errorf("logs start: %q", body)
	}
	if _, tail := get(t, c, base+"?tailLines=2"); strings.Count(tail, "\n") != 2 || !strings.Contains(tail, "tick ") {
		t.Errorf("tailLines=2: %q", tail)
	}
	if _, ts := get(t, c, base+"?timestamps=true&tailLines=1"); !strings.Contains(ts, "Z tick ") {
		t.Errorf("timestamps: %q", ts)
	}
	if _, lim := get(t, c, base+"?limitBytes=4"); len(lim) != 4 || !strings.HasPrefix(body, lim) {
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
	// Healthy once the kubelet has its pods and has listed the runtime.
	for deadline := time.Now().Add(15 * time.Second); ; {
		code, body := get(t, httpsClient(t), "/healthz")
		if code == 200 && body == "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthz with a client certificate: %d %q", code, body)
		}
		time.Sleep(100 * time.Millisecond) // polling for the first relist
	}
	if code, body := get(t, httpsClient(t), "/pods"); code != 200 || !strings.Contains(body, `"kind":"PodList"`) {
		t.Fatalf("/pods: %d %q", code, body)
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

	// With a TTY: one stream, the command sees a terminal.
	u, _ = url.Parse(kubeletURL(fmt.Sprintf("/exec/%s/srv/main?command=tty&output=1&error=1&tty=1", ns)))
	if ex, err = remotecommand.NewSPDYExecutor(cfg, "POST", u); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := ex.StreamWithContext(t.Context(), remotecommand.StreamOptions{Stdout: &out, Tty: true}); err != nil {
		t.Fatalf("exec with a tty: %v", err)
	}
	if !strings.HasPrefix(out.String(), "/dev/pts/") {
		t.Errorf("tty in the exec: %q", out.String())
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

func TestStatsForMetrics(t *testing.T) {
	need(t)
	ns := namespace(t)
	create(t, newPod(ns, "busy", busybox("main", "exec sleep 3600")))
	waitPod(t, ns, "busy", 30*time.Second, "running", running)
	c := httpsClient(t)
	code, body := get(t, c, "/stats/summary")
	if code != 200 {
		t.Fatalf("/stats/summary: %d %s", code, body)
	}
	var sum struct {
		Node struct {
			NodeName string
			Memory   struct{ WorkingSetBytes uint64 }
			CPU      struct{ UsageCoreNanoSeconds uint64 }
		}
		Pods []struct {
			PodRef     struct{ Name, Namespace string }
			Containers []struct {
				Name   string
				Memory *struct{ WorkingSetBytes uint64 }
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Node.NodeName != nodeName || sum.Node.Memory.WorkingSetBytes == 0 || sum.Node.CPU.UsageCoreNanoSeconds == 0 {
		t.Errorf("node stats: %+v", sum.Node)
	}
	found := false
	for _, p := range sum.Pods {
		if p.PodRef.Namespace == ns && p.PodRef.Name == "busy" {
			found = len(p.Containers) == 1 && p.Containers[0].Name == "main" && p.Containers[0].Memory != nil && p.Containers[0].Memory.WorkingSetBytes > 0
		}
	}
	if !found {
		t.Errorf("no memory stats for %s/busy in %s", ns, body)
	}
	_, metrics := get(t, c, "/metrics/resource")
	want := fmt.Sprintf(`container_memory_working_set_bytes{container="main",namespace=%q,pod="busy"}`, ns)
	if !strings.Contains(metrics, want) || !strings.Contains(metrics, "node_cpu_usage_seconds_total ") {
		t.Errorf("/metrics/resource lacks %s:\n%s", want, metrics)
	}
}

func TestContainerLogsAreRotated(t *testing.T) {
	need(t)
	ns := namespace(t)
	// About 100 KiB a second: past the test kubelet's 256 KiB limit within a rotation period.
	p := create(t, newPod(ns, "chatty", busybox("main", `i=0; while true; do i=$((i+1)); printf 'line %08d %0900d\n' $i 0; [ $((i % 100)) = 0 ] && sleep 1; done`)))
	waitPod(t, ns, "chatty", 30*time.Second, "running", running)
	dir := filepath.Join(testDir, "kubelet", "pods-logs", fmt.Sprintf("%s_chatty_%s", ns, p.UID), "main")
	// A follower from before the rotation keeps getting every line after it.
	c := httpsClient(t)
	resp, err := c.Get(kubeletURL("/containerLogs/" + ns + "/chatty/main?follow=true"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	followed := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 4096), 1<<20)
		last, rotatedAt := 0, 0
		for sc.Scan() {
			var n int
			if _, err := fmt.Sscanf(sc.Text(), "line %d", &n); err != nil {
				followed <- fmt.Errorf("follow: %q", sc.Text())
				return
			}
			if last != 0 && n != last+1 {
				followed <- fmt.Errorf("follow skipped from line %d to %d", last, n)
				return
			}
			last = n
			if files, _ := filepath.Glob(filepath.Join(dir, "0.log.*")); len(files) > 0 && rotatedAt == 0 {
				rotatedAt = n
			}
			if rotatedAt != 0 && n > rotatedAt+300 {
				followed <- nil
				return
			}
		}
		followed <- fmt.Errorf("follow ended at line %d: %v", last, sc.Err())
	}()
	deadline := time.Now().Add(40 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "0.log.*"))
		if len(files) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rotated log in %s", dir)
		}
		time.Sleep(200 * time.Millisecond) // polling for the kubelet's rotation
	}
	select {
	case err := <-followed:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(30 * time.Second):
		t.Error("the follower got no lines after the rotation")
	}
	// The runtime writes to a new file: the log endpoint keeps serving fresh lines.
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, body := get(t, c, "/containerLogs/"+ns+"/chatty/main?tailLines=1")
		if strings.HasPrefix(body, "line ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after rotation: %q", body)
		}
		time.Sleep(100 * time.Millisecond) // polling for the new file's first line
	}
	if fi, err := os.Stat(filepath.Join(dir, "0.log")); err != nil || fi.Size() > 1<<20 {
		t.Errorf("current log after rotation: %v %v", fi, err)
	}
}

func TestAttachThroughTheServer(t *testing.T) {
	need(t)
	ns := namespace(t)
	c := busybox("main", `while read line; do echo "echo: $line"; done; echo bye`)
	c.Stdin, c.StdinOnce = true, true
	p := newPod(ns, "att", c)
	p.Spec.RestartPolicy = corev1.RestartPolicyNever
	create(t, p)
	waitPod(t, ns, "att", 30*time.Second, "running", running)
	u, _ := url.Parse(kubeletURL(fmt.Sprintf("/attach/%s/att/main?input=1&output=1&error=1", ns)))
	ex, err := remotecommand.NewSPDYExecutor(restConfig(t), "POST", u)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	// stdinOnce: closing our stdin closes the container's, so the loop ends and the stream too.
	err = ex.StreamWithContext(t.Context(), remotecommand.StreamOptions{Stdin: strings.NewReader("ping\n"), Stdout: &out, Stderr: io.Discard})
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	if !strings.Contains(out.String(), "echo: ping") {
		t.Errorf("attach output %q", out.String())
	}
	waitPod(t, ns, "att", 15*time.Second, "Succeeded", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
}
