package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCRIStreamsAndHostNetwork covers what goes through the CRI's streaming server
// (attach, port-forward), resource updates, and a pod on the host's network.
func TestCRIStreamsAndHostNetwork(t *testing.T) {
	ce := newCRIEngine(t)

	t.Run("attach reaches the container's stdin and stdout", func(t *testing.T) {
		podCfg := ce.podConfig(t, "echo", 0)
		pod := ce.ok(t, "runp", podCfg)
		cfg := ce.writeJSON(t, "ctr-echo.json", map[string]any{
			"metadata": map[string]any{"name": "echo"}, "image": map[string]any{"image": bbImage},
			"command": []string{"sh", "-c", "while read l; do echo echo: $l; done"},
			"stdin":   true, "stdin_once": true, "log_path": "echo/0.log", "linux": map[string]any{},
		})
		ctr := ce.ok(t, "create", pod, cfg, podCfg)
		ce.ok(t, "start", ctr)
		r := ce.runIn(t, "one\ntwo\n", "attach", "-i", ctr)
		if !strings.Contains(r.Stdout, "echo: one") || !strings.Contains(r.Stdout, "echo: two") {
			t.Fatalf("crictl attach -i: %s", r)
		}
		// stdin_once: the container's input ended with the client's, so it has exited.
		eventually(t, 10*time.Second, "the echo container exits once its input ends", func() (bool, string) {
			out := ce.ok(t, "ps", "-a", "--id", ctr, "-o", "json")
			return strings.Contains(out, "CONTAINER_EXITED"), out
		})
	})

	t.Run("port-forward reaches the pod's loopback", func(t *testing.T) {
		pod, _ := ce.runPod(t, "pf", 0, "httpd", "sh", "-c",
			"mkdir -p /srv; echo forwarded page > /srv/index.html; exec httpd -f -p 127.0.0.1:8080 -h /srv")
		local := freePort(t)
		cmd := exec.Command(ce.crictl, "--config", ce.config, "port-forward", pod, fmt.Sprintf("%d:8080", local))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		eventually(t, 15*time.Second, "the forwarded port serves the pod's page", func() (bool, string) {
			body, err := httpGet(fmt.Sprintf("127.0.0.1:%d", local))
			return err == nil && strings.Contains(body, "forwarded page"), fmt.Sprintf("%q %v; crictl: %s", body, err, out.String())
		})
	})

	t.Run("update changes the memory limit the kernel enforces", func(t *testing.T) {
		_, ctr := ce.runPod(t, "upd", 0, "sleeper", "sleep", "3600")
		limit := func() string {
			return ce.ok(t, "exec", "-s", ctr, "sh", "-c", "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
		}
		before := limit()
		ce.ok(t, "update", "--memory", strconv.Itoa(64<<20), ctr)
		if after := limit(); after != strconv.Itoa(64<<20) {
			t.Fatalf("memory limit after crictl update --memory 64Mi: %q (before: %q)", after, before)
		}
	})

	t.Run("exec -s gives up at its timeout", func(t *testing.T) {
		_, ctr := ce.runPod(t, "slow", 0, "sleeper", "sleep", "3600")
		t0 := time.Now()
		r := ce.run(t.Context(), "exec", "-s", "--timeout", "1", ctr, "sleep", "30")
		if r.Code == 0 || time.Since(t0) > 15*time.Second || !strings.Contains(r.Stderr, "DeadlineExceeded") {
			t.Fatalf("exec -s --timeout 1 of sleep 30 (after %s): %s", time.Since(t0), r)
		}
		eventually(t, 10*time.Second, "the timed-out command is killed", func() (bool, string) {
			out := ce.ok(t, "exec", "-s", ctr, "ps", "-o", "args")
			return !strings.Contains(out, "sleep 30"), out
		})
	})

	t.Run("pull with the request's credentials", func(t *testing.T) {
		reg := newTestRegistry(t, ce.engine)
		src := uniq("cripull") + ":1.0"
		ce.engine.newImage(t, src)
		ref := reg.addr + "/" + src
		ce.engine.ok(t, "tag", src, ref)
		reg.login(t, ce.engine)
		ce.engine.ok(t, "push", ref)
		ce.engine.ok(t, "rmi", ref)
		if r := ce.run(t.Context(), "pull", ref); r.Code == 0 {
			t.Fatalf("a pull without credentials from a registry that wants them succeeded: %s", r)
		}
		ce.ok(t, "pull", "--creds", reg.user+":"+reg.pass, ref)
		repo, _, _ := strings.Cut(ref, ":1.0")
		if out := ce.ok(t, "images", "--digests"); !strings.Contains(out, repo) {
			t.Fatalf("crictl images after the pull:\n%s", out)
		}
		if out := ce.ok(t, "inspecti", "-o", "json", ref); !strings.Contains(out, repo+"@sha256:") {
			t.Fatalf("the pulled image has no repo digest:\n%s", out)
		}
		ce.ok(t, "rmi", ref)
		if out := ce.ok(t, "images", "-q", ref); out != "" {
			t.Fatalf("crictl rmi left the image: %q", out)
		}
	})

	t.Run("a pod on the host's network", func(t *testing.T) {
		cfg := ce.writeJSON(t, "pod-hostnet.json", map[string]any{
			"metadata":      map[string]any{"name": "hostnet", "namespace": "tcri", "uid": "uid-hostnet"},
			"log_directory": ce.work + "/pods/hostnet",
			"linux":         map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"network": 2}}},
		})
		pod := ce.ok(t, "runp", cfg)
		ctr := ce.ok(t, "create", pod, ce.containerConfig(t, "hn", "sleep", "3600"), cfg)
		ce.ok(t, "start", ctr)
		host, _ := os.Hostname()
		if out := ce.ok(t, "exec", "-s", ctr, "hostname"); out != host {
			t.Fatalf("hostname in a host-network pod: %q, want the host's %q", out, host)
		}
		if out := ce.ok(t, "exec", "-s", ctr, "ip", "-o", "link", "show", criPodBridge); !strings.Contains(out, criPodBridge) {
			t.Fatalf("a host-network pod does not see the host's links: %q", out)
		}
		if ip := ce.podIP(t, pod); ip != "" {
			t.Fatalf("a host-network pod has a pod IP: %q", ip)
		}
	})
}
