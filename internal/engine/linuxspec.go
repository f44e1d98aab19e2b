package engine

import (
	"path"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/user"

	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/runtime"
)

// linuxSpec adds the host config's finer settings to the runtime spec: cgroup knobs,
// devices, sysctls, extra groups, the host's IPC and PID namespaces, mount
// propagation, and for a pod's container the security details the CRI gives.
func (e *Engine) linuxSpec(c *container.Container, s *runtime.Spec) error {
	hc, l := c.HostConfig, &s.Linux
	if hc.CPUShares > 0 {
		l.CPUShares = uint64(hc.CPUShares)
	}
	if hc.CPUQuota > 0 {
		l.CPUQuota, l.CPUPeriod = hc.CPUQuota, uint64(hc.CPUPeriod)
	}
	l.CpusetCpus, l.CpusetMems = hc.CpusetCpus, hc.CpusetMems
	if hc.OomScoreAdj != 0 {
		v := hc.OomScoreAdj
		l.OOMScoreAdj = &v
	}
	l.Sysctls = hc.Sysctls
	for _, d := range hc.Devices {
		perms := d.CgroupPermissions
		if perms == "" {
			perms = "rwm"
		}
		l.Devices = append(l.Devices, runtime.Device{Path: d.PathInContainer, HostPath: d.PathOnHost, Permissions: perms})
	}
	if hc.IpcMode.IsHost() {
		l.HostIPC = true
	}
	if hc.PidMode.IsHost() {
		l.HostPID = true
	}
	l.HostCgroupNS = hc.CgroupnsMode.IsHost()
	if hc.CgroupParent != "" {
		s.CgroupsPath = path.Join("/", hc.CgroupParent, c.ID)
	}
	if len(hc.GroupAdd) > 0 {
		groups, err := extraGroups(s.Rootfs, hc.GroupAdd)
		if err != nil {
			return err
		}
		for _, g := range groups {
			s.Groups = append(s.Groups, uint32(g))
		}
	}
	for _, m := range c.Mounts {
		switch p := propagation(m.Mode); {
		case p == "rshared" || p == "shared":
			l.RootfsPropagation = "rshared"
		case (p == "rslave" || p == "slave") && l.RootfsPropagation == "":
			l.RootfsPropagation = "rslave"
		}
	}
	if c.Pod != nil {
		// The kubelet always says which paths to mask (none for an unmasked /proc).
		l.MaskedPaths, l.ReadonlyPaths = hc.MaskedPaths, hc.ReadonlyPaths
		nnp := false
		for _, o := range hc.SecurityOpt {
			if o == "no-new-privileges" || o == "no-new-privileges:true" {
				nnp = true
			}
		}
		l.NoNewPrivs = &nnp
	}
	return nil
}

// extraGroups resolves --group-add names and ids against the image's /etc/group.
func extraGroups(rootfs string, add []string) ([]int, error) {
	var out []int
	var names []string
	for _, g := range add {
		if n, err := strconv.Atoi(g); err == nil {
			out = append(out, n)
		} else {
			names = append(names, g)
		}
	}
	if len(names) > 0 {
		groupFile, _ := securejoin.SecureJoin(rootfs, "/etc/group")
		ids, err := user.GetAdditionalGroupsPath(names, groupFile)
		if err != nil {
			return nil, errdefs.Invalid("unable to find group " + strings.Join(names, ", ") + ": " + err.Error())
		}
		out = append(out, ids...)
	}
	return out, nil
}

// propagation picks the propagation out of a bind's mode ("ro,rslave"); rprivate by default.
func propagation(mode string) string {
	for _, o := range strings.Split(mode, ",") {
		switch o {
		case "private", "rprivate", "shared", "rshared", "slave", "rslave":
			return o
		}
	}
	return "rprivate"
}
