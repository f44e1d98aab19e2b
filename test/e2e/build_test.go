package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// The docker CLI without buildx; DOCKER_BUILDKIT=0 makes it use the classic POST /build
// (and keeps it from asking for BuildKit's session endpoints). Where Berth deliberately goes
// beyond Docker's classic builder (heredocs, --chmod, --chown=USER without a group, skipping
// the stages the target does not need, removing a failed RUN's container without --force-rm,
// builder prune deleting the step images only the cache holds), the tests assert Berth's
// documented behaviour (BuildKit's, where it has one), and Docker's classic builder fails them.

// needBuilder is needEngine for build tests: every docker command of the test runs with
// DOCKER_BUILDKIT=0 (tests that set it do not run in parallel with others).
func needBuilder(t *testing.T) *engine {
	t.Helper()
	e := needEngine(t)
	t.Setenv("DOCKER_BUILDKIT", "0")
	return e
}

// writeContext writes files (relative paths, parents created) into a new temp directory.
func writeContext(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// build runs `docker build ARGS...`.
func (e *engine) build(t *testing.T, args ...string) result {
	t.Helper()
	return e.docker(t, append([]string{"build"}, args...)...)
}

// buildOK builds dir as tag (removed at cleanup) with the extra flags, fails the test unless
// the build succeeds, and returns its output.
func (e *engine) buildOK(t *testing.T, dir, tag string, flags ...string) string {
	t.Helper()
	e.rmiOnCleanup(t, tag)
	r := e.build(t, append(append([]string{"-t", tag}, flags...), dir)...)
	if r.Code != 0 {
		t.Fatalf("expected the build to succeed: %s", r)
	}
	return r.Stdout
}

// buildFails builds dir as tag with the extra flags, fails the test unless the build fails,
// checks that tag was not made, and returns what happened.
func (e *engine) buildFails(t *testing.T, dir, tag string, flags ...string) result {
	t.Helper()
	e.rmiOnCleanup(t, tag)
	r := e.build(t, append(append([]string{"-t", tag}, flags...), dir)...)
	if r.Code == 0 {
		t.Fatalf("expected the build to fail: %s", r)
	}
	if e.docker(t, "image", "inspect", tag).Code == 0 {
		t.Fatalf("a failed build tagged %s", tag)
	}
	return r
}

// imageID is the full id of ref.
func (e *engine) imageID(t *testing.T, ref string) string {
	t.Helper()
	return e.ok(t, "image", "inspect", "-f", "{{.Id}}", ref)
}

var stepRE = regexp.MustCompile(`(?m)^Step \d+/\d+ : `)

// cachePattern summarises a classic build's output, one letter a step: F for a FROM, C
// for a step that printed "Using cache", N for one that did not. ARGs before the first FROM
// (steps for Docker, not for Berth) are left out.
func cachePattern(out string) string {
	var b strings.Builder
	for _, s := range stepRE.Split(out, -1)[1:] {
		switch {
		case strings.HasPrefix(s, "FROM "):
			b.WriteByte('F')
		case b.Len() == 0: // an ARG before the first FROM
		case strings.Contains(s, "Using cache"):
			b.WriteByte('C')
		default:
			b.WriteByte('N')
		}
	}
	return b.String()
}

var stepIDRE = regexp.MustCompile(`(?m)^ ---> ([0-9a-f]{12})$`)

// stepIDs lists the short id of the image each step of a classic build's output ended on.
func stepIDs(out string) []string {
	var ids []string
	for _, s := range stepRE.Split(out, -1)[1:] {
		m := stepIDRE.FindAllStringSubmatch(s, -1)
		if len(m) == 0 {
			ids = append(ids, "")
			continue
		}
		ids = append(ids, m[len(m)-1][1])
	}
	return ids
}

// tarGz is a gzipped tar holding files.
func tarGz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, content := range files {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(content)), ModTime: time.Now()}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(content))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestBuildFromScratch: FROM scratch with a static busybox COPY'd in makes a one-layer image
// whose exec-form CMD runs, found through the PATH the builder gives scratch images; the
// image lists and deletes like any other. It runs on an engine of its own: an image store
// that cannot list its images would break every later test of the shared engine.
func TestBuildFromScratch(t *testing.T) {
	t.Setenv("DOCKER_BUILDKIT", "0")
	e := privateEngine(t, "x")
	bin, err := os.ReadFile(busyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY busybox /bin/busybox\n" +
		`CMD ["busybox", "echo", "hello from scratch"]` + "\n"})
	if err := os.WriteFile(filepath.Join(dir, "busybox"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	tag := uniq("b") + ":scratch"
	e.buildOK(t, dir, tag)
	mustEqual(t, "the CMD runs the copied binary", e.ok(t, "run", "--rm", tag), "hello from scratch")
	mustEqual(t, "one layer", e.ok(t, "image", "inspect", "-f", "{{len .RootFS.Layers}}", tag), "1")
	mustContain(t, "scratch images get a PATH", e.ok(t, "image", "inspect", "-f", "{{json .Config.Env}}", tag), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	mustEqual(t, "the binary keeps its mode", e.ok(t, "run", "--rm", tag, "busybox", "stat", "-c", "%a %u:%g", "/bin/busybox"), "755 0:0")

	id := e.imageID(t, tag)
	mustContain(t, "images -a lists the built image", e.ok(t, "images", "-a", "-q", "--no-trunc"), id)
	mustContain(t, "rmi deletes the built image", e.ok(t, "rmi", tag), "Deleted: "+id)
	mustEqual(t, "rmi also deletes its untagged parent: images -a", e.ok(t, "images", "-a", "-q"), "")
}

// TestBuildArgs: ARG defaults and --build-arg, an ARG before FROM used in FROM and
// redeclared in the stage, ENV built from ARGs; ARGs are in RUN's environment and the
// history but not the image's Env; a proxy build arg reaches RUN without an ARG and is left
// out of the history and the image; an unused build arg is warned about.
func TestBuildArgs(t *testing.T) {
	e := needBuilder(t)
	dir := writeContext(t, map[string]string{"Dockerfile": `ARG TAG=1.0
ARG META=from-meta
FROM bb:${TAG}
ARG META
ARG GREETING=hello
ARG WHO
ENV MSG="$GREETING $WHO"
RUN echo "$META|$GREETING|$WHO|$HTTP_PROXY|$MSG" > /args.txt
`})
	tag := uniq("b") + ":args"
	out := e.buildOK(t, dir, tag, "--build-arg", "WHO=world", "--build-arg", "HTTP_PROXY=http://proxy.invalid:3128",
		"--build-arg", "UNUSED_ARG=x")
	mustContain(t, "an unused build arg is warned about", out, "[Warning] One or more build-args [UNUSED_ARG] were not consumed")
	mustEqual(t, "what RUN saw", e.ok(t, "run", "--rm", tag, "cat", "/args.txt"), "from-meta|hello|world|http://proxy.invalid:3128|hello world")

	env := e.ok(t, "image", "inspect", "-f", "{{json .Config.Env}}", tag)
	mustContain(t, "ENV from ARGs", env, `"MSG=hello world"`)
	for _, k := range []string{"GREETING=", "WHO=", "META=", "HTTP_PROXY"} {
		mustNotContain(t, "build args are not in the image's Env", env, k)
	}
	mustEqual(t, "build args are not in a container's environment", e.ok(t, "run", "--rm", tag, "sh", "-c", `echo "[$WHO$HTTP_PROXY]"`), "[]")
	hist := e.ok(t, "history", "--no-trunc", tag)
	mustContain(t, "the RUN's history line has the ARGs", hist, "WHO=world")
	mustNotContain(t, "the proxy arg is not in the history", hist, "proxy.invalid")

	out = e.buildOK(t, dir, tag, "--build-arg", "WHO=world", "--build-arg", "HTTP_PROXY=http://other.invalid:1")
	mustEqual(t, "another proxy value keeps the cache", cachePattern(out), "FCCCCC")
	out = e.buildOK(t, dir, tag, "--build-arg", "WHO=moon")
	if p := cachePattern(out); !strings.HasSuffix(p, "N") {
		t.Fatalf("a changed build arg must rebuild the RUN that uses it: %s\n%s", p, out)
	}
	mustEqual(t, "the new build arg is used", e.ok(t, "run", "--rm", tag, "cat", "/args.txt"), "from-meta|hello|moon||hello moon")
}

// TestBuildConfigInstructions: LABEL and --label, EXPOSE with ranges and protocols, WORKDIR
// relative to the previous one, VOLUME, STOPSIGNAL, HEALTHCHECK, USER by number and by name
// (RUN runs as that user), and ENTRYPOINT with CMD.
func TestBuildConfigInstructions(t *testing.T) {
	e := needBuilder(t)
	dir := writeContext(t, map[string]string{"Dockerfile": `FROM bb:1.0
LABEL a.b=one "with space"="two words"
EXPOSE 8000-8002 53/udp 9090/tcp
WORKDIR /srv
WORKDIR app
VOLUME ["/data", "/cache"]
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD true
USER 1000
RUN id -u > /tmp/uid-numeric
USER nobody
RUN id -u > /tmp/uid-name
ENTRYPOINT ["echo", "ep"]
CMD ["default"]
`})
	tag := uniq("b") + ":config"
	e.buildOK(t, dir, tag, "--label", "from.cli=yes")
	cfg := func(format string) string {
		t.Helper()
		return e.ok(t, "image", "inspect", "-f", format, tag)
	}
	mustEqual(t, "labels", cfg(`{{index .Config.Labels "a.b"}}|{{index .Config.Labels "with space"}}|{{index .Config.Labels "from.cli"}}`), "one|two words|yes")
	mustEqual(t, "exposed ports", cfg("{{json .Config.ExposedPorts}}"), `{"53/udp":{},"8000/tcp":{},"8001/tcp":{},"8002/tcp":{},"9090/tcp":{}}`)
	mustEqual(t, "working dir", cfg("{{.Config.WorkingDir}}"), "/srv/app")
	mustEqual(t, "volumes", cfg("{{json .Config.Volumes}}"), `{"/cache":{},"/data":{}}`)
	mustEqual(t, "stop signal", cfg("{{.Config.StopSignal}}"), "SIGUSR1")
	mustEqual(t, "healthcheck", cfg("{{json .Config.Healthcheck.Test}} {{.Config.Healthcheck.Interval}} {{.Config.Healthcheck.Timeout}} {{.Config.Healthcheck.Retries}}"), `["CMD-SHELL","true"] 5s 2s 4`)
	mustEqual(t, "user", cfg("{{.Config.User}}"), "nobody")
	mustEqual(t, "entrypoint and cmd", cfg("{{json .Config.Entrypoint}} {{json .Config.Cmd}}"), `["echo","ep"] ["default"]`)

	mustEqual(t, "run uses ENTRYPOINT and CMD", e.ok(t, "run", "--rm", tag), "ep default")
	mustEqual(t, "run's arguments replace CMD", e.ok(t, "run", "--rm", tag, "x", "y"), "ep x y")
	got := e.ok(t, "run", "--rm", "--entrypoint", "sh", tag, "-c", "pwd; id -u; cat /tmp/uid-numeric /tmp/uid-name")
	mustEqual(t, "the container's dir and user, what RUN saw", got, "/srv/app\n65534\n1000\n65534")
}

// TestBuildShellCmdOnbuild: SHELL changes the shell of RUN and of later shell-form CMDs; a
// shell-form CMD is ["/bin/sh","-c",...]; an ENTRYPOINT drops the base image's CMD; ONBUILD
// triggers run in the child build and are not passed on to the grandchild.
func TestBuildShellCmdOnbuild(t *testing.T) {
	e := needBuilder(t)
	build := func(df string) string {
		t.Helper()
		tag := uniq("b") + ":1"
		e.buildOK(t, writeContext(t, map[string]string{"Dockerfile": df}), tag)
		return tag
	}
	plain := build("FROM bb:1.0\nCMD echo plain $HOME\n")
	mustEqual(t, "shell-form CMD", e.ok(t, "image", "inspect", "-f", "{{json .Config.Cmd}}", plain), `["/bin/sh","-c","echo plain $HOME"]`)
	mustEqual(t, "shell-form CMD runs in a shell", e.ok(t, "run", "--rm", plain), "plain /root")

	shell := build(`FROM bb:1.0
SHELL ["/bin/env", "SHELLMARK=1", "/bin/sh", "-c"]
RUN echo "run mark=$SHELLMARK" > /shell.txt
CMD echo "cmd mark=$SHELLMARK"
`)
	mustEqual(t, "SHELL in the config", e.ok(t, "image", "inspect", "-f", "{{json .Config.Shell}}", shell), `["/bin/env","SHELLMARK=1","/bin/sh","-c"]`)
	mustEqual(t, "CMD after SHELL", e.ok(t, "image", "inspect", "-f", "{{json .Config.Cmd}}", shell), `["/bin/env","SHELLMARK=1","/bin/sh","-c","echo \"cmd mark=$SHELLMARK\""]`)
	mustEqual(t, "RUN and CMD used the SHELL", e.ok(t, "run", "--rm", shell)+" "+e.ok(t, "run", "--rm", shell, "cat", "/shell.txt"), "cmd mark=1 run mark=1")

	ep := build("FROM bb:1.0\nENTRYPOINT [\"echo\", \"only-ep\"]\n")
	mustEqual(t, "ENTRYPOINT drops the base image's CMD", e.ok(t, "run", "--rm", ep), "only-ep")

	parent := build("FROM bb:1.0\nONBUILD RUN echo trig > /trig\n")
	mustEqual(t, "ONBUILD is recorded", e.ok(t, "image", "inspect", "-f", "{{json .Config.OnBuild}}", parent), `["RUN echo trig > /trig"]`)
	e.fails(t, "run", "--rm", parent, "test", "-e", "/trig")
	tag := uniq("b") + ":1"
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM " + parent + "\nCMD [\"cat\", \"/trig\"]\n"})
	mustContain(t, "the child build runs the trigger", e.buildOK(t, ctx, tag), "# Executing 1 build trigger")
	mustEqual(t, "the trigger ran in the child", e.ok(t, "run", "--rm", tag), "trig")
	mustEqual(t, "the child has no triggers", e.ok(t, "image", "inspect", "-f", "{{len .Config.OnBuild}}", tag), "0")
	ctx = writeContext(t, map[string]string{"Dockerfile": "FROM " + tag + "\nLABEL grandchild=1\n"})
	mustNotContain(t, "the grandchild runs no trigger", e.buildOK(t, ctx, uniq("b")+":1"), "Executing")
}

// TestBuildCopy: COPY globs, directories, several sources, --chown by number and by name,
// --chmod, --from a stage by name, by index and an image; ADD unpacks local archives and
// downloads URLs (without unpacking them); bad sources fail clearly.
func TestBuildCopy(t *testing.T) {
	e := needBuilder(t)
	srcImg := uniq("b") + ":src"
	e.newImage(t, srcImg)
	unique := e.ok(t, "run", "--rm", srcImg, "cat", "/etc/e2e-unique")
	tgz := tarGz(t, map[string]string{"inner/hello.txt": "from tar\n"})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/app.tar.gz" {
			_, _ = w.Write(tgz)
			return
		}
		_, _ = w.Write([]byte("downloaded\n"))
	}))
	defer srv.Close()

	dir := writeContext(t, map[string]string{
		"a.txt": "A\n", "b.txt": "B\n", "c.log": "C\n", "dir/y": "Y\n", "dir/sub/x": "X\n",
		"Dockerfile": `FROM bb:1.0 AS src
RUN echo made-in-stage > /made
FROM bb:1.0
COPY *.txt /glob/
COPY dir /dirdst
COPY a.txt c.log /multi/
COPY --chown=1000:1000 a.txt /own/numeric
COPY --chown=nobody a.txt /own/name
COPY --chmod=0751 a.txt /mode/a
ADD app.tar.gz /unpacked/
COPY app.tar.gz /copied/
ADD ` + srv.URL + `/file.txt ` + srv.URL + `/app.tar.gz /dl/
COPY --from=src /made /fromname
COPY --from=0 /made /fromindex
COPY --from=` + srcImg + ` /etc/e2e-unique /fromimage
`})
	if err := os.WriteFile(filepath.Join(dir, "app.tar.gz"), tgz, 0o644); err != nil {
		t.Fatal(err)
	}
	tag := uniq("b") + ":copy"
	e.buildOK(t, dir, tag)
	got := e.ok(t, "run", "--rm", tag, "sh", "-c", `cd /; ls glob; cat glob/*; echo --
find dirdst | sort; echo --; ls multi; echo --
stat -c '%n %u:%g' own/numeric own/name; stat -c '%n %a' mode/a dl/file.txt; echo --
ls unpacked; cat unpacked/inner/hello.txt; ls copied dl; cat dl/file.txt; echo --
cat fromname fromindex`)
	mustEqual(t, "what the COPYs made", got, `a.txt
b.txt
A
B
--
dirdst
dirdst/sub
dirdst/sub/x
dirdst/y
--
a.txt
c.log
--
own/numeric 1000:1000
own/name 65534:65534
mode/a 751
dl/file.txt 600
--
inner
from tar
copied:
app.tar.gz

dl:
app.tar.gz
file.txt
downloaded
--
made-in-stage
made-in-stage`)
	mustEqual(t, "COPY --from=IMAGE", e.ok(t, "run", "--rm", tag, "cat", "/fromimage"), unique)

	fail := func(what, df string, wants ...string) {
		t.Helper()
		ctx := writeContext(t, map[string]string{"a.txt": "A\n", "b.txt": "B\n", "Dockerfile": "FROM bb:1.0\n" + df + "\n"})
		r := e.buildFails(t, ctx, uniq("b")+":bad")
		for _, want := range wants {
			mustContain(t, what, r.Stderr, want)
		}
	}
	multi := "When using COPY with more than one source file, the destination must be a directory and end with a /"
	fail("several sources into a file", "COPY a.txt b.txt /dst", multi)
	fail("a glob with several matches into a file", "COPY *.txt /dst", multi)
	fail("ADD of an unreachable URL", "ADD http://127.0.0.1:1/x /x", "http://127.0.0.1:1/x")
	fail("COPY from outside the context", "COPY ../x /x", "outside the build context")
	fail("COPY of a missing file", "COPY nosuch.txt /x", "file not found", "nosuch.txt")
	fail("COPY --from an unknown image", "COPY --from=nosuch-"+randHex(6)+" /a /a", "nosuch-")
}

