// Package build is Berth's Dockerfile builder: buildkit's parser reads the Dockerfile,
// and each instruction runs here against the engine, as Docker's classic builder does
// (one image per step, RUN in a container, a cache of steps keyed by parent and
// instruction). Stages the target does not need are not built.
package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/registry"
	digest "github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/image"
)

// Options are docker build's flags, as the /build endpoint carries them.
type Options struct {
	Dockerfile  string // path inside the context; "Dockerfile" when empty
	Tags        []string
	BuildArgs   map[string]*string
	Labels      map[string]string
	Target      string
	NoCache     bool
	Pull        bool
	NetworkMode string // for RUN: "default" (bridge), "host", "none" or a network name
	Quiet       bool   // no step output, only errors (docker build -q)
	Platform    string
	Remote      string // a URL context (not a tar body)
	// Auth holds the client's registry credentials (X-Registry-Config), by server
	// address, for pulling base images.
	Auth map[string]registry.AuthConfig
}

// Backend is what the builder needs from the engine.
type Backend interface {
	// Image finds a local image by reference or id.
	Image(ref string) (*image.Image, error)
	// PutImage stores an image config made on top of parent ("" for none).
	PutImage(cfg dockerspec.DockerOCIImage, parent digest.Digest) (*image.Image, error)
	// Run runs a RUN step's command in a container of img, streaming its output to
	// out, and returns the layer of the changes it made. The container is removed
	// whatever happens. A non-zero exit is an *ExitError.
	Run(ctx context.Context, img *image.Image, r RunRequest, out io.Writer) (digest.Digest, error)
	// Change mounts a writable copy of img's root filesystem for fn and returns the
	// layer of what fn changed ("" when it changed nothing).
	Change(ctx context.Context, img *image.Image, fn func(root string) error) (digest.Digest, error)
	// View mounts img's root filesystem for fn to read.
	View(ctx context.Context, img *image.Image, fn func(root string) error) error
	// Tag points ref at the image id.
	Tag(id digest.Digest, ref string) error
	// Pull fetches an image from its registry, writing progress lines to out.
	Pull(ctx context.Context, ref string, auth map[string]registry.AuthConfig, out io.Writer) (*image.Image, error)
	// Hold keeps the image from being deleted (by a prune running meanwhile) until
	// release is called.
	Hold(id digest.Digest) (release func())
}

// RunRequest is the container a RUN step needs.
type RunRequest struct {
	Cmd        []string
	Env        []string
	User       string
	WorkingDir string
	Network    string
	// Binds are host paths mounted read-only (heredoc scripts): "host:container:ro".
	Binds   []string
	Started func(containerID string)
}

// ExitError is a RUN step that exited non-zero.
type ExitError struct {
	Cmd  []string
	Code int
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("The command '%s' returned a non-zero code: %d", strings.Join(e.Cmd, " "), e.Code)
}

// Builder runs builds; one may run several at once.
type Builder struct {
	be    Backend
	tmp   string
	cache *Cache

	mu      sync.Mutex
	running map[string]context.CancelFunc
}

// New returns a builder that keeps its cache and scratch space under dir.
func New(be Backend, dir string) (*Builder, error) {
	tmp := filepath.Join(dir, "tmp")
	os.RemoveAll(tmp) // contexts of builds that were running when the engine stopped
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, err
	}
	c, err := OpenCache(filepath.Join(dir, "cache.json"))
	if err != nil {
		return nil, err
	}
	return &Builder{be: be, tmp: tmp, cache: c, running: map[string]context.CancelFunc{}}, nil
}

// Cache returns the builder's step cache.
func (b *Builder) Cache() *Cache { return b.cache }

// Cancel stops the build registered under id (the API's buildid), if it runs.
func (b *Builder) Cancel(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	cancel, ok := b.running[id]
	if ok {
		cancel()
	}
	return ok
}

