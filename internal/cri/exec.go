package cri

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/errdefs"
)

func (s *runtimeService) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	if _, err := s.podContainer(req.ContainerId); err != nil {
		return nil, err
	}
	res, err := s.eng.ExecSync(ctx, req.ContainerId, req.Cmd, time.Duration(req.Timeout)*time.Second)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ExecSyncResponse{Stdout: res.Stdout, Stderr: res.Stderr, ExitCode: int32(res.ExitCode)}, nil
}

// Exec, Attach and PortForward hand out a URL of the streaming server, where the
// client (the kubelet's proxy, or crictl) then speaks SPDY or WebSocket.
func (s *runtimeService) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	c, err := s.podContainer(req.ContainerId)
	if err != nil {
		return nil, err
	}
	if c.State.Status != container.Running {
		return nil, errdefs.Conflict(fmt.Sprintf("container %s is not running", c.ID))
	}
	req.ContainerId = c.ID
	return s.stream.GetExec(req)
}

func (s *runtimeService) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	c, err := s.podContainer(req.ContainerId)
	if err != nil {
		return nil, err
	}
	if c.State.Status != container.Running {
		return nil, errdefs.Conflict(fmt.Sprintf("container %s is not running", c.ID))
	}
	req.ContainerId = c.ID
	return s.stream.GetAttach(req)
}

func (s *runtimeService) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	sb, err := s.eng.Sandbox(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	req.PodSandboxId = sb.ID
	return s.stream.GetPortForward(req)
}

// streamRuntime carries out the streams the streaming server accepted.
type streamRuntime struct{ eng *engine.Engine }

func (r streamRuntime) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	execID, err := r.eng.ExecCreate(ctx, id, engine.ExecOptions{Cmd: cmd, Tty: tty, AttachStdin: in != nil})
	if err != nil {
		return err
	}
	var w, h uint16
	if tty && resize != nil {
		// The client sends its terminal's size first: start the process with it.
		select {
		case sz, ok := <-resize:
			if ok {
				w, h = sz.Width, sz.Height
			}
		case <-time.After(100 * time.Millisecond):
		}
		go func() {
			for sz := range resize {
				r.eng.ExecResize(ctx, execID, sz.Width, sz.Height)
			}
		}()
	}
	if err := r.eng.ExecStart(ctx, execID, streams(in, out, errw, tty), w, h); err != nil {
		return err
	}
	x, err := r.eng.GetExec(execID)
	if err != nil {
		return err
	}
	if _, code, _ := x.State(); code != nil && *code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", *code), Code: *code}
	}
	return nil
}

func (r streamRuntime) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	if tty && resize != nil {
		go func() {
			for sz := range resize {
				r.eng.Resize(ctx, id, sz.Width, sz.Height)
			}
		}()
	}
	return r.eng.Attach(ctx, id, streams(in, out, errw, tty))
}

func (r streamRuntime) PortForward(ctx context.Context, sandboxID string, port int32, stream io.ReadWriteCloser) error {
	conn, err := r.eng.PortForward(ctx, sandboxID, port)
	if err != nil {
		return err
	}
	defer conn.Close()
	done := make(chan error, 2)
	go func() {
		_, err := io.Copy(conn, stream)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		done <- err
	}()
	go func() {
		_, err := io.Copy(stream, conn)
		done <- err
	}()
	select {
	case err := <-done:
		if errors.Is(err, io.EOF) {
			err = nil
		}
		return err
	case <-ctx.Done():
		return nil
	}
}

// streams are the engine's ends of a client's stdio: raw with a tty, stdcopy frames
// split into stdout and stderr without one.
func streams(in io.Reader, out, errw io.Writer, tty bool) engine.Streams {
	st := engine.Streams{Stdin: in, Stdout: out != nil, Stderr: errw != nil}
	if tty {
		st.Out, st.Stdout = out, true
		if out == nil {
			st.Out = io.Discard
		}
		return st
	}
	st.Out, st.Framed = &demux{out: out, err: errw}, true
	return st
}

// demux splits a stream of stdcopy frames (8-byte header: stream, 0, 0, 0, length)
// into stdout and stderr.
type demux struct {
	out, err io.Writer
	buf      []byte
}

func (d *demux) Write(p []byte) (int, error) {
	d.buf = append(d.buf, p...)
	for len(d.buf) >= 8 {
		n := int(binary.BigEndian.Uint32(d.buf[4:8]))
		if len(d.buf) < 8+n {
			break
		}
		w := d.out
		if d.buf[0] == 2 {
			w = d.err
		}
		if w != nil {
			if _, err := w.Write(d.buf[8 : 8+n]); err != nil {
				return 0, err
			}
		}
		d.buf = d.buf[8+n:]
	}
	return len(p), nil
}
