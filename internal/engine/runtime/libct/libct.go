// Package libct is the part of the runtime that uses libcontainer (runc's library):
// creating a container, and the operations that need libcontainer afterwards (exec,
// pause, resume, stats, processes, destroy). Only the berth-runtime binary imports it,
// so the long-lived per-container shim stays small.
package libct

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs/validate"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"github.com/opencontainers/runc/libcontainer/utils"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/engine/runtime"
)

// Created is a container that has been made and started (its process runs), and the
// shim's ends of its stdio.
type Created struct {
	Pid     int
	Stdout  *os.File // read ends (nil with a tty)
	Stderr  *os.File
	Stdin   *os.File // write end (nil unless stdin is kept open)
	Console *os.File // pty master (tty only)

	CgroupPaths map[string]string // the container's cgroups, as in libcontainer's state
}

// Create creates the container described by bundle/config.json under root, and
// starts its process unless hold is set: then the process waits, at libcontainer's
// exec fifo, for the shim's release.
func Create(root, id, bundle string, openStdin, hold bool) (*Created, error) {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: id, Spec: &spec, NoNewKeyring: true})
	if err != nil {
		return nil, err
	}
	if old, err := libcontainer.Load(root, id); err == nil {
		old.Destroy()
	}
	ctr, err := libcontainer.Create(root, id, cfg)
	if err != nil {
		return nil, err
	}
	p := &libcontainer.Process{
		Args: spec.Process.Args, Env: spec.Process.Env, Cwd: spec.Process.Cwd,
		UID: int(spec.Process.User.UID), GID: int(spec.Process.User.GID), Init: true,
		LogLevel: initLogLevel,
	}
	for _, g := range spec.Process.User.AdditionalGids {
		p.AdditionalGroups = append(p.AdditionalGroups, int(g))
	}
	out := &Created{}
	var toClose []*os.File
	defer func() {
		for _, f := range toClose {
			f.Close()
		}
	}()
	var consoleParent *os.File
	if spec.Process.Terminal {
		parent, child, err := utils.NewSockPair("console")
		if err != nil {
			ctr.Destroy()
			return nil, err
		}
		consoleParent = parent
		toClose = append(toClose, parent, child)
		p.ConsoleSocket = child
		if cs := spec.Process.ConsoleSize; cs != nil {
			p.ConsoleWidth, p.ConsoleHeight = uint16(cs.Width), uint16(cs.Height)
		}
	} else {
		or, ow, err := os.Pipe()
		if err != nil {
			ctr.Destroy()
			return nil, err
		}
		er, ew, err := os.Pipe()
		if err != nil {
			ctr.Destroy()
			return nil, err
		}
		toClose = append(toClose, ow, ew)
		p.Stdout, p.Stderr = ow, ew
		out.Stdout, out.Stderr = or, er
		if openStdin {
			ir, iw, err := os.Pipe()
			if err != nil {
				ctr.Destroy()
				return nil, err
			}
			toClose = append(toClose, ir)
			p.Stdin = ir
			out.Stdin = iw
		}
	}
	if err := ctr.Start(p); err != nil {
		ctr.Destroy()
		return nil, err
	}
	if consoleParent != nil {
		master, err := utils.RecvFile(consoleParent)
		if err != nil {
			ctr.Signal(unix.SIGKILL)
			ctr.Destroy()
			return nil, err
		}
		out.Console = master
	}
	if out.Pid, err = p.Pid(); err != nil {
		return nil, err
	}
	if !hold {
		if err := runtime.Release(filepath.Join(root, id), out.Pid); err != nil {
			ctr.Signal(unix.SIGKILL)
			ctr.Destroy()
			return nil, err
		}
	}
	if st, err := ctr.State(); err == nil {
		out.CgroupPaths = st.CgroupPaths
	}
	return out, nil
}

// initLogLevel is the level (logrus's numbering) up to which a container's init and
// runc's nsexec report through the log pipe: warnings and errors. Left unset, nsexec
// writes a dozen debug lines per start, which the create decodes only to drop them.
const initLogLevel = "3"

// Destroy removes what is left of a container that has exited: its cgroups and state.
func Destroy(root, id string) error {
	ctr, err := libcontainer.Load(root, id)
	if err != nil {
		return nil
	}
	return ctr.Destroy()
}

// Warm does ahead, in a berth-runtime waiting on standby, what every create would
// otherwise do first, during a start. It builds encoding/json's per-type tables for the
// types a create encodes and decodes (the spec, libcontainer's config and state): for a
// type as large as libcontainer's config that is a few milliseconds of every create.
// And it has libcontainer look at the host as a create does (below): half a
// millisecond more.
func Warm() {
	// os checks once per process, by cloning a child, that pidfds work; a create's first
	// exec would do it (it is the init's start): done here instead.
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		p.Release()
	}
	var st libcontainer.State
	st.Config.Cgroups = &cgroups.Cgroup{Resources: &cgroups.Resources{}}
	if data, err := json.Marshal(&st); err == nil {
		json.Unmarshal(data, &libcontainer.State{})
	}
	spec := specs.Spec{
		Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}, Rlimits: []specs.POSIXRlimit{{}}},
		Root:    &specs.Root{},
		Mounts:  []specs.Mount{{}},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{{}},
			Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{}}, Memory: &specs.LinuxMemory{},
				CPU: &specs.LinuxCPU{}, Pids: &specs.LinuxPids{}},
		},
	}
	if data, err := json.Marshal(&spec); err == nil {
		json.Unmarshal(data, &specs.Spec{})
	}
	// What libcontainer and its cgroup manager find out about the host once per process,
	// on a container's create: where the cgroup hierarchies are mounted (mountinfo),
	// the cgroupfs handle they open files through, the LSMs. A create's validation and
	// cgroup manager, for a container that is not made (nothing is written).
	ocispec := runtime.OCISpec(runtime.Spec{Rootfs: "/", Args: []string{"true"}, Hostname: "warm", CgroupsPath: "/berth-runtime-warm"})
	if cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: "warm", Spec: ocispec, NoNewKeyring: true}); err == nil {
		validate.Validate(cfg)
		if m, err := manager.New(cfg.Cgroups); err == nil {
			m.Exists()
			m.GetFreezerState()
		}
	}
}
