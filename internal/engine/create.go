package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	dcontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/mount"

	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/image"
)

// CreateOptions is a container to create, as the Docker API describes it.
type CreateOptions struct {
	Name       string
	Config     *dcontainer.Config
	HostConfig *dcontainer.HostConfig
	// Aliases and IP are this container's extra DNS names and wanted address on its
	// network (--network-alias, --ip).
	Aliases []string
	IP      string
	// Pod puts the container in a pod sandbox (see CreatePodContainer).
	Pod *container.Pod
}

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Create makes a container record (and its anonymous volumes) from an image.
func (e *Engine) Create(ctx context.Context, o CreateOptions) (*container.Container, []string, error) {
	// `docker run` starts what it creates a few milliseconds later.
	e.rt.Prime()
	if o.Config == nil {
		return nil, nil, errdefs.Invalid("config cannot be empty in order to create a container")
	}
	hc := o.HostConfig
	if hc == nil {
		hc = &dcontainer.HostConfig{}
	}
	name := strings.TrimPrefix(o.Name, "/")
	if o.Name != "" {
		if err := container.ValidateName(o.Name); err != nil {
			return nil, nil, err
		}
	}
	if err := validateHostConfig(hc); err != nil {
		return nil, nil, err
	}
	if o.Config.Image == "" {
		return nil, nil, errdefs.Invalid("no command specified")
	}
	e.imageMu.Lock()
	defer e.imageMu.Unlock()
	img, err := e.images.Get(o.Config.Image)
	if err != nil {
		return nil, nil, errdefs.NotFound("No such image: " + o.Config.Image)
	}
	cfg := *o.Config
	mergeImageConfig(&cfg, img)
	if len(cfg.Entrypoint) == 0 && len(cfg.Cmd) == 0 {
		return nil, nil, errdefs.Invalid("no command specified")
	}
	id := container.NewID()
	if name == "" {
		name = e.randomName()
	}
	if cfg.Hostname == "" && !hc.NetworkMode.IsHost() && !hc.NetworkMode.IsContainer() {
		cfg.Hostname = id[:12]
	}
	if hc.NetworkMode == "" || hc.NetworkMode == "default" {
		hc.NetworkMode = "bridge"
	}
	if hc.CgroupnsMode == "" {
		// Recorded as Docker records its daemon's default (private on cgroup v2).
		hc.CgroupnsMode = dcontainer.CgroupnsModePrivate
	}
	switch mode := string(hc.NetworkMode); {
	case o.Pod != nil: // the sandbox's network
	case mode == "bridge" || mode == "host" || mode == "none":
	case strings.HasPrefix(mode, "container:"):
		target, err := e.ctrs.Get(strings.TrimPrefix(mode, "container:"))
		if err != nil {
			// Not a 404: the CLI would take that for a missing image and try to pull.
			return nil, nil, errdefs.Invalid(err.Error())
		}
		if o.Config.Hostname != "" {
			return nil, nil, errdefs.Invalid("conflicting options: hostname and the network mode")
		}
		if len(hc.PortBindings) > 0 || hc.PublishAllPorts {
			return nil, nil, errdefs.Invalid("conflicting options: port publishing and the container type network mode")
		}
		hc.NetworkMode = dcontainer.NetworkMode("container:" + target.ID)
	default:
		n := e.nets.Get(mode)
		if n == nil {
			return nil, nil, errdefs.NotFound(fmt.Sprintf("network %s not found", mode))
		}
		hc.NetworkMode = dcontainer.NetworkMode(n.Name)
	}
	if o.IP != "" {
		ip := net.ParseIP(o.IP)
		n := e.nets.Get(string(hc.NetworkMode))
		if ip == nil || ip.To4() == nil {
			return nil, nil, errdefs.Invalid(fmt.Sprintf("invalid IPv4 address: %s", o.IP))
		}
		if n == nil || !n.User {
			return nil, nil, errdefs.Invalid("user specified IP address is supported on user defined networks only")
		}
		if !n.Contains(ip) {
			return nil, nil, errdefs.Invalid(fmt.Sprintf("no configured subnet contains IP address %s", o.IP))
		}
	}
	if hc.LogConfig.Type == "" {
		hc.LogConfig.Type = "json-file"
	}
	if hc.RestartPolicy.Name == "" {
		hc.RestartPolicy.Name = dcontainer.RestartPolicyDisabled
	}
	mounts, err := e.resolveMounts(&cfg, hc, img)
	if err != nil {
		return nil, nil, err
	}
	c := &container.Container{
		ID: id, Name: name, Created: time.Now().UTC(), Image: img.ID.String(),
		Config: &cfg, HostConfig: hc, Mounts: mounts, Aliases: o.Aliases, IP: o.IP,
		State: container.State{Status: container.Created}, Pod: o.Pod,
	}
	c.Path, c.Args = command(&cfg)
	// Locked before anyone can see it: what follows the create (below) comes before
	// any start or removal.
	l := e.liveOf(id)
	l.mu.Lock()
	if err := e.ctrs.Add(c); err != nil {
		l.mu.Unlock()
		return nil, nil, err
	}
	e.publish(events.ContainerEventType, events.ActionCreate, id, map[string]string{"name": name, "image": cfg.Image})
	// `docker run` starts what it creates next. A container that needs no network set
	// up is made by the runtime now, held until its start (see earlyStart); any other
	// has its writable layer mounted while the client attaches, instead of during the
	// start. The start (and a removal) takes the container's lock after this.
	if startsEarly(c) {
		e.beginEarlyStart(c, l, img)
		l.mu.Unlock()
	} else {
		go func() {
			defer l.mu.Unlock()
			if !l.removed {
				e.prepareRootfs(c, img) // a failure shows again, and is reported, at the start
			}
		}()
	}
	var warnings []string
	return c, warnings, nil
}

