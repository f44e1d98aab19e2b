package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// importTiny imports a one-file image (ref "" for an untagged one) and returns its id.
func (e *engine) importTiny(t *testing.T, ref string) string {
	t.Helper()
	args := []string{"import", "-"}
	if ref != "" {
		args = append(args, ref)
		e.rmiOnCleanup(t, ref)
	}
	r := e.dockerIn(t, bytes.NewReader(tinyTar(randHex(16))), args...)
	if r.Code != 0 || !strings.HasPrefix(r.Out(), "sha256:") {
		t.Fatalf("import of a one-file tar: %s", r)
	}
	e.rmiOnCleanup(t, r.Out())
	return r.Out()
}

// TestImagesImportAndInspect: docker import with -c changes, images lists it, inspect shows the
// changes, containers run with them, and short names mean docker.io/library/NAME.
func TestImagesImportAndInspect(t *testing.T) {
	e := needEngine(t)
	repo := uniq("imp")
	ref := repo + ":1.0"
	id := e.newImage(t, ref, "ENV FOO=bar", "LABEL e2e.kind=imported", "WORKDIR /www")

	mustContain(t, "images REPO lists the tag", e.ok(t, "images", repo), "1.0")
	mustEqual(t, "images -q REF", e.ok(t, "images", "-q", ref), shortID(id))
	mustEqual(t, "images --no-trunc -q REF", e.ok(t, "images", "--no-trunc", "-q", ref), id)

	mustEqual(t, "inspect .Id", e.ok(t, "image", "inspect", "-f", "{{.Id}}", ref), id)
	mustEqual(t, "inspect .Config.Cmd", e.ok(t, "image", "inspect", "-f", "{{json .Config.Cmd}}", ref), `["/bin/sh"]`)
	mustEqual(t, "inspect .Config.WorkingDir", e.ok(t, "image", "inspect", "-f", "{{.Config.WorkingDir}}", ref), "/www")
	mustContain(t, "inspect .Config.Env", e.ok(t, "image", "inspect", "-f", "{{json .Config.Env}}", ref), `"FOO=bar"`)
	mustEqual(t, "inspect label", e.ok(t, "image", "inspect", "-f", `{{index .Config.Labels "e2e.kind"}}`, ref), "imported")
	mustContain(t, "inspect .RepoTags", e.ok(t, "image", "inspect", "-f", "{{json .RepoTags}}", ref), `"`+ref+`"`)
	mustEqual(t, "inspect .Os", e.ok(t, "image", "inspect", "-f", "{{.Os}}", ref), "linux")
	mustEqual(t, "inspect .RootFS.Type", e.ok(t, "image", "inspect", "-f", "{{.RootFS.Type}}", ref), "layers")
	if sz := e.ok(t, "image", "inspect", "-f", "{{.Size}}", ref); sz == "0" || sz == "" {
		t.Fatalf("inspect .Size = %q, want the rootfs size", sz)
	}

	// The changes apply to containers of the image.
	out := e.ok(t, "run", "--rm", ref, "sh", "-c", `echo "$FOO $(pwd)"; cat index.html`)
	mustEqual(t, "ENV and WORKDIR in a container", out, "bar /www\nhello from busybox")

	// Short names are docker.io/library/NAME.
	full := "docker.io/library/" + ref
	mustEqual(t, "inspect by the full name", e.ok(t, "image", "inspect", "-f", "{{.Id}}", full), id)
	mustEqual(t, "run by the full name", e.ok(t, "run", "--rm", full, "echo", "ok"), "ok")
	e.ok(t, "tag", full, repo+":full")
	mustEqual(t, "tag from the full name makes a short-named tag", e.ok(t, "images", "-q", repo+":full"), shortID(id))
	mustContain(t, "rmi by the full name untags", e.ok(t, "rmi", "docker.io/library/"+repo+":full"), "Untagged")
	if out := e.docker(t, "images", "-q", repo+":full").Out(); out != "" {
		t.Fatalf("after rmi docker.io/library/%s:full, images -q %s:full = %q", repo, repo, out)
	}

	r := e.fails(t, "image", "inspect", "nosuch-"+randHex(6)+":0")
	mustContain(t, "inspect of a missing image", r.Stderr, "No such image")
}

