package engine

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	dcontainer "github.com/moby/moby/api/types/container"

	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/network"
)

// wantedPorts turns -p (PortBindings) and -P (PublishAllPorts over the exposed ports)
// into the mappings to publish for a container at ip.
func wantedPorts(cfg *dcontainer.Config, hc *dcontainer.HostConfig, ip string) ([]network.Mapping, error) {
	var out []network.Mapping
	seen := map[string]bool{}
	for port, bindings := range hc.PortBindings {
		for _, b := range bindings {
			hostPort := uint16(0)
			if b.HostPort != "" {
				first, _, _ := strings.Cut(b.HostPort, "-")
				n, err := strconv.ParseUint(first, 10, 16)
				if err != nil || (n == 0 && first != "0") {
					return nil, errdefs.Invalid(fmt.Sprintf("invalid port specification: %q", b.HostPort))
				}
				hostPort = uint16(n)
			}
			hostIP := ""
			if b.HostIP.IsValid() {
				if !b.HostIP.Is4() {
					continue // IPv6 publishing is not supported yet
				}
				hostIP = b.HostIP.String()
			}
			m := network.Mapping{Proto: string(port.Proto()), HostIP: hostIP, HostPort: hostPort, CtrIP: ip, CtrPort: port.Num()}
			if m.Proto == "" {
				m.Proto = "tcp"
			}
			if m.Proto != "tcp" && m.Proto != "udp" {
				return nil, errdefs.Invalid(fmt.Sprintf("invalid proto: %s", m.Proto))
			}
			out = append(out, m)
			seen[port.String()] = true
		}
	}
	if hc.PublishAllPorts {
		for port := range cfg.ExposedPorts {
			if seen[port.String()] {
				continue
			}
			proto := string(port.Proto())
			if proto == "" {
				proto = "tcp"
			}
			out = append(out, network.Mapping{Proto: proto, CtrIP: ip, CtrPort: port.Num()})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CtrPort != out[j].CtrPort {
			return out[i].CtrPort < out[j].CtrPort
		}
		return out[i].Proto < out[j].Proto
	})
	return out, nil
}

func toPorts(maps []network.Mapping) []container.Port {
	var out []container.Port
	for _, m := range maps {
		host := m.HostIP
		if host == "" {
			host = "0.0.0.0"
		}
		out = append(out, container.Port{Proto: m.Proto, Port: m.CtrPort, HostIP: host, HostPort: m.HostPort})
	}
	return out
}

func toMappings(ports []container.Port, ip string) []network.Mapping {
	var out []network.Mapping
	for _, p := range ports {
		out = append(out, network.Mapping{Proto: p.Proto, HostIP: p.HostIP, HostPort: p.HostPort, CtrIP: ip, CtrPort: p.Port})
	}
	return out
}
