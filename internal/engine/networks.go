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
	if n := e.netOf(c); n != nil && n.User {
		n.Detach(c.ID)
	}
	e.nets.Default().Detach(c.ID) // the default network also holds --network none namespaces
}

func (e *Engine) startDNS(c *container.Container, n *network.Net) error {
	if c.Endpoint == nil {
		return nil
	}
	s, err := e.resolver.Serve(c.Endpoint.NetNS, n.Name)
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

// lookupName answers the embedded DNS server: the addresses, on network, of the running
// containers called name (their name, an alias, their hostname or a short id).
func (e *Engine) lookupName(netName, name string) []net.IP {
	var out []net.IP
	for _, c := range e.ctrs.List() {
		if !c.Running() || c.Endpoint == nil || string(c.HostConfig.NetworkMode) != netName {
			continue
		}
		match := strings.EqualFold(c.Name, name) || (len(name) >= 12 && strings.HasPrefix(c.ID, name)) ||
			strings.EqualFold(c.Config.Hostname, name)
		for _, a := range c.Aliases {
			match = match || strings.EqualFold(a, name)
		}
		if match {
			if ip := net.ParseIP(c.Endpoint.IP); ip != nil {
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
		if c.Running() && c.Endpoint != nil && e.netOf(c) == n {
			out = append(out, c)
		}
	}
	return out
}

// NetworkRemove deletes a user network that has no running container on it.
func (e *Engine) NetworkRemove(ref string) error {
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
