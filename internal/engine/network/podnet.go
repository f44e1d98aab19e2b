package network

import (
	"context"
	"fmt"
	"net"
	"os"
	goruntime "runtime"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// A node's pod network is a Manager like the engine's bridges: its own bridge (the
// node's pod CIDR, gateway .1), a namespace and veth per pod sandbox, outbound NAT and
// hostPort publishing in its own nftables table. Pods on the node reach each other
// across the bridge. Reaching other nodes' pods is a matter of routes to their pod
// CIDRs plus Config.NoMasquerade; Services add a table of their own (the proxy's).

// Down removes the bridge and its nftables table, keeping the state directory (the
// address assignments), for an engine that stops with no pod running.
func (m *Manager) Down() {
	m.RemoveRules()
	if l, err := netlink.LinkByName(m.cfg.Bridge); err == nil {
		netlink.LinkDel(l)
	}
}

// DialInNetNS connects, from inside the network namespace at nsPath, to addr (the
// port forwarding of a pod: "127.0.0.1:8080" is the pod's own loopback).
func DialInNetNS(ctx context.Context, nsPath, addr string) (net.Conn, error) {
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, err
	}
	defer orig.Close()
	target, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return nil, err
	}
	// The socket is made on this thread, inside the namespace, and stays there.
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, derr := d.DialContext(ctx, "tcp4", addr)
	if err := netns.Set(orig); err != nil {
		fmt.Fprintln(os.Stderr, "berth: cannot return to the host network namespace:", err)
		goruntime.Goexit()
	}
	return conn, derr
}
