package runtime

import (
	"io"
	"os"
	"testing"
)

// passGoOn runs passGo on a fresh request pipe and returns what it reported and what
// berth-runtime would read after the request line.
func passGoOn(t *testing.T, start chan struct{}, before func(replied chan struct{})) (bool, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	replied := make(chan struct{})
	gave := make(chan bool, 1)
	go func() { gave <- passGo(w, start, replied) }()
	before(replied)
	got := <-gave
	rest, err := io.ReadAll(r) // to end of file: passGo closed its end
	if err != nil {
		t.Fatal(err)
	}
	return got, string(rest)
}

func TestPassGo(t *testing.T) {
	t.Run("the start comes first", func(t *testing.T) {
		start := make(chan struct{})
		gave, rest := passGoOn(t, start, func(chan struct{}) { close(start) })
		if !gave || rest != string(GoNow) {
			t.Fatalf("reported %v, wrote %q; want true, %q", gave, rest, string(GoNow))
		}
	})
	t.Run("the reply comes first", func(t *testing.T) {
		start := make(chan struct{})
		gave, rest := passGoOn(t, start, func(replied chan struct{}) { close(replied) })
		if gave || rest != "" {
			t.Fatalf("reported %v, wrote %q; want false and nothing", gave, rest)
		}
		close(start) // too late: nothing more is written, the pipe is closed
	})
	t.Run("no go-ahead asked for", func(t *testing.T) {
		// A start's own create (not an early start) has no Go channel.
		gave, rest := passGoOn(t, nil, func(replied chan struct{}) { close(replied) })
		if gave || rest != "" {
			t.Fatalf("reported %v, wrote %q; want false and nothing", gave, rest)
		}
	})
}
