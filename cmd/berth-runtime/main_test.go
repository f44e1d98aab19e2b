package main

import (
	"io"
	"os"
	"testing"

	"github.com/berth-project/berth/internal/engine/runtime"
)

// requestPipe is a create's request pipe as the engine writes it: the request line, and
// later, maybe, the go-ahead.
func requestPipe(t *testing.T) (r *os.File, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func TestRequestGoAhead(t *testing.T) {
	t.Run("none", func(t *testing.T) {
		r, w := requestPipe(t)
		w.WriteString(`{"args":["--id","a"]}` + "\n")
		req, err := readRequest(int(r.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		if string(req.line) != `{"args":["--id","a"]}` {
			t.Fatalf("line %q", req.line)
		}
		if req.goNow() {
			t.Fatal("a go-ahead nobody wrote")
		}
	})
	t.Run("with the request", func(t *testing.T) {
		// The start came before berth-runtime read its request: one read gets both.
		r, w := requestPipe(t)
		w.WriteString(`{"args":[]}` + "\n" + string(runtime.GoNow))
		req, err := readRequest(int(r.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		if string(req.line) != `{"args":[]}` || !req.goNow() {
			t.Fatalf("line %q, go-ahead not seen", req.line)
		}
	})
	t.Run("later", func(t *testing.T) {
		r, w := requestPipe(t)
		w.WriteString(`{"args":[]}` + "\n")
		req, err := readRequest(int(r.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte{runtime.GoNow})
		if !req.goNow() {
			t.Fatal("go-ahead not seen")
		}
	})
	t.Run("pipe closed", func(t *testing.T) {
		// The create replied and the engine closed the pipe without a go-ahead.
		r, w := requestPipe(t)
		w.WriteString(`{"args":[]}` + "\n")
		req, err := readRequest(int(r.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		if req.goNow() {
			t.Fatal("end of file taken for a go-ahead")
		}
	})
	t.Run("request in pieces", func(t *testing.T) {
		r, w := requestPipe(t)
		go func() {
			w.WriteString(`{"args":`)
			w.WriteString(`["x"]}` + "\n")
		}()
		req, err := readRequest(int(r.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		if string(req.line) != `{"args":["x"]}` {
			t.Fatalf("line %q", req.line)
		}
	})
	t.Run("not needed", func(t *testing.T) {
		r, w := requestPipe(t)
		w.Close()
		if _, err := readRequest(int(r.Fd())); err != io.EOF {
			t.Fatalf("err %v, want end of file", err)
		}
	})
}