// TestBuildDockerignore: .dockerignore patterns with ! exceptions keep files out of the
// context; a .dockerignore that names the Dockerfile and itself keeps those out of COPY too.
func TestBuildDockerignore(t *testing.T) {
	e := needBuilder(t)
	dir := writeContext(t, map[string]string{
		"a.txt": "a", "keep.log": "k", "drop.log": "d", "secret/key": "s", "dir/nested.log": "n", "dir/x.tmp": "t",
		".dockerignore": "*.log\n!keep.log\nsecret\n**/*.tmp\n.dockerignore\nDockerfile\n",
		"Dockerfile":    "FROM bb:1.0\nCOPY . /ctx/\n",
	})
	tag := uniq("b") + ":ign"
	e.buildOK(t, dir, tag)
	got := e.ok(t, "run", "--rm", tag, "sh", "-c", "cd /ctx && find . -type f | sort")
	mustEqual(t, "the files COPY . saw", got, "./a.txt\n./dir/nested.log\n./keep.log")
}

// TestBuildDockerfileFlag: -f names a Dockerfile inside or outside the context, or - for
// stdin; `docker build -` takes a bare Dockerfile and no context; a lowercase dockerfile is
// found. The Dockerfile the CLI adds to the context (and the .dockerignore it writes to keep
// it out) do not end up in COPY . .
func TestBuildDockerfileFlag(t *testing.T) {
	e := needBuilder(t)
	dir := writeContext(t, map[string]string{"a.txt": "a", "build/Other.Dockerfile": "FROM bb:1.0\nCOPY a.txt /other\n"})
	tag := uniq("b") + ":1"
	e.buildOK(t, dir, tag, "-f", filepath.Join(dir, "build", "Other.Dockerfile"))
	mustEqual(t, "-f inside the context", e.ok(t, "run", "--rm", tag, "cat", "/other"), "a")

	df := "FROM bb:1.0\nCOPY . /ctx/\n"
	outside := filepath.Join(t.TempDir(), "Dockerfile.outside")
	if err := os.WriteFile(outside, []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	small := writeContext(t, map[string]string{"a.txt": "a"})
	outTag := uniq("b") + ":1"
	e.buildOK(t, small, outTag, "-f", outside)
	mustEqual(t, "-f outside the context", e.ok(t, "run", "--rm", outTag, "cat", "/ctx/a.txt"), "a")

	stdinTag := uniq("b") + ":1"
	e.rmiOnCleanup(t, stdinTag)
	r := e.dockerIn(t, strings.NewReader(df), "build", "-t", stdinTag, "-f", "-", small)
	if r.Code != 0 {
		t.Fatalf("-f - with a context: %s", r)
	}
	mustEqual(t, "-f - with a context", e.ok(t, "run", "--rm", stdinTag, "cat", "/ctx/a.txt"), "a")

	tag = uniq("b") + ":1"
	e.rmiOnCleanup(t, tag)
	r = e.dockerIn(t, strings.NewReader("FROM bb:1.0\nLABEL src=stdin\n"), "build", "-t", tag, "-")
	if r.Code != 0 {
		t.Fatalf("docker build - < Dockerfile: %s", r)
	}
	mustEqual(t, "build -", e.ok(t, "image", "inspect", "-f", "{{.Config.Labels.src}}", tag), "stdin")

	lower := writeContext(t, map[string]string{"dockerfile": "FROM bb:1.0\nLABEL name=lower\n"})
	tag = uniq("b") + ":1"
	e.buildOK(t, lower, tag)
	mustEqual(t, "a lowercase dockerfile", e.ok(t, "image", "inspect", "-f", "{{.Config.Labels.name}}", tag), "lower")

	for _, tag := range []string{outTag, stdinTag} {
		got := e.ok(t, "run", "--rm", tag, "sh", "-c", "cd /ctx && find . -type f | sort")
		mustEqual(t, "COPY . sees the context only ("+tag+")", got, "./a.txt")
	}
}

// TestBuildHeredocs: RUN <<EOF runs a multi-line script, a heredoc with a shebang runs with
// its interpreter, COPY <<EOF writes a file (expanding variables unless the delimiter is quoted).
func TestBuildHeredocs(t *testing.T) {
	e := needBuilder(t)
	dir := writeContext(t, map[string]string{"Dockerfile": `FROM bb:1.0
ENV NAME=world
RUN <<EOF
echo line1 > /h1
echo "line2 $NAME" >> /h1
EOF
RUN <<EOT
#!/bin/awk -f
BEGIN { print "awk ran" > "/h2" }
EOT
COPY <<EOF /greet.txt
hello ${NAME}
EOF
COPY <<'EOF' /raw.txt
hello ${NAME}
EOF
`})
	tag := uniq("b") + ":heredoc"
	e.buildOK(t, dir, tag)
	got := e.ok(t, "run", "--rm", tag, "sh", "-c", "cat /h1 /h2; stat -c '%a %u' /greet.txt")
	mustEqual(t, "RUN heredocs", got, "line1\nline2 world\nawk ran\n644 0")
	mustEqual(t, "COPY <<'EOF' is not expanded", e.ok(t, "run", "--rm", tag, "cat", "/raw.txt"), "hello ${NAME}")
	mustEqual(t, "COPY <<EOF is expanded", e.ok(t, "run", "--rm", tag, "cat", "/greet.txt"), "hello world")
}

// TestBuildCache: an unchanged rebuild hits the cache at every step and gives the same id,
// as does a touched but unchanged file; a changed file rebuilds from its COPY on; --no-cache
// rebuilds everything; -q prints only the id, --iidfile writes it, -t may be given twice.
func TestBuildCache(t *testing.T) {
	e := needBuilder(t)
	dir := writeContext(t, map[string]string{"a.txt": "v1\n", "Dockerfile": `FROM bb:1.0
ENV MARK=` + randHex(12) + `
RUN echo before > /before
COPY a.txt /a.txt
RUN cat /a.txt > /after
LABEL done=yes
`})
	tag := uniq("b") + ":cache"
	build := func(flags ...string) (string, string) {
		t.Helper()
		out := e.buildOK(t, dir, tag, flags...)
		id := e.imageID(t, tag)
		e.rmiOnCleanup(t, id)
		return out, id
	}
	out, id1 := build()
	mustEqual(t, "first build", cachePattern(out), "FNNNNN")
	mustContain(t, "step count", out, "Step 6/6 : LABEL done=yes")
	out, id := build()
	mustEqual(t, "unchanged rebuild", cachePattern(out), "FCCCCC")
	mustEqual(t, "unchanged rebuild id", id, id1)

	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "a.txt"), future, future); err != nil {
		t.Fatal(err)
	}
	out, id = build()
	mustEqual(t, "rebuild after touching a.txt", cachePattern(out), "FCCCCC")
	mustEqual(t, "rebuild after touching a.txt: id", id, id1)

	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, id2 := build()
	mustEqual(t, "rebuild after changing a.txt", cachePattern(out), "FCCNNN")
	if id2 == id1 {
		t.Fatalf("a changed file gave the same image %s", id1)
	}
	mustEqual(t, "the new content is used", e.ok(t, "run", "--rm", tag, "cat", "/after"), "v2")

	out, id3 := build("--no-cache")
	mustEqual(t, "--no-cache", cachePattern(out), "FNNNNN")
	if id3 == id2 {
		t.Fatalf("--no-cache gave the cached image %s", id2)
	}

	r := e.build(t, "-q", "-t", tag, dir)
	if r.Code != 0 {
		t.Fatalf("build -q: %s", r)
	}
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}\n$`).MatchString(r.Stdout) {
		t.Fatalf("build -q printed %q, want only sha256:<id>", r.Stdout)
	}
	mustEqual(t, "build -q prints the image id", r.Out(), e.imageID(t, tag))

	iidfile := filepath.Join(t.TempDir(), "iid")
	other := uniq("b") + ":second"
	e.buildOK(t, dir, tag, "--iidfile", iidfile, "-t", other)
	e.rmiOnCleanup(t, other)
	iid, err := os.ReadFile(iidfile)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "--iidfile holds the id", string(iid), e.imageID(t, tag))
	mustEqual(t, "the second -t tags the same image", e.imageID(t, other), string(iid))

	// docker history shows the image of each step, newest first, as the build printed them.
	ids := stepIDs(e.buildOK(t, dir, tag))
	var want []string
	for i := len(ids) - 1; i >= 0; i-- {
		want = append(want, ids[i])
	}
	mustEqual(t, "history -q lists the steps' images", strings.Join(e.docker(t, "history", "-q", tag).Lines(), " "), strings.Join(want, " "))
}

// TestBuildMultiStage: only the stages the target needs are built, FROM a stage continues
// it, --target builds up to a stage, an unknown --target fails clearly.
func TestBuildMultiStage(t *testing.T) {
	e := needBuilder(t)
	dir := writeContext(t, map[string]string{"Dockerfile": `FROM bb:1.0 AS unused
