package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/network"
	"github.com/berth-project/berth/internal/engine/runtime"
	"github.com/berth-project/berth/internal/engine/sandbox"
)

// ExecResult is what a command run to completion in a container printed and returned.
type ExecResult struct {
	Stdout, Stderr []byte
	ExitCode       int
}

// maxExecOutput bounds what ExecSync keeps of each stream, as the kubelet does.
const maxExecOutput = 16 << 20

// ExecSync runs cmd in a running container and returns its output once it has exited.
// A timeout above zero bounds the wait: past it the error is context.DeadlineExceeded.
func (e *Engine) ExecSync(ctx context.Context, ref string, cmd []string, timeout time.Duration) (ExecResult, error) {
	var res ExecResult
	c, err := e.ctrs.Get(ref)
	if err != nil {
		return res, err
	}
	if c.State.Status != container.Running {
		return res, errdefs.Conflict(fmt.Sprintf("container %s is not running", c.ID))
	}
	if len(cmd) == 0 {
		return res, errdefs.Invalid("no command given")
	}
	spec, err := e.execSpec(c, container.NewID(), ExecOptions{Cmd: cmd})
	if err != nil {
		return res, err
	}
	spec.KillOnHangup = true // past the timeout, the command goes too
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	conn, err := e.shim(c).Exec(ctx, spec)
	if err != nil {
		return res, errdefs.Conflict(fmt.Sprintf("container %s is not running", c.ID))
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	var out, errb bytes.Buffer
	ex, err := runtime.ReadFrames(conn, func(stream byte, p []byte) error {
		b := &out
		if stream == runtime.FrameStderr {
			b = &errb
		}
		if b.Len()+len(p) <= maxExecOutput {
			b.Write(p)
		}
		return nil
	})
	res.Stdout, res.Stderr = out.Bytes(), errb.Bytes()
	if err != nil {
		if ctx.Err() != nil {
			return res, fmt.Errorf("command %q timed out after %s: %w", strings.Join(cmd, " "), timeout, context.DeadlineExceeded)
		}
		return res, fmt.Errorf("exec in container %s: %w", c.ID[:12], err)
	}
	if ex.Error != "" {
		// The process could not be started (no such command, ...): the shell's codes.
		res.ExitCode = 126
		if strings.Contains(ex.Error, "no such file") || strings.Contains(ex.Error, "executable file not found") {
			res.ExitCode = 127
		}
		res.Stderr = append(res.Stderr, []byte(ex.Error+"\n")...)
		return res, nil
	}
	res.ExitCode = ex.Code
	return res, nil
}

// PortForward connects to port on the loopback of a pod sandbox's network namespace.
func (e *Engine) PortForward(ctx context.Context, sandboxID string, port int32) (net.Conn, error) {
	sb, err := e.sandboxes.Get(sandboxID)
	if err != nil {
		return nil, err
	}
	if sb.State != sandbox.Ready {
		return nil, errdefs.Conflict(fmt.Sprintf("pod sandbox %s is not ready", sb.ID))
	}
	if port <= 0 || port > 65535 {
		return nil, errdefs.Invalid(fmt.Sprintf("invalid port %d", port))
	}
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
	if sb.HostNetwork() {
		var d net.Dialer
		return d.DialContext(ctx, "tcp4", addr)
	}
	return network.DialInNetNS(ctx, sb.NetNS, addr)
}

// ReopenLog makes a running pod container's shim start a new CRI log file, after the
// kubelet rotated the old one.
func (e *Engine) ReopenLog(ctx context.Context, ref string) error {
	c, err := e.ctrs.Get(ref)
	if err != nil {
		return err
	}
	if c.CRILogPath() == "" {
		return errdefs.Invalid(fmt.Sprintf("container %s has no CRI log", c.ID))
	}
	if !c.Running() {
		return errdefs.Conflict(fmt.Sprintf("container %s is not running", c.ID))
	}
	if err := e.shim(c).ReopenLog(ctx); err != nil {
		if errors.Is(err, runtime.ErrNotRunning) {
			return errdefs.Conflict(fmt.Sprintf("container %s is not running", c.ID))
		}
		return err
	}
	return nil
}

// UpdateResources changes a container's cgroup limits: now if it runs, and for its
// next starts. Zero fields keep their values.
func (e *Engine) UpdateResources(ctx context.Context, ref string, r runtime.Resources) error {
	c, l, err := e.lockContainer(ref)
	if err != nil {
		return err
	}
	defer l.mu.Unlock()
	if r.Memory > 0 && r.Memory < 6<<20 {
		return errdefs.Invalid("Minimum memory limit allowed is 6MB")
	}
	e.dropEarly(c, l) // made with the old limits: the start makes it again
	if c.Running() {
		if err := e.shim(c).Update(ctx, r); err != nil {
			return fmt.Errorf("update the resources of container %s: %w", c.ID[:12], err)
		}
	}
	hc := c.HostConfig
	if r.CPUShares != 0 {
		hc.CPUShares = int64(r.CPUShares)
	}
	if r.CPUQuota != 0 {
		hc.CPUQuota, hc.NanoCPUs = r.CPUQuota, 0
	}
	if r.CPUPeriod != 0 {
		hc.CPUPeriod = int64(r.CPUPeriod)
	}
	if r.Memory != 0 {
		hc.Memory = r.Memory
	}
	if r.CpusetCpus != "" {
		hc.CpusetCpus = r.CpusetCpus
	}
	if r.CpusetMems != "" {
		hc.CpusetMems = r.CpusetMems
	}
	if r.PidsLimit != 0 {
		hc.PidsLimit = &r.PidsLimit
	}
	return e.ctrs.Save(c)
}
