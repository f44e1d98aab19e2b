package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// freePort asks the kernel for a TCP port nobody uses right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func httpGet(addr string) (string, error) {
	// A fresh connection each time: a kept-alive one would outlive the container it
	// was forwarded to.
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func eventuallyServes(t *testing.T, what, addr string) {
	t.Helper()
	eventually(t, 15*time.Second, what, func() (bool, string) {
		body, err := httpGet(addr)
		return err == nil && strings.Contains(body, "hello from busybox"), fmt.Sprintf("%q %v", body, err)
	})
}

func sh(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

// otherHost makes a network namespace joined to the host by a veth pair, standing in for
// another machine on the LAN; it returns the namespace and the host's address on the link.
func otherHost(t *testing.T) (ns, hostIP string) {
	t.Helper()
	tag := randHex(4)
	ns, hostSide, peer := "be2eh"+tag, "be2ea"+tag, "be2eb"+tag
	n := 1 + randInt(250)
	hostIP = fmt.Sprintf("10.254.%d.1", n)
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", ns).Run()
		exec.Command("ip", "link", "del", hostSide).Run()
	})
	sh(t, fmt.Sprintf(`set -e
ip netns add %[1]s
ip link add %[2]s type veth peer name %[3]s
ip link set %[3]s netns %[1]s
ip addr add %[4]s/30 dev %[2]s
ip link set %[2]s up
ip netns exec %[1]s ip addr add 10.254.%[5]d.2/30 dev %[3]s
ip netns exec %[1]s ip link set %[3]s up
ip netns exec %[1]s ip link set lo up
ip netns exec %[1]s ip route add default via %[4]s`, ns, hostSide, peer, hostIP, n))
	return ns, hostIP
}

// TestPortsPublished: -p HOST:CTR makes the container's server answer on every host
// address: loopback, an address another host reaches, and from a container (hairpin);
// docker port and the PORTS column of docker ps show it; stopping unpublishes it.
func TestPortsPublished(t *testing.T) {
	e := needEngine(t)
	if peerMode() {
		t.Skip("exercised against Berth only")
	}
	port := freePort(t)
	web := uniq("pub")
	e.runDetached(t, web, "-p", fmt.Sprintf("%d:80", port), bbImage, "httpd", "-f", "-p", "80", "-h", "/www")
	t.Cleanup(func() {
		if t.Failed() {
			rules, _ := exec.Command("nft", "list", "ruleset").CombinedOutput()
			ss, _ := exec.Command("ss", "-tanp").CombinedOutput()
			ct, _ := exec.Command("sh", "-c", "cat /proc/net/nf_conntrack 2>/dev/null | grep "+strconv.Itoa(port)).CombinedOutput()
			links, _ := exec.Command("sh", "-c", "ip -br link; bridge fdb show br "+e.bridge+" | grep -v permanent; ip neigh; ip netns list").CombinedOutput()
			t.Logf("diagnostics: %s\n%s", e.docker(t, "ps", "-a", "--format", "{{.Names}} {{.Status}} {{.Networks}}").Out(), links)
			t.Logf("diagnostics: container %s ip %s\n%s\n%s\n%s", web,
				e.docker(t, "inspect", "-f", "{{.State.Status}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", web).Out(),
				rules, ss, ct)
		}
	})

	eventuallyServes(t, "the published port answers on 127.0.0.1", fmt.Sprintf("127.0.0.1:%d", port))
	mustContain(t, "docker port", e.ok(t, "port", web), fmt.Sprintf("80/tcp -> 0.0.0.0:%d", port))
	mustContain(t, "PORTS column", e.ok(t, "ps", "-f", "name="+web, "--format", "{{.Ports}}"), fmt.Sprintf("0.0.0.0:%d->80/tcp", port))

	ns, hostIP := otherHost(t)
	eventuallyServes(t, "the published port answers on the host's own (non-loopback) address", fmt.Sprintf("%s:%d", hostIP, port))
	eventually(t, 15*time.Second, "another host reaches the published port", func() (bool, string) {
		out, _ := exec.Command("ip", "netns", "exec", ns, "sh", "-c",
			fmt.Sprintf("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 3 /bin/busybox nc %s %d", hostIP, port)).CombinedOutput()
		return strings.Contains(string(out), "hello from busybox"), string(out)
	})

	client := uniq("hairpin")
	e.sleeper(t, client)
	eventually(t, 15*time.Second, "a container reaches the published port through the host", func() (bool, string) {
		r := e.docker(t, "exec", client, "sh", "-c",
			fmt.Sprintf("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 3 nc %s %d", e.gateway(), port))
		return strings.Contains(r.Stdout, "hello from busybox"), r.String()
	})

	e.ok(t, "stop", "-t", "1", web)
	if body, err := httpGet(fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		t.Fatalf("the port still answers after the container stopped: %q", body)
	}
	e.ok(t, "start", web)
	eventuallyServes(t, "the port is published again after start", fmt.Sprintf("127.0.0.1:%d", port))
}

// TestPortsConflicts: a host port that is taken, by a container or another program, is
// refused with Docker's error and leaves no container running and no rule behind.
func TestPortsConflicts(t *testing.T) {
	e := needEngine(t)
	port := freePort(t)
	first := uniq("first")
	e.runDetached(t, first, "-p", fmt.Sprintf("%d:80", port), bbImage, "httpd", "-f", "-p", "80", "-h", "/www")
	eventuallyServes(t, "the first container serves", fmt.Sprintf("127.0.0.1:%d", port))

	second := uniq("second")
	e.rmOnCleanup(t, second)
	r := e.fails(t, "run", "-d", "--name", second, "-p", fmt.Sprintf("%d:80", port), bbImage, "httpd", "-f", "-p", "80", "-h", "/www")
	mustContain(t, "Docker's error for an allocated port", r.Stderr, "port is already allocated")
	if st := e.state(t, second); st == "running" {
		t.Fatalf("the second container runs: %s", st)
	}
	eventuallyServes(t, "the first container still serves", fmt.Sprintf("127.0.0.1:%d", port))

	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	third := uniq("third")
	e.rmOnCleanup(t, third)
	r = e.fails(t, "run", "-d", "--name", third, "-p", fmt.Sprintf("%d:80", taken), bbImage, "httpd", "-f", "-p", "80", "-h", "/www")
	mustContain(t, "Docker's error for a port another program holds", r.Stderr, "address already in use")
	if !peerMode() {
		rules, _ := exec.Command("nft", "list", "table", "ip", "berth_"+e.bridge).CombinedOutput()
		if strings.Contains(string(rules), "dport "+strconv.Itoa(taken)) {
			t.Fatalf("a rule for the refused port was left behind:\n%s", rules)
		}
	}
}

// TestPortsPublishAll: -P publishes every exposed port on a free host port.
func TestPortsPublishAll(t *testing.T) {
	e := needEngine(t)
	web := uniq("pall")
	e.runDetached(t, web, "-P", "--expose", "80", bbImage, "httpd", "-f", "-p", "80", "-h", "/www")
	out := e.ok(t, "port", web, "80/tcp")
	_, p, ok := strings.Cut(lines(out)[0], ":")
	n, err := strconv.Atoi(p)
	if !ok || err != nil || n < 1024 {
		t.Fatalf("docker port printed %q, wanted 0.0.0.0:<ephemeral port>", out)
	}
	eventuallyServes(t, "the randomly published port answers", "127.0.0.1:"+p)
}