RUN echo UNUSED-STAGE-RAN; exit 3
FROM bb:1.0 AS builder
RUN echo built > /artifact
FROM builder AS child
LABEL stage=child
FROM bb:1.0 AS final
COPY --from=child /artifact /artifact
`})
	tag := uniq("b") + ":ms"
	out := e.buildOK(t, dir, tag)
	mustNotContain(t, "the unused stage is not built", out, "UNUSED-STAGE-RAN")
	mustEqual(t, "the final image", e.ok(t, "run", "--rm", tag, "cat", "/artifact"), "built")
	mustEqual(t, "the final stage starts afresh", e.ok(t, "image", "inspect", "-f", `{{index .Config.Labels "stage"}}`, tag), "")

	child := uniq("b") + ":child"
	e.buildOK(t, dir, child, "--target", "child")
	mustEqual(t, "--target child", e.ok(t, "run", "--rm", child, "sh", "-c", `cat /artifact`), "built")
	mustEqual(t, "--target child: its label", e.ok(t, "image", "inspect", "-f", `{{index .Config.Labels "stage"}}`, child), "child")

	r := e.buildFails(t, dir, uniq("b")+":1", "--target", "unused")
	if r.Code != 3 {
		t.Fatalf("--target unused: exit %d, want the RUN's 3: %s", r.Code, r)
	}
	r = e.buildFails(t, dir, uniq("b")+":1", "--target", "nosuch")
	mustContain(t, "unknown --target", r.Stderr, "failed to reach build target nosuch in Dockerfile")
}

// TestBuildFailures: a failing RUN fails the build with the RUN's exit code and command,
// leaves no container and tags nothing; -q shows the output of a failed build; a malformed
// Dockerfile is refused with a clear error.
func TestBuildFailures(t *testing.T) {
	e := needBuilder(t)
	containers := func() string {
		t.Helper()
		l := e.docker(t, "ps", "-aq", "--no-trunc").Lines()
		sort.Strings(l)
		return strings.Join(l, " ")
	}
	before := containers()
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM bb:1.0\nRUN echo about-to-fail; exit 7\n"})
	r := e.buildFails(t, dir, uniq("b")+":fail")
	if r.Code != 7 {
		t.Fatalf("docker build exited %d, want the RUN's 7: %s", r.Code, r)
	}
	mustContain(t, "the RUN's output", r.Stdout, "about-to-fail")
	mustContain(t, "the failing command", r.Stderr, "The command '/bin/sh -c echo about-to-fail; exit 7' returned a non-zero code: 7")
	mustEqual(t, "no container is left behind", containers(), before)

	r = e.buildFails(t, dir, uniq("b")+":fail", "-q")
	if r.Code != 7 {
		t.Fatalf("docker build -q exited %d, want 7: %s", r.Code, r)
	}
	mustContain(t, "-q shows the output of a failed build", r.Stdout+r.Stderr, "about-to-fail")
	mustEqual(t, "no container is left behind by -q", containers(), before)

	for _, c := range []struct{ what, df, want string }{
		{"unknown instruction", "FROM bb:1.0\nFROBNICATE x\n", "unknown instruction: FROBNICATE"},
		{"empty Dockerfile", "", "cannot be empty"},
		{"comments only", "# nothing here\n", "no instructions"},
		{"no FROM", "RUN echo hi\n", "no build stage in current context"},
		{"ENV without a value", "FROM bb:1.0\nENV\n", "ENV requires at least one argument"},
		{"unknown base image", "FROM nosuch-" + randHex(6) + ":1\n", "nosuch-"},
	} {
		ctx := writeContext(t, map[string]string{"Dockerfile": c.df})
		r := e.buildFails(t, ctx, uniq("b")+":bad")
		mustContain(t, c.what, r.Stderr, c.want)
	}
	mustEqual(t, "no container is left behind by bad Dockerfiles", containers(), before)
}

// TestBuildPrune: builder prune deletes what only the cache holds; it and system prune keep
// tagged images and their cache; an image left dangling by a rebuild under the same tag goes
// with image prune, together with its untagged parents that nothing else uses; rmi of a
// built image deletes its untagged parents too.
func TestBuildPrune(t *testing.T) {
	e := needBuilder(t)
	mark := randHex(12)
	dockerfile := func(v string) string {
		return "FROM bb:1.0\nRUN echo " + mark + " > /r\nENV V=" + v + "\nLABEL e2e.mark=" + mark + "\n"
	}
	dir := writeContext(t, map[string]string{"Dockerfile": dockerfile("1")})
	tag := uniq("b") + ":prune"
	v1 := stepIDs(e.buildOK(t, dir, tag)) // bb, RUN, ENV, LABEL
	if len(v1) != 4 || v1[3] != shortID(e.imageID(t, tag)) {
		t.Fatalf("the build's steps ended on %v; want 4 ids, the last the tagged image", v1)
	}
	runImg, oldEnv, old := v1[1], v1[2], v1[3]
	e.rmiOnCleanup(t, old, oldEnv, runImg)

	// A failed build leaves the images of its good steps as cache; builder prune deletes them.
	failed := stepIDs(e.buildFails(t, writeContext(t, map[string]string{"Dockerfile": "FROM bb:1.0\nRUN echo " + mark + " > /f\nRUN exit 1\n"}), uniq("b")+":1").Stdout)
	if len(failed) != 3 || failed[1] == "" {
		t.Fatalf("the failed build's steps ended on %v; want the first RUN's image", failed)
	}
	e.rmiOnCleanup(t, failed[1])
	mustContain(t, "the failed build's step image is kept", e.ok(t, "images", "-a", "-q"), failed[1])
	out := e.ok(t, "builder", "prune", "-f")
	mustContain(t, "builder prune", out, "Total reclaimed space")
	mustNotContain(t, "builder prune deletes what only the cache held", e.ok(t, "images", "-a", "-q"), failed[1])
	mustEqual(t, "builder prune keeps the tagged image", shortID(e.imageID(t, tag)), old)
	mustEqual(t, "the cache still serves the rebuild", cachePattern(e.buildOK(t, dir, tag)), "FCCC")

	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile("2")), 0o644); err != nil {
		t.Fatal(err)
	}
	out = e.buildOK(t, dir, tag)
	mustEqual(t, "rebuild with a changed ENV", cachePattern(out), "FCNN")
	v2 := stepIDs(out)
	e.rmiOnCleanup(t, v2[2:]...)
	mustContain(t, "the old image is dangling", e.ok(t, "images", "-q", "-f", "dangling=true"), old)

	all := func() []string { t.Helper(); return e.docker(t, "images", "-a", "-q").Lines() }
	n := len(all())
	// The label keeps the prune to this test's images, so what it reclaims is theirs alone.
	pruned := e.ok(t, "image", "prune", "-f", "--filter", "label=e2e.mark="+mark)
	mustContain(t, "image prune deletes the dangling image", pruned, "deleted: sha256:"+old)
	mustContain(t, "image prune deletes its untagged parent", pruned, "deleted: sha256:"+oldEnv)
	mustNotContain(t, "image prune keeps the parent the new image shares", pruned, runImg)
	after := all()
	if len(after) > n-2 || contains(after, old) || contains(after, oldEnv) || !contains(after, runImg) {
		t.Fatalf("images -a: %d before the prune, now %d: %v (want %s and %s gone, %s kept)", n, len(after), after, old, oldEnv, runImg)
	}
	mustEqual(t, "the tagged image survives", e.ok(t, "run", "--rm", tag, "sh", "-c", "cat /r; echo $V"), mark+"\n2")

	out = e.ok(t, "system", "prune", "-f")
	mustContain(t, "system prune", out, "Total reclaimed space")
	mustEqual(t, "system prune keeps the tagged image", shortID(e.imageID(t, tag)), v2[3])

	out = e.ok(t, "rmi", tag)
	for i, what := range []string{"its RUN parent", "its ENV parent", "the image"} {
		mustContain(t, "rmi deletes "+what, out, "Deleted: sha256:"+v2[i+1])
	}
	after = all()
	for _, id := range v2[1:] {
		if contains(after, id) {
			t.Fatalf("after rmi, images -a still lists %s: %v", id, after)
		}
	}
	// The images image prune deleted were config-only steps: no layer of theirs was freed.
	mustContain(t, "image prune reports only the space it freed", pruned, "Total reclaimed space: 0B")
}
