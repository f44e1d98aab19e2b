package dockerapi

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/engine/container"
	"github.com/berth-project/berth/internal/engine/errdefs"
)

func TestVersionLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{{"1.24", "1.50", true}, {"1.50", "1.50", false}, {"1.9", "1.10", true}, {"2.0", "1.50", false}} {
		if got := versionLess(tc.a, tc.b); got != tc.want {
			t.Errorf("versionLess(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}

func TestFiltersReadBothEncodings(t *testing.T) {
	for _, raw := range []string{`{"name":{"web":true}}`, `{"name":["web"]}`} {
		r := httptest.NewRequest("GET", "/containers/json?filters="+url.QueryEscape(raw), nil)
		f, err := filters(r, "name")
		if err != nil || !reflect.DeepEqual(f["name"], []string{"web"}) {
			t.Errorf("%s: %v %v", raw, f, err)
		}
	}
	r := httptest.NewRequest("GET", "/containers/json?filters="+url.QueryEscape(`{"nope":["x"]}`), nil)
	if _, err := filters(r, "name"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("an unknown filter gave %v, want invalid", err)
	}
	r = httptest.NewRequest("GET", "/containers/json?filters=%7Bbroken", nil)
	if _, err := filters(r); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("malformed filters gave %v, want invalid", err)
	}
}

func TestErrorsHaveDockersShape(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{errdefs.NotFound("No such container: x"), 404},
		{errdefs.Conflict("in use"), 409},
		{errdefs.Invalid("bad"), 400},
		{errors.New("boom"), 500},
	} {
		w := httptest.NewRecorder()
		writeError(w, tc.err)
		var body map[string]string
		json.Unmarshal(w.Body.Bytes(), &body)
		if w.Code != tc.code || body["message"] != tc.err.Error() {
			t.Errorf("%v: %d %s", tc.err, w.Code, w.Body.String())
		}
	}
}

func TestMalformedBodyIs400(t *testing.T) {
	r := httptest.NewRequest("POST", "/containers/create", strings.NewReader(`{"Image": 12`))
	r.ContentLength = 12
	var v struct{ Image string }
	if err := decodeBody(r, &v); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("decodeBody = %v, want invalid", err)
	}
	r = httptest.NewRequest("POST", "/containers/create", strings.NewReader(`{"Image": 12}`))
	r.ContentLength = 13
	if err := decodeBody(r, &v); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("a field of the wrong type gave %v, want invalid", err)
	}
}

func TestStatusStrings(t *testing.T) {
	now := time.Now()
	c := &container.Container{}
	c.State = container.State{Status: container.Exited, ExitCode: 3, FinishedAt: now.Add(-3 * time.Second)}
	if s := statusString(c); s != "Exited (3) 3 seconds ago" {
		t.Errorf("exited: %q", s)
	}
	c.State = container.State{Status: container.Running, StartedAt: now.Add(-2 * time.Minute)}
	if s := statusString(c); s != "Up 2 minutes" {
		t.Errorf("running: %q", s)
	}
	c.State.Status = container.Paused
	if s := statusString(c); s != "Up 2 minutes (Paused)" {
		t.Errorf("paused: %q", s)
	}
	if s := statusString(&container.Container{State: container.State{Status: container.Created}}); s != "Created" {
		t.Errorf("created: %q", s)
	}
}

func TestPingAdvertisesTheAPIVersion(t *testing.T) {
	s := &Server{mux: http.NewServeMux(), version: "test", log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	s.systemRoutes()
	for _, method := range []string{"GET", "HEAD"} {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(method, "/v1.44/_ping", nil))
		if w.Code != 200 || w.Header().Get("Api-Version") != APIVersion {
			t.Errorf("%s /_ping: %d %v", method, w.Code, w.Header())
		}
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest("GET", "/v1.99/_ping", nil))
	if w.Code != 400 {
		t.Errorf("a too-new client got %d, want 400", w.Code)
	}
}
