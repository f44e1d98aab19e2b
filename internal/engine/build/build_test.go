package build

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/berth-project/berth/internal/engine/errdefs"
)

func TestStageOrder(t *testing.T) {
	tests := []struct {
		name   string
		df     string
		target string
		want   []int
		err    string
	}{
		{name: "single", df: "FROM a\nRUN x\n", want: []int{0}},
		{name: "unused stage skipped", df: "FROM a AS one\nRUN x\nFROM b AS two\nRUN y\n", want: []int{1}},
		{name: "copy from", df: "FROM a AS build\nFROM b\nCOPY --from=build /x /x\n", want: []int{0, 1}},
		{name: "copy from index", df: "FROM a\nFROM b\nFROM c\nCOPY --from=0 /x /x\n", want: []int{0, 2}},
		{name: "from stage", df: "FROM a AS base\nFROM base AS mid\nFROM mid\n", want: []int{0, 1, 2}},
		{name: "target", df: "FROM a AS build\nRUN x\nFROM b\nCOPY --from=build /x /x\n", target: "build", want: []int{0}},
		{name: "target case-insensitive", df: "FROM a AS Build\nFROM b\n", target: "BUILD", want: []int{0}},
		{name: "same name as image", df: "FROM alpine AS alpine\nFROM alpine\n", want: []int{0, 1}},
		{name: "arg in from", df: "ARG S=build\nFROM a AS build\nFROM b\nCOPY --from=${S} /x /x\n", want: []int{0, 1}},
		{name: "unknown target", df: "FROM a\n", target: "nope", err: "failed to reach build target nope"},
		{name: "empty", df: "\n\n", err: "cannot be empty"},
		{name: "only comments", df: "# nothing\n", err: "no instructions"},
		{name: "unknown instruction", df: "FROM a\nFROBNICATE x\n", err: "unknown instruction: FROBNICATE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parse([]byte(tt.df), Options{Target: tt.target})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				if !errors.Is(err, errdefs.ErrInvalid) {
					t.Fatalf("err %v is not an invalid-argument error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.order, tt.want) {
				t.Fatalf("order = %v, want %v", p.order, tt.want)
			}
		})
	}
}

