// Package runtime turns a container's settings into a running process. It builds the
// OCI runtime spec, starts the per-container supervisor (berth-shim) and talks to it.
// It is the only package that creates namespaces and cgroups (the shim side lives in
// runtime/shim, which only the berth-shim binary imports).
package runtime

import (
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultCapabilities is Docker's default capability set.
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// MaskedPaths and ReadonlyPaths are the /proc and /sys paths Docker hides or freezes.
var (
	MaskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	ReadonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// Spec is what the engine decides about a container; OCISpec renders it.
type Spec struct {
	Rootfs   string
	Args     []string
	Env      []string
	Cwd      string
	UID, GID uint32
	Groups   []uint32
	Hostname string
	Tty      bool
	// ConsoleHeight and ConsoleWidth are the terminal's initial size (docker run -t).
	ConsoleHeight, ConsoleWidth uint
	ReadOnly                    bool
	Privileged                  bool
	CapAdd                      []string // "NET_ADMIN" or "CAP_NET_ADMIN"; "ALL" allowed
	CapDrop                     []string
	// NetNS is the path of a prepared network namespace; "" with HostNetwork false
	// means a fresh namespace with only loopback (--network none).
	NetNS       string
	HostNetwork bool
	Mounts      []specs.Mount // volumes, binds, tmpfs, /etc/hosts and friends
	CgroupsPath string
	Memory      int64 // bytes; 0 = unlimited
	NanoCPUs    int64
	PidsLimit   int64 // 0 = unlimited
	ShmSize     int64

	Linux Linux // finer settings (a pod's namespaces, cgroup knobs, devices); zero for none
}

// OCISpec renders s with Docker's default security: the default capability set,
// no-new-privileges, masked and read-only /proc paths, a private /dev.
func OCISpec(s Spec) *specs.Spec {
	caps := capabilities(s)
	shm := s.ShmSize
	if shm <= 0 {
		shm = 64 << 20
	}
	sp := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: s.Rootfs, Readonly: s.ReadOnly},
		Process: &specs.Process{
			Terminal:    s.Tty,
			ConsoleSize: &specs.Box{Height: s.ConsoleHeight, Width: s.ConsoleWidth},
			Args:        s.Args,
			Env:         s.Env,
			Cwd:         s.Cwd,
			User:        specs.User{UID: s.UID, GID: s.GID, AdditionalGids: s.Groups},
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			NoNewPrivileges: !s.Privileged,
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1048576, Soft: 1048576}},
		},
		Hostname: s.Hostname,
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=" + strconv.FormatInt(shm, 10)}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: s.CgroupsPath,
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
				{Type: specs.CgroupNamespace},
			},
		},
	}
	if !s.Privileged {
		sp.Linux.MaskedPaths = MaskedPaths
		sp.Linux.ReadonlyPaths = ReadonlyPaths
	}
	if s.HostNetwork {
		sp.Hostname = ""
	} else {
		sp.Linux.Namespaces = append(sp.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: s.NetNS})
	}
	if s.HostNetwork {
		// Sharing the host's UTS namespace is what lets `hostname` say the host's name.
		ns := sp.Linux.Namespaces[:0]
		for _, n := range sp.Linux.Namespaces {
			if n.Type != specs.UTSNamespace {
				ns = append(ns, n)
			}
		}
		sp.Linux.Namespaces = ns
	}
	r := sp.Linux.Resources
	if s.Memory > 0 {
		m := s.Memory
		r.Memory = &specs.LinuxMemory{Limit: &m}
	}
	if s.NanoCPUs > 0 {
		period := uint64(100000)
		quota := s.NanoCPUs * int64(period) / 1e9
		r.CPU = &specs.LinuxCPU{Period: &period, Quota: &quota}
	}
	if s.PidsLimit > 0 {
		r.Pids = &specs.LinuxPids{Limit: s.PidsLimit}
	}
	applyLinux(sp, s)
	// User mounts replace defaults at the same destination (e.g. --tmpfs /dev/shm).
	for _, m := range s.Mounts {
		replaced := false
		for i := range sp.Mounts {
			if sp.Mounts[i].Destination == path.Clean(m.Destination) {
				sp.Mounts[i] = m
				replaced = true
			}
		}
		if !replaced {
			sp.Mounts = append(sp.Mounts, m)
		}
	}
	return sp
}

func capabilities(s Spec) []string {
	set := map[string]bool{}
	if s.Privileged {
		for _, c := range grantable() {
			set[c] = true
		}
	} else {
		for _, c := range DefaultCapabilities {
			set[c] = true
		}
	}
	for _, c := range s.CapAdd {
		if normCap(c) == "CAP_ALL" {
			for _, a := range grantable() {
				set[a] = true
			}
			continue
		}
		set[normCap(c)] = true
	}
	for _, c := range s.CapDrop {
		if normCap(c) == "CAP_ALL" {
			set = map[string]bool{}
			continue
		}
		delete(set, normCap(c))
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

func normCap(c string) string {
	c = strings.ToUpper(c)
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

// grantable lists the capabilities --privileged and --cap-add ALL give: every one the
// kernel knows that the engine itself holds in its bounding set, as containerd grants.
// The kernel refuses a container any other (on a host whose bounding set lacks one, a
// container asking for all of them would not start).
var grantable = sync.OnceValue(func() []string {
	var out []string
	self, err := capability.NewPid2(0)
	if err == nil {
		err = self.Load()
	}
	for _, c := range capability.ListKnown() {
		if err != nil || self.Get(capability.BOUNDING, c) {
			out = append(out, "CAP_"+strings.ToUpper(c.String()))
		}
	}
	return out
})
