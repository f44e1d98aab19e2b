package network

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Shortcut lets programs in the engine's own network namespace that connect to a
// published TCP port on a loopback address (or on the exact host address a port was
// published on) connect straight to the container. Two small cgroup socket programs do
// it, attached to the root of the cgroup v2 hierarchy:
//
//   - connect4 rewrites the address a TCP socket connects to, once per connection, from
//     HOST-IP:HOST-PORT to CTR-IP:CTR-PORT, and remembers the original by socket cookie;
//   - getpeername4 answers the original address, so the client sees whom it dialled.
//
// Without it the nftables DNAT rule does the same translation, but on every packet, and a
// packet whose destination a local DNAT changed is routed a second time: published
// ports on 127.0.0.1 then carried about a fifth less than the container's own address.
// The DNAT rules stay in place and remain the only path for traffic from other hosts
// and other namespaces, for UDP, and whenever the shortcut is not attached (a kernel
// without the hooks, or while the engine is down: the programs go with the engine's
// process, and connections fall back to DNAT).
type Shortcut struct {
	log *slog.Logger

	mu      sync.Mutex
	tried   bool
	err     error
	ports   *ebpf.Map // portKey -> portKey: where a published port goes
	peers   *ebpf.Map // socket cookie -> portKey: what a shortcut socket dialled
	links   []link.Link
	owners  map[string][]Mapping // owner (bridge) -> its published ports
	current map[portKey]portKey
}

// portKey is an IPv4 address and a TCP port as the kernel's bpf_sock_addr holds them:
// the address in network order, the port in network order in the first two bytes of a
// 32-bit field.
type portKey struct {
	IP   [4]byte
	Port [4]byte
}

func keyOf(ip net.IP, port uint16) portKey {
	var k portKey
	copy(k.IP[:], ip.To4())
	binary.BigEndian.PutUint16(k.Port[:2], port)
	return k
}

// NewShortcut returns a Shortcut that loads its programs when the first TCP port is
// published. A nil *Shortcut is valid and does nothing.
func NewShortcut(log *slog.Logger) *Shortcut {
	if log == nil {
		log = slog.Default()
	}
	return &Shortcut{log: log, owners: map[string][]Mapping{}, current: map[portKey]portKey{}}
}

// set replaces the published ports of one owner and updates the kernel's table.
func (s *Shortcut) set(owner string, maps []Mapping) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var tcp []Mapping
	for _, p := range maps {
		if p.Proto != "udp" && net.ParseIP(p.CtrIP).To4() != nil {
			tcp = append(tcp, p)
		}
	}
	if len(tcp) == 0 {
		delete(s.owners, owner)
	} else {
		s.owners[owner] = tcp
	}
	if len(s.owners) == 0 && !s.tried {
		return
	}
	if !s.load() {
		return
	}
	want := map[portKey]portKey{}
	for _, list := range s.owners {
		for _, p := range list {
			host := net.IPv4zero
			if ip := net.ParseIP(p.HostIP).To4(); ip != nil {
				host = ip
			}
			want[keyOf(host, p.HostPort)] = keyOf(net.ParseIP(p.CtrIP), p.CtrPort)
		}
	}
	for k := range s.current {
		if _, ok := want[k]; !ok {
			if err := s.ports.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				s.log.Warn("shortcut: remove port", "err", err)
			}
			delete(s.current, k)
		}
	}
	for k, v := range want {
		if old, ok := s.current[k]; ok && old == v {
			continue
		}
		if err := s.ports.Put(k, v); err != nil {
			s.log.Warn("shortcut: add port", "err", err)
			continue
		}
		s.current[k] = v
	}
}

// load creates the maps and attaches the programs, once; it reports whether they are in
// place.
func (s *Shortcut) load() bool {
	if s.tried {
		return s.err == nil
	}
	s.tried = true
	if s.err = s.attach(); s.err != nil {
		s.log.Info("loopback shortcut to published ports unavailable; DNAT carries them", "err", s.err)
		s.closeLocked()
		s.err = fmt.Errorf("shortcut: %w", s.err)
		return false
	}
	return true
}

func (s *Shortcut) attach() error {
	root, err := cgroup2Root()
	if err != nil {
		return err
	}
	cookie, err := netnsCookie()
	if err != nil {
		return err
	}
	if s.ports, err = ebpf.NewMap(&ebpf.MapSpec{Name: "berth_ports", Type: ebpf.Hash,
		KeySize: 8, ValueSize: 8, MaxEntries: 65536}); err != nil {
		return err
	}
	if s.peers, err = ebpf.NewMap(&ebpf.MapSpec{Name: "berth_peers", Type: ebpf.LRUHash,
		KeySize: 8, ValueSize: 8, MaxEntries: 65536}); err != nil {
		return err
	}
	for _, p := range []struct {
		name   string
		attach ebpf.AttachType
		insns  asm.Instructions
	}{
		{"berth_connect4", ebpf.AttachCGroupInet4Connect, connectProgram(cookie, s.ports.FD(), s.peers.FD())},
		{"berth_peername4", ebpf.AttachCgroupInet4GetPeername, peernameProgram(s.peers.FD())},
	} {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: p.name, Type: ebpf.CGroupSockAddr,
			AttachType: p.attach, Instructions: p.insns, License: "Apache-2.0"})
		if err != nil {
			return fmt.Errorf("load %s: %w", p.name, err)
		}
		l, err := link.AttachCgroup(link.CgroupOptions{Path: root, Attach: p.attach, Program: prog})
		prog.Close() // the link keeps the program
		if err != nil {
			return fmt.Errorf("attach %s to %s: %w", p.name, root, err)
		}
		s.links = append(s.links, l)
	}
	return nil
}

