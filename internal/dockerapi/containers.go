package dockerapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"
	dcontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/storage"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/errdefs"
)

func (s *Server) containerRoutes() {
	m := s.mux
	m.HandleFunc("POST /containers/create", s.createContainer)
	m.HandleFunc("GET /containers/json", s.listContainers)
	m.HandleFunc("GET /containers/{id}/json", s.inspectContainer)
	m.HandleFunc("POST /containers/{id}/start", s.startContainer)
	m.HandleFunc("POST /containers/{id}/stop", s.stopContainer)
	m.HandleFunc("POST /containers/{id}/restart", s.restartContainer)
	m.HandleFunc("POST /containers/{id}/kill", s.killContainer)
	m.HandleFunc("POST /containers/{id}/pause", s.simple(func(ctx context.Context, id string) error { return s.e.Pause(ctx, id) }))
	m.HandleFunc("POST /containers/{id}/unpause", s.simple(func(ctx context.Context, id string) error { return s.e.Unpause(ctx, id) }))
	m.HandleFunc("DELETE /containers/{id}", s.removeContainer)
	m.HandleFunc("POST /containers/{id}/wait", s.waitContainer)
	m.HandleFunc("POST /containers/{id}/attach", s.attachContainer)
	m.HandleFunc("POST /containers/{id}/resize", s.resizeContainer)
	m.HandleFunc("GET /containers/{id}/logs", s.logsContainer)
	m.HandleFunc("POST /containers/{id}/rename", s.renameContainer)
	m.HandleFunc("GET /containers/{id}/top", s.topContainer)
	m.HandleFunc("GET /containers/{id}/stats", s.statsContainer)
	m.HandleFunc("GET /containers/{id}/changes", s.changesContainer)
	m.HandleFunc("GET /containers/{id}/export", s.exportContainer)
	m.HandleFunc("HEAD /containers/{id}/archive", s.statArchive)
	m.HandleFunc("GET /containers/{id}/archive", s.getArchive)
	m.HandleFunc("PUT /containers/{id}/archive", s.putArchive)
	m.HandleFunc("POST /containers/prune", s.pruneContainers)
	m.HandleFunc("POST /commit", s.commit)
	m.HandleFunc("POST /containers/{id}/update", s.updateContainer)
}

