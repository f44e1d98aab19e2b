package server

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

const criLog = `2024-01-01T00:00:01.000000000Z stdout F one
2024-01-01T00:00:02.000000000Z stderr F two
2024-01-01T00:00:03.000000000Z stdout P thr
2024-01-01T00:00:03.100000000Z stdout F ee
2024-01-01T00:00:04.000000000Z stdout F four
`

func readLog(t *testing.T, query string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "0.log")
	os.WriteFile(p, []byte(criLog), 0o644)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := httptest.NewRequest(http.MethodGet, "/containerLogs/ns/pod/c?"+query, nil)
	o, err := parseLogOptions(r)
	if err != nil {
		t.Fatal(err)
	}
	if o.tail >= 0 {
		if err := seekTail(f, o.tail); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	rec := httptest.NewRecorder()
	var w interface{ Write([]byte) (int, error) } = &buf
	if o.limitBytes > 0 {
		w = &limitWriter{w: &buf, left: o.limitBytes}
	}
	copyLog(context.Background(), f, w, o, func() bool { return false }, rec)
	return buf.String()
}

func TestLogDecodingAndOptions(t *testing.T) {
	for query, want := range map[string]string{
		"":                               "one\ntwo\nthree\nfour\n",
		"tailLines=1":                    "four\n",
		"tailLines=2":                    "ee\nfour\n",
		"tailLines=0":                    "",
		"tailLines=100":                  "one\ntwo\nthree\nfour\n",
		"limitBytes=6":                   "one\ntw",
		"timestamps=true":                "2024-01-01T00:00:01.000000000Z one\n2024-01-01T00:00:02.000000000Z two\n2024-01-01T00:00:03.000000000Z thr2024-01-01T00:00:03.100000000Z ee\n2024-01-01T00:00:04.000000000Z four\n",
		"sinceTime=2024-01-01T00:00:03Z": "three\nfour\n",
	} {
		if got := readLog(t, query); got != want {
			t.Errorf("%q: %q, want %q", query, got, want)
		}
	}
}

func TestBadLogOptionsAreRefused(t *testing.T) {
	for _, q := range []string{"tailLines=-1", "tailLines=x", "limitBytes=z", "sinceSeconds=-5", "sinceTime=yesterday"} {
		r := httptest.NewRequest(http.MethodGet, "/containerLogs/ns/pod/c?"+q, nil)
		if _, err := parseLogOptions(r); err == nil {
			t.Errorf("%s accepted", q)
		}
	}
}
