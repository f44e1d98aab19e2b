// Package engine is the container engine's service layer: the one API that the Docker
// API server and the CRI server both call. It composes the image store, snapshots,
// container records, volumes, networking and the runtime.
package engine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
	digest "github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/internal/engine/build"
	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/image"
	"github.com/berth-project/berth/internal/engine/network"
	"github.com/berth-project/berth/internal/engine/runtime"
	"github.com/berth-project/berth/internal/engine/sandbox"
	"github.com/berth-project/berth/internal/engine/snapshot"
	"github.com/berth-project/berth/internal/engine/volume"
)

// Config is where the engine keeps things and how it networks.
type Config struct {
	DataDir      string
	RunDir       string
	Bridge       string
	BridgeCIDR   string
	RuntimePath  string // berth-runtime; berth-shim must sit next to it
	CgroupParent string // containers' cgroups go under /CgroupParent/ID
	// InsecureRegistries may be reached without verified TLS (host:port or CIDR).
	InsecureRegistries []string
	// PodBridge and PodCIDR are the node's pod network (CRI pod sandboxes); without a
	// CIDR it waits for the kubelet's (SetPodCIDR). ClusterCIDR, if set, is the whole
	// cluster's pod network, reached from pods without NAT.
	PodBridge   string
	PodCIDR     string
	ClusterCIDR string
	Logger      *slog.Logger
}

// Engine runs containers.
type Engine struct {
	cfg        Config
	log        *slog.Logger
	images     *image.Store
	snaps      *snapshot.Store
	ctrs       *container.Store
	vols       *volume.Store
	nets       *network.Registry
	shortcut   *network.Shortcut // loopback clients of published ports to containers
	resolver   *network.Resolver
	dnsMu      sync.Mutex
	dns        map[string]*network.DNSServer // container id -> its embedded DNS server
	rt         *runtime.Runtime
	builder    *build.Builder
	registries *image.Registries
	events     *eventBus
	started    time.Time
	runTmpfs   bool // the engine mounted a tmpfs on the run dir (see mountRunDir)

	// imageMu serialises image deletes against creates that pin an image.
	imageMu sync.Mutex
	held    map[digest.Digest]int // images running builds stand on; guarded by imageMu

	mu    sync.Mutex
	live  map[string]*live // per container: locks and waiters
	execs map[string]*Exec

	sandboxes *sandbox.Store
	sbLocks   map[string]*sync.Mutex // per sandbox: serialises its lifecycle; guarded by mu
	podMu     sync.Mutex
	podNet    *network.Manager // nil until the pod CIDR is known; guarded by podMu
}

// New opens the engine's stores, sets up the bridge and re-attaches to the containers
// that kept running while the engine was away.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "berth"
	}
	if cfg.PodBridge == "" {
		cfg.PodBridge = "berth-pod0"
	}
	for _, d := range []string{cfg.DataDir, cfg.RunDir} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, err
		}
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, events: newEventBus(), live: map[string]*live{}, held: map[digest.Digest]int{}, execs: map[string]*Exec{}, started: time.Now(), sbLocks: map[string]*sync.Mutex{}}
	var err error
	if e.runTmpfs, err = mountRunDir(cfg.RunDir); err != nil {
		e.log.Warn("run dir stays on its disk filesystem", "dir", cfg.RunDir, "err", err)
	} else if e.runTmpfs {
		e.log.Info("mounted a tmpfs on the run dir", "dir", cfg.RunDir)
	}
	if e.images, err = image.Open(filepath.Join(cfg.DataDir, "image")); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	if e.snaps, err = snapshot.Open(filepath.Join(cfg.DataDir, "overlay")); err != nil {
		return nil, fmt.Errorf("snapshots: %w", err)
	}
	if e.ctrs, err = container.Open(filepath.Join(cfg.DataDir, "containers")); err != nil {
		return nil, fmt.Errorf("containers: %w", err)
	}
	if e.vols, err = volume.Open(filepath.Join(cfg.DataDir, "volumes")); err != nil {
		return nil, fmt.Errorf("volumes: %w", err)
	}
	e.shortcut = network.NewShortcut(e.log)
	def := network.Config{Bridge: cfg.Bridge, CIDR: cfg.BridgeCIDR, StateDir: filepath.Join(cfg.RunDir, "network"), Shortcut: e.shortcut}
	if e.nets, err = network.NewRegistry(def, cfg.RunDir, filepath.Join(cfg.DataDir, "network")); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	e.resolver = network.NewResolver(e.lookupFor, "/etc/resolv.conf")
	e.resolver.Servers = e.dnsServersOf
	e.dns = map[string]*network.DNSServer{}
	e.registries = &image.Registries{CertsDir: filepath.Join(cfg.DataDir, "certs.d"), Insecure: cfg.InsecureRegistries}
	if e.builder, err = build.New(buildBackend{e}, filepath.Join(cfg.DataDir, "build")); err != nil {
		return nil, fmt.Errorf("builder: %w", err)
	}
	e.rt = &runtime.Runtime{Path: cfg.RuntimePath, Root: filepath.Join(cfg.RunDir, "runc")}
	e.rt.Probe()
	if e.sandboxes, err = sandbox.Open(filepath.Join(cfg.DataDir, "sandboxes")); err != nil {
		return nil, fmt.Errorf("pod sandboxes: %w", err)
	}
	if err := e.openPodNet(); err != nil {
		return nil, err
	}
	e.restore(ctx)
	e.restoreSandboxes()
	return e, nil
}

