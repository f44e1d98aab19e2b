package network

import (
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/engine/errdefs"
)

// Mapping is one published port: HostIP:HostPort on the host goes to CtrIP:CtrPort.
// An empty or 0.0.0.0 HostIP means every host address; HostPort 0 asks for any free
// port from the ephemeral range.
type Mapping struct {
	Proto    string `json:"proto"` // tcp or udp
	HostIP   string `json:"hostIP"`
	HostPort uint16 `json:"hostPort"`
	CtrIP    string `json:"ctrIP"`
	CtrPort  uint16 `json:"ctrPort"`
}

func (p Mapping) hostAddr() string {
	ip := p.HostIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	return net.JoinHostPort(ip, strconv.Itoa(int(p.HostPort)))
}

// Publish reserves the host ports of a container's mappings and installs the DNAT
// rules for them. The kernel forwards the traffic; the engine only holds a socket on
// each host port so that no other program (or container) can take it. On error nothing
// is left reserved or installed.
func (m *Manager) Publish(id, name string, want []Mapping) ([]Mapping, error) {
	if len(want) == 0 {
		return nil, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var got []Mapping
	var held []io.Closer
	fail := func(err error) ([]Mapping, error) {
		for _, h := range held {
			h.Close()
		}
		return nil, err
	}
	for _, p := range want {
		for _, other := range m.published {
			for _, o := range other {
				if p.HostPort != 0 && o.Proto == p.Proto && o.HostPort == p.HostPort && overlaps(o.HostIP, p.HostIP) {
					return fail(errdefs.Conflict(fmt.Sprintf("Bind for %s failed: port is already allocated", p.hostAddr())))
				}
			}
		}
		h, port, err := reserve(p)
		if err != nil {
			return fail(fmt.Errorf("driver failed programming external connectivity on endpoint %s (%s): failed to bind host port for %s:%s:%d/%s: address already in use",
				name, id, p.hostAddr(), p.CtrIP, p.CtrPort, p.Proto))
		}
		held = append(held, h)
		p.HostPort = port
		got = append(got, p)
	}
	m.published[id] = got
	if err := m.program(); err != nil {
		delete(m.published, id)
		m.program()
		return fail(fmt.Errorf("nftables: %w", err))
	}
	m.reserved[id] = held
	return got, nil
}

// Restore takes back the host ports of containers that kept running while the engine
// was away and writes the rules for all of them (and Berth's base rules) at once.
// Ports that can no longer be reserved keep their rules: traffic still flows.
func (m *Manager) Restore(all map[string][]Mapping) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, maps := range all {
		m.published[id] = maps
		for _, p := range maps {
			if h, _, err := reserve(p); err == nil {
				m.reserved[id] = append(m.reserved[id], h)
			}
		}
	}
	return m.program()
}

// Unpublish releases a container's host ports and removes its rules.
func (m *Manager) Unpublish(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.published[id]; !ok {
		return
	}
	for _, h := range m.reserved[id] {
		h.Close()
	}
	delete(m.reserved, id)
	delete(m.published, id)
	m.program()
}

// program puts the ports published now into the kernel: Berth's nftables table for the
// bridge, and the loopback shortcut's table.
func (m *Manager) program() error {
	maps := m.allMappings()
	m.cfg.Shortcut.set(m.cfg.Bridge, maps)
	return m.writeRules(maps)
}

func (m *Manager) allMappings() []Mapping {
	ids := make([]string, 0, len(m.published))
	for id := range m.published {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var out []Mapping
	for _, id := range ids {
		out = append(out, m.published[id]...)
	}
	return out
}

func overlaps(a, b string) bool {
	all := func(s string) bool { return s == "" || s == "0.0.0.0" }
	return all(a) || all(b) || a == b
}

// reserve binds the host port so that nothing else can take it, and returns the port
// bound (the kernel's choice when asked for 0). A TCP port is bound but not listened on:
// the kernel forwards the traffic, and a connection that arrives before the DNAT rule is
// refused at once rather than accepted by a socket nobody answers on. No SO_REUSEADDR,
// so no other socket can bind the port either.
func reserve(p Mapping) (io.Closer, uint16, error) {
	if p.Proto == "udp" {
		c, err := net.ListenPacket("udp4", p.hostAddr())
		if err != nil {
			return nil, 0, err
		}
		return c, uint16(c.LocalAddr().(*net.UDPAddr).Port), nil
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, 0, err
	}
	sa := &unix.SockaddrInet4{Port: int(p.HostPort)}
	if ip := net.ParseIP(p.HostIP).To4(); ip != nil {
		copy(sa.Addr[:], ip)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, 0, err
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, 0, err
	}
	return os.NewFile(uintptr(fd), "reserved-port"), uint16(got.(*unix.SockaddrInet4).Port), nil
}

// enableLocalnet lets packets from 127.0.0.1 that were DNAT'ed to a container leave
// through the bridge (needed for "curl 127.0.0.1:PORT"); it is set on Berth's bridge only.
func (m *Manager) enableLocalnet() {
	os.WriteFile("/proc/sys/net/ipv4/conf/"+m.cfg.Bridge+"/route_localnet", []byte("1"), 0o644)
}
