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

// TestNetworkConnect: docker network connect gives a running container an interface and
// an address on one more network, where the others find it by name and alias;
// disconnect takes it away again.
func TestNetworkConnect(t *testing.T) {
	e := needEngine(t)
	n1, n2 := uniq("neta"), uniq("netb")
	for _, n := range []string{n1, n2} {
		e.ok(t, "network", "create", n)
		n := n
		t.Cleanup(func() { e.docker(t, "network", "rm", n) })
	}
	a, b := uniq("a"), uniq("b")
	e.sleeper(t, a, "--network", n1)
	e.runDetached(t, b, "--network", n2, bbImage, "httpd", "-f", "-p", "80", "-h", "/www")
	get := "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 3 nc " + b + " 80"
	if r := e.docker(t, "exec", a, "sh", "-c", get); strings.Contains(r.Stdout, "hello from busybox") {
		t.Fatalf("a container reached another network's container before being connected")
	}
	e.ok(t, "network", "connect", "--alias", "alpha", n2, a)
	eventually(t, 15*time.Second, "after connect it reaches the other network by name", func() (bool, string) {
		r := e.docker(t, "exec", a, "sh", "-c", get)
		return strings.Contains(r.Stdout, "hello from busybox"), r.String()
	})
	mustContain(t, "inspect lists both networks",
		e.ok(t, "inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", a), n2)
	mustContain(t, "its alias resolves on the new network",
		e.ok(t, "run", "--rm", "--network", n2, bbImage, "nslookup", "alpha"), "Address")
	e.ok(t, "network", "disconnect", n2, a)
	if out := e.ok(t, "exec", a, "ip", "-o", "link"); strings.Contains(out, "eth1") {
		t.Fatalf("eth1 is still there after disconnect:\n%s", out)
	}
}