// restore re-attaches to running containers and settles the ones that ended while the
// engine was away (applying their restart policies).
func (e *Engine) restore(ctx context.Context) {
	ports := map[string]map[string][]network.Mapping{}
	var alive, ended []*container.Container
	for _, c := range e.ctrs.List() {
		switch {
		case !c.Running() && c.State.Status != container.Restarting:
			if c.State.Status == container.Created && e.shim(c).Alive() {
				// An early start (see earlyStart) of an engine that went away. Its
				// start never completed, so the container stays created, even if the
				// old engine died after giving the go-ahead and the process ran.
				e.abandonShim(c)
			}
		case e.shim(c).Alive():
			alive = append(alive, c)
		default:
			ended = append(ended, c)
		}
	}
	for _, c := range alive {
		n := e.netOf(c)
		if c.Endpoint == nil || n == nil {
			continue
		}
		if len(c.Ports) > 0 {
			if ports[n.Name] == nil {
				ports[n.Name] = map[string][]network.Mapping{}
			}
			ports[n.Name][c.ID] = toMappings(c.Ports, c.Endpoint.IP)
		}
		if n.User {
			e.startDNS(c, n)
		}
	}
	if err := e.nets.Restore(ports); err != nil {
		e.log.Error("restore published ports", "err", err)
	}
	for _, c := range alive {
		e.log.Info("re-attached", "container", c.ID[:12], "name", c.Name)
		go e.monitor(c, e.liveOf(c.ID))
	}
	for _, c := range ended {
		ex, err := e.shim(c).ReadExit()
		if err != nil {
			ex = runtime.Exit{Code: 255, FinishedAt: time.Now().UTC(), Error: "container ended while the engine was down"}
		}
		l := e.liveOf(c.ID)
		l.mu.Lock()
		e.handleExit(c, l, ex)
		l.mu.Unlock()
	}
}

// Close releases what the engine holds; running containers keep running. When none
// runs, the bridges and Berth's nftables tables go too (they are made again at start),
// so a stopped engine leaves the host's network as it found it.
func (e *Engine) Close() error {
	for _, c := range e.ctrs.List() {
		if c.State.Status == container.Created {
			// Held early starts go, and created containers' layers (mounted at create)
			// are unmounted: a stopped engine leaves no mount of a container not running.
			l := e.liveOf(c.ID)
			l.mu.Lock()
			e.dropEarly(c, l)
			e.releaseRootfs(c)
			l.mu.Unlock()
		}
	}
	e.rt.Close()
	e.shortcut.Close()
	e.snaps.Wait()
	e.ctrs.Wait()
	for _, c := range e.ctrs.List() {
		if c.Running() || c.State.Status == container.Restarting {
			return nil
		}
	}
	if e.sandboxesReady() {
		return nil
	}
	if pn := e.podNetwork(); pn != nil {
		pn.Down()
	}
	e.nets.Teardown()
	// The parent cgroup stays while the engine runs, as Docker's /docker does: made and
	// removed with every container, it cost twenty cgroup operations per docker run --rm.
	runtime.RemoveCgroupParent(e.cfg.CgroupParent)
	if e.runTmpfs {
		unmountRunDir(e.cfg.RunDir)
	}
	return nil
}

func (e *Engine) publish(typ events.Type, action events.Action, id string, attrs map[string]string) {
	e.events.publish(typ, action, id, attrs)
}

// Info is what /info reports about the engine.
type Info struct {
	Containers, Running, Paused, Stopped, Images int
	DataDir, Bridge, BridgeCIDR                  string
}

// Info counts containers and images.
func (e *Engine) Info() Info {
	in := Info{DataDir: e.cfg.DataDir, Bridge: e.cfg.Bridge, BridgeCIDR: e.cfg.BridgeCIDR}
	for _, c := range e.ctrs.List() {
		in.Containers++
		switch c.State.Status {
		case container.Running, container.Restarting:
			in.Running++
		case container.Paused:
			in.Paused++
		default:
			in.Stopped++
		}
	}
	in.Images = len(e.images.List())
	return in
}

// Images exposes the image store to the API layer's read-only views.
func (e *Engine) Images() *image.Store { return e.images }