func validateHostConfig(hc *dcontainer.HostConfig) error {
	p := hc.RestartPolicy
	switch p.Name {
	case "", dcontainer.RestartPolicyDisabled, dcontainer.RestartPolicyAlways, dcontainer.RestartPolicyUnlessStopped:
		if p.MaximumRetryCount != 0 {
			return errdefs.Invalid("invalid restart policy: maximum retry count can only be used with 'on-failure'")
		}
	case dcontainer.RestartPolicyOnFailure:
		if p.MaximumRetryCount < 0 {
			return errdefs.Invalid("invalid restart policy: maximum retry count cannot be negative")
		}
	default:
		return errdefs.Invalid(fmt.Sprintf("invalid restart policy: unknown policy '%s'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'", p.Name))
	}
	if hc.AutoRemove && p.Name != "" && p.Name != dcontainer.RestartPolicyDisabled {
		return errdefs.Invalid("can't create 'AutoRemove' container with restart policy")
	}
	if hc.Memory != 0 && hc.Memory < 6<<20 {
		return errdefs.Invalid("Minimum memory limit allowed is 6MB")
	}
	if hc.NanoCPUs < 0 || hc.CPUQuota < 0 {
		return errdefs.Invalid("Range of CPUs is from 0.01 to the number of CPUs available")
	}
	if !hc.CgroupnsMode.Valid() {
		return errdefs.Invalid(fmt.Sprintf("invalid cgroup namespace mode: %v", hc.CgroupnsMode))
	}
	return nil
}