// Close detaches the programs and frees the maps; connections made through the shortcut
// keep going (they are ordinary connections to the container's address).
func (s *Shortcut) Close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
	s.tried, s.err = false, nil
	s.current = map[portKey]portKey{}
}

func (s *Shortcut) closeLocked() {
	for _, l := range s.links {
		l.Close()
	}
	s.links = nil
	for _, m := range []*ebpf.Map{s.ports, s.peers} {
		if m != nil {
			m.Close()
		}
	}
	s.ports, s.peers = nil, nil
}

// Offsets in the kernel's struct bpf_sock_addr.
const (
	sockAddrUserIP4  = 4
	sockAddrUserPort = 24
	sockAddrProtocol = 36
)

// connectProgram: for a TCP connect from the network namespace whose cookie is netns,
// look up (dst ip, dst port), then (0.0.0.0, dst port) if dst is in 127.0.0.0/8; on a hit
// connect to the container instead and note the original address under the socket's
// cookie. It always allows the connect.
func connectProgram(netns uint64, ports, peers int) asm.Instructions {
	first := func(b byte) int32 { return int32(binary.NativeEndian.Uint32([]byte{b, 0, 0, 0})) }
	lookup := func(fd int) asm.Instructions {
		return asm.Instructions{
			asm.LoadMapPtr(asm.R1, fd),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -8),
			asm.FnMapLookupElem.Call(),
		}
	}
	var p asm.Instructions
	p = append(p,
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, sockAddrProtocol, asm.Word),
		asm.JNE.Imm(asm.R2, unix.IPPROTO_TCP, "out"),
		asm.FnGetNetnsCookie.Call(), // R1 is still the context
		asm.LoadImm(asm.R2, int64(netns), asm.DWord),
		asm.JNE.Reg(asm.R0, asm.R2, "out"),
		asm.LoadMem(asm.R7, asm.R6, sockAddrUserIP4, asm.Word),
		asm.LoadMem(asm.R8, asm.R6, sockAddrUserPort, asm.Word),
		asm.StoreMem(asm.RFP, -8, asm.R7, asm.Word),
		asm.StoreMem(asm.RFP, -4, asm.R8, asm.Word),
	)
	p = append(p, lookup(ports)...)
	p = append(p,
		asm.JNE.Imm(asm.R0, 0, "found"),
		asm.Mov.Reg32(asm.R2, asm.R7),
		asm.And.Imm32(asm.R2, first(0xff)),
		asm.JNE.Imm32(asm.R2, first(127), "out"),
		asm.StoreImm(asm.RFP, -8, 0, asm.Word),
	)
	p = append(p, lookup(ports)...)
	p = append(p,
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R2, asm.R0, 0, asm.Word).WithSymbol("found"),
		asm.LoadMem(asm.R3, asm.R0, 4, asm.Word),
		asm.StoreMem(asm.R6, sockAddrUserIP4, asm.R2, asm.Word),
		asm.StoreMem(asm.R6, sockAddrUserPort, asm.R3, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, -16, asm.R0, asm.DWord),
		asm.StoreMem(asm.RFP, -24, asm.R7, asm.Word),
		asm.StoreMem(asm.RFP, -20, asm.R8, asm.Word),
		asm.LoadMapPtr(asm.R1, peers),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -16),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, -24),
		asm.Mov.Imm(asm.R4, 0), // BPF_ANY
		asm.FnMapUpdateElem.Call(),
		asm.Mov.Imm(asm.R0, 1).WithSymbol("out"),
		asm.Return(),
	)
	return p
}

// peernameProgram answers getpeername on a shortcut socket with the address it dialled.
func peernameProgram(peers int) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord),
		asm.LoadMapPtr(asm.R1, peers),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R2, asm.R0, 0, asm.Word),
		asm.LoadMem(asm.R3, asm.R0, 4, asm.Word),
		asm.StoreMem(asm.R6, sockAddrUserIP4, asm.R2, asm.Word),
		asm.StoreMem(asm.R6, sockAddrUserPort, asm.R3, asm.Word),
		asm.Mov.Imm(asm.R0, 1).WithSymbol("out"),
		asm.Return(),
	}
}

// netnsCookie is the kernel's cookie for the calling thread's network namespace.
func netnsCookie() (uint64, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	v, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0, fmt.Errorf("netns cookie: %w", err)
	}
	return v, nil
}

// cgroup2Root finds where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or
// /sys/fs/cgroup/unified on a hybrid host).
func cgroup2Root() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source super
		fields := strings.Fields(sc.Text())
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && fields[3] == "/" {
				return fields[4], nil
			}
		}
	}
	return "", errors.New("no cgroup v2 hierarchy mounted")
}