// TestImagesHistory: docker history shows the image's layers.
func TestImagesHistory(t *testing.T) {
	e := needEngine(t)
	out := e.ok(t, "history", bbImage)
	mustContain(t, "history header", out, "CREATED BY")
	if n := len(lines(out)); n < 2 {
		t.Fatalf("history has %d lines, want a header and at least one layer:\n%s", n, out)
	}
	if ids := e.docker(t, "history", "-q", bbImage).Lines(); len(ids) < 1 {
		t.Fatalf("history -q printed nothing")
	}
	e.fails(t, "history", "nosuch-"+randHex(6)+":0")
}

// TestImagesTagAndRmi: tag by name and id prefix, rmi untags while other tags remain, deletes
// with the last one, refuses an id with several tags unless -f, and takes id prefixes.
func TestImagesTagAndRmi(t *testing.T) {
	e := needEngine(t)
	a, b, c := uniq("ta")+":1", uniq("tb")+":2", uniq("tc")+":3"
	id := e.newImage(t, a)
	e.rmiOnCleanup(t, b, c)

	e.ok(t, "tag", a, b)
	e.ok(t, "tag", shortID(id)[:8], c) // by id prefix
	for _, ref := range []string{b, c} {
		mustEqual(t, "tags share the image id", e.ok(t, "images", "-q", ref), shortID(id))
	}

	// Untag, not delete, while other tags remain.
	out := e.ok(t, "rmi", c)
	mustContain(t, "rmi of one tag", out, "Untagged: "+c)
	mustNotContain(t, "rmi of one tag of several", out, "Deleted")
	mustEqual(t, "the image survives the untag", e.ok(t, "image", "inspect", "-f", "{{.Id}}", a), id)
	e.fails(t, "image", "inspect", c)

	// An id with several tags needs -f.
	r := e.fails(t, "rmi", shortID(id))
	mustContain(t, "rmi of an id with two tags", strings.ToLower(r.Stderr), "force")
	mustEqual(t, "the image survives the refused rmi", e.ok(t, "image", "inspect", "-f", "{{.Id}}", a), id)

	// -f by id prefix removes every tag and the image.
	out = e.ok(t, "rmi", "-f", shortID(id)[:10])
	mustContain(t, "rmi -f untags a", out, "Untagged: "+a)
	mustContain(t, "rmi -f untags b", out, "Untagged: "+b)
	mustContain(t, "rmi -f deletes the image", out, "Deleted: "+id)
	e.fails(t, "image", "inspect", id)
	e.fails(t, "image", "inspect", a)

	// rmi by the full id of a single-tagged image.
	d := uniq("td") + ":4"
	id2 := e.newImage(t, d)
	out = e.ok(t, "rmi", id2)
	mustContain(t, "rmi by full id untags", out, "Untagged: "+d)
	mustContain(t, "rmi by full id deletes", out, "Deleted: "+id2)

	// rmi by the last tag deletes.
	f := uniq("tf") + ":5"
	id3 := e.newImage(t, f)
	out = e.ok(t, "rmi", f)
	mustContain(t, "rmi of the last tag deletes", out, "Deleted: "+id3)
	e.fails(t, "image", "inspect", id3)

	r = e.fails(t, "rmi", "nosuch-"+randHex(6)+":0")
	mustContain(t, "rmi of a missing image", r.Stderr, "No such image")
}

