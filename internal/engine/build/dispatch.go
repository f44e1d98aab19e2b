package build

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/sys/signal"

	"github.com/berth-project/berth/internal/engine/errdefs"
)

// dispatch runs one instruction on the stage.
func (r *run) dispatch(s *stage, cmd instructions.Command) error {
	if ex, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
		env := s.env()
		err := ex.Expand(func(w string) (string, error) { return expandWord(r.plan.escape, w, env) })
		if err != nil {
			return err
		}
	}
	if ex, ok := cmd.(instructions.SupportsSingleWordExpansionRaw); ok {
		// Heredoc bodies (COPY <<EOF) expand variables but keep their quotes.
		env := s.env()
		err := ex.ExpandRaw(func(w string) (string, error) { return expandRaw(w, env) })
		if err != nil {
			return err
		}
	}
	switch c := cmd.(type) {
	case *instructions.EnvCommand:
		var parts []string
		for _, kv := range c.Env {
			parts = append(parts, kv.Key+"="+kv.Value)
		}
		return r.configStep(s, "ENV "+strings.Join(parts, " "), func(cfg *dockerspec.DockerOCIImageConfig) error {
			for _, kv := range c.Env {
				cfg.Env = setEnv(cfg.Env, kv.Key, kv.Value)
			}
			return nil
		})
	case *instructions.LabelCommand:
		var parts []string
		for _, kv := range c.Labels {
			parts = append(parts, fmt.Sprintf("%q=%q", kv.Key, kv.Value))
		}
		return r.configStep(s, "LABEL "+strings.Join(parts, " "), func(cfg *dockerspec.DockerOCIImageConfig) error {
			if cfg.Labels == nil {
				cfg.Labels = map[string]string{}
			}
			for _, kv := range c.Labels {
				cfg.Labels[kv.Key] = kv.Value
			}
			return nil
		})
	case *instructions.MaintainerCommand:
		key := CacheKey(s.id(), "MAINTAINER "+c.Maintainer)
		if r.probe(s, key) {
			return nil
		}
		s.cfg.Author = c.Maintainer
		return r.commit(s, key, "/bin/sh -c #(nop)  MAINTAINER "+c.Maintainer, "")
	case *instructions.ExposeCommand:
		ports, err := exposedPorts(c.Ports, s.env(), r.plan.escape)
		if err != nil {
			return err
		}
		return r.configStep(s, "EXPOSE "+strings.Join(ports, " "), func(cfg *dockerspec.DockerOCIImageConfig) error {
			if cfg.ExposedPorts == nil {
				cfg.ExposedPorts = map[string]struct{}{}
			}
			for _, p := range ports {
				cfg.ExposedPorts[p] = struct{}{}
			}
			return nil
		})
	case *instructions.CmdCommand:
		argv := r.commandLine(s, c.ShellDependantCmdLine)
		s.cmdSet = true
		return r.configStep(s, "CMD "+jsonArgs(argv), func(cfg *dockerspec.DockerOCIImageConfig) error {
			cfg.Cmd = argv
			return nil
		})
	case *instructions.EntrypointCommand:
		argv := r.commandLine(s, c.ShellDependantCmdLine)
		keepCmd := s.cmdSet
		return r.configStep(s, "ENTRYPOINT "+jsonArgs(argv), func(cfg *dockerspec.DockerOCIImageConfig) error {
			cfg.Entrypoint = argv
			if !keepCmd {
				cfg.Cmd = nil // a CMD inherited from the base image no longer fits
			}
			return nil
		})
	case *instructions.HealthCheckCommand:
		text, _ := json.Marshal(c.Health)
		return r.configStep(s, "HEALTHCHECK "+string(text), func(cfg *dockerspec.DockerOCIImageConfig) error {
			h := *c.Health
			cfg.Healthcheck = &h
			return nil
		})
	case *instructions.UserCommand:
		return r.configStep(s, "USER "+c.User, func(cfg *dockerspec.DockerOCIImageConfig) error {
			cfg.User = c.User
			return nil
		})
	case *instructions.VolumeCommand:
		for _, v := range c.Volumes {
			if strings.TrimSpace(v) == "" {
				return errdefs.Invalid("VOLUME specified can not be an empty string")
			}
		}
		return r.configStep(s, "VOLUME "+jsonArgs(c.Volumes), func(cfg *dockerspec.DockerOCIImageConfig) error {
			if cfg.Volumes == nil {
				cfg.Volumes = map[string]struct{}{}
			}
			for _, v := range c.Volumes {
				cfg.Volumes[v] = struct{}{}
			}
			return nil
		})
	case *instructions.StopSignalCommand:
		if _, err := signal.ParseSignal(c.Signal); err != nil {
			return errdefs.Invalid(err.Error())
		}
		return r.configStep(s, "STOPSIGNAL "+c.Signal, func(cfg *dockerspec.DockerOCIImageConfig) error {
			cfg.StopSignal = c.Signal
			return nil
		})
	case *instructions.ShellCommand:
		return r.configStep(s, "SHELL "+jsonArgs(c.Shell), func(cfg *dockerspec.DockerOCIImageConfig) error {
			cfg.Shell = c.Shell
			return nil
		})
	case *instructions.OnbuildCommand:
		name, rest, _ := strings.Cut(strings.TrimSpace(c.Expression), " ")
		switch name = strings.ToUpper(name); name {
		case "ONBUILD":
			return errdefs.Invalid("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
		case "FROM", "MAINTAINER":
			return errdefs.Invalid(fmt.Sprintf("%s isn't allowed as an ONBUILD trigger", name))
		}
		expr := name + " " + rest
		return r.configStep(s, "ONBUILD "+expr, func(cfg *dockerspec.DockerOCIImageConfig) error {
			cfg.OnBuild = append(cfg.OnBuild, expr)
			return nil
		})
	case *instructions.ArgCommand:
		return r.arg(s, c)
	case *instructions.WorkdirCommand:
		return r.workdir(s, c)
	case *instructions.RunCommand:
		return r.runStep(s, c)
	case *instructions.CopyCommand:
		return r.copyStep(s, copyRequest{
			name: "COPY", sd: c.SourcesAndDest, from: c.From, chown: c.Chown, chmod: c.Chmod,
			parents: c.Parents, exclude: c.ExcludePatterns,
		})
	case *instructions.AddCommand:
		return r.copyStep(s, copyRequest{
			name: "ADD", sd: c.SourcesAndDest, chown: c.Chown, chmod: c.Chmod,
			add: true, checksum: c.Checksum, unpack: c.Unpack, exclude: c.ExcludePatterns,
		})
	}
	return errdefs.Invalid(fmt.Sprintf("unsupported instruction %s", cmd.Name()))
}