// mergeImageConfig fills what the user left unset from the image, as Docker does.
func mergeImageConfig(cfg *dcontainer.Config, img *image.Image) {
	ic := img.Config.Config
	env := map[string]int{}
	var merged []string
	for _, kv := range ic.Env {
		k, _, _ := strings.Cut(kv, "=")
		env[k] = len(merged)
		merged = append(merged, kv)
	}
	for _, kv := range cfg.Env {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := env[k]; ok {
			merged[i] = kv
		} else {
			env[k] = len(merged)
			merged = append(merged, kv)
		}
	}
	cfg.Env = merged
	if len(cfg.Entrypoint) == 0 {
		if len(cfg.Cmd) == 0 {
			cfg.Cmd = ic.Cmd
		}
		if cfg.Entrypoint == nil {
			cfg.Entrypoint = ic.Entrypoint
		}
	}
	if cfg.WorkingDir == "" {
		cfg.WorkingDir = ic.WorkingDir
	}
	if cfg.User == "" {
		cfg.User = ic.User
	}
	if cfg.StopSignal == "" {
		cfg.StopSignal = ic.StopSignal
	}
	if len(ic.Labels) > 0 {
		labels := map[string]string{}
		for k, v := range ic.Labels {
			labels[k] = v
		}
		for k, v := range cfg.Labels {
			labels[k] = v
		}
		cfg.Labels = labels
	}
	if len(ic.Volumes) > 0 {
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for v := range ic.Volumes {
			cfg.Volumes[v] = struct{}{}
		}
	}
	if cfg.Healthcheck == nil && ic.Healthcheck != nil {
		hc := *ic.Healthcheck
		cfg.Healthcheck = &hc
	}
}

func command(cfg *dcontainer.Config) (string, []string) {
	argv := append(append([]string{}, cfg.Entrypoint...), cfg.Cmd...)
	if len(argv) == 0 {
		return "", nil
	}
	return argv[0], argv[1:]
}

