package engine

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/image"
	"github.com/berth-project/berth/internal/engine/network"
	"github.com/berth-project/berth/internal/engine/runtime"
	"github.com/berth-project/berth/internal/engine/snapshot"
)

// prepareRootfs mounts the container's overlay: the image's layers below, its own
// writable layer on top.
func (e *Engine) prepareRootfs(c *container.Container, img *image.Image) (*snapshot.Active, error) {
	act, err := e.snaps.Prepare(c.ID, snapshot.ChainIDs(img.Config.RootFS.DiffIDs))
	if err != nil {
		return nil, err
	}
	return act, act.Mount()
}

func (e *Engine) activeOf(c *container.Container) (*snapshot.Active, error) {
	img, err := e.images.Get(c.Image)
	if err != nil {
		return nil, err
	}
	return e.snaps.Prepare(c.ID, snapshot.ChainIDs(img.Config.RootFS.DiffIDs))
}

func (e *Engine) releaseRootfs(c *container.Container) {
	if act, err := e.activeOf(c); err == nil {
		act.Unmount()
	}
}

// buildSpec attaches the network, writes /etc/hosts and friends, prepares volumes and
// resolves the user: everything the runtime needs to start the container.
func (e *Engine) buildSpec(c *container.Container, rootfs string) (runtime.Spec, error) {
	hc, cfg := c.HostConfig, c.Config
	s := runtime.Spec{
		Rootfs: rootfs, Args: append([]string{c.Path}, c.Args...), Hostname: cfg.Hostname,
		Tty: cfg.Tty, ConsoleHeight: hc.ConsoleSize[0], ConsoleWidth: hc.ConsoleSize[1], ReadOnly: hc.ReadonlyRootfs, Privileged: hc.Privileged,
		CapAdd: hc.CapAdd, CapDrop: hc.CapDrop,
		CgroupsPath: "/" + e.cfg.CgroupParent + "/" + c.ID,
		Memory:      hc.Memory, NanoCPUs: hc.NanoCPUs, ShmSize: hc.ShmSize,
	}
	if hc.CPUQuota > 0 && hc.NanoCPUs == 0 {
		period := hc.CPUPeriod
		if period == 0 {
			period = 100000
		}
		s.NanoCPUs = hc.CPUQuota * 1e9 / period
	}
	if hc.PidsLimit != nil && *hc.PidsLimit > 0 {
		s.PidsLimit = *hc.PidsLimit
	}
	c.Endpoint, c.Ports = nil, nil
	switch {
	case c.Pod != nil:
		if err := e.joinSandbox(c, &s); err != nil {
			return s, err
		}
	case hc.NetworkMode.IsContainer():
		ns, target, err := e.sharedNetNS(c)
		if err != nil {
			return s, err
		}
		s.NetNS, s.HostNetwork = ns, ns == ""
		s.Hostname = target.Config.Hostname
		// The joined container's hosts and resolver files describe the shared network.
		for _, name := range []string{"hosts", "resolv.conf", "hostname"} {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/etc/" + name, Type: "bind",
				Source: filepath.Join(target.Dir(), name), Options: []string{"rbind", "rprivate", "ro"}})
		}
	case hc.NetworkMode == "host":
		s.HostNetwork = true
	case hc.NetworkMode == "none":
		// A fresh namespace made by the runtime as it clones the container (runc brings
		// up loopback in it): cheaper than preparing one ourselves.
		s.NetNS = ""
	default:
		n := e.netOf(c)
		if n == nil {
			return s, errdefs.NotFound(fmt.Sprintf("network %s not found", hc.NetworkMode))
		}
		ep, err := n.Attach(c.ID, net.ParseIP(c.IP).To4())
		if err != nil {
			return s, fmt.Errorf("network: %w", err)
		}
		s.NetNS = ep.NetNS
		c.Endpoint = endpointOf(ep)
		want, err := wantedPorts(cfg, hc, ep.IP)
		if err != nil {
			return s, err
		}
		got, err := n.Publish(c.ID, c.Name, want)
		if err != nil {
			return s, err
		}
		c.Ports = toPorts(got)
		if err := e.joinExtra(c); err != nil {
			return s, err
		}
		if n.User {
			if err := e.startDNS(c, n); err != nil {
				return s, err
			}
		}
	}
	if !hc.NetworkMode.IsContainer() && c.Pod == nil {
		files, err := e.writeNetFiles(c)
		if err != nil {
			return s, err
		}
		s.Mounts = append(s.Mounts, files...)
	}
	mounts, err := e.volumeMounts(c, rootfs)
	if err != nil {
		return s, err
	}
	s.Mounts = append(s.Mounts, mounts...)

	u, err := resolveUser(rootfs, cfg.User)
	if err != nil {
		return s, err
	}
	s.UID, s.GID = uint32(u.Uid), uint32(u.Gid)
	for _, g := range u.Sgids {
		s.Groups = append(s.Groups, uint32(g))
	}
	s.Env = processEnv(cfg.Env, cfg.Hostname, u.Home, cfg.Tty)
	s.Cwd = cfg.WorkingDir
	if s.Cwd == "" {
		s.Cwd = "/"
	}
	if err := e.linuxSpec(c, &s); err != nil {
		return s, err
	}
	// Docker creates a missing working directory.
	if p, err := securejoin.SecureJoin(rootfs, s.Cwd); err == nil {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			os.MkdirAll(p, 0o755)
			os.Chown(p, u.Uid, u.Gid)
		}
	}
	return s, nil
}

