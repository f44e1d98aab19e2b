// Package network gives containers their networking: a Linux bridge with a subnet,
// one network namespace and veth pair per container, outbound NAT in Berth's own
// nftables table. Port publishing and user networks build on the same Manager.
package network

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Config names the default bridge network.
type Config struct {
	Bridge   string // e.g. berth0
	CIDR     string // e.g. 10.88.0.0/16
	StateDir string // run-time state: netns files, ipam
	// Isolate names the other bridges this one must not forward to, as Docker isolates
	// its networks from each other; a trailing "*" matches a prefix ("br-*").
	Isolate []string
	// NoMasquerade lists destinations reached from the subnet without NAT: the rest of
	// a cluster's pod network, whose nodes route each other's pod subnets.
	NoMasquerade []string
	// Shortcut, if set, lets loopback clients of published TCP ports connect straight
	// to the container (see Shortcut); the DNAT rules are written either way.
	Shortcut *Shortcut
}

// Manager owns the bridge and the containers' namespaces on it.
type Manager struct {
	cfg    Config
	subnet *net.IPNet
	gw     net.IP
	table  string

	mu        sync.Mutex
	ipam      *ipam
	published map[string][]Mapping   // container id -> its published ports
	reserved  map[string][]io.Closer // container id -> sockets holding its host ports
}

// Endpoint is a container's attachment to the bridge.
type Endpoint struct {
	NetNS      string `json:"netns"`
	IP         string `json:"ip"`
	PrefixLen  int    `json:"prefixLen"`
	Gateway    string `json:"gateway"`
	MAC        string `json:"mac"`
	HostVeth   string `json:"hostVeth"`
	BridgeName string `json:"bridge"`
}

// New sets up the bridge (creating it if needed), forwarding and NAT.
func New(cfg Config) (*Manager, error) {
	_, subnet, err := net.ParseCIDR(cfg.CIDR)
	if err != nil || subnet.IP.To4() == nil {
		return nil, fmt.Errorf("bridge cidr %q: want an IPv4 CIDR", cfg.CIDR)
	}
	if len(cfg.Bridge) == 0 || len(cfg.Bridge) > 15 {
		return nil, fmt.Errorf("bridge name %q: 1 to 15 characters", cfg.Bridge)
	}
	m := &Manager{cfg: cfg, subnet: subnet, ipam: newIPAM(subnet), table: "berth_" + cfg.Bridge,
		published: map[string][]Mapping{}, reserved: map[string][]io.Closer{}}
	m.gw = m.ipam.gateway()
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "netns"), 0o700); err != nil {
		return nil, err
	}
	m.loadIPAM()
	if err := m.setupBridge(); err != nil {
		return nil, err
	}
	os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
	m.enableLocalnet()
	return m, nil
}

// Contains reports whether ip is in the network's subnet.
func (m *Manager) Contains(ip net.IP) bool { return m.subnet.Contains(ip) }

// Subnet and Gateway describe the bridge network.
func (m *Manager) Subnet() string  { return m.subnet.String() }
func (m *Manager) Gateway() string { return m.gw.String() }
func (m *Manager) Bridge() string  { return m.cfg.Bridge }

func (m *Manager) setupBridge() error {
	link, err := netlink.LinkByName(m.cfg.Bridge)
	if err != nil {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: m.cfg.Bridge, MTU: 1500}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create bridge %s: %w", m.cfg.Bridge, err)
		}
		if link, err = netlink.LinkByName(m.cfg.Bridge); err != nil {
			return err
		}
	}
	ones, _ := m.subnet.Mask.Size()
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: m.gw, Mask: net.CIDRMask(ones, 32)}}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("address %s on %s: %w", addr, m.cfg.Bridge, err)
	}
	return netlink.LinkSetUp(link)
}

func (m *Manager) ipamPath() string { return filepath.Join(m.cfg.StateDir, "ipam.json") }

func (m *Manager) loadIPAM() {
	data, err := os.ReadFile(m.ipamPath())
	if err != nil {
		return
	}
	json.Unmarshal(data, &m.ipam.used)
	// A quarantine outlives nothing: the engine that was deleting those ports is gone.
	for ip, o := range m.ipam.used {
		if o == quarantined {
			delete(m.ipam.used, ip)
		}
	}
}

func (m *Manager) saveIPAM() {
	data, _ := json.Marshal(m.ipam.used)
	tmp := m.ipamPath() + ".tmp"
	if os.WriteFile(tmp, data, 0o600) == nil {
		os.Rename(tmp, m.ipamPath())
	}
}

// NetNSPath is where a container's namespace is pinned.
func (m *Manager) NetNSPath(id string) string {
	return filepath.Join(m.cfg.StateDir, "netns", id)
}

// vethName is the host end of a container's veth on this bridge.
func (m *Manager) vethName(id string) string {
	h := sha256.Sum256([]byte(m.cfg.Bridge + "/" + id))
	return "vb" + hex.EncodeToString(h[:])[:11]
}

