package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestCRIPods drives the engine's CRI with crictl as a kubelet would: pods with their
// own addresses on the pod network that reach each other, containers in them that
// docker also sees, exec, logs, stats, hostPorts, an engine restart that leaves the
// pods running, and removal that leaves nothing behind.
func TestCRIPods(t *testing.T) {
	ce := newCRIEngine(t)
	_, podNet, _ := net.ParseCIDR(criPodCIDR)
	hostPort := freePort(t)
	// The web pod serves a page naming itself; its first lines go to stdout and stderr.
	webPod, web := ce.runPod(t, "web", hostPort, "httpd", "/bin/sh", "-c",
		"echo hello from $(hostname); echo to stderr >&2; mkdir -p /srv; echo served by web > /srv/index.html; exec httpd -f -p 80 -h /srv")
	webIP := ce.podIP(t, webPod)

	t.Run("pods and containers are listed", func(t *testing.T) {
		if ip := net.ParseIP(webIP); ip == nil || !podNet.Contains(ip) || webIP == "10.232.0.1" {
			t.Fatalf("the pod's IP %q is not a pod address of %s", webIP, criPodCIDR)
		}
		if out := ce.ok(t, "pods", "--name", "web", "--state", "ready", "-q"); out != webPod {
			t.Fatalf("crictl pods --name web --state ready: %q, want %s", out, webPod)
		}
		if out := ce.ok(t, "ps", "--pod", webPod, "--state", "running", "-q"); out != web {
			t.Fatalf("crictl ps --pod: %q, want %s", out, web)
		}
		if out := ce.ok(t, "ps", "--label", "role=httpd", "-q"); out != web {
			t.Fatalf("crictl ps --label role=httpd: %q, want %s", out, web)
		}
		images := ce.ok(t, "images")
		if !regexp.MustCompile(`(?m)^docker.io/library/bb\s+1.0\s`).MatchString(images) {
			t.Fatalf("crictl images does not list the image docker imported:\n%s", images)
		}
		// Docker sees the pod's container under dockershim's name.
		names := ce.engine.ok(t, "ps", "--format", "{{.ID}} {{.Names}}")
		want := web[:12] + " k8s_httpd_web_tcri_uid-web_0"
		if !strings.Contains(names, want) {
			t.Fatalf("docker ps does not show %q:\n%s", want, names)
		}
	})

	t.Run("exec runs in the pod's namespaces", func(t *testing.T) {
		if out := ce.ok(t, "exec", "-s", web, "hostname"); out != "web" {
			t.Fatalf("hostname in the pod: %q", out)
		}
		resolv := ce.ok(t, "exec", "-s", web, "cat", "/etc/resolv.conf")
		for _, want := range []string{"nameserver 10.43.0.10", "search tcri.svc.cluster.local", "options ndots:5"} {
			if !strings.Contains(resolv, want) {
				t.Fatalf("the pod's resolv.conf lacks %q:\n%s", want, resolv)
			}
		}
		if out := ce.ok(t, "exec", "-s", web, "ip", "-4", "-o", "addr", "show", "eth0"); !strings.Contains(out, webIP+"/24") {
			t.Fatalf("eth0 in the pod: %q, want %s", out, webIP)
		}
		r := ce.run(t.Context(), "exec", "-s", web, "sh", "-c", "echo out; echo err >&2")
		// crictl prints what the command wrote to either stream on its own stdout.
		if r.Code != 0 || !strings.Contains(r.Stdout, "out\n") || !strings.Contains(r.Stdout, "err\n") {
			t.Fatalf("an exec writing to stdout and stderr: %s", r)
		}
		if r := ce.run(t.Context(), "exec", "-s", web, "sh", "-c", "exit 3"); r.Code == 0 || !strings.Contains(r.Stderr, "exited with 3") {
			t.Fatalf("an exec that exits 3: %s", r)
		}
		// Streaming exec (the URL of the streaming server) with stdin.
		r = ce.runIn(t, "line from stdin\n", "exec", "-i", web, "sh", "-c", "read l; echo got: $l")
		if r.Code != 0 || !strings.Contains(r.Stdout, "got: line from stdin") {
			t.Fatalf("crictl exec -i: %s", r)
		}
		if r := ce.run(t.Context(), "exec", web, "sh", "-c", "exit 5"); r.Code == 0 || !strings.Contains(r.Stderr, "exit code 5") {
			t.Fatalf("a streaming exec that exits 5: %s", r)
		}
	})

	t.Run("logs are the CRI's", func(t *testing.T) {
		eventually(t, 10*time.Second, "crictl logs shows both streams", func() (bool, string) {
			r := ce.run(t.Context(), "logs", web)
			all := r.Stdout + r.Stderr
			return strings.Contains(r.Stdout, "hello from web") && strings.Contains(all, "to stderr"), all
		})
		data, err := os.ReadFile(filepath.Join(ce.work, "pods", "web", "httpd", "0.log"))
		if err != nil {
			t.Fatal(err)
		}
		line := regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z stdout F hello from web$`)
		if !line.Match(data) || !strings.Contains(string(data), " stderr F to stderr\n") {
			t.Fatalf("the log file is not in the CRI's format:\n%s", data)
		}
		if out := ce.engine.ok(t, "logs", web); !strings.Contains(out, "hello from web") {
			t.Fatalf("docker logs of the pod's container: %q", out)
		}
	})

	t.Run("stats", func(t *testing.T) {
		var st struct {
			Stats []struct {
				Attributes struct{ ID string } `json:"attributes"`
				Memory     struct {
					WorkingSetBytes struct {
						Value string `json:"value"`
					} `json:"workingSetBytes"`
				} `json:"memory"`
				WritableLayer struct {
					InodesUsed struct {
						Value string `json:"value"`
					} `json:"inodesUsed"`
				} `json:"writableLayer"`
			} `json:"stats"`
		}
		out := ce.ok(t, "stats", "-o", "json", "--id", web)
		if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Stats) != 1 {
			t.Fatalf("crictl stats -o json: %v\n%s", err, out)
		}
		if s := st.Stats[0]; s.Attributes.ID != web || s.Memory.WorkingSetBytes.Value == "" || s.Memory.WorkingSetBytes.Value == "0" || s.WritableLayer.InodesUsed.Value == "" {
			t.Fatalf("stats of a running httpd: %+v", s)
		}
		if out := ce.ok(t, "statsp", "-o", "json", "--id", webPod); !strings.Contains(out, webPod) {
			t.Fatalf("crictl statsp: %s", out)
		}
	})

	clientPod, client := ce.runPod(t, "client", 0, "client", "sleep", "3600")
	t.Run("pods reach each other and the host reaches hostPorts", func(t *testing.T) {
		if ip := ce.podIP(t, clientPod); ip == webIP || !podNet.Contains(net.ParseIP(ip)) {
			t.Fatalf("the second pod's IP %q (the first has %s)", ip, webIP)
		}
		eventually(t, 15*time.Second, "the client pod fetches the web pod's page by IP", func() (bool, string) {
			r := ce.run(t.Context(), "exec", "-s", client, "wget", "-qO-", "http://"+webIP+"/")
			return strings.Contains(r.Stdout, "served by web"), r.String()
		})
		eventuallyServesText(t, "the hostPort", fmt.Sprintf("127.0.0.1:%d", hostPort), "served by web")
	})

	t.Run("an engine restart keeps the pods", func(t *testing.T) {
		if err := ce.engine.stop(); err != nil {
			t.Fatal(err)
		}
		if err := ce.start(); err != nil {
			t.Fatal(err)
		}
		if out := ce.ok(t, "pods", "--state", "ready", "-q"); !strings.Contains(out, webPod) || !strings.Contains(out, clientPod) {
			t.Fatalf("ready pods after the restart: %q", out)
		}
		if ip := ce.podIP(t, webPod); ip != webIP {
			t.Fatalf("the web pod's IP after the restart: %q, was %s", ip, webIP)
		}
		if out := ce.ok(t, "ps", "--state", "running", "-q"); !strings.Contains(out, web) || !strings.Contains(out, client) {
			t.Fatalf("running containers after the restart: %q", out)
		}
		r := ce.run(t.Context(), "exec", "-s", client, "wget", "-qO-", "http://"+webIP+"/")
		if !strings.Contains(r.Stdout, "served by web") {
			t.Fatalf("pod to pod after the restart: %s", r)
		}
		eventuallyServesText(t, "the hostPort after the restart", fmt.Sprintf("127.0.0.1:%d", hostPort), "served by web")
	})

	t.Run("stop and remove", func(t *testing.T) {
		ce.ok(t, "stop", "--timeout", "5", web)
		var st struct {
			Status struct {
				State    string `json:"state"`
				ExitCode int    `json:"exitCode"`
				Reason   string `json:"reason"`
			} `json:"status"`
		}
		out := ce.ok(t, "inspect", "-o", "json", web)
		if err := json.Unmarshal([]byte(out), &st); err != nil || st.Status.State != "CONTAINER_EXITED" || st.Status.Reason == "" {
			t.Fatalf("a stopped container's status: %+v (%v)", st.Status, err)
		}
		ce.ok(t, "rm", web)
		if out := ce.ok(t, "ps", "-a", "-q", "--pod", webPod); out != "" {
			t.Fatalf("the removed container is still listed: %q", out)
		}
		ce.ok(t, "stopp", webPod)
		ce.ok(t, "stopp", webPod) // again: nothing to do, no error
		ce.ok(t, "rmp", webPod)
		ce.ok(t, "rmp", "-f", clientPod)
		if out := ce.ok(t, "pods", "-q"); out != "" {
			t.Fatalf("pods left after rmp: %q", out)
		}
		if out := ce.engine.ok(t, "ps", "-aq"); out != "" {
			t.Fatalf("containers left after rmp: %q", out)
		}
		netns, _ := os.ReadDir(filepath.Join(ce.runDir, "network", "pod", "netns"))
		if len(netns) != 0 {
			t.Fatalf("network namespaces left after rmp: %d", len(netns))
		}
		if _, err := httpGet(fmt.Sprintf("127.0.0.1:%d", hostPort)); err == nil {
			t.Fatalf("the hostPort still answers after its pod was removed")
		}
	})
}

func eventuallyServesText(t *testing.T, what, addr, text string) {
	t.Helper()
	eventually(t, 15*time.Second, what+" serves "+text, func() (bool, string) {
		body, err := httpGet(addr)
		return err == nil && strings.Contains(body, text), fmt.Sprintf("%q %v", body, err)
	})
}

// The docker CLI sees a pod whole, as with dockershim: its sandbox is listed as the
// pause container k8s_POD_NAME_NAMESPACE_UID_ATTEMPT beside its containers, and what
// `docker ps -a` lists, `docker rm -f` removes, pods included.
func TestCRIPodSandboxInDockerPs(t *testing.T) {
	ce := newCRIEngine(t)
	// The container ends cleanly on SIGTERM: docker stop of the pod must give it the
	// chance, as docker stop of a container does.
	podID, ctrID := ce.runPod(t, "dps", 0, "web", "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done")
	sandbox := "k8s_POD_dps_tcri_uid-dps_0"
	format := `{{.ID}} {{.Names}} {{.Image}} {{.State}} {{.Label "io.kubernetes.docker.type"}} {{.Label "app"}}`

	list := ce.engine.ok(t, "ps", "--no-trunc", "--format", format)
	for _, want := range []string{
		podID + " " + sandbox + " berth-pause running podsandbox dps",
		ctrID + " k8s_web_dps_tcri_uid-dps_0 " + bbImage + " running",
	} {
		if !strings.Contains(list, want) {
			t.Fatalf("docker ps does not show %q:\n%s", want, list)
		}
	}
	mustEqual(t, "ps -q by the sandbox's label", ce.engine.ok(t, "ps", "-q", "--no-trunc", "-f", "label=io.kubernetes.docker.type=podsandbox"), podID)
	mustEqual(t, "ps -q by its name", ce.engine.ok(t, "ps", "-q", "--no-trunc", "-f", "name="+sandbox), podID)
	mustEqual(t, "ps -q by an id prefix", ce.engine.ok(t, "ps", "-q", "--no-trunc", "-f", "id="+podID[:10]), podID)

	// docker inspect shows it as docker ps does.
	mustEqual(t, "inspect", ce.engine.ok(t, "inspect", "-f", "{{.Name}} {{.State.Running}} {{.Config.Image}}", sandbox),
		"/"+sandbox+" true berth-pause")

	// A ready sandbox is a running container: rm refuses without -f.
	r := ce.engine.docker(t, "rm", sandbox)
	if r.Code == 0 || !strings.Contains(r.Stderr, "container is running") {
		t.Fatalf("docker rm of a ready sandbox: %s", r)
	}
	// docker stop stops the pod (its containers at once, as crictl stopp does).
	ce.engine.ok(t, "stop", sandbox)
	mustEqual(t, "crictl pods after docker stop", ce.ok(t, "pods", "--state", "notready", "-q"), podID)
	mustContain(t, "ps -a shows it exited", ce.engine.ok(t, "ps", "-a", "-f", "name="+sandbox, "--format", "{{.Status}}"), "Exited (0)")
	mustContain(t, "its container stopped on SIGTERM, not killed", ce.engine.ok(t, "ps", "-a", "-f", "id="+ctrID, "--format", "{{.Status}}"), "Exited (0)")
	mustEqual(t, "no longer listed as running", ce.engine.ok(t, "ps", "-q", "-f", "name="+sandbox), "")

	// rm -f of all that ps -a lists (the pod and its container, in any order).
	ids := strings.Fields(ce.engine.ok(t, "ps", "-aq"))
	if len(ids) != 2 {
		t.Fatalf("docker ps -aq: %v, want the sandbox and its container", ids)
	}
	ce.engine.ok(t, append([]string{"rm", "-f"}, ids...)...)
	mustEqual(t, "crictl pods after docker rm -f", ce.ok(t, "pods", "-q"), "")
	mustEqual(t, "crictl ps -a after docker rm -f", ce.ok(t, "ps", "-a", "-q"), "")
	mustEqual(t, "docker ps -aq after docker rm -f", ce.engine.ok(t, "ps", "-aq"), "")

	// docker kill stops a pod at once.
	pod2, _ := ce.runPod(t, "dps2", 0, "web", "sleep", "300")
	ce.engine.ok(t, "kill", "k8s_POD_dps2_tcri_uid-dps2_0")
	mustEqual(t, "crictl pods after docker kill", ce.ok(t, "pods", "--state", "notready", "-q"), pod2)
}
