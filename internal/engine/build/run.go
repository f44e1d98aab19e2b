package build

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/berth-project/berth/internal/engine/errdefs"
)

// runStep runs a RUN instruction in a container and commits what it changed.
func (r *run) runStep(s *stage, c *instructions.RunCommand) error {
	if len(instructions.GetMounts(c)) > 0 {
		return errdefs.Invalid("RUN --mount is not supported by Berth's builder")
	}
	if sec := instructions.GetSecurity(c); sec != "" && sec != "sandbox" {
		return errdefs.Invalid(fmt.Sprintf("RUN --security=%s is not supported by Berth's builder", sec))
	}
	network := r.o.NetworkMode
	switch n := instructions.GetNetwork(c); n {
	case "", instructions.NetworkDefault:
	case instructions.NetworkNone, instructions.NetworkHost:
		network = string(n)
	default:
		return errdefs.Invalid(fmt.Sprintf("RUN --network=%s is not supported", n))
	}

	args := c.CmdLine
	var script, scriptName string // a heredoc with a shebang runs as a file
	if len(c.Files) > 0 {
		if len(args) != 1 || !c.PrependShell {
			return errdefs.Invalid(fmt.Sprintf("parsing produced an invalid run command: %v", args))
		}
		if h := parser.MustParseHeredoc(args[0]); h != nil {
			data := c.Files[0].Data
			if c.Files[0].Chomp {
				data = parser.ChompHeredocContent(data)
			}
			if strings.HasPrefix(data, "#!") {
				script, scriptName = data, c.Files[0].Name
				args = []string{"/dev/pipes/" + scriptName}
			} else {
				args = []string{data}
			}
		} else {
			// Heredocs inside a longer command line: the shell reads them itself.
			var b strings.Builder
			b.WriteString(args[0])
			for _, f := range c.Files {
				b.WriteString("\n" + f.Data + f.Name)
			}
			args = []string{b.String()}
		}
	}
	cmd := args
	if c.PrependShell && script == "" {
		cmd = append(shellOf(s), strings.Join(args, " "))
	}

	// The ARGs in scope shape the step: they are in its environment and its key.
	argList := argEnv(s.args)
	createdBy := strings.Join(cmd, " ")
	if len(argList) > 0 {
		createdBy = fmt.Sprintf("|%d %s %s", len(argList), strings.Join(argList, " "), createdBy)
	}
	key := CacheKey(s.id(), "RUN "+createdBy+"\x00"+script)
	if r.probe(s, key) {
		return nil
	}
	if err := r.ensureImage(s); err != nil {
		return err
	}
	env := append([]string{}, s.cfg.Config.Env...)
	set := map[string]bool{}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	for _, kv := range argList {
		if k, _, _ := strings.Cut(kv, "="); !set[k] {
			env = append(env, kv)
		}
	}
	for k, v := range r.o.BuildArgs {
		if proxyArgs[k] && v != nil && !set[k] {
			r.used[k] = true
			env = append(env, k+"="+*v)
		}
	}
	var started string // the step's container, once it runs
	req := RunRequest{
		Cmd: cmd, Env: env, User: s.cfg.Config.User, WorkingDir: s.cfg.Config.WorkingDir, Network: network,
		Started: func(id string) {
			started = id
			fmt.Fprintf(r.out, " ---> Running in %s\n", id[:12])
		},
	}
	if script != "" {
		dir, err := os.MkdirTemp(r.b.tmp, "heredoc-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		p := filepath.Join(dir, filepath.Base(scriptName))
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
			return err
		}
		req.Binds = []string{p + ":/dev/pipes/" + filepath.Base(scriptName) + ":ro"}
	}
	layer, err := r.b.be.Run(r.ctx, s.img, req, r.out)
	if started != "" {
		fmt.Fprintf(r.out, " ---> Removed intermediate container %s\n", started[:12])
	}
	if err != nil {
		return err
	}
	return r.commit(s, key, createdBy, layer)
}
