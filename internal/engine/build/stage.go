package build

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	goruntime "runtime"
	"sort"
	"strings"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/engine/errdefs"
	"github.com/berth-project/berth/internal/engine/image"
)

// run is one build in progress.
type run struct {
	b       *Builder
	ctx     context.Context
	o       Options
	bc      *buildContext
	plan    *plan
	out     io.Writer
	used    map[string]bool // build args some ARG consumed
	step    int
	results map[int]*image.Image // stage index -> its final image
	cur     int                  // the stage being built
	// releases undo the holds on the images this build stands on, when it ends.
	releases []func()
}

// stage is the state of the stage being built: the image the next step starts from
// and the stage-local things that are not part of the image.
type stage struct {
	img    *image.Image // nil before the first step of a FROM scratch stage
	cfg    dockerspec.DockerOCIImage
	args   *vars // declared ARGs with their values
	cmdSet bool  // CMD was set in this stage (ENTRYPOINT then keeps it)
}

func (s *stage) id() digest.Digest {
	if s.img == nil {
		return ""
	}
	return s.img.ID
}

// set moves the stage onto img, with a private copy of its config.
func (s *stage) set(img *image.Image) {
	s.img = img
	s.cfg = cloneConfig(img.Config)
}

// env is the scope words are expanded in: the stage's ARGs under its ENV.
func (s *stage) env() *vars {
	v := newVars()
	for _, k := range s.args.keys {
		v.Set(k, s.args.m[k])
	}
	v.addEnv(s.cfg.Config.Env)
	return v
}

// moveTo moves the stage onto img, which stays held (no prune deletes it) until the
// build ends.
func (r *run) moveTo(s *stage, img *image.Image) {
	r.releases = append(r.releases, r.b.be.Hold(img.ID))
	s.set(img)
}

func cloneConfig(c dockerspec.DockerOCIImage) dockerspec.DockerOCIImage {
	data, _ := json.Marshal(c)
	var out dockerspec.DockerOCIImage
	json.Unmarshal(data, &out)
	return out
}

func (r *run) build() (digest.Digest, error) {
	r.results = map[int]*image.Image{}
	for _, i := range r.plan.order {
		img, err := r.buildStage(i)
		if err != nil {
			return "", err
		}
		r.results[i] = img
	}
	img := r.results[r.plan.target]
	if img == nil {
		return "", errdefs.Invalid("No image was generated. Is your Dockerfile empty?")
	}
	return img.ID, nil
}

func (r *run) stepf(format string, a ...any) {
	r.step++
	fmt.Fprintf(r.out, "Step %d/%d : %s\n", r.step, r.plan.steps, fmt.Sprintf(format, a...))
}

