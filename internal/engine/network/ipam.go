package network

import (
	"encoding/binary"
	"fmt"
	"net"

	"github.com/berth-project/berth/internal/engine/errdefs"
)

// ipam hands out addresses of a subnet. .0 is the network, .1 the gateway, the last
// the broadcast address. It is a pure value; the Manager persists it.
type ipam struct {
	subnet *net.IPNet
	used   map[string]string // ip -> owner
}

func newIPAM(subnet *net.IPNet) *ipam { return &ipam{subnet: subnet, used: map[string]string{}} }

func ip4add(ip net.IP, n uint32) net.IP {
	v := binary.BigEndian.Uint32(ip.To4()) + n
	out := make(net.IP, 4)
	binary.BigEndian.PutUint32(out, v)
	return out
}

func (a *ipam) gateway() net.IP { return ip4add(a.subnet.IP.To4(), 1) }

func (a *ipam) size() uint32 {
	ones, bits := a.subnet.Mask.Size()
	return uint32(1) << uint(bits-ones)
}

// allocate gives owner the first free address, or want if given and free.
func (a *ipam) allocate(owner string, want net.IP) (net.IP, error) {
	if want != nil {
		if !a.subnet.Contains(want) {
			return nil, errdefs.Invalid(fmt.Sprintf("no configured subnet contains IP address %s", want))
		}
		if o, ok := a.used[want.String()]; ok && o != owner {
			return nil, errdefs.Conflict(fmt.Sprintf("Address already in use: %s", want))
		}
		a.used[want.String()] = owner
		return want, nil
	}
	for ip, o := range a.used {
		if o == owner {
			return net.ParseIP(ip).To4(), nil
		}
	}
	for i := uint32(2); i < a.size()-1; i++ {
		ip := ip4add(a.subnet.IP.To4(), i)
		if _, ok := a.used[ip.String()]; !ok {
			a.used[ip.String()] = owner
			return ip, nil
		}
	}
	return nil, errdefs.New(errdefs.ErrUnavailable, "no available IPv4 addresses on this network's address pools: "+a.subnet.String())
}

// quarantine takes owner's addresses away from it without making them free yet, and
// returns them for lift.
func (a *ipam) quarantine(owner string) []string {
	var held []string
	for ip, o := range a.used {
		if o == owner {
			a.used[ip] = quarantined
			held = append(held, ip)
		}
	}
	return held
}

// lift frees addresses put in quarantine.
func (a *ipam) lift(ips []string) {
	for _, ip := range ips {
		if a.used[ip] == quarantined {
			delete(a.used, ip)
		}
	}
}

// quarantined marks an address whose old port may still be on the bridge.
const quarantined = "-quarantined-"

func (a *ipam) release(owner string) {
	for ip, o := range a.used {
		if o == owner {
			delete(a.used, ip)
		}
	}
}