// Build builds the context in body as o says, writing Docker's classic progress
// text to out, and returns the id of the image it made and tagged. id names the build
// for Cancel ("" for none).
func (b *Builder) Build(ctx context.Context, id string, body io.Reader, o Options, out io.Writer) (digest.Digest, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if id != "" {
		b.mu.Lock()
		b.running[id] = cancel
		b.mu.Unlock()
		defer func() {
			b.mu.Lock()
			delete(b.running, id)
			b.mu.Unlock()
		}()
	}
	if o.Remote != "" {
		return "", errdefs.Invalid(fmt.Sprintf("unable to prepare context: remote contexts (%s) are not supported; send the context as a tar", o.Remote))
	}
	if err := checkPlatform('\\', o.Platform, newVars()); err != nil {
		return "", err
	}
	for _, t := range o.Tags {
		if _, err := image.ParseReference(t); err != nil {
			return "", errdefs.Invalid(fmt.Sprintf("invalid tag %q: %v", t, err))
		}
	}
	dir, err := os.MkdirTemp(b.tmp, "ctx-")
	if err != nil {
		return "", err
	}
	defer func() { go os.RemoveAll(dir) }() // the client need not wait for the cleanup
	bc, bare, err := unpackContext(dir, body)
	if err != nil {
		return "", err
	}
	dfName := o.Dockerfile
	if dfName == "" || bare {
		dfName = "Dockerfile"
	}
	df, err := readDockerfile(dir, dfName)
	if err != nil {
		return "", err
	}
	if err := bc.applyIgnore(); err != nil {
		return "", err
	}
	plan, err := parse(df, o)
	if err != nil {
		return "", err
	}
	// Quiet builds keep their output, to show it only if the build fails; the
	// image id is then all they print, as Docker's classic builder does.
	loud := out
	var quiet *tailBuffer
	if o.Quiet {
		quiet = &tailBuffer{max: 1 << 20}
		out = quiet
	}
	r := &run{b: b, ctx: ctx, o: o, bc: bc, plan: plan, out: out, used: map[string]bool{}}
	defer func() {
		for _, release := range r.releases {
			release()
		}
	}()
	img, err := r.build()
	if err != nil {
		if quiet != nil {
			loud.Write(quiet.Bytes())
		}
		return "", err
	}
	defer func() {
		if quiet != nil {
			fmt.Fprintln(loud, img)
		}
	}()
	var unused []string
	for k := range o.BuildArgs {
		if !r.used[k] && !builtinArgs[k] {
			unused = append(unused, k)
		}
	}
	if len(unused) > 0 {
		sort.Strings(unused)
		fmt.Fprintf(out, "[Warning] One or more build-args [%s] were not consumed\n", strings.Join(unused, " "))
	}
	fmt.Fprintf(out, "Successfully built %s\n", image.ShortID(img))
	for _, t := range o.Tags {
		ref, _ := image.ParseReference(t)
		if err := b.be.Tag(img, ref.String()); err != nil {
			return "", err
		}
		fmt.Fprintf(out, "Successfully tagged %s\n", image.Familiar(ref.String()))
	}
	if err := b.cache.Save(); err != nil {
		return "", err
	}
	return img, nil
}

// readDockerfile reads the Dockerfile from the context, refusing paths that leave it.
func readDockerfile(dir, name string) ([]byte, error) {
	rel := filepath.Clean("/" + name)
	f, err := os.Open(filepath.Join(dir, rel))
	if err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("Cannot locate specified Dockerfile: %s", name))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxDockerfile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxDockerfile {
		return nil, errdefs.Invalid("the Dockerfile is larger than 8 MiB")
	}
	return data, nil
}

// plan is a parsed Dockerfile: its stages, the ARGs before the first FROM, and which
// stages the target needs, in the order they are built.
type plan struct {
	stages   []instructions.Stage
	metaArgs []instructions.ArgCommand
	escape   rune
	meta     *vars // the scope of FROM lines (platform args, ARGs before the first FROM)
	target   int
	order    []int
	steps    int // total Step N/M count of the stages built
}

