package engine

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	dcontainer "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/image"
	"github.com/berth-project/berth/internal/engine/runtime"
	"github.com/berth-project/berth/internal/engine/snapshot"
)

// withRootfs runs fn with the container's filesystem mounted (it is mounted while the
// container runs; a stopped container's is mounted for the call).
func (e *Engine) withRootfs(c *container.Container, fn func(act *snapshot.Active) error) error {
	act, err := e.activeOf(c)
	if err != nil {
		return err
	}
	if !snapshot.Mounted(act.Merged) {
		if err := act.Mount(); err != nil {
			return err
		}
		defer func() {
			if !c.Running() {
				act.Unmount()
			}
		}()
	}
	return fn(act)
}

// hostPath maps a path inside the container to the host: through a volume or bind
// mount if one covers it, else into the container's root, never out of either.
func hostPath(c *container.Container, merged, p string) (string, error) {
	p = path.Clean("/" + p)
	best := ""
	var src string
	for _, m := range c.Mounts {
		if m.Type == "tmpfs" {
			continue
		}
		if (p == m.Destination || strings.HasPrefix(p, m.Destination+"/")) && len(m.Destination) > len(best) {
			best, src = m.Destination, m.Source
		}
	}
	if best != "" {
		return securejoin.SecureJoin(src, strings.TrimPrefix(p, best))
	}
	return securejoin.SecureJoin(merged, p)
}

// PathStat describes a path for docker cp.
type PathStat struct {
	Name       string
	Size       int64
	Mode       os.FileMode
	Mtime      time.Time
	LinkTarget string
}

// StatPath stats a path in the container.
func (e *Engine) StatPath(ctx context.Context, ref, p string) (*PathStat, error) {
	c, err := e.ctrs.Get(ref)
	if err != nil {
		return nil, err
	}
	var st *PathStat
	err = e.withRootfs(c, func(act *snapshot.Active) error {
		hp, err := hostPath(c, act.Merged, p)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(hp)
		if err != nil {
			return errdefs.NotFound(fmt.Sprintf("Could not find the file %s in container %s", p, ref))
		}
		st = &PathStat{Name: path.Base(path.Clean("/" + p)), Size: fi.Size(), Mode: fi.Mode(), Mtime: fi.ModTime()}
		if fi.Mode()&os.ModeSymlink != 0 {
			st.LinkTarget, _ = os.Readlink(hp)
		}
		return nil
	})
	return st, err
}

// ArchivePath writes a tar of a path in the container (docker cp out of it).
func (e *Engine) ArchivePath(ctx context.Context, ref, p string, w io.Writer, stat func(*PathStat)) error {
	c, err := e.ctrs.Get(ref)
	if err != nil {
		return err
	}
	return e.withRootfs(c, func(act *snapshot.Active) error {
		hp, err := hostPath(c, act.Merged, p)
		if err != nil {
			return err
		}
		fi, err := os.Stat(hp)
		if err != nil {
			return errdefs.NotFound(fmt.Sprintf("Could not find the file %s in container %s", p, ref))
		}
		name := path.Base(path.Clean("/" + p))
		if name == "/" {
			name = "."
		}
		stat(&PathStat{Name: name, Size: fi.Size(), Mode: fi.Mode(), Mtime: fi.ModTime()})
		e.publish(events.ContainerEventType, events.ActionArchivePath, c.ID, map[string]string{"name": c.Name, "path": p})
		return snapshot.WriteTar(w, hp, name)
	})
}

// ExtractToDir unpacks a tar into a directory of the container (docker cp into it).
func (e *Engine) ExtractToDir(ctx context.Context, ref, dir string, r io.Reader, noOverwriteDirNonDir bool) error {
	c, err := e.ctrs.Get(ref)
	if err != nil {
		return err
	}
	if c.HostConfig.ReadonlyRootfs {
		return errdefs.New(errdefs.ErrForbidden, "container rootfs is marked read-only")
	}
	if c.State.Status == container.Created {
		// An early start read the user database and such at the create: made again at
		// the start, with what is copied in now.
		l := e.liveOf(c.ID)
		l.mu.Lock()
		e.dropEarly(c, l)
		l.mu.Unlock()
	}
	return e.withRootfs(c, func(act *snapshot.Active) error {
		hp, err := hostPath(c, act.Merged, dir)
		if err != nil {
			return err
		}
		fi, err := os.Stat(hp)
		if err != nil {
			return errdefs.NotFound(fmt.Sprintf("Could not find the file %s in container %s", dir, ref))
		}
		if !fi.IsDir() {
			return errdefs.Invalid("extraction point is not a directory")
		}
		_, err = snapshot.Apply(hp, r, snapshot.ApplyOptions{NoOverwriteDirNonDir: noOverwriteDirNonDir})
		if err == nil {
			e.publish(events.ContainerEventType, events.ActionExtractToDir, c.ID, map[string]string{"name": c.Name, "path": dir})
		}
		return err
	})
}

// Export writes the container's whole filesystem as a tar.
func (e *Engine) Export(ctx context.Context, ref string, w io.Writer) error {
	c, err := e.ctrs.Get(ref)
	if err != nil {
		return err
	}
	return e.withRootfs(c, func(act *snapshot.Active) error {
		e.publish(events.ContainerEventType, events.ActionExport, c.ID, map[string]string{"name": c.Name})
		return snapshot.WriteTar(w, act.Merged, "")
	})
}

