package shim

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// criLines reads a CRI log as "stream tag text" lines, checking each line's timestamp.
func criLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ts := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z `)
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if !ts.MatchString(l) {
			t.Fatalf("line without an RFC 3339 timestamp: %q", l)
		}
		out = append(out, ts.ReplaceAllString(l, ""))
	}
	return out
}

func TestCRILogWritesWholeLinesPerStream(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c", "0.log")
	l, err := openCRILog(p)
	if err != nil {
		t.Fatal(err)
	}
	l.write("stdout", []byte("hello "))
	l.write("stderr", []byte("oops\n"))
	l.write("stdout", []byte("world\nsecond\n\nno newline"))
	l.flush()
	want := []string{"stderr F oops", "stdout F hello world", "stdout F second", "stdout F ", "stdout F no newline"}
	if got := criLines(t, p); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("log lines:\n got %q\nwant %q", got, want)
	}
}

func TestCRILogCutsLongLinesIntoPartials(t *testing.T) {
	p := filepath.Join(t.TempDir(), "0.log")
	l, err := openCRILog(p)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", maxCRILine*2+10)
	l.write("stdout", []byte(long+"\nend\n"))
	got := criLines(t, p)
	want := []string{"stdout P " + long[:maxCRILine], "stdout P " + long[maxCRILine:2*maxCRILine], "stdout F " + long[2*maxCRILine:], "stdout F end"}
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("line %d: %.40q..., want %.40q...", i, got[i], want[i])
		}
	}
}

func TestCRILogReopenStartsAFreshFileAfterRotation(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "0.log")
	l, err := openCRILog(p)
	if err != nil {
		t.Fatal(err)
	}
	l.write("stdout", []byte("before\n"))
	if err := os.Rename(p, p+".1"); err != nil { // what the kubelet's rotation does
		t.Fatal(err)
	}
	if err := l.reopen(); err != nil {
		t.Fatal(err)
	}
	l.write("stdout", []byte("after\n"))
	if got := criLines(t, p+".1"); len(got) != 1 || got[0] != "stdout F before" {
		t.Fatalf("rotated file: %q", got)
	}
	if got := criLines(t, p); len(got) != 1 || got[0] != "stdout F after" {
		t.Fatalf("new file: %q", got)
	}
}
