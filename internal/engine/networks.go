package engine

import (
	"fmt"
	"net"
	"strings"

	"github.com/moby/moby/api/types/events"

	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/network"
)

// netOf is the bridge network a container is attached to (nil for host and none).
func (e *Engine) netOf(c *container.Container) *network.Net {
	switch mode := string(c.HostConfig.NetworkMode); {
	case mode == "host" || mode == "none" || strings.HasPrefix(mode, "container:"):
		return nil
	default:
		return e.nets.Get(mode)
	}
}

func (e *Engine) onUserNetwork(c *container.Container) bool {
	n := e.netOf(c)
	return n != nil && n.User
}

// endpointOf records where a network attachment put the container.
func endpointOf(ep *network.Endpoint) *container.Endpoint {
	return &container.Endpoint{NetNS: ep.NetNS, IP: ep.IP, PrefixLen: ep.PrefixLen, Gateway: ep.Gateway, MAC: ep.MAC}
}

// sharedNetNS finds the namespace of the container whose network c joins
// (--network container:NAME); that container must be running.
func (e *Engine) sharedNetNS(c *container.Container) (string, *container.Container, error) {
	target, err := e.ctrs.Get(strings.TrimPrefix(string(c.HostConfig.NetworkMode), "container:"))
	if err != nil {
		return "", nil, err
	}
	if !target.Running() {
		return "", nil, errdefs.Conflict(fmt.Sprintf("cannot join network namespace of a non running container: container %s is %s", target.ID, target.State.Status))
	}
	switch target.HostConfig.NetworkMode {
	case "host":
		return "", target, nil
	case "none":
		return fmt.Sprintf("/proc/%d/ns/net", target.State.Pid), target, nil
	}
	if target.Endpoint != nil {
		return target.Endpoint.NetNS, target, nil
	}
	return "", nil, errdefs.Conflict("the container has no network namespace to join")
}

// detachNet takes a container off its network and stops its embedded DNS server.
func (e *Engine) detachNet(c *container.Container) {
	e.dnsMu.Lock()
	if s := e.dns[c.ID]; s != nil {
		s.Close()
		delete(e.dns, c.ID)
	}
	e.dnsMu.Unlock()
	for _, a := range c.Extra {
		if n := e.nets.Get(a.Network); n != nil && a.Endpoint != nil {
			n.Leave(c.ID)
		}
		a.Endpoint = nil
	}
	if n := e.netOf(c); n != nil && n.User {
		n.Detach(c.ID)
	}
	e.nets.Default().Detach(c.ID) // the default network also holds --network none namespaces
}

func (e *Engine) startDNS(c *container.Container, n *network.Net) error {
	if c.Endpoint == nil {
		return nil
	}
	s, err := e.resolver.Serve(c.Endpoint.NetNS, c.ID)
	if err != nil {
		return err
	}
	e.dnsMu.Lock()
	if old := e.dns[c.ID]; old != nil {
		old.Close()
	}
	e.dns[c.ID] = s
	e.dnsMu.Unlock()
	return nil
}

// lookupFor answers the embedded DNS server of container asker: name on any of the
// networks it is attached to.
func (e *Engine) lookupFor(asker, name string) []net.IP {
	c, err := e.ctrs.Get(asker)
	if err != nil {
		return nil
	}
	nets := []string{string(c.HostConfig.NetworkMode)}
	for _, a := range c.Extra {
		nets = append(nets, a.Network)
	}
	var out []net.IP
	for _, n := range nets {
		if nw := e.nets.Get(n); nw != nil && nw.User {
			out = append(out, e.lookupName(n, name)...)
		}
	}
	return out
}

// lookupName answers the embedded DNS server: the addresses, on network, of the running
// containers called name (their name, an alias, their hostname or a short id).
func (e *Engine) lookupName(netName, name string) []net.IP {
	var out []net.IP
	for _, c := range e.ctrs.List() {
		ep := onNetwork(c, netName)
		if ep == nil {
			continue
		}
		aliases := c.Aliases
		if string(c.HostConfig.NetworkMode) != netName {
			aliases = nil
			for _, a := range c.Extra {
				if a.Network == netName {
					aliases = a.Aliases
				}
			}
		}
		match := strings.EqualFold(c.Name, name) || (len(name) >= 12 && strings.HasPrefix(c.ID, name)) ||
			strings.EqualFold(c.Config.Hostname, name)
		for _, a := range aliases {
			match = match || strings.EqualFold(a, name)
		}
		if match {
			if ip := net.ParseIP(ep.IP); ip != nil {
				out = append(out, ip.To4())
			}
		}
	}
	return out
}

// Networks lists the bridge networks.
func (e *Engine) Networks() []*network.Net { return e.nets.List() }

// Network finds a bridge network by name or id.
func (e *Engine) Network(ref string) (*network.Net, error) {
	if n := e.nets.Get(ref); n != nil {
		return n, nil
	}
	return nil, errdefs.NotFound(fmt.Sprintf("network %s not found", ref))
}

// NetworkCreate makes a user network.
func (e *Engine) NetworkCreate(name, subnet string, labels map[string]string, internal bool) (*network.Net, error) {
	n, err := e.nets.Create(name, subnet, labels, internal)
	if err == nil {
		e.publish(events.NetworkEventType, events.ActionCreate, n.ID, map[string]string{"name": name, "type": "bridge"})
	}
	return n, err
}

// NetworkContainers lists the running containers attached to a network.
func (e *Engine) NetworkContainers(n *network.Net) []*container.Container {
	var out []*container.Container
	for _, c := range e.ctrs.List() {
		if onNetwork(c, n.Name) != nil {
			out = append(out, c)
		}
	}
	return out
}