// arg declares build arguments in the stage. A value comes from --build-arg, else the
// default in the ARG, else the same-named ARG before the first FROM.
func (r *run) arg(s *stage, c *instructions.ArgCommand) error {
	meta := r.plan.meta
	var parts []string
	for _, kv := range c.Args {
		r.used[kv.Key] = true
		val, has := "", false
		if given, ok := r.o.BuildArgs[kv.Key]; ok && given != nil {
			val, has = *given, true
		} else if kv.Value != nil {
			val, has = *kv.Value, true
		} else if m, ok := meta.Get(kv.Key); ok {
			val, has = m, true
		}
		if has {
			s.args.Set(kv.Key, val)
			parts = append(parts, kv.Key+"="+val)
		} else {
			parts = append(parts, kv.Key)
		}
	}
	return r.configStep(s, "ARG "+strings.Join(parts, " "), func(*dockerspec.DockerOCIImageConfig) error { return nil })
}

// workdir sets the working directory and creates it in the image, as Docker does.
func (r *run) workdir(s *stage, c *instructions.WorkdirCommand) error {
	dir := c.Path
	if !path.IsAbs(dir) {
		cur := s.cfg.Config.WorkingDir
		if cur == "" {
			cur = "/"
		}
		dir = path.Join(cur, dir)
	}
	dir = path.Clean(dir)
	text := "WORKDIR " + dir
	key := CacheKey(s.id(), text)
	if r.probe(s, key) {
		return nil
	}
	s.cfg.Config.WorkingDir = dir
	if err := r.ensureImage(s); err != nil {
		return err
	}
	layer, err := r.b.be.Change(r.ctx, s.img, func(root string) error {
		_, err := mkdirAllIn(root, dir, 0o755, nil)
		return err
	})
	if err != nil {
		return err
	}
	return r.commit(s, key, "/bin/sh -c #(nop)  "+text, layer)
}

// commandLine is the argv of CMD, ENTRYPOINT or RUN: the exec form as written, the
// shell form run by the image's SHELL.
func (r *run) commandLine(s *stage, c instructions.ShellDependantCmdLine) []string {
	if !c.PrependShell {
		return append([]string{}, c.CmdLine...)
	}
	return append(shellOf(s), strings.Join(c.CmdLine, " "))
}

func shellOf(s *stage) []string {
	if len(s.cfg.Config.Shell) > 0 {
		return append([]string{}, s.cfg.Config.Shell...)
	}
	return []string{"/bin/sh", "-c"}
}

func jsonArgs(a []string) string {
	if a == nil {
		a = []string{}
	}
	b, _ := json.Marshal(a)
	return string(b)
}

// setEnv sets key in a KEY=VALUE list, in place when it is there.
func setEnv(env []string, key, val string) []string {
	for i, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			out := append([]string{}, env...)
			out[i] = key + "=" + val
			return out
		}
	}
	return append(append([]string{}, env...), key+"="+val)
}

// exposedPorts normalises EXPOSE arguments to "PORT/proto", expanding ranges.
func exposedPorts(args []string, env *vars, escape rune) ([]string, error) {
	var out []string
	for _, a := range args {
		a, err := expandWord(escape, a, env)
		if err != nil {
			return nil, err
		}
		spec, proto, _ := strings.Cut(a, "/")
		if proto == "" {
			proto = "tcp"
		}
		proto = strings.ToLower(proto)
		if proto != "tcp" && proto != "udp" && proto != "sctp" {
			return nil, errdefs.Invalid(fmt.Sprintf("invalid proto: %s", proto))
		}
		lo, hi, isRange := strings.Cut(spec, "-")
		start, err1 := strconv.ParseUint(lo, 10, 16)
		end := start
		var err2 error
		if isRange {
			end, err2 = strconv.ParseUint(hi, 10, 16)
		}
		if err1 != nil || err2 != nil || start == 0 || end < start {
			return nil, errdefs.Invalid(fmt.Sprintf("invalid containerPort: %s", spec))
		}
		for p := start; p <= end; p++ {
			out = append(out, fmt.Sprintf("%d/%s", p, proto))
		}
	}
	return out, nil
}