// TestImagesRmiInUse: an image a container uses cannot be removed until the container is gone.
func TestImagesRmiInUse(t *testing.T) {
	e := needEngine(t)
	ref := uniq("inuse") + ":1"
	id := e.newImage(t, ref)
	name := uniq("inuse")
	e.rmOnCleanup(t, name)
	e.ok(t, "create", "--name", name, ref, "true")

	r := e.fails(t, "rmi", ref)
	mustContain(t, "rmi of an image in use names the reason", r.Stderr, "container")
	r = e.fails(t, "rmi", shortID(id))
	mustContain(t, "rmi by id of an image in use names the reason", r.Stderr, "container")
	mustEqual(t, "the image is still there", e.ok(t, "images", "-q", ref), shortID(id))

	e.ok(t, "rm", name)
	mustContain(t, "rmi once the container is gone", e.ok(t, "rmi", ref), "Deleted: "+id)
}

// TestImagesFilters: docker images with dangling, reference and label filters, -q, --no-trunc.
func TestImagesFilters(t *testing.T) {
	e := needEngine(t)
	p := "flt" + randHex(6)
	web := e.newImage(t, p+"-web:1", "LABEL e2e.kind=web")
	db := e.newImage(t, p+"-db:1", "LABEL e2e.kind=db")
	dangling := e.importTiny(t, "")

	ids := func(args ...string) []string {
		t.Helper()
		return e.docker(t, append([]string{"images"}, args...)...).Lines()
	}
	for _, l := range ids("-q") {
		if !hexID12.MatchString(l) {
			t.Fatalf("images -q printed %q, want 12-hex ids only", l)
		}
	}
	all := ids("-q")
	if !contains(all, shortID(web)) || !contains(all, shortID(db)) || !contains(all, shortID(dangling)) {
		t.Fatalf("images -q = %v; want web %s, db %s and dangling %s", all, shortID(web), shortID(db), shortID(dangling))
	}
	mustContain(t, "images shows <none> for the dangling image", e.ok(t, "images", "-f", "dangling=true"), "<none>")

	got := ids("-q", "-f", "dangling=true")
	if !contains(got, shortID(dangling)) || contains(got, shortID(web)) || contains(got, shortID(db)) {
		t.Fatalf("images -f dangling=true = %v; want %s without %s and %s", got, shortID(dangling), shortID(web), shortID(db))
	}
	got = ids("-q", "-f", "dangling=false")
	if contains(got, shortID(dangling)) || !contains(got, shortID(web)) {
		t.Fatalf("images -f dangling=false = %v; want %s without %s", got, shortID(web), shortID(dangling))
	}

	refs := func(args ...string) string {
		t.Helper()
		l := ids(append([]string{"--format", "{{.Repository}}:{{.Tag}}"}, args...)...)
		sort.Strings(l)
		return strings.Join(l, " ")
	}
	mustEqual(t, "images -f reference=PREFIX-web*", refs("-f", "reference="+p+"-web*"), p+"-web:1")
	mustEqual(t, "images -f reference=PREFIX*:1", refs("-f", "reference="+p+"*:1"), p+"-db:1 "+p+"-web:1")
	mustEqual(t, "images -f reference=PREFIX-db:1", refs("-f", "reference="+p+"-db:1"), p+"-db:1")
	mustEqual(t, "images REPOSITORY", refs(p+"-web"), p+"-web:1")
	mustEqual(t, "images -f reference=nothing", refs("-f", "reference="+p+"-nothing*"), "")

	mustEqual(t, "images -f label=KEY=VALUE", refs("-f", "label=e2e.kind=web", "-f", "reference="+p+"*"), p+"-web:1")
	mustEqual(t, "images -f label=KEY", refs("-f", "label=e2e.kind", "-f", "reference="+p+"*"), p+"-db:1 "+p+"-web:1")
	got = ids("-q", "-f", "label=e2e.kind=db")
	if !contains(got, shortID(db)) || contains(got, shortID(web)) {
		t.Fatalf("images -q -f label=e2e.kind=db = %v; want %s only", got, shortID(db))
	}
	for _, l := range ids("-q", "--no-trunc", "-f", "reference="+p+"*") {
		if !strings.HasPrefix(l, "sha256:") || !hexID64.MatchString(strings.TrimPrefix(l, "sha256:")) {
			t.Fatalf("images -q --no-trunc printed %q, want sha256:<64 hex>", l)
		}
	}
}

