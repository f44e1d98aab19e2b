package build

import (
	"fmt"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// FuzzDockerfile feeds arbitrary Dockerfiles through the front end: buildkit's parser,
// stage selection, ARG scoping, word expansion and the instructions' own checks. No
// input may panic or hang; every refusal must be an error.
func FuzzDockerfile(f *testing.F) {
	seeds := []string{
		"FROM bb:1.0\nARG VERSION=1\nENV VERSION=$VERSION\nWORKDIR /app\nCOPY src/ /app/\nRUN chmod +x /app/run.sh\nEXPOSE 8080\nLABEL a=b\nCMD [\"/app/run.sh\"]\n",
		"ARG BASE=bb\nFROM ${BASE:-x} AS build\nRUN <<EOF\necho hi\nEOF\nFROM scratch\nCOPY --from=build --chown=1:1 --chmod=755 /a /b\n",
		"# syntax=docker/dockerfile:1\n# escape=`\nFROM a\nRUN echo `\n  two\nSHELL [\"/bin/bash\", \"-c\"]\nHEALTHCHECK --interval=5s CMD true\nONBUILD RUN x\nSTOPSIGNAL SIGTERM\nVOLUME /data\nUSER 1000:1000\nEXPOSE 80-90/udp\n",
		"FROM a\nCOPY <<X /f\n${A:+y}\nX\nADD --checksum=sha256:00 http://x/y /z\nENTRYPOINT echo\n",
		"FROM a AS b\nFROM b AS c\nFROM c\nCOPY --from=0 / /\n",
		"FROM\n", "RUN x\n", "FROM a\nENV\n", "FROM a\nARG\n", "FROM a\nEXPOSE -1\n",
	}
	for _, s := range seeds {
		f.Add(s, "")
	}
	f.Add("FROM a AS x\nFROM b\n", "x")
	f.Fuzz(func(t *testing.T, df, target string) {
		p, err := parse([]byte(df), Options{Target: target, BuildArgs: map[string]*string{"VERSION": ptr("2")}})
		if err != nil {
			return
		}
		if len(p.order) == 0 || p.order[len(p.order)-1] != p.target {
			t.Fatalf("build order %v does not end at the target %d", p.order, p.target)
		}
		meta, err := p.metaEnv(nil)
		if err != nil {
			return
		}
		for _, i := range p.order {
			st := p.stages[i]
			expandWord(p.escape, st.BaseName, meta)
			checkPlatform(p.escape, st.Platform, meta)
			env := newVars()
			for k, v := range meta.m {
				env.Set(k, v)
			}
			for _, cmd := range st.Commands {
				if ex, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
					if ex.Expand(func(w string) (string, error) { return expandWord(p.escape, w, env) }) != nil {
						continue
					}
				}
				switch c := cmd.(type) {
				case *instructions.ExposeCommand:
					exposedPorts(c.Ports, env, p.escape)
				case *instructions.OnbuildCommand:
					parseTrigger(c.Expression)
				case *instructions.EnvCommand:
					for _, kv := range c.Env {
						env.Set(kv.Key, kv.Value)
					}
				case *instructions.CopyCommand:
					for _, src := range c.SourcePaths {
						contextSources(t.TempDir(), src)
					}
				case *instructions.RunCommand:
					instructions.GetMounts(c)
					instructions.GetNetwork(c)
				}
				_ = fmt.Sprint(cmd)
			}
		}
	})
}

func ptr(s string) *string { return &s }