// Attach gives container id a new namespace on the bridge with an address, a default
// route through the gateway and loopback up.
func (m *Manager) Attach(id string, want net.IP) (ep *Endpoint, err error) {
	nsPath := m.NetNSPath(id)
	removeNetNS(nsPath)
	if err := newNetNS(nsPath); err != nil {
		return nil, err
	}
	ep, err = m.link(id, nsPath, "eth0", want, true)
	if err != nil {
		removeNetNS(nsPath)
	}
	return ep, err
}

// Join adds the bridge to a namespace that already exists (docker network connect):
// one more interface, ifname, with an address and no default route.
func (m *Manager) Join(id, nsPath, ifname string, want net.IP) (*Endpoint, error) {
	return m.link(id, nsPath, ifname, want, false)
}

// Leave takes container id off the bridge without touching its namespace.
func (m *Manager) Leave(id string) {
	m.Unpublish(id)
	if l, err := netlink.LinkByName(m.vethName(id)); err == nil {
		netlink.LinkDel(l)
	}
	m.mu.Lock()
	m.ipam.release(id)
	m.saveIPAM()
	m.mu.Unlock()
}

func (m *Manager) link(id, nsPath, ifname string, want net.IP, defaultRoute bool) (ep *Endpoint, err error) {
	m.mu.Lock()
	ip, err := m.ipam.allocate(id, want)
	if err == nil {
		m.saveIPAM()
	}
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			m.Leave(id)
		}
	}()
	host := m.vethName(id)
	if old, err := netlink.LinkByName(host); err == nil {
		netlink.LinkDel(old)
	}
	br, err := netlink.LinkByName(m.cfg.Bridge)
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", m.cfg.Bridge, err)
	}
	nsh, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, err
	}
	defer nsh.Close()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: host, MasterIndex: br.Attrs().Index, MTU: br.Attrs().MTU},
		PeerName:      ifname,
		PeerNamespace: netlink.NsFd(nsh),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("veth %s: %w", host, err)
	}
	hl, err := netlink.LinkByName(host)
	if err != nil {
		return nil, err
	}
	if err := netlink.LinkSetUp(hl); err != nil {
		return nil, err
	}
	// Hairpin: a container reaching its own published port comes back the same way.
	netlink.LinkSetHairpin(hl, true)
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	eth, err := h.LinkByName(ifname)
	if err != nil {
		return nil, err
	}
	// A MAC derived from the IP, as Docker does: an address that comes back with a
	// restarted container keeps its MAC, so neighbours' ARP caches stay right.
	if err := h.LinkSetHardwareAddr(eth, net.HardwareAddr{0x02, 0x42, ip[0], ip[1], ip[2], ip[3]}); err != nil {
		return nil, fmt.Errorf("mac of %s: %w", ifname, err)
	}
	if eth, err = h.LinkByName(ifname); err != nil {
		return nil, err
	}
	ones, _ := m.subnet.Mask.Size()
	if err := h.AddrAdd(eth, &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(ones, 32)}}); err != nil {
		return nil, err
	}
	if err := h.LinkSetUp(eth); err != nil {
		return nil, err
	}
	if defaultRoute {
		if lo, err := h.LinkByName("lo"); err == nil {
			h.LinkSetUp(lo)
		}
		if err := h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: m.gw}); err != nil {
			return nil, fmt.Errorf("default route: %w", err)
		}
	}
	return &Endpoint{
		NetNS: nsPath, IP: ip.String(), PrefixLen: ones, Gateway: m.gw.String(),
		MAC: eth.Attrs().HardwareAddr.String(), HostVeth: host, BridgeName: m.cfg.Bridge,
	}, nil
}

// Detach removes a container's veth, namespace and address. It is safe to call twice.
//
// Deleting a veth takes the kernel 15-35 ms, so it is done after Detach returns (a
// `docker run --rm` is waiting). Until the port is gone its address stays reserved:
// a lingering port keeps the container's MAC (derived from its IP) in the bridge's
// forwarding table, and another container given that address would not be reached.
func (m *Manager) Detach(id string) error {
	m.Unpublish(id)
	link, lerr := netlink.LinkByName(m.vethName(id))
	m.mu.Lock()
	held := m.ipam.quarantine(id)
	m.saveIPAM()
	m.mu.Unlock()
	err := removeNetNS(m.NetNSPath(id))
	go func() {
		if lerr == nil {
			// By index: a restarted container may already have a new veth of that name.
			if l, err := netlink.LinkByIndex(link.Attrs().Index); err == nil && l.Attrs().Name == link.Attrs().Name {
				netlink.LinkDel(l)
			}
		}
		m.mu.Lock()
		m.ipam.lift(held)
		m.saveIPAM()
		m.mu.Unlock()
	}()
	return err
}

// Counters returns the bytes a container received and sent on the bridge. They are
// read on the host's end of its veth, where the directions are swapped.
func (m *Manager) Counters(id string) (rx, tx uint64) {
	dir := filepath.Join("/sys/class/net", m.vethName(id), "statistics")
	read := func(name string) uint64 {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return 0
		}
		var n uint64
		fmt.Sscan(string(data), &n)
		return n
	}
	return read("tx_bytes"), read("rx_bytes")
}