func processEnv(env []string, hostname, home string, tty bool) []string {
	has := map[string]bool{}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		has[k] = true
	}
	var out []string
	if !has["PATH"] {
		out = append(out, defaultPath)
	}
	if !has["HOSTNAME"] && hostname != "" {
		out = append(out, "HOSTNAME="+hostname)
	}
	if tty && !has["TERM"] {
		out = append(out, "TERM=xterm")
	}
	out = append(out, env...)
	if !has["HOME"] {
		if home == "" {
			home = "/"
		}
		out = append(out, "HOME="+home)
	}
	return out
}

// resolveUser reads "user[:group]" against the image's /etc/passwd and /etc/group.
func resolveUser(rootfs, spec string) (*user.ExecUser, error) {
	passwd, _ := securejoin.SecureJoin(rootfs, "/etc/passwd")
	group, _ := securejoin.SecureJoin(rootfs, "/etc/group")
	def := &user.ExecUser{Uid: 0, Gid: 0, Home: "/root"}
	u, err := user.GetExecUserPath(spec, def, passwd, group)
	if err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("unable to find user %s: %v", spec, err))
	}
	return u, nil
}

// writeNetFiles writes /etc/hosts, /etc/hostname and /etc/resolv.conf for the container
// into its directory and returns the bind mounts for them.
func (e *Engine) writeNetFiles(c *container.Container) ([]specs.Mount, error) {
	hostname := c.Config.Hostname
	if c.HostConfig.NetworkMode == "host" {
		hostname, _ = os.Hostname()
	}
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
	for _, h := range c.HostConfig.ExtraHosts {
		name, ip, ok := strings.Cut(h, ":")
		if !ok {
			name, ip, _ = strings.Cut(h, "=")
		}
		if ip == "host-gateway" {
			ip = e.nets.Default().Gateway()
		}
		fmt.Fprintf(&hosts, "%s\t%s\n", ip, name)
	}
	if c.Endpoint != nil {
		fmt.Fprintf(&hosts, "%s\t%s\n", c.Endpoint.IP, hostname)
	}
	files := map[string]string{
		"hosts":    hosts.String(),
		"hostname": hostname + "\n",
		"resolv.conf": resolvConf(c.HostConfig.NetworkMode == "host", e.onUserNetwork(c),
			c.HostConfig.DNS, c.HostConfig.DNSSearch, c.HostConfig.DNSOptions),
	}
	var mounts []specs.Mount
	for _, name := range []string{"hostname", "hosts", "resolv.conf"} {
		p := filepath.Join(c.Dir(), name)
		if err := os.WriteFile(p, []byte(files[name]), 0o644); err != nil {
			return nil, err
		}
		mounts = append(mounts, specs.Mount{Destination: "/etc/" + name, Type: "bind", Source: p, Options: []string{"rbind", "rprivate"}})
	}
	return mounts, nil
}