// Changes lists what the container changed in its filesystem.
func (e *Engine) Changes(ctx context.Context, ref string) ([]snapshot.Change, error) {
	c, err := e.ctrs.Get(ref)
	if err != nil {
		return nil, err
	}
	act, err := e.activeOf(c)
	if err != nil {
		return nil, err
	}
	return act.Changes()
}

// CommitOptions is docker commit's request.
type CommitOptions struct {
	Ref     string
	Comment string
	Author  string
	Changes []string
	Pause   bool
	Config  *dcontainer.Config
}

// Commit makes an image of the container's changes on top of its image.
func (e *Engine) Commit(ctx context.Context, ref string, o CommitOptions) (*image.Image, error) {
	c, err := e.ctrs.Get(ref)
	if err != nil {
		return nil, err
	}
	if o.Ref != "" {
		if _, err := image.ParseReference(o.Ref); err != nil {
			return nil, err
		}
	}
	parent, err := e.images.Get(c.Image)
	if err != nil {
		return nil, err
	}
	if o.Pause && c.State.Status == container.Running {
		if e.shim(c).Pause(ctx) == nil {
			defer e.shim(c).Resume(ctx)
		}
	}
	act, err := e.activeOf(c)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(act.WriteDiff(pw)) }()
	diffID, _, err := e.addLayer(pr, snapshot.ChainIDs(parent.Config.RootFS.DiffIDs)[len(parent.Config.RootFS.DiffIDs)-1])
	pr.Close()
	if err != nil {
		return nil, err
	}
	cfg := parent.Config
	cc := c.Config
	cfg.Config.Cmd, cfg.Config.Entrypoint = cc.Cmd, cc.Entrypoint
	cfg.Config.Env, cfg.Config.WorkingDir, cfg.Config.User = cc.Env, cc.WorkingDir, cc.User
	cfg.Config.Labels = cc.Labels
	if err := applyChanges(&cfg.Config, o.Changes); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	cfg.Created = &now
	cfg.Author = o.Author
	cfg.RootFS.DiffIDs = append(append([]digest.Digest{}, parent.Config.RootFS.DiffIDs...), diffID)
	cfg.History = append(append([]ocispec.History{}, parent.Config.History...), ocispec.History{Created: &now, Author: o.Author, Comment: o.Comment, CreatedBy: strings.Join(append([]string{c.Path}, c.Args...), " ")})
	img, err := e.images.PutImage(cfg, parent.ID)
	if err != nil {
		return nil, err
	}
	if o.Ref != "" {
		if err := e.images.Tag(img.ID, o.Ref); err != nil {
			return nil, err
		}
	}
	e.publish(events.ContainerEventType, events.ActionCommit, c.ID, map[string]string{"name": c.Name})
	return img, nil
}

// Top lists the container's processes with ps.
func (e *Engine) Top(ctx context.Context, ref, psArgs string) ([]string, [][]string, error) {
	c, err := e.ctrs.Get(ref)
	if err != nil {
		return nil, nil, err
	}
	if !c.Running() {
		return nil, nil, errdefs.Conflict(fmt.Sprintf("container %s is not running", c.ID))
	}
	pids, err := e.shim(c).Processes(ctx)
	if err != nil {
		return nil, nil, err
	}
	if psArgs == "" {
		psArgs = "-ef"
	}
	out, err := exec.CommandContext(ctx, "ps", strings.Fields(psArgs)...).Output()
	if err != nil {
		return nil, nil, errdefs.Invalid(fmt.Sprintf("ps: %v", err))
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	titles := strings.Fields(lines[0])
	pidCol := -1
	for i, t := range titles {
		if t == "PID" {
			pidCol = i
		}
	}
	if pidCol < 0 {
		return nil, nil, errdefs.Invalid("Couldn't find PID field in ps output")
	}
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
	}
	var procs [][]string
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) <= pidCol {
			continue
		}
		pid, err := strconv.Atoi(f[pidCol])
		if err != nil || !want[pid] {
			continue
		}
		row := append(f[:len(titles)-1:len(titles)-1], strings.Join(f[len(titles)-1:], " "))
		procs = append(procs, row)
	}
	return titles, procs, nil
}

// Stats reads a running container's counters.
func (e *Engine) Stats(ctx context.Context, ref string) (*container.Container, *runtime.Stats, error) {
	c, err := e.ctrs.Get(ref)
	if err != nil {
		return nil, nil, err
	}
	if !c.Running() {
		return c, &runtime.Stats{}, nil
	}
	st, err := e.shim(c).Stats(ctx)
	if err != nil {
		return c, &runtime.Stats{}, nil
	}
	if c.Endpoint != nil {
		if n := e.netOf(c); n != nil {
			st.NetRx, st.NetTx = n.Counters(c.ID)
		}
	}
	return c, st, nil
}

// RootfsSize is the size of the container's writable layer.
func (e *Engine) RootfsSize(c *container.Container) int64 {
	act, err := e.activeOf(c)
	if err != nil {
		return 0
	}
	var n int64
	filepath.Walk(act.Upper, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