// NetworkRemove deletes a user network that has no running container on it.
func (e *Engine) NetworkRemove(ref string) error {
	switch ref {
	case "host", "none", "bridge":
		return errdefs.New(errdefs.ErrForbidden, fmt.Sprintf("%s is a pre-defined network and cannot be removed", ref))
	}
	n, err := e.Network(ref)
	if err != nil {
		return err
	}
	if len(e.NetworkContainers(n)) > 0 {
		return errdefs.New(errdefs.ErrForbidden, fmt.Sprintf("error while removing network: network %s id %s has active endpoints", n.Name, n.ID))
	}
	if err := e.nets.Remove(n.Name); err != nil {
		return err
	}
	e.publish(events.NetworkEventType, events.ActionDestroy, n.ID, map[string]string{"name": n.Name, "type": "bridge"})
	return nil
}

// joinExtra attaches a running container to the networks it was connected to.
func (e *Engine) joinExtra(c *container.Container) error {
	for i, a := range c.Extra {
		n := e.nets.Get(a.Network)
		if n == nil {
			return errdefs.NotFound(fmt.Sprintf("network %s not found", a.Network))
		}
		ep, err := n.Join(c.ID, c.Endpoint.NetNS, fmt.Sprintf("eth%d", i+1), net.ParseIP(a.IP).To4())
		if err != nil {
			return fmt.Errorf("network %s: %w", a.Network, err)
		}
		a.Endpoint = endpointOf(ep)
	}
	return nil
}

// Connect attaches a container to one more network, now if it runs, else at its next start.
func (e *Engine) Connect(netRef, ref string, aliases []string, ip string) error {
	n, err := e.Network(netRef)
	if err != nil {
		return err
	}
	c, err := e.ctrs.Get(ref)
	if err != nil {
		return err
	}
	mode := string(c.HostConfig.NetworkMode)
	if mode == "host" || mode == "none" || strings.HasPrefix(mode, "container:") {
		return errdefs.New(errdefs.ErrForbidden, fmt.Sprintf("container cannot be connected to network %s: it uses network mode %s", n.Name, mode))
	}
	l := e.liveOf(c.ID)
	l.mu.Lock()
	defer l.mu.Unlock()
	if mode == n.Name {
		return errdefs.New(errdefs.ErrForbidden, fmt.Sprintf("endpoint with name %s already exists in network %s", c.Name, n.Name))
	}
	for _, a := range c.Extra {
		if a.Network == n.Name {
			return errdefs.New(errdefs.ErrForbidden, fmt.Sprintf("endpoint with name %s already exists in network %s", c.Name, n.Name))
		}
	}
	a := &container.Attachment{Network: n.Name, Aliases: aliases, IP: ip}
	if c.Running() && c.Endpoint != nil {
		ep, err := n.Join(c.ID, c.Endpoint.NetNS, fmt.Sprintf("eth%d", len(c.Extra)+1), net.ParseIP(ip).To4())
		if err != nil {
			return err
		}
		a.Endpoint = endpointOf(ep)
	}
	c.Extra = append(c.Extra, a)
	e.publish(events.NetworkEventType, events.ActionConnect, n.ID, map[string]string{"name": n.Name, "container": c.ID})
	return e.ctrs.Save(c)
}

// Disconnect takes a container off a network it was connected to.
func (e *Engine) Disconnect(netRef, ref string) error {
	n, err := e.Network(netRef)
	if err != nil {
		return err
	}
	c, l, err := e.lockContainer(ref)
	if err != nil {
		return err
	}
	defer l.mu.Unlock()
	for i, a := range c.Extra {
		if a.Network != n.Name {
			continue
		}
		if a.Endpoint != nil {
			n.Leave(c.ID)
		}
		c.Extra = append(c.Extra[:i], c.Extra[i+1:]...)
		e.publish(events.NetworkEventType, events.ActionDisconnect, n.ID, map[string]string{"name": n.Name, "container": c.ID})
		return e.ctrs.Save(c)
	}
	if string(c.HostConfig.NetworkMode) == n.Name {
		return errdefs.New(errdefs.ErrNotImplemented, "disconnecting a container from its first network is not supported yet")
	}
	return errdefs.New(errdefs.ErrForbidden, fmt.Sprintf("container %s is not connected to network %s", c.ID, n.Name))
}

// onNetwork reports whether a running container has an address on network.
func onNetwork(c *container.Container, network string) *container.Endpoint {
	if !c.Running() {
		return nil
	}
	if string(c.HostConfig.NetworkMode) == network {
		return c.Endpoint
	}
	for _, a := range c.Extra {
		if a.Network == network {
			return a.Endpoint
		}
	}
	return nil
}

// EndpointOn is a running container's address on network, or nil.
func (e *Engine) EndpointOn(c *container.Container, network string) *container.Endpoint {
	return onNetwork(c, network)
}

// dnsServersOf lists a container's --dns servers, which its embedded DNS server forwards to.
func (e *Engine) dnsServersOf(id string) []string {
	c, err := e.ctrs.Get(id)
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range c.HostConfig.DNS {
		out = append(out, a.String())
	}
	return out
}

// PruneNetworks removes the user networks no running container uses (and that match).
func (e *Engine) PruneNetworks(match func(*network.Net) bool) []string {
	deleted := []string{}
	for _, n := range e.nets.List() {
		if n.User && (match == nil || match(n)) && e.NetworkRemove(n.Name) == nil {
			deleted = append(deleted, n.Name)
		}
	}
	return deleted
}
