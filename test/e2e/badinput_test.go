package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBadInputMalformedJSON: a malformed JSON body gets 400 with {"message": ...}, and the
// engine keeps answering.
func TestBadInputMalformedJSON(t *testing.T) {
	e := needEngine(t)
	c := e.httpClient()
	cases := []struct{ path, body string }{
		{"/containers/create", `{"Image": "bb:1.0", "Cmd": [`},
		{"/containers/create?name=" + uniq("badjson"), `{"Image": "bb:1.0"`},
		{"/containers/create", `not json at all`},
		{"/volumes/create", `{bad`},
	}
	for _, tc := range cases {
		resp, err := c.Post("http://docker"+tc.path, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatalf("POST %s: %v", tc.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("POST %s with %q: status %d, want 400 (body %s)", tc.path, tc.body, resp.StatusCode, b)
		}
		var msg struct{ Message string }
		if err := json.Unmarshal(b, &msg); err != nil || msg.Message == "" {
			t.Errorf("POST %s: body %q is not {\"message\": ...} (%v)", tc.path, b, err)
		}
	}
	resp, err := c.Get("http://docker/_ping")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the engine stopped answering after malformed bodies: %v %v", resp, err)
	}
	resp.Body.Close()
	e.ok(t, "ps")
}

// TestBadInputContainerName: invalid names are refused with "Invalid container name" and
// nothing is created.
func TestBadInputContainerName(t *testing.T) {
	e := needEngine(t)
	before := len(e.docker(t, "ps", "-aq").Lines())
	for _, bad := range []string{"bad/name", "bad name", "_bad", "x", "bad:name"} {
		r := e.fails(t, "run", "--name", bad, bbImage, "true")
		mustContain(t, "run --name "+bad, r.Stderr, "Invalid container name")
		r = e.fails(t, "create", "--name", bad, bbImage)
		mustContain(t, "create --name "+bad, r.Stderr, "Invalid container name")
	}
	if after := len(e.docker(t, "ps", "-aq").Lines()); after != before {
		t.Fatalf("refused names still created containers: %d -> %d", before, after)
	}
	name := uniq("goodname")
	e.sleeper(t, name)
	r := e.fails(t, "rename", name, "bad/name")
	mustContain(t, "rename to an invalid name", r.Stderr, "Invalid container name")
	e.ok(t, "version")
}

// TestBadInputUnknownObjects: unknown images, containers, volumes and users get clear errors.
func TestBadInputUnknownObjects(t *testing.T) {
	e := needEngine(t)
	missing := "nosuch-" + randHex(6)
	mustContain(t, "run of an unknown image", e.fails(t, "run", "--rm", "--pull", "never", missing+":0", "true").Stderr, "No such image")
	for _, args := range [][]string{{"start", missing}, {"stop", missing}, {"logs", missing}, {"rm", missing}} {
		mustContain(t, "docker "+args[0]+" of an unknown container", e.fails(t, args...).Stderr, "No such container")
	}
	mustContain(t, "volume inspect of an unknown volume", strings.ToLower(e.fails(t, "volume", "inspect", missing).Stderr), "no such volume")
	r := e.fails(t, "run", "--rm", "-u", "nosuchuser", bbImage, "true")
	mustContain(t, "run -u of an unknown user", r.Stderr, "nosuchuser")
	e.ok(t, "version")
}

// hostileTar builds a tar of base's entries (may be nil) followed by entries; regular files
// hold content.
func hostileTar(t *testing.T, base []byte, entries []tar.Header, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if base != nil {
		tr := tar.NewReader(bytes.NewReader(base))
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			_ = tw.WriteHeader(h)
			_, _ = io.Copy(tw, tr)
		}
	}
	for _, h := range entries {
		h := h
		h.ModTime = time.Now()
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(content))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			_, _ = tw.Write([]byte(content))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestBadInputHostileImport: a tar with ../ paths is refused on import and writes nothing
// outside the data dir; symlink and hard-link tricks write nothing outside either; the engine
// keeps answering.
func TestBadInputHostileImport(t *testing.T) {
	e := needEngine(t)
	victim, err := os.MkdirTemp("/tmp", "be2evictim")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(victim) })
	target := filepath.Join(victim, "target.txt")
	if err := os.WriteFile(target, []byte("original\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	up := strings.Repeat("../", 40)
	rel := strings.TrimPrefix(victim, "/")

	untouched := func(what string) {
		t.Helper()
		ents, err := os.ReadDir(victim)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 || ents[0].Name() != "target.txt" {
			var names []string
			for _, x := range ents {
				names = append(names, x.Name())
			}
			t.Fatalf("%s wrote outside the data dir: %s now holds %v", what, victim, names)
		}
		b, _ := os.ReadFile(target)
		var st syscall.Stat_t
		_ = syscall.Stat(target, &st)
		if string(b) != "original\n" || st.Nlink != 1 {
			t.Fatalf("%s touched %s: content %q, links %d", what, target, b, st.Nlink)
		}
	}

	t.Run("dot-dot paths", func(t *testing.T) {
		data := hostileTar(t, nil, []tar.Header{
			{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755},
			{Typeflag: tar.TypeReg, Name: up + rel + "/escaped.txt"},
			{Typeflag: tar.TypeReg, Name: "etc/" + up + rel + "/escaped2.txt"},
		}, "pwned\n")
		ref := uniq("evil") + ":1"
		e.rmiOnCleanup(t, ref)
		r := e.dockerIn(t, bytes.NewReader(data), "import", "-", ref)
		if r.Code == 0 {
			t.Errorf("import of a tar with ../ paths succeeded: %s", r)
		}
		untouched("import of ../ paths")
	})

	t.Run("symlink", func(t *testing.T) {
		data := hostileTar(t, nil, []tar.Header{
			{Typeflag: tar.TypeSymlink, Name: "link", Linkname: victim, Mode: 0o777},
			{Typeflag: tar.TypeReg, Name: "link/through-symlink.txt"},
			{Typeflag: tar.TypeSymlink, Name: "rel", Linkname: up + rel, Mode: 0o777},
			{Typeflag: tar.TypeReg, Name: "rel/through-relative.txt"},
		}, "pwned\n")
		ref := uniq("evilsym") + ":1"
		e.rmiOnCleanup(t, ref)
		e.dockerIn(t, bytes.NewReader(data), "import", "-", ref) // may fail or succeed
		untouched("import through a symlink")
	})

	t.Run("hard link", func(t *testing.T) {
		base, err := busyboxTar()
		if err != nil {
			t.Fatal(err)
		}
		data := hostileTar(t, base, []tar.Header{
			{Typeflag: tar.TypeLink, Name: "hl", Linkname: up + rel + "/target.txt"},
			{Typeflag: tar.TypeLink, Name: "hl2", Linkname: target},
		}, "")
		ref := uniq("evilhl") + ":1"
		e.rmiOnCleanup(t, ref)
		if r := e.dockerIn(t, bytes.NewReader(data), "import", "-", ref); r.Code == 0 {
			// If the engine accepted it, writing through the links must not reach the host's file.
			e.docker(t, "run", "--rm", ref, "sh", "-c", "echo pwned >> /hl; echo pwned >> /hl2")
		}
		untouched("import with hard links out of the rootfs")
	})

	t.Run("engine still answers", func(t *testing.T) {
		e.ok(t, "version")
		mustEqual(t, "a container still runs", e.ok(t, "run", "--rm", bbImage, "echo", "fine"), "fine")
	})
}