// TestImagesPrune: image prune -f deletes dangling images only.
func TestImagesPrune(t *testing.T) {
	e := needEngine(t)
	dangling := e.importTiny(t, "")
	ref := uniq("keep") + ":1"
	kept := e.importTiny(t, ref)

	out := e.ok(t, "image", "prune", "-f")
	mustContain(t, "image prune reports the dangling image", out, strings.TrimPrefix(dangling, "sha256:"))
	mustContain(t, "image prune reports space", out, "Total reclaimed space")
	e.fails(t, "image", "inspect", dangling)
	mustEqual(t, "a tagged image survives prune", e.ok(t, "image", "inspect", "-f", "{{.Id}}", ref), kept)
	e.ok(t, "image", "inspect", bbImage)
}

// TestImagesSaveLoad: docker save writes a docker-archive (manifest.json), docker load reads it
// back (from a file and from stdin) with the same id and tag, and the image runs.
func TestImagesSaveLoad(t *testing.T) {
	e := needEngine(t)
	ref := uniq("sl") + ":1"
	id := e.newImage(t, ref, "ENV SAVED=yes")
	file := filepath.Join(t.TempDir(), "img.tar")

	e.ok(t, "save", "-o", file, ref)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	checkDockerArchive(t, data, ref)

	e.ok(t, "rmi", ref)
	e.fails(t, "image", "inspect", id)
	mustContain(t, "load -i", e.ok(t, "load", "-i", file), "Loaded image: "+ref)
	mustEqual(t, "loaded image id", e.ok(t, "image", "inspect", "-f", "{{.Id}}", ref), id)
	mustEqual(t, "the loaded image runs with its config", e.ok(t, "run", "--rm", ref, "sh", "-c", "echo $SAVED"), "yes")

	// Through stdout and stdin.
	r := e.docker(t, "save", ref)
	if r.Code != 0 || len(r.Stdout) == 0 {
		t.Fatalf("save to stdout: %s", r)
	}
	checkDockerArchive(t, []byte(r.Stdout), ref)
	e.ok(t, "rmi", ref)
	r = e.dockerIn(t, strings.NewReader(r.Stdout), "load")
	if r.Code != 0 {
		t.Fatalf("load from stdin: %s", r)
	}
	mustContain(t, "load from stdin", r.Stdout, "Loaded image: "+ref)
	mustEqual(t, "image id after load from stdin", e.ok(t, "image", "inspect", "-f", "{{.Id}}", ref), id)

	r = e.dockerIn(t, strings.NewReader("this is not a tar"), "load")
	if r.Code == 0 {
		t.Fatalf("load of garbage succeeded: %s", r)
	}
}

// checkDockerArchive checks a docker-archive: manifest.json naming ref, its config and layers present.
func checkDockerArchive(t *testing.T, data []byte, ref string) {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("save output is not a tar: %v", err)
		}
		b, _ := io.ReadAll(tr)
		files[strings.TrimPrefix(h.Name, "./")] = b
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		names := make([]string, 0, len(files))
		for n := range files {
			names = append(names, n)
		}
		t.Fatalf("save: manifest.json unreadable (%v) or not one entry: %s (files %v)", err, files["manifest.json"], names)
	}
	m := manifest[0]
	if !contains(m.RepoTags, ref) {
		t.Fatalf("save: manifest RepoTags %v, want %s", m.RepoTags, ref)
	}
	if _, found := files[m.Config]; !found {
		t.Fatalf("save: config %s is not in the archive", m.Config)
	}
	if len(m.Layers) == 0 {
		t.Fatalf("save: no layers in the manifest")
	}
	for _, l := range m.Layers {
		if _, found := files[l]; !found {
			t.Fatalf("save: layer %s is not in the archive", l)
		}
	}
}
