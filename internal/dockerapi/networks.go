package dockerapi

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/moby/moby/api/types/network"

	"github.com/berth-project/berth/internal/engine/errdefs"
	enet "github.com/berth-project/berth/internal/engine/network"
)

func (s *Server) networkRoutes() {
	s.mux.HandleFunc("GET /networks", s.listNetworks)
	s.mux.HandleFunc("GET /networks/{id}", s.inspectNetwork)
	s.mux.HandleFunc("POST /networks/create", s.createNetwork)
	s.mux.HandleFunc("DELETE /networks/{id}", s.removeNetwork)
	s.mux.HandleFunc("POST /networks/prune", s.pruneNetworks)
	s.mux.HandleFunc("POST /networks/{id}/connect", s.connectNetwork)
	s.mux.HandleFunc("POST /networks/{id}/disconnect", s.disconnectNetwork)
}

func builtin(name, driver string) network.Inspect {
	n := network.Inspect{}
	n.Name, n.ID, n.Driver, n.Scope = name, name, driver, "local"
	n.Containers = map[string]network.EndpointResource{}
	n.Options, n.Labels = map[string]string{}, map[string]string{}
	n.IPAM.Driver = "default"
	n.IPAM.Config = []network.IPAMConfig{}
	return n
}

func (s *Server) networkView(n *enet.Net) network.Inspect {
	v := builtin(n.Name, "bridge")
	v.ID, v.Internal, v.EnableIPv4 = n.ID, n.Internal, true
	v.Created = n.Created
	v.Options["com.docker.network.bridge.name"] = n.Bridge()
	if !n.User {
		v.Options["com.docker.network.bridge.default_bridge"] = "true"
	}
	if n.Labels != nil {
		v.Labels = n.Labels
	}
	if p, err := netip.ParsePrefix(n.Subnet()); err == nil {
		gw, _ := netip.ParseAddr(n.Gateway())
		v.IPAM.Config = []network.IPAMConfig{{Subnet: p, Gateway: gw}}
	}
	for _, c := range s.e.NetworkContainers(n) {
		cep := s.e.EndpointOn(c, n.Name)
		if cep == nil {
			continue
		}
		ep := network.EndpointResource{Name: c.Name, EndpointID: c.ID}
		if a, err := netip.ParseAddr(cep.IP); err == nil {
			ep.IPv4Address = netip.PrefixFrom(a, cep.PrefixLen)
		}
		ep.MacAddress, _ = parseMAC(cep.MAC)
		v.Containers[c.ID] = ep
	}
	return v
}

func (s *Server) allNetworks() []network.Inspect {
	var out []network.Inspect
	for _, n := range s.e.Networks() {
		out = append(out, s.networkView(n))
	}
	return append(out, builtin("host", "host"), builtin("none", "null"))
}

func (s *Server) findNetwork(ref string) (network.Inspect, error) {
	for _, n := range s.allNetworks() {
		if n.Name == ref || n.ID == ref || (len(ref) >= 3 && strings.HasPrefix(n.ID, ref)) {
			return n, nil
		}
	}
	return network.Inspect{}, errdefs.NotFound(fmt.Sprintf("network %s not found", ref))
}

func (s *Server) listNetworks(w http.ResponseWriter, r *http.Request) {
	f, err := filters(r)
	if err != nil {
		writeError(w, err)
		return
	}
	out := []network.Inspect{}
	for _, n := range s.allNetworks() {
		if names := f["name"]; len(names) > 0 && !anyMatch(names, func(v string) bool { return strings.Contains(n.Name, v) }) {
			continue
		}
		if ids := f["id"]; len(ids) > 0 && !anyMatch(ids, func(v string) bool { return strings.HasPrefix(n.ID, v) }) {
			continue
		}
		if d := f["driver"]; len(d) > 0 && !contains(d, n.Driver) {
			continue
		}
		if t := f["type"]; len(t) > 0 {
			custom := n.Name != "bridge" && n.Name != "host" && n.Name != "none"
			if contains(t, "custom") != custom && contains(t, "builtin") == custom {
				continue
			}
		}
		if !matchLabels(n.Labels, f["label"]) {
			continue
		}
		out = append(out, n)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) inspectNetwork(w http.ResponseWriter, r *http.Request) {
	n, err := s.findNetwork(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, n)
}

func (s *Server) createNetwork(w http.ResponseWriter, r *http.Request) {
	var req network.CreateRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Name == "" {
		writeError(w, errdefs.Invalid("network name is required"))
		return
	}
	if req.Driver != "" && req.Driver != "bridge" {
		writeError(w, errdefs.NotFound(fmt.Sprintf("plugin %q not found", req.Driver)))
		return
	}
	subnet := ""
	if req.IPAM != nil && len(req.IPAM.Config) > 0 {
		if len(req.IPAM.Config) > 1 {
			writeError(w, errdefs.Invalid("only one IPv4 subnet per network is supported"))
			return
		}
		c := req.IPAM.Config[0]
		if c.Subnet.IsValid() {
			subnet = c.Subnet.String()
		}
		if c.Gateway.IsValid() && (!c.Subnet.IsValid() || c.Gateway != c.Subnet.Masked().Addr().Next()) {
			writeError(w, errdefs.Invalid("a gateway other than the first address of the subnet is not supported"))
			return
		}
	}
	n, err := s.e.NetworkCreate(req.Name, subnet, req.Labels, req.Internal)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, network.CreateResponse{ID: n.ID})
}

func (s *Server) removeNetwork(w http.ResponseWriter, r *http.Request) {
	if err := s.e.NetworkRemove(r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) pruneNetworks(w http.ResponseWriter, r *http.Request) {
	f, err := filters(r)
	if err != nil {
		writeError(w, err)
		return
	}
	deleted := s.e.PruneNetworks(func(n *enet.Net) bool { return matchLabels(n.Labels, f["label"]) })
	writeJSON(w, http.StatusOK, network.PruneReport{NetworksDeleted: deleted})
}

func (s *Server) connectNetwork(w http.ResponseWriter, r *http.Request) {
	var req network.ConnectRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	var aliases []string
	ip := ""
	if ep := req.EndpointConfig; ep != nil {
		aliases = ep.Aliases
		if ep.IPAMConfig != nil && ep.IPAMConfig.IPv4Address.IsValid() {
			ip = ep.IPAMConfig.IPv4Address.String()
		}
	}
	if err := s.e.Connect(r.PathValue("id"), req.Container, aliases, ip); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) disconnectNetwork(w http.ResponseWriter, r *http.Request) {
	var req network.DisconnectRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := s.e.Disconnect(r.PathValue("id"), req.Container); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}