// buildStage builds stage i and returns its last image (nil for an empty scratch stage).
func (r *run) buildStage(i int) (*image.Image, error) {
	st := r.plan.stages[i]
	r.cur = i
	r.stepf("%s", strings.TrimSpace(st.SourceCode))
	meta := r.plan.meta
	for _, a := range r.plan.metaArgs {
		for _, kv := range a.Args {
			r.used[kv.Key] = true
		}
	}
	base, err := expandWord(r.plan.escape, st.BaseName, meta)
	if err != nil {
		return nil, err
	}
	if err := checkPlatform(r.plan.escape, st.Platform, meta); err != nil {
		return nil, err
	}
	s := &stage{args: newVars()}
	switch j, isStage := stageIndex(r.plan.stages, base, i); {
	case isStage:
		if r.results[j] != nil {
			r.moveTo(s, r.results[j])
		} else {
			s.cfg = scratchConfig()
		}
	case strings.EqualFold(base, "scratch"):
		s.cfg = scratchConfig()
	default:
		// A base image missing here is pulled, as Docker does; --pull always asks.
		img, err := r.b.be.Image(base)
		if err != nil || r.o.Pull {
			img, err = r.b.be.Pull(r.ctx, base, r.o.Auth, r.out)
			if err != nil {
				return nil, err
			}
		}
		r.moveTo(s, img)
	}
	if s.img != nil {
		fmt.Fprintf(r.out, " ---> %s\n", image.ShortID(s.img.ID))
	}
	if triggers := s.cfg.Config.OnBuild; len(triggers) > 0 {
		s.cfg.Config.OnBuild = nil // a child image does not inherit its parent's triggers
		word := "trigger"
		if len(triggers) > 1 {
			word = "triggers"
		}
		fmt.Fprintf(r.out, "# Executing %d build %s\n", len(triggers), word)
		for _, t := range triggers {
			cmd, err := parseTrigger(t)
			if err != nil {
				return nil, err
			}
			if err := r.dispatch(s, cmd); err != nil {
				return nil, errStep(t, err)
			}
		}
	}
	for _, cmd := range st.Commands {
		r.stepf("%s", cmd.(fmt.Stringer).String())
		if err := r.ctx.Err(); err != nil {
			return nil, err
		}
		if err := r.dispatch(s, cmd); err != nil {
			return nil, errStep(cmd.Name(), err)
		}
	}
	if i == r.plan.target && len(r.o.Labels) > 0 {
		var kv []string
		for k, v := range r.o.Labels {
			kv = append(kv, fmt.Sprintf("%q=%q", k, v))
		}
		sort.Strings(kv)
		r.stepf("LABEL %s", strings.Join(kv, " "))
		err := r.configStep(s, "LABEL "+strings.Join(kv, " "), func(c *dockerspec.DockerOCIImageConfig) error {
			if c.Labels == nil {
				c.Labels = map[string]string{}
			}
			for k, v := range r.o.Labels {
				c.Labels[k] = v
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if s.img == nil && s.cfg.Config.Cmd != nil {
		if err := r.ensureImage(s); err != nil {
			return nil, err
		}
	}
	return s.img, nil
}

func scratchConfig() dockerspec.DockerOCIImage {
	var c dockerspec.DockerOCIImage
	c.OS, c.Architecture = "linux", goruntime.GOARCH
	c.RootFS.Type = "layers"
	c.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	return c
}

// checkPlatform accepts FROM --platform only for the host's platform: Berth runs what
// it builds, and has no emulation.
func checkPlatform(escape rune, p string, meta *vars) error {
	if p == "" {
		return nil
	}
	s, err := expandWord(escape, p, meta)
	if err != nil {
		return err
	}
	want := "linux/" + goruntime.GOARCH
	if s != want && s != "linux" && s != "" {
		return errdefs.Invalid(fmt.Sprintf("platform %s is not supported: Berth builds for %s", s, want))
	}
	return nil
}

// parseTrigger parses an ONBUILD trigger as a one-line Dockerfile.
func parseTrigger(t string) (instructions.Command, error) {
	res, err := parser.Parse(strings.NewReader(t))
	if err != nil || len(res.AST.Children) != 1 {
		return nil, errdefs.Invalid(fmt.Sprintf("invalid ONBUILD trigger %q", t))
	}
	cmd, err := instructions.ParseCommand(res.AST.Children[0])
	if err != nil {
		return nil, errdefs.Invalid(fmt.Sprintf("ONBUILD trigger %q: %v", t, err))
	}
	return cmd, nil
}

// probe moves the stage onto the cached image of key, if there is one.
func (r *run) probe(s *stage, key string) bool {
	if r.o.NoCache {
		return false
	}
	id, ok := r.b.cache.Get(key)
	if !ok {
		return false
	}
	img, err := r.b.be.Image(id.String())
	if err != nil {
		return false
	}
	r.moveTo(s, img)
	fmt.Fprintf(r.out, " ---> Using cache\n ---> %s\n", image.ShortID(img.ID))
	return true
}

// ensureImage stores the stage's config as an image, for a scratch stage that has not
// made one yet (a RUN or COPY needs an image to start from).
func (r *run) ensureImage(s *stage) error {
	if s.img != nil {
		return nil
	}
	if s.cfg.Created == nil {
		now := time.Now().UTC()
		s.cfg.Created = &now
	}
	img, err := r.b.be.PutImage(s.cfg, "")
	if err != nil {
		return err
	}
	r.releases = append(r.releases, r.b.be.Hold(img.ID))
	s.img = img
	return nil
}

// commit stores the stage's config with one more history entry (and layer, unless
// layer is ""), records it in the cache under key and moves the stage onto it.
func (r *run) commit(s *stage, key, createdBy string, layer digest.Digest) error {
	cfg := s.cfg
	now := time.Now().UTC()
	cfg.Created = &now
	cfg.RootFS.Type = "layers"
	if layer != "" {
		cfg.RootFS.DiffIDs = append(append([]digest.Digest{}, cfg.RootFS.DiffIDs...), layer)
	}
	cfg.History = append(append([]ocispec.History{}, cfg.History...), ocispec.History{
		Created: &now, CreatedBy: createdBy, EmptyLayer: layer == "",
	})
	img, err := r.b.be.PutImage(cfg, s.id())
	if err != nil {
		return err
	}
	r.b.cache.Put(key, img.ID)
	r.moveTo(s, img)
	fmt.Fprintf(r.out, " ---> %s\n", image.ShortID(img.ID))
	return nil
}

// configStep is a step that changes only the image config: a cache hit, or apply
// then commit with an empty layer.
func (r *run) configStep(s *stage, text string, apply func(c *dockerspec.DockerOCIImageConfig) error) error {
	key := CacheKey(s.id(), text)
	if r.probe(s, key) {
		return nil
	}
	if err := apply(&s.cfg.Config); err != nil {
		return err
	}
	return r.commit(s, key, "/bin/sh -c #(nop)  "+text, "")
}