// parse reads the Dockerfile with buildkit's parser and picks the stages to build.
func parse(df []byte, o Options) (*plan, error) {
	name := o.Dockerfile
	if name == "" {
		name = "Dockerfile"
	}
	if len(strings.TrimSpace(string(df))) == 0 {
		return nil, errdefs.Invalid(fmt.Sprintf("the Dockerfile (%s) cannot be empty", name))
	}
	res, err := parser.Parse(strings.NewReader(string(df)))
	if err != nil {
		return nil, errdefs.Invalid("dockerfile parse error: " + err.Error())
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, errdefs.Invalid(err.Error())
	}
	if len(stages) == 0 {
		return nil, errdefs.Invalid(fmt.Sprintf("the Dockerfile (%s) cannot be empty", name))
	}
	p := &plan{stages: stages, metaArgs: metaArgs, escape: rune(res.EscapeToken), target: len(stages) - 1}
	if o.Target != "" {
		i, ok := instructions.HasStage(stages, strings.ToLower(o.Target))
		if !ok {
			return nil, errdefs.Invalid(fmt.Sprintf("failed to reach build target %s in Dockerfile", o.Target))
		}
		p.target = i
	}
	if p.meta, err = p.metaEnv(o.BuildArgs); err != nil {
		return nil, err
	}
	meta := p.meta
	order, err := stageOrder(stages, p.target, func(w string) string {
		s, _ := expandWord(p.escape, w, meta)
		return s
	})
	if err != nil {
		return nil, err
	}
	p.order = order
	for _, i := range order {
		p.steps += 1 + len(stages[i].Commands)
	}
	if len(o.Labels) > 0 {
		p.steps++
	}
	return p, nil
}

// stageOrder returns the stages target depends on (through FROM and COPY --from), each
// after the stages it needs, ending with target. expand resolves ARGs in FROM names.
func stageOrder(stages []instructions.Stage, target int, expand func(string) string) ([]int, error) {
	state := make([]int, len(stages)) // 0 new, 1 visiting, 2 done
	var order []int
	var visit func(i int) error
	visit = func(i int) error {
		switch state[i] {
		case 1:
			return errdefs.Invalid(fmt.Sprintf("circular dependency detected on stage: %s", stageName(stages, i)))
		case 2:
			return nil
		}
		state[i] = 1
		for _, dep := range stageDeps(stages, i, expand) {
			if err := visit(dep); err != nil {
				return err
			}
		}
		state[i] = 2
		order = append(order, i)
		return nil
	}
	if err := visit(target); err != nil {
		return nil, err
	}
	return order, nil
}

// stageDeps lists the earlier stages stage i uses.
func stageDeps(stages []instructions.Stage, i int, expand func(string) string) []int {
	var deps []int
	ref := func(name string) {
		if j, ok := stageIndex(stages, name, i); ok {
			deps = append(deps, j)
		}
	}
	ref(expand(stages[i].BaseName))
	for _, cmd := range stages[i].Commands {
		if c, ok := cmd.(*instructions.CopyCommand); ok && c.From != "" {
			ref(expand(c.From))
		}
	}
	return deps
}

// stageIndex resolves a stage name or index used in stage `before` (only earlier
// stages count, so `FROM alpine AS alpine` still means the image).
func stageIndex(stages []instructions.Stage, name string, before int) (int, bool) {
	name = strings.ToLower(name)
	for j := 0; j < before; j++ {
		if stages[j].Name == name {
			return j, true
		}
	}
	var n int
	if _, err := fmt.Sscanf(name, "%d", &n); err == nil && fmt.Sprint(n) == name && n >= 0 && n < before {
		return n, true
	}
	return 0, false
}

func stageName(stages []instructions.Stage, i int) string {
	if stages[i].Name != "" {
		return stages[i].Name
	}
	return fmt.Sprint(i)
}

// errStep decorates a step's error with the instruction, as Docker words it.
func errStep(instr string, err error) error {
	var ee *ExitError
	if errors.As(err, &ee) || errors.Is(err, context.Canceled) {
		return err
	}
	name, _, _ := strings.Cut(instr, " ")
	return fmt.Errorf("%s failed: %w", strings.ToUpper(name), err)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte{}, t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte { return t.buf }
