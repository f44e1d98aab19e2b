package snapshot

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type entry struct {
	name, link string
	typ        byte
	body       string
	mode       int64
}

func mkTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: mode, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Size > 0 {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func TestCleanEntryNameRefusesClimbingOut(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		bad  bool
	}{
		{in: "a/b", want: "a/b"},
		{in: "./a/./b/", want: "a/b"},
		{in: "/etc/passwd", want: "etc/passwd"},
		{in: "a/../b", want: "b"},
		{in: "../x", bad: true},
		{in: "a/../../x", bad: true},
		{in: "..", bad: true},
		{in: "a\x00b", bad: true},
	} {
		got, err := CleanEntryName(tc.in)
		if tc.bad {
			if !errors.Is(err, ErrBadArchive) {
				t.Errorf("CleanEntryName(%q) = %q, %v; want an ErrBadArchive", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("CleanEntryName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestApplyWritesFilesDirsAndLinks(t *testing.T) {
	root := t.TempDir()
	data := mkTar(t,
		entry{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "etc/hello", typ: tar.TypeReg, body: "hi\n"},
		entry{name: "bin/sh", typ: tar.TypeSymlink, link: "/bin/busybox"},
		entry{name: "etc/hello2", typ: tar.TypeLink, link: "etc/hello"},
	)
	if _, err := Apply(root, bytes.NewReader(data), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/hello2")); string(b) != "hi\n" {
		t.Errorf("hard link content = %q", b)
	}
	if l, _ := os.Readlink(filepath.Join(root, "bin/sh")); l != "/bin/busybox" {
		t.Errorf("symlink = %q", l)
	}
}

func TestApplyRefusesHostileArchives(t *testing.T) {
	outside := t.TempDir()
	for name, data := range map[string][]byte{
		"dot-dot":        mkTar(t, entry{name: "../escape", typ: tar.TypeReg, body: "x"}),
		"deep dot-dot":   mkTar(t, entry{name: "a/../../escape", typ: tar.TypeReg, body: "x"}),
		"device node":    mkTar(t, entry{name: "dev/sda", typ: tar.TypeBlock}),
		"hardlink out":   mkTar(t, entry{name: "x", typ: tar.TypeLink, link: "../../etc/passwd"}),
		"truncated body": mkTar(t, entry{name: "f", typ: tar.TypeReg, body: "abc"})[:514],
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			_, err := Apply(root, bytes.NewReader(data), ApplyOptions{})
			if !errors.Is(err, ErrBadArchive) {
				t.Fatalf("Apply = %v, want ErrBadArchive", err)
			}
		})
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("something was written outside: %v", ents)
	}
}

func TestApplyDoesNotFollowAbsoluteSymlinksOut(t *testing.T) {
	outside := t.TempDir()
	root := t.TempDir()
	// "evil" points at a host directory; the next entry writes through it. The write
	// must land inside root (symlinks are resolved within root), never in outside.
	data := mkTar(t,
		entry{name: "evil", typ: tar.TypeSymlink, link: outside},
		entry{name: "evil/pwned", typ: tar.TypeReg, body: "x"},
	)
	Apply(root, bytes.NewReader(data), ApplyOptions{})
	if _, err := os.Stat(filepath.Join(outside, "pwned")); err == nil {
		t.Fatal("the archive wrote through an absolute symlink to the host")
	}
}

func TestApplyMakesOverlayWhiteouts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("whiteouts are device nodes: needs root")
	}
	root := t.TempDir()
	data := mkTar(t,
		entry{name: "gone/", typ: tar.TypeDir, mode: 0o755},
		entry{name: ".wh.old", typ: tar.TypeReg},
		entry{name: "gone/.wh..wh..opq", typ: tar.TypeReg},
	)
	if _, err := Apply(root, bytes.NewReader(data), ApplyOptions{Whiteouts: true}); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(root, "old"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("old is not a 0/0 character device whiteout: %v %o", err, st.Mode)
	}
	if !isOpaque(filepath.Join(root, "gone")) {
		t.Error("gone is not marked opaque")
	}
}

func FuzzApply(f *testing.F) {
	f.Add(mkTar(f, entry{name: "a/b", typ: tar.TypeReg, body: "x"}))
	f.Add(mkTar(f, entry{name: "l", typ: tar.TypeSymlink, link: "/"}, entry{name: "l/x", typ: tar.TypeReg}))
	f.Add(mkTar(f, entry{name: "../x", typ: tar.TypeReg}))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		root := filepath.Join(parent, "root")
		os.Mkdir(root, 0o755)
		done := make(chan struct{})
		go func() { Apply(root, bytes.NewReader(data), ApplyOptions{}); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Apply hangs on %q", data)
		}
		// Whatever the archive, nothing may appear next to root.
		ents, _ := os.ReadDir(parent)
		if len(ents) != 1 {
			t.Fatalf("archive wrote outside its root: %v", ents)
		}
	})
}
