package server

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
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

// oneContainer is a runtime with one container of pod ns/pod, named c, whose log is at path.
type oneContainer struct {
	runtimeapi.RuntimeServiceClient
	state runtimeapi.ContainerState
	path  string
}

func (o oneContainer) ListContainers(context.Context, *runtimeapi.ListContainersRequest, ...grpc.CallOption) (*runtimeapi.ListContainersResponse, error) {
	return &runtimeapi.ListContainersResponse{Containers: []*runtimeapi.Container{{Id: "c1", State: o.state, Metadata: &runtimeapi.ContainerMetadata{Name: "c"}}}}, nil
}

func (o oneContainer) ContainerStatus(context.Context, *runtimeapi.ContainerStatusRequest, ...grpc.CallOption) (*runtimeapi.ContainerStatusResponse, error) {
	return &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{Id: "c1", State: o.state, LogPath: o.path}}, nil
}

// TestLogOfAContainerThatNeverStartedIsEmpty: kubectl debug shows the debugger's log when it
// could not start (a mistyped command); the runtime made no log file for it.
func TestLogOfAContainerThatNeverStartedIsEmpty(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "0.log")
	for state, want := range map[runtimeapi.ContainerState]int{
		runtimeapi.ContainerState_CONTAINER_CREATED: http.StatusOK,
		runtimeapi.ContainerState_CONTAINER_EXITED:  http.StatusOK,
		runtimeapi.ContainerState_CONTAINER_RUNNING: http.StatusNotFound, // a log the runtime lost
	} {
		s := New(Config{Runtime: oneContainer{state: state, path: missing}})
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/containerLogs/ns/pod/c?follow=true", nil))
		if rec.Code != want || want == http.StatusOK && rec.Body.Len() != 0 {
			t.Errorf("%s: %d %q, want %d", state, rec.Code, rec.Body.String(), want)
		}
	}
}
