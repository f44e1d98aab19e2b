package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// logOptions are upstream's containerLogs query parameters.
type logOptions struct {
	follow     bool
	timestamps bool
	tail       int64 // -1: all
	since      time.Time
	limitBytes int64 // 0: no limit
}

func parseLogOptions(r *http.Request) (logOptions, error) {
	q := r.URL.Query()
	o := logOptions{follow: flag(r, "follow"), timestamps: flag(r, "timestamps"), tail: -1}
	num := func(name string) (int64, error) {
		v := q.Get(name)
		if v == "" {
			return -1, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s: %q is not a non-negative integer", name, v)
		}
		return n, nil
	}
	var err error
	if o.tail, err = num("tailLines"); err != nil {
		return o, err
	}
	lb, err := num("limitBytes")
	if err != nil {
		return o, err
	}
	o.limitBytes = max(lb, 0)
	ss, err := num("sinceSeconds")
	if err != nil {
		return o, err
	}
	if ss > 0 {
		o.since = time.Now().Add(-time.Duration(ss) * time.Second)
	}
	if st := q.Get("sinceTime"); st != "" {
		if o.since, err = time.Parse(time.RFC3339, st); err != nil {
			return o, fmt.Errorf("sinceTime: %w", err)
		}
	}
	return o, nil
}

// containerLogs serves a container's log from the CRI log file the runtime writes
// ("TIMESTAMP STREAM P|F TEXT" lines), the previous instance's with previous=true.
func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) {
	ns, pod, name := r.PathValue("ns"), r.PathValue("pod"), r.PathValue("container")
	opts, err := parseLogOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cs, err := s.findContainer(r.Context(), ns, pod, name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	i := 0
	if flag(r, "previous") {
		i = 1
	}
	if len(cs) <= i {
		what := "container"
		if i == 1 {
			what = "previous terminated container"
		}
		http.Error(w, fmt.Sprintf("%s %q in pod %q not found", what, name, pod), http.StatusNotFound)
		return
	}
	st, err := s.cfg.Runtime.ContainerStatus(r.Context(), &runtimeapi.ContainerStatusRequest{ContainerId: cs[i].Id})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	f, err := os.Open(st.Status.LogPath)
	if os.IsNotExist(err) && st.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		// A container whose start failed (a command that does not exist) may have no log
		// file: its log is empty, as on runtimes that make the file before the process.
		// kubectl debug falls back to this log when the debugger does not run.
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		return
	}
	if err != nil {
		http.Error(w, fmt.Sprintf("log of container %q: %v", name, err), http.StatusNotFound)
		return
	}
	defer f.Close()
	if opts.tail >= 0 {
		if err := seekTail(f, opts.tail); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	out := io.Writer(w)
	lw := &limitWriter{w: w, left: opts.limitBytes}
	if opts.limitBytes > 0 {
		out = lw
	}
	alive := func() bool {
		if !opts.follow || i == 1 {
			return false
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		st, err := s.cfg.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: cs[i].Id})
		return err == nil && st.Status.State == runtimeapi.ContainerState_CONTAINER_RUNNING
	}
	copyLog(r.Context(), f, out, opts, alive, w.(http.Flusher))
}

// copyLog writes the log's lines from f's offset on, decoded; when alive says the container
// still runs it waits for more at EOF. When the kubelet rotates the log (another file is at
// f's path now) it goes on in the new file.
func copyLog(ctx context.Context, f *os.File, w io.Writer, o logOptions, alive func() bool, fl http.Flusher) {
	path := f.Name()
	var next *os.File // the log's new file, once it was rotated
	own := false      // f is one this function opened (the caller closes its own)
	defer func() {
		if next != nil {
			next.Close()
		}
		if own {
			f.Close()
		}
	}()
	br := bufio.NewReaderSize(f, 64<<10)
	var pending []byte
	lastCheck := time.Now()
	running := true
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			line = append(pending, line...)
			pending = nil
			if werr := writeLine(w, line, o); werr != nil {
				return
			}
			continue
		}
		if len(line) > 0 {
			pending = append(pending, line...) // a line still being written
		}
		if !errors.Is(err, io.EOF) {
			return
		}
		if !running {
			return
		}
		switch {
		case next != nil:
			// The old file has been read to its end once more since the new one appeared:
			// the runtime's last lines to it, written while it reopened, are in.
			if own {
				f.Close()
			}
			f, next, own = next, nil, true
			br.Reset(f)
			continue
		case o.follow:
			next = rotated(f, path)
		}
		fl.Flush()
		if time.Since(lastCheck) > time.Second || !o.follow {
			running = alive()
			lastCheck = time.Now()
			if !running {
				continue // one more read for lines written before the exit
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// rotated opens the file now at path when it is no longer f (the log was rotated), or nil.
func rotated(f *os.File, path string) *os.File {
	now, err := os.Stat(path)
	if err != nil {
		return nil
	}
	if cur, err := f.Stat(); err != nil || os.SameFile(now, cur) {
		return nil
	}
	nf, err := os.Open(path)
	if err != nil {
		return nil
	}
	return nf
}

// writeLine decodes one CRI log line ("2016-10-06T00:17:09.669794202Z stdout F text").
func writeLine(w io.Writer, line []byte, o logOptions) error {
	ts, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return nil
	}
	_, rest, ok = bytes.Cut(rest, []byte(" ")) // stream
	if !ok {
		return nil
	}
	tag, text, ok := bytes.Cut(rest, []byte(" "))
	if !ok {
		text, tag = nil, bytes.TrimSuffix(rest, []byte("\n"))
		text = []byte("\n")
	}
	if !o.since.IsZero() {
		t, err := time.Parse(time.RFC3339Nano, string(ts))
		if err == nil && t.Before(o.since) {
			return nil
		}
	}
	if bytes.HasPrefix(tag, []byte("P")) {
		text = bytes.TrimSuffix(text, []byte("\n")) // a partial line continues in the next entry
	}
	if o.timestamps {
		if _, err := w.Write(append(ts, ' ')); err != nil {
			return err
		}
	}
	_, err := w.Write(text)
	return err
}

// seekTail positions f at the start of its last n lines.
func seekTail(f *os.File, n int64) error {
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil || n == 0 {
		return err
	}
	const block = 64 << 10
	buf := make([]byte, block)
	pos, lines := end, int64(0)
	for pos > 0 {
		size := min(int64(block), pos)
		pos -= size
		if _, err := f.ReadAt(buf[:size], pos); err != nil {
			return err
		}
		for i := size - 1; i >= 0; i-- {
			if buf[i] != '\n' || pos+i == end-1 {
				continue
			}
			lines++
			if lines == n {
				_, err := f.Seek(pos+i+1, io.SeekStart)
				return err
			}
		}
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}

type limitWriter struct {
	w    io.Writer
	left int64
}

var errLimit = errors.New("limit reached")

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errLimit
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	if err == nil && l.left <= 0 {
		err = errLimit
	}
	return n, err
}
