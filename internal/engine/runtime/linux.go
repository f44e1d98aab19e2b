package runtime

import (
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Linux holds the finer settings a container may ask for beyond Docker's everyday
// ones: the namespaces of a pod sandbox to join, cgroup knobs, devices, sysctls, and
// the security details the CRI gives per container.
type Linux struct {
	// IPCNS, UTSNS and PIDNS are namespaces to join, by path (/proc/PID/ns/ipc); ""
	// makes a new one. HostIPC and HostPID share the host's instead.
	IPCNS, UTSNS, PIDNS string
	HostIPC, HostPID    bool
	// HostCgroupNS shares the host's cgroup namespace (docker run --cgroupns host). By
	// default a container has its own, as Docker gives on cgroup v2: its cgroups are the
	// root of /proc/self/cgroup and of the /sys/fs/cgroup it sees.
	HostCgroupNS bool

	CPUShares              uint64
	CPUQuota               int64 // with CPUPeriod; overrides NanoCPUs when set
	CPUPeriod              uint64
	CpusetCpus, CpusetMems string
	OOMScoreAdj            *int

	Sysctls map[string]string
	Devices []Device
	// MaskedPaths and ReadonlyPaths replace Docker's defaults when not nil.
	MaskedPaths, ReadonlyPaths []string
	// NoNewPrivs, when set, decides no_new_privs (the default: on unless privileged).
	NoNewPrivs *bool
	// RootfsPropagation is the root mount's propagation (rshared for a container
	// whose mounts must propagate back to the host); "" is runc's default, rslave.
	RootfsPropagation string
}

// Device is a host device node made available in the container.
type Device struct {
	Path        string // in the container
	HostPath    string
	Permissions string // "rwm" or a subset
}

// applyLinux adds s.Linux to an OCI spec that OCISpec has built from the rest of s.
func applyLinux(sp *specs.Spec, s Spec) {
	l := s.Linux
	join := map[specs.LinuxNamespaceType]string{specs.IPCNamespace: l.IPCNS, specs.UTSNamespace: l.UTSNS, specs.PIDNamespace: l.PIDNS}
	host := map[specs.LinuxNamespaceType]bool{specs.IPCNamespace: l.HostIPC, specs.PIDNamespace: l.HostPID, specs.CgroupNamespace: l.HostCgroupNS}
	ns := sp.Linux.Namespaces[:0]
	for _, n := range sp.Linux.Namespaces {
		if host[n.Type] {
			continue
		}
		if p := join[n.Type]; p != "" {
			n.Path = p
		}
		ns = append(ns, n)
	}
	sp.Linux.Namespaces = ns
	if l.HostIPC {
		// The host's IPC namespace comes with the host's message queues: no mqueue mount of our own.
		ms := sp.Mounts[:0]
		for _, m := range sp.Mounts {
			if m.Destination != "/dev/mqueue" {
				ms = append(ms, m)
			}
		}
		sp.Mounts = ms
	}
	r := sp.Linux.Resources
	if l.CPUShares > 0 || l.CPUQuota > 0 || l.CpusetCpus != "" || l.CpusetMems != "" {
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		if l.CPUShares > 0 {
			shares := l.CPUShares
			r.CPU.Shares = &shares
		}
		if l.CPUQuota > 0 {
			quota, period := l.CPUQuota, l.CPUPeriod
			if period == 0 {
				period = 100000
			}
			r.CPU.Quota, r.CPU.Period = &quota, &period
		}
		r.CPU.Cpus, r.CPU.Mems = l.CpusetCpus, l.CpusetMems
	}
	if l.OOMScoreAdj != nil {
		v := *l.OOMScoreAdj
		sp.Process.OOMScoreAdj = &v
	}
	if len(l.Sysctls) > 0 {
		sp.Linux.Sysctl = l.Sysctls
	}
	for _, d := range l.Devices {
		dev, err := deviceOf(d)
		if err != nil {
			continue // a device that is not there is left out, as Docker does for --device globs
		}
		sp.Linux.Devices = append(sp.Linux.Devices, dev)
		major, minor := dev.Major, dev.Minor
		r.Devices = append(r.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: dev.Type, Major: &major, Minor: &minor, Access: d.Permissions})
	}
	if l.MaskedPaths != nil && !s.Privileged {
		sp.Linux.MaskedPaths = l.MaskedPaths
	}
	if l.ReadonlyPaths != nil && !s.Privileged {
		sp.Linux.ReadonlyPaths = l.ReadonlyPaths
	}
	if l.NoNewPrivs != nil {
		sp.Process.NoNewPrivileges = *l.NoNewPrivs
	}
	sp.Linux.RootfsPropagation = l.RootfsPropagation
}

// deviceOf reads a host device node's type and numbers.
func deviceOf(d Device) (specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Stat(d.HostPath, &st); err != nil {
		return specs.LinuxDevice{}, err
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return specs.LinuxDevice{}, fmt.Errorf("%s is not a device", d.HostPath)
	}
	mode := os.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	path := d.Path
	if path == "" {
		path = d.HostPath
	}
	return specs.LinuxDevice{Path: path, Type: typ, Major: int64(unix.Major(uint64(st.Rdev))), Minor: int64(unix.Minor(uint64(st.Rdev))),
		FileMode: &mode, UID: &uid, GID: &gid}, nil
}