func (s *Server) simple(fn func(ctx context.Context, id string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := fn(r.Context(), r.PathValue("id")); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

type createRequest struct {
	dcontainer.Config
	HostConfig       *dcontainer.HostConfig
	NetworkingConfig *network.NetworkingConfig
}

func (s *Server) createContainer(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Image == "" {
		writeError(w, errdefs.Invalid("config cannot be empty in order to create a container"))
		return
	}
	cfg := req.Config
	o := engine.CreateOptions{Name: r.URL.Query().Get("name"), Config: &cfg, HostConfig: req.HostConfig}
	if req.NetworkingConfig != nil && req.HostConfig != nil {
		if ep := req.NetworkingConfig.EndpointsConfig[string(req.HostConfig.NetworkMode)]; ep != nil {
			o.Aliases = ep.Aliases
			if ep.IPAMConfig != nil && ep.IPAMConfig.IPv4Address.IsValid() {
				o.IP = ep.IPAMConfig.IPv4Address.String()
			}
		}
	}
	c, warnings, err := s.e.Create(r.Context(), o)
	if err != nil {
		writeError(w, err)
		return
	}
	if warnings == nil {
		warnings = []string{}
	}
	writeJSON(w, http.StatusCreated, dcontainer.CreateResponse{ID: c.ID, Warnings: warnings})
}

func (s *Server) startContainer(w http.ResponseWriter, r *http.Request) {
	if err := s.e.Start(r.Context(), r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func timeoutParam(r *http.Request) (*int, error) {
	if r.URL.Query().Get("t") == "" {
		return nil, nil
	}
	t, err := intValue(r, "t", 0)
	return &t, err
}

func (s *Server) stopContainer(w http.ResponseWriter, r *http.Request) {
	t, err := timeoutParam(r)
	if err == nil {
		err = s.e.Stop(r.Context(), r.PathValue("id"), r.URL.Query().Get("signal"), t)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) restartContainer(w http.ResponseWriter, r *http.Request) {
	t, err := timeoutParam(r)
	if err == nil {
		err = s.e.Restart(r.Context(), r.PathValue("id"), r.URL.Query().Get("signal"), t)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) killContainer(w http.ResponseWriter, r *http.Request) {
	if err := s.e.Kill(r.Context(), r.PathValue("id"), r.URL.Query().Get("signal")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) removeContainer(w http.ResponseWriter, r *http.Request) {
	err := s.e.Remove(r.Context(), r.PathValue("id"), engine.RemoveOptions{Force: boolValue(r, "force"), Volumes: boolValue(r, "v")})
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) renameContainer(w http.ResponseWriter, r *http.Request) {
	if err := s.e.Rename(r.Context(), r.PathValue("id"), r.URL.Query().Get("name")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) updateContainer(w http.ResponseWriter, r *http.Request) {
	var req dcontainer.UpdateConfig
	if err := decodeBody(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if !reflect.DeepEqual(req.Resources, dcontainer.Resources{}) {
		writeError(w, errdefs.New(errdefs.ErrNotImplemented, "changing the resources of a container is not supported yet; only --restart can be updated"))
		return
	}
	if err := s.e.UpdateRestartPolicy(r.PathValue("id"), req.RestartPolicy); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, dcontainer.UpdateResponse{Warnings: []string{}})
}

func (s *Server) waitContainer(w http.ResponseWriter, r *http.Request) {
	cond := engine.WaitCondition(r.URL.Query().Get("condition"))
	switch cond {
	case "":
		cond = engine.WaitNotRunning
	case engine.WaitNotRunning, engine.WaitNextExit, engine.WaitRemoved:
	default:
		writeError(w, errdefs.Invalid(fmt.Sprintf("invalid condition: %q", cond)))
		return
	}
	if _, err := s.e.Get(r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	fw := newFlushWriter(w)
	// The CLI blocks on the response headers before it starts the container: send them
	// as soon as the wait is armed.
	code, err := s.e.Wait(r.Context(), r.PathValue("id"), cond, func() {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		fw.Flush()
	})
	resp := dcontainer.WaitResponse{StatusCode: int64(code)}
	if err != nil {
		resp.Error = &dcontainer.WaitExitError{Message: err.Error()}
	}
	json.NewEncoder(fw).Encode(resp)
}

func (s *Server) attachContainer(w http.ResponseWriter, r *http.Request) {
	c, err := s.e.Get(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	if !boolValue(r, "stream") && !boolValue(r, "logs") {
		writeError(w, errdefs.Invalid("Bad parameters: you must choose at least one stream"))
		return
	}
	ct := "application/vnd.docker.multiplexed-stream"
	if c.Config.Tty {
		ct = "application/vnd.docker.raw-stream"
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	// The client is told it is attached (101) only once its place is taken: docker run
	// sends the start as soon as it has the 101.
	upgrade := func() (engine.Streams, error) {
		hc, rw, err := hijack(w, r, ct)
		if err != nil {
			return engine.Streams{}, err
		}
		conn = hc
		st := engine.Streams{Out: conn, Framed: !c.Config.Tty, Stdout: boolValue(r, "stdout"), Stderr: boolValue(r, "stderr")}
		if boolValue(r, "stdin") {
			st.Stdin = rw.Reader
		}
		if boolValue(r, "logs") {
			s.e.Logs(ctx, c.ID, engine.LogOptions{Stdout: st.Stdout, Stderr: st.Stderr, Tail: -1}, conn, st.Framed)
		}
		return st, nil
	}
	if !boolValue(r, "stream") {
		upgrade()
		return
	}
	if err := s.e.AttachWhenReady(ctx, c.ID, boolValue(r, "stdin"), upgrade); err != nil && conn == nil {
		writeError(w, err)
	}
}

func (s *Server) resizeContainer(w http.ResponseWriter, r *http.Request) {
	h, err1 := intValue(r, "h", 0)
	wd, err2 := intValue(r, "w", 0)
	if err := errors.Join(err1, err2); err != nil {
		writeError(w, err)
		return
	}
	if err := s.e.Resize(r.Context(), r.PathValue("id"), uint16(wd), uint16(h)); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) logsContainer(w http.ResponseWriter, r *http.Request) {
	c, err := s.e.Get(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	o := engine.LogOptions{Stdout: boolValue(r, "stdout"), Stderr: boolValue(r, "stderr"),
		Follow: boolValue(r, "follow"), Timestamps: boolValue(r, "timestamps"), Tail: -1,
		Since: parseTime(r.URL.Query().Get("since")), Until: parseTime(r.URL.Query().Get("until"))}
	if !o.Stdout && !o.Stderr {
		writeError(w, errdefs.Invalid("Bad parameters: you must choose at least one stream"))
		return
	}
	if t := r.URL.Query().Get("tail"); t != "" && t != "all" {
		n, err := strconv.Atoi(t)
		if err != nil {
			writeError(w, errdefs.Invalid("invalid value for tail: "+t))
			return
		}
		o.Tail = n
	}
	ct := "application/vnd.docker.multiplexed-stream"
	if c.Config.Tty {
		ct = "application/vnd.docker.raw-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	fw := newFlushWriter(w)
	s.e.Logs(r.Context(), c.ID, o, fw, !c.Config.Tty)
}

func (s *Server) topContainer(w http.ResponseWriter, r *http.Request) {
	titles, procs, err := s.e.Top(r.Context(), r.PathValue("id"), r.URL.Query().Get("ps_args"))
	if err != nil {
		writeError(w, err)
		return
	}
	if procs == nil {
		procs = [][]string{}
	}
	writeJSON(w, http.StatusOK, dcontainer.TopResponse{Titles: titles, Processes: procs})
}

func (s *Server) changesContainer(w http.ResponseWriter, r *http.Request) {
	ch, err := s.e.Changes(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	out := []dcontainer.FilesystemChange{}
	for _, c := range ch {
		out = append(out, dcontainer.FilesystemChange{Path: c.Path, Kind: dcontainer.ChangeType(c.Kind)})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) exportContainer(w http.ResponseWriter, r *http.Request) {
	if _, err := s.e.Get(r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	s.e.Export(r.Context(), r.PathValue("id"), w)
}

func statHeader(st *engine.PathStat) string {
	data, _ := json.Marshal(dcontainer.PathStat{Name: st.Name, Size: st.Size, Mode: st.Mode, Mtime: st.Mtime, LinkTarget: st.LinkTarget})
	return base64.StdEncoding.EncodeToString(data)
}

func (s *Server) statArchive(w http.ResponseWriter, r *http.Request) {
	st, err := s.e.StatPath(r.Context(), r.PathValue("id"), r.URL.Query().Get("path"))
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("X-Docker-Container-Path-Stat", statHeader(st))
	w.WriteHeader(http.StatusOK)
}

func (s *Server) getArchive(w http.ResponseWriter, r *http.Request) {
	started := false
	err := s.e.ArchivePath(r.Context(), r.PathValue("id"), r.URL.Query().Get("path"), w, func(st *engine.PathStat) {
		w.Header().Set("X-Docker-Container-Path-Stat", statHeader(st))
		w.Header().Set("Content-Type", "application/x-tar")
		w.WriteHeader(http.StatusOK)
		started = true
	})
	if err != nil && !started {
		writeError(w, err)
	}
}

func (s *Server) putArchive(w http.ResponseWriter, r *http.Request) {
	err := s.e.ExtractToDir(r.Context(), r.PathValue("id"), r.URL.Query().Get("path"), r.Body, boolValue(r, "noOverwriteDirNonDir"))
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) pruneContainers(w http.ResponseWriter, r *http.Request) {
	f, err := filters(r)
	if err != nil {
		writeError(w, err)
		return
	}
	deleted, space := s.e.PruneContainers(r.Context(), func(c *container.Container) bool {
		return matchLabels(c.Config.Labels, f["label"])
	})
	writeJSON(w, http.StatusOK, dcontainer.PruneReport{ContainersDeleted: deleted, SpaceReclaimed: space})
}

func (s *Server) commit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var cfg dcontainer.Config
	if err := decodeBody(r, &cfg); err != nil {
		writeError(w, err)
		return
	}
	ref := q.Get("repo")
	if ref != "" && q.Get("tag") != "" {
		ref += ":" + q.Get("tag")
	}
	img, err := s.e.Commit(r.Context(), q.Get("container"), engine.CommitOptions{
		Ref: ref, Comment: q.Get("comment"), Author: q.Get("author"), Changes: q["changes"],
		Pause: q.Get("pause") == "" || boolValue(r, "pause"),
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"Id": img.ID.String()})
}

// ---- views ----

func statusString(c *container.Container) string {
	now := time.Now()
	switch c.State.Status {
	case container.Running:
		return "Up " + units.HumanDuration(now.Sub(c.State.StartedAt))
	case container.Paused:
		return "Up " + units.HumanDuration(now.Sub(c.State.StartedAt)) + " (Paused)"
	case container.Restarting:
		return fmt.Sprintf("Restarting (%d) %s ago", c.State.ExitCode, units.HumanDuration(now.Sub(c.State.FinishedAt)))
	case container.Exited:
		return fmt.Sprintf("Exited (%d) %s ago", c.State.ExitCode, units.HumanDuration(now.Sub(c.State.FinishedAt)))
	case container.Created:
		return "Created"
	}
	return c.State.Status
}

func commandString(c *container.Container) string {
	parts := append([]string{c.Path}, c.Args...)
	for i, p := range parts {
		if strings.ContainsAny(p, " \t\"'") {
			parts[i] = strconv.Quote(p)
		}
	}
	return strings.Join(parts, " ")
}

func mountPoints(c *container.Container) []dcontainer.MountPoint {
	out := []dcontainer.MountPoint{}
	for _, m := range c.Mounts {
		mp := dcontainer.MountPoint{Type: mount.Type(m.Type), Name: m.Name, Source: m.Source, Destination: m.Destination, RW: m.RW, Mode: m.Mode}
		if m.Type == "volume" {
			mp.Driver = "local"
			if mp.Mode == "" {
				mp.Mode = "z"
			}
		}
		if m.Type == "bind" {
			mp.Propagation = mount.PropagationRPrivate
		}
		if m.Type == "tmpfs" {
			mp.Source = ""
		}
		out = append(out, mp)
	}
	return out
}

func endpointSettings(c *container.Container) map[string]*network.EndpointSettings {
	mode := string(c.HostConfig.NetworkMode)
	ep := &network.EndpointSettings{NetworkID: mode}
	if c.Endpoint != nil && c.Running() {
		ep.IPAddress, _ = netip.ParseAddr(c.Endpoint.IP)
		ep.Gateway, _ = netip.ParseAddr(c.Endpoint.Gateway)
		ep.IPPrefixLen = c.Endpoint.PrefixLen
		if hw, err := parseMAC(c.Endpoint.MAC); err == nil {
			ep.MacAddress = hw
		}
		ep.EndpointID = c.ID
	}
	out := map[string]*network.EndpointSettings{mode: ep}
	for _, a := range c.Extra {
		x := &network.EndpointSettings{NetworkID: a.Network, Aliases: a.Aliases}
		if a.Endpoint != nil && c.Running() {
			x.IPAddress, _ = netip.ParseAddr(a.Endpoint.IP)
			x.Gateway, _ = netip.ParseAddr(a.Endpoint.Gateway)
			x.IPPrefixLen = a.Endpoint.PrefixLen
			x.MacAddress, _ = parseMAC(a.Endpoint.MAC)
			x.EndpointID = c.ID
		}
		out[a.Network] = x
	}
	return out
}

func parseMAC(s string) (network.HardwareAddr, error) {
	var hw network.HardwareAddr
	err := hw.UnmarshalText([]byte(s))
	return hw, err
}

// portViews gives the published ports (while running) and the exposed ones, in the
// two shapes Docker uses: the PortMap of inspect and the list of ps.
func portViews(c *container.Container) (network.PortMap, []dcontainer.PortSummary) {
	pm := network.PortMap{}
	list := []dcontainer.PortSummary{}
	published := map[string]bool{}
	if c.Running() {
		for _, p := range c.Ports {
			port, ok := network.PortFrom(p.Port, network.IPProtocol(p.Proto))
			if !ok {
				continue
			}
			ip, _ := netip.ParseAddr(p.HostIP)
			pm[port] = append(pm[port], network.PortBinding{HostIP: ip, HostPort: strconv.Itoa(int(p.HostPort))})
			list = append(list, dcontainer.PortSummary{IP: ip, PrivatePort: p.Port, PublicPort: p.HostPort, Type: p.Proto})
			published[port.String()] = true
		}
	}
	exposed := map[network.Port]bool{}
	for port := range c.Config.ExposedPorts {
		exposed[port] = true
	}
	for port := range c.HostConfig.PortBindings {
		exposed[port] = true
	}
	for port := range exposed {
		if published[port.String()] {
			continue
		}
		pm[port] = nil
		list = append(list, dcontainer.PortSummary{PrivatePort: port.Num(), Type: string(port.Proto())})
	}
	return pm, list
}

func (s *Server) summary(c *container.Container) dcontainer.Summary {
	sum := dcontainer.Summary{
		ID: c.ID, Names: []string{"/" + c.Name}, Image: c.Config.Image, ImageID: c.Image,
		Command: commandString(c), Created: c.Created.Unix(),
		Labels: c.Config.Labels, State: dcontainer.ContainerState(c.State.Status), Status: statusString(c),
		NetworkSettings: &dcontainer.NetworkSettingsSummary{Networks: endpointSettings(c)},
		Mounts:          mountPoints(c),
	}
	_, sum.Ports = portViews(c)
	if sum.Labels == nil {
		sum.Labels = map[string]string{}
	}
	sum.HostConfig.NetworkMode = string(c.HostConfig.NetworkMode)
	return sum
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (s *Server) inspectContainer(w http.ResponseWriter, r *http.Request) {
	c, view, err := s.e.Inspectable(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	st := c.State
	status := st.Status
	resp := dcontainer.InspectResponse{
		ID: c.ID, Created: fmtTime(c.Created), Path: c.Path, Args: c.Args,
		State: &dcontainer.State{
			Status: dcontainer.ContainerState(status), Running: st.Status == container.Running || st.Status == container.Paused,
			Paused: st.Status == container.Paused, Restarting: st.Status == container.Restarting,
			OOMKilled: st.OOMKilled, Pid: st.Pid, ExitCode: st.ExitCode, Error: st.Error,
			StartedAt: fmtTime(st.StartedAt), FinishedAt: fmtTime(st.FinishedAt),
		},
		Image: c.Image, Name: "/" + c.Name, RestartCount: c.Restarts, Driver: "overlay2", Platform: "linux",
		ResolvConfPath: c.Dir() + "/resolv.conf", HostnamePath: c.Dir() + "/hostname", HostsPath: c.Dir() + "/hosts",
		LogPath: c.LogPath(), HostConfig: c.HostConfig, Config: c.Config, Mounts: mountPoints(c),
		GraphDriver: &storage.DriverData{Name: "overlay2", Data: map[string]string{}},
		NetworkSettings: &dcontainer.NetworkSettings{
			Networks: endpointSettings(c),
		},
		ExecIDs: nil,
	}
	resp.NetworkSettings.Ports, _ = portViews(c)
	if c.Endpoint != nil && c.Running() {
		resp.NetworkSettings.SandboxKey = c.Endpoint.NetNS
		resp.NetworkSettings.SandboxID = c.ID
	}
	if boolValue(r, "size") {
		n := s.e.RootfsSize(c)
		resp.SizeRw = &n
	}
	if view {
		// No files of a container's: the sandbox has no layer, hosts files or log of this kind.
		resp.ResolvConfPath, resp.HostnamePath, resp.HostsPath, resp.LogPath = "", "", "", ""
		resp.Driver, resp.GraphDriver = "", nil
	}
	writeJSON(w, http.StatusOK, withLegacyNetworkFields(resp, c))
}

// legacyNetworkSettings adds the top-level address fields of the default network that
// API versions before 1.52 still return (`docker inspect -f '{{.NetworkSettings.IPAddress}}'`
// is in every tutorial).
type legacyNetworkSettings struct {
	dcontainer.NetworkSettings
	Bridge      string
	EndpointID  string
	Gateway     string
	IPAddress   string
	IPPrefixLen int
	MacAddress  string
}

type inspectResponse struct {
	dcontainer.InspectResponse
	NetworkSettings *legacyNetworkSettings
}

func withLegacyNetworkFields(resp dcontainer.InspectResponse, c *container.Container) inspectResponse {
	ns := &legacyNetworkSettings{NetworkSettings: *resp.NetworkSettings}
	if c.Endpoint != nil && c.Running() && c.HostConfig.NetworkMode == "bridge" {
		ns.EndpointID, ns.IPAddress, ns.Gateway = c.ID, c.Endpoint.IP, c.Endpoint.Gateway
		ns.IPPrefixLen, ns.MacAddress = c.Endpoint.PrefixLen, c.Endpoint.MAC
	}
	return inspectResponse{InspectResponse: resp, NetworkSettings: ns}
}

func matchLabels(labels map[string]string, want []string) bool {
	for _, l := range want {
		k, v, hasV := strings.Cut(l, "=")
		got, ok := labels[k]
		if !ok || (hasV && got != v) {
			return false
		}
	}
	return true
}

func (s *Server) listContainers(w http.ResponseWriter, r *http.Request) {
	f, err := filters(r, "id", "name", "ancestor", "status", "label", "exited", "before", "since",
		"volume", "network", "health", "isolation", "is-task", "publish", "expose")
	if err != nil {
		writeError(w, err)
		return
	}
	for _, st := range f["status"] {
		switch st {
		case "created", "restarting", "running", "removing", "paused", "exited", "dead":
		default:
			writeError(w, errdefs.Invalid(fmt.Sprintf("invalid filter 'status=%s'", st)))
			return
		}
	}
	limit, err := intValue(r, "limit", -1)
	if err != nil {
		writeError(w, err)
		return
	}
	all := boolValue(r, "all") || limit > 0 || len(f["status"]) > 0 || len(f["exited"]) > 0
	var ancestors []string
	for _, a := range f["ancestor"] {
		if img, err := s.e.Images().Get(a); err == nil {
			ancestors = append(ancestors, img.ID.String())
		}
	}
	out := []dcontainer.Summary{}
	for _, c := range s.e.ListWithSandboxes() {
		if !all && !(c.Running() || c.State.Status == container.Restarting) {
			continue
		}
		sum := s.summary(c)
		if ids := f["id"]; len(ids) > 0 && !anyMatch(ids, func(v string) bool { return strings.HasPrefix(c.ID, v) }) {
			continue
		}
		if names := f["name"]; len(names) > 0 && !anyMatch(names, func(v string) bool {
			re, err := regexp.Compile(strings.TrimPrefix(v, "/"))
			return err == nil && re.MatchString(c.Name) || strings.TrimPrefix(v, "/") == c.Name
		}) {
			continue
		}
		if len(f["ancestor"]) > 0 && !anyMatch(ancestors, func(v string) bool { return c.Image == v }) {
			continue
		}
		if sts := f["status"]; len(sts) > 0 && !contains(sts, string(sum.State)) {
			continue
		}
		if !matchLabels(c.Config.Labels, f["label"]) {
			continue
		}
		if ex := f["exited"]; len(ex) > 0 && (c.State.Status != container.Exited || !contains(ex, strconv.Itoa(c.State.ExitCode))) {
			continue
		}
		if vols := f["volume"]; len(vols) > 0 && !anyMatch(vols, func(v string) bool {
			for _, m := range c.Mounts {
				if m.Name == v || m.Destination == v || m.Source == v {
					return true
				}
			}
			return false
		}) {
			continue
		}
		if boolValue(r, "size") {
			sum.SizeRw = s.e.RootfsSize(c)
		}
		out = append(out, sum)
		if limit > 0 && len(out) >= limit {
			break
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func anyMatch(vals []string, fn func(string) bool) bool {
	for _, v := range vals {
		if fn(v) {
			return true
		}
	}
	return false
}