// resolvConf is the host's resolver configuration, minus loopback nameservers that
// cannot be reached from another network namespace (Docker falls back to public ones).
func resolvConf(hostNet, embedded bool, dns []netip.Addr, search, opts []string) string {
	data, _ := os.ReadFile("/etc/resolv.conf")
	var ns, rest []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			ip := net.ParseIP(f[1])
			if !hostNet && ip != nil && ip.IsLoopback() {
				continue
			}
			ns = append(ns, f[1])
		} else if len(f) > 0 && (f[0] == "search" || f[0] == "options" || f[0] == "domain") {
			rest = append(rest, line)
		}
	}
	if len(dns) > 0 {
		ns = nil
		for _, d := range dns {
			ns = append(ns, d.String())
		}
	}
	if len(ns) == 0 {
		ns = []string{"8.8.8.8", "8.8.4.4"}
	}
	if embedded {
		// On user networks the embedded server answers container names and forwards
		// the rest (to --dns servers too, as Docker does, through the host's resolvers).
		ns = []string{network.EmbeddedDNS}
		rest = append(filterPrefix(rest, "options"), "options ndots:0")
	}
	var b strings.Builder
	for _, n := range ns {
		fmt.Fprintf(&b, "nameserver %s\n", n)
	}
	if len(search) > 0 {
		rest = append([]string{"search " + strings.Join(search, " ")}, filterPrefix(rest, "search")...)
	}
	if len(opts) > 0 {
		rest = append(filterPrefix(rest, "options"), "options "+strings.Join(opts, " "))
	}
	for _, r := range rest {
		b.WriteString(r + "\n")
	}
	return b.String()
}

func filterPrefix(lines []string, p string) []string {
	var out []string
	for _, l := range lines {
		if !strings.HasPrefix(l, p) {
			out = append(out, l)
		}
	}
	return out
}

// volumeMounts renders the container's mounts for the runtime, copying the image's
// content into empty named volumes first (Docker's copy-up).
func (e *Engine) volumeMounts(c *container.Container, rootfs string) ([]specs.Mount, error) {
	ms := append([]container.Mount(nil), c.Mounts...)
	sort.SliceStable(ms, func(i, j int) bool {
		return strings.Count(ms[i].Destination, "/") < strings.Count(ms[j].Destination, "/")
	})
	var out []specs.Mount
	for _, m := range ms {
		switch m.Type {
		case "tmpfs":
			opts := []string{"nosuid", "nodev", "noexec"}
			if m.Options != "" {
				opts = append(opts, strings.Split(m.Options, ",")...)
			}
			if !strings.Contains(m.Options, "mode=") {
				opts = append(opts, "mode=1777") // Docker's default: writable by every user
			}
			out = append(out, specs.Mount{Destination: m.Destination, Type: "tmpfs", Source: "tmpfs", Options: opts})
			continue
		case "volume":
			if !m.NoCopy {
				if err := copyUp(rootfs, m.Destination, m.Source); err != nil {
					return nil, fmt.Errorf("copy image content into volume %s: %w", m.Name, err)
				}
			}
		case "bind":
			if _, err := os.Stat(m.Source); err != nil {
				return nil, errdefs.Invalid(fmt.Sprintf("invalid mount config for type \"bind\": bind source path does not exist: %s", m.Source))
			}
		}
		opts := []string{"rbind", propagation(m.Mode)}
		if !m.RW {
			opts = append(opts, "ro")
		}
		out = append(out, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
	}
	return out, nil
}

// copyUp copies the image's directory at dst into an empty volume directory.
func copyUp(rootfs, dst, volDir string) error {
	ents, err := os.ReadDir(volDir)
	if err != nil || len(ents) > 0 {
		return err
	}
	src, err := securejoin.SecureJoin(rootfs, dst)
	if err != nil {
		return nil
	}
	fi, err := os.Stat(src)
	if err != nil || !fi.IsDir() {
		return nil
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		os.Chown(volDir, int(st.Uid), int(st.Gid))
		os.Chmod(volDir, fi.Mode()&(os.ModePerm|os.ModeSticky|os.ModeSetgid|os.ModeSetuid))
	}
	return copyTree(src, volDir)
}

func copyTree(src, dst string) error {
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		target := filepath.Join(dst, rel)
		st, _ := fi.Sys().(*syscall.Stat_t)
		switch {
		case fi.IsDir():
			if err := os.Mkdir(target, fi.Mode().Perm()); err != nil && !os.IsExist(err) {
				return err
			}
		case fi.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(l, target); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fi.Mode().Perm())
			if err != nil {
				in.Close()
				return err
			}
			_, err = io.Copy(out, in)
			in.Close()
			out.Close()
			if err != nil {
				return err
			}
		default:
			return nil
		}
		if st != nil {
			os.Lchown(target, int(st.Uid), int(st.Gid))
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			os.Chmod(target, fi.Mode())
		}
		return nil
	})
}