// resolveMounts turns -v, --mount, --tmpfs and the image's VOLUMEs into mounts,
// creating named and anonymous volumes as needed.
func (e *Engine) resolveMounts(cfg *dcontainer.Config, hc *dcontainer.HostConfig, img *image.Image) ([]container.Mount, error) {
	var out []container.Mount
	seen := map[string]bool{}
	add := func(m container.Mount) error {
		m.Destination = path.Clean(m.Destination)
		if !path.IsAbs(m.Destination) {
			return errdefs.Invalid(fmt.Sprintf("invalid mount config: mount path must be absolute: %s", m.Destination))
		}
		if m.Destination == "/" {
			return errdefs.Invalid("invalid specification: destination can't be '/'")
		}
		if seen[m.Destination] {
			return errdefs.Invalid(fmt.Sprintf("Duplicate mount point: %s", m.Destination))
		}
		seen[m.Destination] = true
		out = append(out, m)
		return nil
	}
	for _, b := range hc.Binds {
		m, err := parseBind(b)
		if err != nil {
			return nil, err
		}
		if m.Type == "bind" {
			if _, err := os.Stat(m.Source); os.IsNotExist(err) {
				// -v creates a missing host directory, as Docker does.
				if err := os.MkdirAll(m.Source, 0o755); err != nil {
					return nil, errdefs.Invalid(fmt.Sprintf("error while creating mount source path '%s': %v", m.Source, err))
				}
			}
		} else {
			v, err := e.vols.Create(m.Name, nil, nil)
			if err != nil {
				return nil, err
			}
			m.Name, m.Source = v.Name, v.Mountpoint
			m.Anonymous = v.Anonymous
		}
		if err := add(m); err != nil {
			return nil, err
		}
	}
	for _, mm := range hc.Mounts {
		m := container.Mount{Destination: mm.Target, RW: !mm.ReadOnly}
		switch mm.Type {
		case mount.TypeBind:
			m.Type, m.Source = "bind", mm.Source
			if !filepath.IsAbs(mm.Source) {
				return nil, errdefs.Invalid(fmt.Sprintf("invalid mount config for type \"bind\": invalid mount path: '%s' mount path must be absolute", mm.Source))
			}
			if _, err := os.Stat(mm.Source); err != nil {
				return nil, errdefs.Invalid(fmt.Sprintf("invalid mount config for type \"bind\": bind source path does not exist: %s", mm.Source))
			}
			if mm.BindOptions != nil {
				m.Mode = string(mm.BindOptions.Propagation)
			}
		case mount.TypeVolume, "":
			v, err := e.vols.Create(mm.Source, nil, nil)
			if err != nil {
				return nil, err
			}
			m.Type, m.Name, m.Source, m.Anonymous = "volume", v.Name, v.Mountpoint, v.Anonymous
			m.NoCopy = mm.VolumeOptions != nil && mm.VolumeOptions.NoCopy
		case mount.TypeTmpfs:
			m.Type, m.Source = "tmpfs", "tmpfs"
			if t := mm.TmpfsOptions; t != nil {
				var o []string
				if t.SizeBytes > 0 {
					o = append(o, fmt.Sprintf("size=%d", t.SizeBytes))
				}
				if t.Mode != 0 {
					o = append(o, fmt.Sprintf("mode=%o", t.Mode))
				}
				m.Options = strings.Join(o, ",")
			}
		default:
			return nil, errdefs.Invalid(fmt.Sprintf("invalid mount config: mount type unknown: %q", mm.Type))
		}
		if err := add(m); err != nil {
			return nil, err
		}
	}
	for dst, opts := range hc.Tmpfs {
		if err := add(container.Mount{Type: "tmpfs", Source: "tmpfs", Destination: dst, RW: true, Options: opts}); err != nil {
			return nil, err
		}
	}
	for dst := range cfg.Volumes {
		if seen[path.Clean(dst)] {
			continue
		}
		v, err := e.vols.Create("", nil, nil)
		if err != nil {
			return nil, err
		}
		if err := add(container.Mount{Type: "volume", Name: v.Name, Source: v.Mountpoint, Destination: dst, RW: true, Anonymous: true}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parseBind reads "-v" syntax: "/host:/ctr[:opts]", "name:/ctr[:opts]" or "/ctr".
func parseBind(s string) (container.Mount, error) {
	parts := strings.Split(s, ":")
	m := container.Mount{RW: true}
	switch len(parts) {
	case 1:
		m.Type, m.Destination, m.Anonymous = "volume", parts[0], true
		return m, nil
	case 2, 3:
		m.Destination = parts[1]
		if len(parts) == 3 {
			m.Mode = parts[2]
			for _, o := range strings.Split(parts[2], ",") {
				switch o {
				case "ro":
					m.RW = false
				case "rw", "z", "Z", "private", "rprivate", "shared", "rshared", "slave", "rslave", "":
				case "nocopy":
					m.NoCopy = true
				default:
					return m, errdefs.Invalid(fmt.Sprintf("invalid mode: %s", o))
				}
			}
		}
		if parts[0] == "" {
			return m, errdefs.Invalid(fmt.Sprintf("invalid spec: %s: empty section between colons", s))
		}
		if filepath.IsAbs(parts[0]) {
			m.Type, m.Source = "bind", filepath.Clean(parts[0])
		} else {
			m.Type, m.Name = "volume", parts[0]
		}
		return m, nil
	}
	return m, errdefs.Invalid(fmt.Sprintf("invalid volume specification: '%s'", s))
}

var (
	nameLeft  = []string{"admiring", "brave", "calm", "clever", "eager", "focused", "gallant", "happy", "jolly", "keen", "loving", "nifty", "quirky", "serene", "tender", "vibrant", "wizardly", "zealous"}
	nameRight = []string{"archimedes", "babbage", "curie", "darwin", "euler", "fermat", "galileo", "hopper", "hypatia", "kepler", "lovelace", "newton", "noether", "pascal", "ritchie", "shannon", "thompson", "turing"}
)

func (e *Engine) randomName() string {
	for i := 0; ; i++ {
		n := nameLeft[rand.IntN(len(nameLeft))] + "_" + nameRight[rand.IntN(len(nameRight))]
		if i > 5 {
			n += fmt.Sprint(rand.IntN(100))
		}
		if _, err := e.ctrs.Get(n); err != nil {
			return n
		}
	}
}