func TestStepCount(t *testing.T) {
	p, err := parse([]byte("FROM a AS x\nRUN 1\nRUN 2\nFROM b\nRUN 3\nFROM c\nCOPY --from=x /a /a\nCMD [\"a\"]\n"), Options{Labels: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	// Stage x (3) and the last stage (3) are built, plus the --label step; stage 1 is not.
	if p.steps != 7 {
		t.Fatalf("steps = %d, want 7", p.steps)
	}
}

func TestCacheKey(t *testing.T) {
	a := CacheKey("sha256:1", "RUN x")
	if a != CacheKey("sha256:1", "RUN x") {
		t.Fatal("the same step gives different keys")
	}
	for _, other := range []string{CacheKey("sha256:2", "RUN x"), CacheKey("sha256:1", "RUN y"), CacheKey("", "sha256:1RUN x")} {
		if other == a {
			t.Fatal("different steps share a key")
		}
	}
}

func TestCachePersists(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cache.json")
	c, err := OpenCache(p)
	if err != nil {
		t.Fatal(err)
	}
	c.Put("k", "sha256:aa")
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	c2, err := OpenCache(p)
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := c2.Get("k"); !ok || id != "sha256:aa" {
		t.Fatalf("reloaded cache has %q %v", id, ok)
	}
	os.WriteFile(p, []byte("{garbage"), 0o600)
	if c3, err := OpenCache(p); err != nil || len(c3.Images()) != 0 {
		t.Fatalf("a damaged cache should load empty: %v", err)
	}
}

func TestExposedPorts(t *testing.T) {
	env := newVars()
	env.Set("P", "9000")
	got, err := exposedPorts([]string{"80", "53/udp", "8000-8002/TCP", "$P"}, env, '\\')
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"80/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp", "9000/tcp"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"0", "x", "80/icmp", "90-80", "70000"} {
		if _, err := exposedPorts([]string{bad}, env, '\\'); err == nil {
			t.Errorf("EXPOSE %s accepted", bad)
		}
	}
}

func tarOf(t *testing.T, entries ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		body := ""
		if h.Typeflag == tar.TypeReg {
			body = h.Linkname // test shorthand: the content rides in Linkname
			h.Linkname = ""
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	return buf.Bytes()
}

func TestUnpackContext(t *testing.T) {
	dir := t.TempDir()
	body := tarOf(t,
		&tar.Header{Name: "Dockerfile", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "FROM a\n"},
		&tar.Header{Name: "src/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "src/run.sh", Typeflag: tar.TypeReg, Mode: 0o755, Linkname: "echo hi\n"},
		&tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc"},
	)
	c, bare, err := unpackContext(dir, bytes.NewReader(body))
	if err != nil || bare {
		t.Fatalf("unpack: %v bare=%v", err, bare)
	}
	fi, err := os.Stat(filepath.Join(dir, "src/run.sh"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("src/run.sh: %v %v", fi, err)
	}
	if c.hashes["src/run.sh"] == "" {
		t.Fatal("no content hash taken while unpacking")
	}
	// A symlink source is followed inside the context only: link -> /etc is dir/etc.
	if _, err := contextSources(dir, "link/passwd"); err == nil {
		t.Fatal("a source through a symlink reached the host's /etc")
	}
	if _, err := contextSources(dir, "../x"); err == nil || !strings.Contains(err.Error(), "outside the build context") {
		t.Fatalf("../x: %v", err)
	}
	got, err := contextSources(dir, "src/*.sh")
	if err != nil || len(got) != 1 || got[0].name != "run.sh" {
		t.Fatalf("glob: %v %v", got, err)
	}
}

func TestUnpackContextRefusesTraversal(t *testing.T) {
	for _, name := range []string{"../evil", "a/../../evil"} {
		dir := t.TempDir()
		body := tarOf(t, &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "x"})
		if _, _, err := unpackContext(dir, bytes.NewReader(body)); !errors.Is(err, errdefs.ErrInvalid) {
			t.Fatalf("%s: err = %v, want invalid", name, err)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "evil")); err == nil {
			t.Fatalf("%s: a file was written outside the context", name)
		}
	}
	// A hard link may not point outside either.
	dir := t.TempDir()
	body := tarOf(t, &tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"})
	if _, _, err := unpackContext(dir, bytes.NewReader(body)); err == nil {
		t.Fatal("a hard link out of the context was accepted")
	}
}

func TestUnpackBareDockerfile(t *testing.T) {
	dir := t.TempDir()
	_, bare, err := unpackContext(dir, strings.NewReader("FROM scratch\nCMD [\"x\"]\n"))
	if err != nil || !bare {
		t.Fatalf("bare Dockerfile: %v %v", bare, err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	if !strings.HasPrefix(string(data), "FROM scratch") {
		t.Fatalf("Dockerfile = %q", data)
	}
}

func TestApplyIgnore(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		".dockerignore": "*.log\n!keep.log\nsecret/\nDockerfile\n",
		"Dockerfile":    "FROM a\n", "a.log": "x", "keep.log": "y", "main.go": "z", "secret/key": "k",
	}
	for name, body := range files {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
	}
	c := &buildContext{dir: dir, hashes: map[string]string{}}
	if err := c.applyIgnore(); err != nil {
		t.Fatal(err)
	}
	var left []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if !fi.IsDir() {
			left = append(left, strings.TrimPrefix(p, dir+"/"))
		}
		return nil
	})
	sort.Strings(left)
	// The Dockerfile and .dockerignore go when they are named: the CLI names them so.
	want := []string{".dockerignore", "keep.log", "main.go"}
	if !reflect.DeepEqual(left, want) {
		t.Fatalf("left %v, want %v", left, want)
	}
}

func TestResolveOwner(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\napp:x:1234:99::/app:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nstaff:x:50:\n"), 0o644)
	tests := map[string][2]int{"app": {1234, 1234}, "app:staff": {1234, 50}, "10:20": {10, 20}, "7": {7, 7}}
	for spec, want := range tests {
		got, err := resolveOwner(root, spec)
		if err != nil || *got != want {
			t.Errorf("%s: got %v %v, want %v", spec, got, err, want)
		}
	}
	if _, err := resolveOwner(root, "ghost"); err == nil {
		t.Error("an unknown user was accepted")
	}
}

func TestHeredocParse(t *testing.T) {
	p, err := parse([]byte("FROM a\nRUN <<EOF\necho one\necho two\nEOF\nCOPY <<X /f\ncontent\nX\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	run := p.stages[0].Commands[0].(*instructions.RunCommand)
	if len(run.Files) != 1 || !strings.Contains(run.Files[0].Data, "echo two") {
		t.Fatalf("RUN heredoc = %+v", run.Files)
	}
	cp := p.stages[0].Commands[1].(*instructions.CopyCommand)
	if len(cp.SourceContents) != 1 || cp.SourceContents[0].Data != "content\n" {
		t.Fatalf("COPY heredoc = %+v", cp.SourceContents)
	}
}
