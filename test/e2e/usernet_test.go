package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestUserNetworks: containers on a user network find each other by name and alias
// through the embedded DNS server; the network lists them; it cannot be removed while
// in use; overlapping subnets and taken names are refused.
func TestUserNetworks(t *testing.T) {
	e := needEngine(t)
	netName := uniq("appnet")
	subnet := "10.253." + strconv.Itoa(randInt(200)+1) + ".0/24"
	e.ok(t, "network", "create", "--subnet", subnet, netName)
	t.Cleanup(func() { e.docker(t, "network", "rm", netName) })
	other := uniq("overlap")
	t.Cleanup(func() { e.docker(t, "network", "rm", other) })
	mustContain(t, "an overlapping subnet is refused", e.fails(t, "network", "create", "--subnet", subnet, other).Stderr, "overlaps")
	mustContain(t, "network ls lists it", e.ok(t, "network", "ls"), netName)
	r := e.fails(t, "network", "create", netName)
	mustContain(t, "a taken name is refused", r.Stderr, "already exists")

	api := uniq("api")
	e.runDetached(t, api, "--network", netName, "--network-alias", "backend", bbImage, "httpd", "-f", "-p", "80", "-h", "/www")
	for _, name := range []string{api, "backend"} {
		name := name
		eventually(t, 15*time.Second, "the name "+name+" resolves and serves", func() (bool, string) {
			r := e.docker(t, "run", "--rm", "--network", netName, bbImage, "sh", "-c",
				"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 3 nc "+name+" 80")
			return strings.Contains(r.Stdout, "hello from busybox"), r.String()
		})
	}
	mustContain(t, "resolv.conf points at the embedded server",
		e.ok(t, "run", "--rm", "--network", netName, bbImage, "cat", "/etc/resolv.conf"), "nameserver 127.0.0.11")
	mustContain(t, "network inspect lists the container", e.ok(t, "network", "inspect", netName), api)
	e.fails(t, "network", "rm", netName)
	e.ok(t, "rm", "-f", api)
	e.ok(t, "network", "rm", netName)
	e.fails(t, "network", "inspect", netName)
}

// TestNetworkContainerMode: --network container:NAME shares the other container's
// network namespace: its address, and its servers on localhost.
func TestNetworkContainerMode(t *testing.T) {
	e := needEngine(t)
	main := uniq("main")
	e.runDetached(t, main, bbImage, "httpd", "-f", "-p", "80", "-h", "/www")
	ip := e.inspect(t, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", main)
	eventually(t, 15*time.Second, "a joined container reaches the server on localhost", func() (bool, string) {
		r := e.docker(t, "run", "--rm", "--network", "container:"+main, bbImage, "sh", "-c",
			"ip -4 -o addr show eth0; printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 3 nc 127.0.0.1 80")
		return strings.Contains(r.Stdout, "hello from busybox") && strings.Contains(r.Stdout, ip+"/"), r.String()
	})
	mustContain(t, "joining a missing container fails clearly",
		e.fails(t, "run", "--rm", "--network", "container:"+uniq("nosuch"), bbImage, "true").Stderr, "No such container")
}
