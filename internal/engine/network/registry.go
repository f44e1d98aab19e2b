package network

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/berth-project/berth/internal/engine/errdefs"
)

// userBridgePrefix starts the bridge names of user networks, as Docker's do.
const userBridgePrefix = "br-"

// Net is one bridge network: the default "bridge" or a user-defined one.
type Net struct {
	*Manager
	Name     string            `json:"name"`
	ID       string            `json:"id"`
	CIDR     string            `json:"cidr"`
	Labels   map[string]string `json:"labels,omitempty"`
	Created  time.Time         `json:"created"`
	Internal bool              `json:"internal,omitempty"`
	// User networks resolve their containers' names through the embedded DNS server.
	User bool `json:"-"`
}

// Registry holds the default bridge network and the user-defined ones.
type Registry struct {
	runDir, dataDir string
	defBridge       string
	shortcut        *Shortcut
	mu              sync.Mutex
	nets            map[string]*Net
}

// NewRegistry sets up the default bridge and every user network kept in dataDir.
func NewRegistry(def Config, runDir, dataDir string) (*Registry, error) {
	r := &Registry{runDir: runDir, dataDir: dataDir, nets: map[string]*Net{}, defBridge: def.Bridge, shortcut: def.Shortcut}
	def.Isolate = []string{userBridgePrefix + "*"}
	m, err := New(def)
	if err != nil {
		return nil, err
	}
	r.nets["bridge"] = &Net{Manager: m, Name: "bridge", ID: idOf("bridge", def.Bridge), CIDR: m.Subnet(), Created: time.Now().UTC()}
	data, err := os.ReadFile(r.file())
	if err == nil {
		var saved []*Net
		if err := json.Unmarshal(data, &saved); err != nil {
			return nil, fmt.Errorf("%s: %w", r.file(), err)
		}
		for _, n := range saved {
			if err := r.open(n); err != nil {
				return nil, fmt.Errorf("network %s: %w", n.Name, err)
			}
		}
	}
	return r, nil
}

// idOf gives a built-in network a stable 64-hex id.
func idOf(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "/")))
	return hex.EncodeToString(sum[:])
}

func (r *Registry) file() string { return filepath.Join(r.dataDir, "networks.json") }

func (r *Registry) open(n *Net) error {
	m, err := New(Config{Bridge: userBridgePrefix + n.ID[:12], CIDR: n.CIDR,
		StateDir: filepath.Join(r.runDir, "network", n.ID[:12]), Isolate: []string{userBridgePrefix + "*", r.defBridge},
		Shortcut: r.shortcut})
	if err != nil {
		return err
	}
	n.Manager, n.User = m, true
	r.nets[n.Name] = n
	return nil
}

func (r *Registry) save() error {
	var user []*Net
	for _, n := range r.nets {
		if n.User {
			user = append(user, n)
		}
	}
	sort.Slice(user, func(i, j int) bool { return user[i].Name < user[j].Name })
	data, _ := json.Marshal(user)
	if err := os.MkdirAll(r.dataDir, 0o700); err != nil {
		return err
	}
	tmp := r.file() + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, r.file())
}

// Default is the engine's default bridge network.
func (r *Registry) Default() *Net { return r.Get("bridge") }

// Get finds a network by name, id, or id prefix; nil if there is none.
func (r *Registry) Get(ref string) *Net {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, ok := r.nets[ref]; ok {
		return n
	}
	for _, n := range r.nets {
		if len(ref) >= 3 && strings.HasPrefix(n.ID, ref) {
			return n
		}
	}
	return nil
}

