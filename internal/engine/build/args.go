package build

import (
	goruntime "runtime"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"github.com/berth-project/berth/internal/engine/errdefs"
)

// proxyArgs may be passed with --build-arg without an ARG: RUN sees them, the image
// history and the cache key do not.
var proxyArgs = map[string]bool{
	"HTTP_PROXY": true, "http_proxy": true, "HTTPS_PROXY": true, "https_proxy": true,
	"FTP_PROXY": true, "ftp_proxy": true, "NO_PROXY": true, "no_proxy": true,
	"ALL_PROXY": true, "all_proxy": true,
}

// platformArgs are the automatic platform ARGs: set before the first FROM and, once
// declared with ARG, inside a stage.
func platformArgs() map[string]string {
	p := "linux/" + goruntime.GOARCH
	return map[string]string{
		"BUILDPLATFORM": p, "BUILDOS": "linux", "BUILDARCH": goruntime.GOARCH, "BUILDVARIANT": "",
		"TARGETPLATFORM": p, "TARGETOS": "linux", "TARGETARCH": goruntime.GOARCH, "TARGETVARIANT": "",
	}
}

// builtinArgs are never reported as unconsumed build args.
var builtinArgs = func() map[string]bool {
	m := map[string]bool{}
	for k := range proxyArgs {
		m[k] = true
	}
	for k := range platformArgs() {
		m[k] = true
	}
	return m
}()

// vars is an ordered set of variables, an EnvGetter for buildkit's shell lexer.
type vars struct {
	keys []string
	m    map[string]string
}

func newVars() *vars { return &vars{m: map[string]string{}} }

func (v *vars) Get(k string) (string, bool) { s, ok := v.m[k]; return s, ok }
func (v *vars) Keys() []string              { return v.keys }

func (v *vars) Set(k, val string) {
	if _, ok := v.m[k]; !ok {
		v.keys = append(v.keys, k)
	}
	v.m[k] = val
}

// addEnv adds KEY=VALUE entries.
func (v *vars) addEnv(env []string) {
	for _, kv := range env {
		k, val, _ := strings.Cut(kv, "=")
		v.Set(k, val)
	}
}

// expandWord substitutes $VAR and ${VAR...} in word as Dockerfile instructions do.
func expandWord(escape rune, word string, env shell.EnvGetter) (string, error) {
	if escape == 0 {
		escape = '\\'
	}
	s, _, err := shell.NewLex(escape).ProcessWord(word, env)
	if err != nil {
		return "", errdefs.Invalid(err.Error())
	}
	return s, nil
}

// expandRaw substitutes variables in a heredoc body, leaving quotes as they are.
func expandRaw(word string, env shell.EnvGetter) (string, error) {
	lex := shell.NewLex('\\')
	lex.SkipProcessQuotes = true
	s, _, err := lex.ProcessWord(word, env)
	if err != nil {
		return "", errdefs.Invalid(err.Error())
	}
	return s, nil
}

// metaEnv is the scope of FROM lines: the automatic platform args and the ARGs before
// the first FROM, with their --build-arg values.
func (p *plan) metaEnv(buildArgs map[string]*string) (*vars, error) {
	v := newVars()
	for k, val := range platformArgs() {
		v.Set(k, val)
	}
	for _, a := range p.metaArgs {
		for _, kv := range a.Args {
			if given, ok := buildArgs[kv.Key]; ok && given != nil {
				v.Set(kv.Key, *given)
				continue
			}
			if kv.Value != nil {
				s, err := expandWord(p.escape, *kv.Value, v)
				if err != nil {
					return nil, err
				}
				v.Set(kv.Key, s)
			}
		}
	}
	return v, nil
}

// argEnv lists a stage's ARG values as KEY=VALUE, sorted (the form the RUN history
// line and cache key use).
func argEnv(args *vars) []string {
	var out []string
	for _, k := range args.keys {
		out = append(out, k+"="+args.m[k])
	}
	sort.Strings(out)
	return out
}
