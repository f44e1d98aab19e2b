package e2e

import (
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

func hostNetNS(t *testing.T) string {
	t.Helper()
	ns, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// linkNames parses `ip -o link` output into interface names ("eth0@if12" -> "eth0").
func linkNames(out string) []string {
	var names []string
	for _, l := range lines(out) {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		n := strings.TrimSuffix(f[1], ":")
		n, _, _ = strings.Cut(n, "@")
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// TestNetworkBridge: a container has its own network namespace, an address in the bridge's
// CIDR and a default route; containers reach each other and the host reaches them.
func TestNetworkBridge(t *testing.T) {
	e := needEngine(t)
	web := uniq("web")
	e.runDetached(t, web, bbImage, "httpd", "-f", "-p", "8080", "-h", "/www")
	ipStr := e.inspect(t, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", web)
	ip := net.ParseIP(ipStr)
	if ip == nil || !e.cidr.Contains(ip) {
		t.Fatalf("container IP %q is not in the bridge CIDR %s", ipStr, e.cidr)
	}
	if ns := e.ok(t, "exec", web, "readlink", "/proc/self/ns/net"); ns == hostNetNS(t) || ns == "" {
		t.Fatalf("the container shares the host's network namespace (%s)", ns)
	}
	mustContain(t, "the container's eth0 has its IP", e.ok(t, "exec", web, "ip", "-4", "-o", "addr", "show"), "inet "+ipStr+"/24")
	mustContain(t, "the container has a default route", e.ok(t, "exec", web, "ip", "route"), "default via ")

	other := uniq("client")
	e.sleeper(t, other)
	ip2 := e.inspect(t, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", other)
	if ip2 == ipStr || !e.cidr.Contains(net.ParseIP(ip2)) {
		t.Fatalf("second container's IP %q (first %s, CIDR %s)", ip2, ipStr, e.cidr)
	}
	eventually(t, 15*time.Second, "a container fetches a page from another over the bridge", func() (bool, string) {
		// busybox-static's wget crashes (glibc NSS in a static binary): speak HTTP with nc.
		r := e.docker(t, "exec", other, "sh", "-c", "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 2 "+ipStr+" 8080")
		return strings.Contains(r.Stdout, "200 OK") && strings.Contains(r.Stdout, "hello from busybox"), r.String()
	})
	client := &http.Client{Timeout: 3 * time.Second}
	eventually(t, 15*time.Second, "the host fetches a page from the container's IP", func() (bool, string) {
		resp, err := client.Get("http://" + ipStr + ":8080/index.html")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b)) == "hello from busybox", string(b)
	})
}

// TestNetworkNone: --network none leaves only the loopback interface.
func TestNetworkNone(t *testing.T) {
	e := needEngine(t)
	out := e.ok(t, "run", "--rm", "--network", "none", bbImage, "sh", "-c", "readlink /proc/self/ns/net; ip -o link")
	ls := lines(out)
	if len(ls) < 2 {
		t.Fatalf("--network none: %q", out)
	}
	if ls[0] == hostNetNS(t) {
		t.Fatalf("--network none shares the host's network namespace")
	}
	if got := linkNames(strings.Join(ls[1:], "\n")); strings.Join(got, " ") != "lo" {
		t.Fatalf("--network none has interfaces %v, want only lo", got)
	}
	mustEqual(t, "--network none has only 127.0.0.1", e.ok(t, "run", "--rm", "--network", "none", bbImage, "sh", "-c",
		"ip -4 -o addr | awk '{print $4}'"), "127.0.0.1/8")
}

// TestNetworkHost: --network host shares the host's namespace and interfaces.
func TestNetworkHost(t *testing.T) {
	e := needEngine(t)
	out := e.ok(t, "run", "--rm", "--network", "host", bbImage, "sh", "-c", "readlink /proc/self/ns/net; ip -o link")
	ls := lines(out)
	if len(ls) < 2 || ls[0] != hostNetNS(t) {
		t.Fatalf("--network host is not the host's namespace (%s): %q", hostNetNS(t), out)
	}
	got := linkNames(strings.Join(ls[1:], "\n"))
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if !contains(got, i.Name) {
			t.Fatalf("--network host lacks the host interface %s (sees %v)", i.Name, got)
		}
	}
}