// List returns the bridge networks, by name.
func (r *Registry) List() []*Net {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Net, 0, len(r.nets))
	for _, n := range r.nets {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

var validNetName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// Create makes a user network. An empty subnet picks a free one from Docker's pools.
func (r *Registry) Create(name, subnet string, labels map[string]string, internal bool) (*Net, error) {
	if !validNetName.MatchString(name) {
		return nil, errdefs.Invalid(fmt.Sprintf("invalid network name %q", name))
	}
	switch name {
	case "bridge", "host", "none", "default":
		return nil, errdefs.New(errdefs.ErrForbidden, fmt.Sprintf("%s is a pre-defined network and cannot be created", name))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.nets[name]; ok {
		return nil, errdefs.Conflict(fmt.Sprintf("network with name %s already exists", name))
	}
	if subnet != "" {
		_, want, err := net.ParseCIDR(subnet)
		if err != nil || want.IP.To4() == nil {
			return nil, errdefs.Invalid(fmt.Sprintf("invalid subnet %s: want an IPv4 CIDR", subnet))
		}
		for _, n := range r.nets {
			if overlap(want, n.subnet) {
				return nil, errdefs.New(errdefs.ErrForbidden, fmt.Sprintf("invalid pool request: Pool overlaps with other one on this address space"))
			}
		}
		subnet = want.String()
	} else {
		s, err := r.freeSubnet()
		if err != nil {
			return nil, err
		}
		subnet = s
	}
	b := make([]byte, 32)
	rand.Read(b)
	n := &Net{Name: name, ID: hex.EncodeToString(b), CIDR: subnet, Labels: labels, Created: time.Now().UTC(), Internal: internal}
	if err := r.open(n); err != nil {
		return nil, err
	}
	if err := n.Manager.Restore(nil); err != nil { // outbound NAT and isolation rules
		delete(r.nets, name)
		n.teardown()
		return nil, err
	}
	if err := r.save(); err != nil {
		delete(r.nets, name)
		n.teardown()
		return nil, err
	}
	return n, nil
}

func overlap(a, b *net.IPNet) bool { return a.Contains(b.IP) || b.Contains(a.IP) }

// freeSubnet picks the first of Docker's default pools (172.18-31.0.0/16, then
// 192.168.N.0/20) that overlaps no network and no route of the host.
func (r *Registry) freeSubnet() (string, error) {
	var taken []*net.IPNet
	for _, n := range r.nets {
		taken = append(taken, n.subnet)
	}
	if routes, err := netlink.RouteList(nil, netlink.FAMILY_V4); err == nil {
		for _, rt := range routes {
			if rt.Dst != nil {
				if ones, _ := rt.Dst.Mask.Size(); ones > 0 { // not the default route
					taken = append(taken, rt.Dst)
				}
			}
		}
	}
	var candidates []string
	for i := 18; i <= 31; i++ {
		candidates = append(candidates, fmt.Sprintf("172.%d.0.0/16", i))
	}
	for i := 0; i < 256; i += 16 {
		candidates = append(candidates, fmt.Sprintf("192.168.%d.0/20", i))
	}
next:
	for _, c := range candidates {
		_, cand, _ := net.ParseCIDR(c)
		for _, t := range taken {
			if overlap(cand, t) {
				continue next
			}
		}
		return c, nil
	}
	return "", errdefs.New(errdefs.ErrUnavailable, "all predefined address pools have been fully subnetted")
}

// Remove deletes a user network; the caller checks no container uses it.
func (r *Registry) Remove(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ok := r.nets[name]
	if !ok {
		return errdefs.NotFound(fmt.Sprintf("network %s not found", name))
	}
	if !n.User {
		return errdefs.New(errdefs.ErrForbidden, fmt.Sprintf("%s is a pre-defined network and cannot be removed", name))
	}
	delete(r.nets, name)
	n.teardown()
	return r.save()
}

// teardown removes the network's bridge, rules and state.
func (m *Manager) teardown() {
	m.RemoveRules()
	if l, err := netlink.LinkByName(m.cfg.Bridge); err == nil {
		netlink.LinkDel(l)
	}
	os.RemoveAll(m.cfg.StateDir)
}

// Restore re-publishes the ports of running containers, per network name, and writes
// every network's rules.
func (r *Registry) Restore(ports map[string]map[string][]Mapping) error {
	var errs []string
	for _, n := range r.List() {
		if err := n.Manager.Restore(ports[n.Name]); err != nil {
			errs = append(errs, n.Name+": "+err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// Teardown removes every network's bridge and rules (not the user networks' definitions,
// which come back at the next start).
func (r *Registry) Teardown() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.nets {
		n.RemoveRules()
		if l, err := netlink.LinkByName(n.cfg.Bridge); err == nil {
			netlink.LinkDel(l)
		}
	}
}
